"""Error hints in the CLI's words: `orva ...` commands instead of the API paths orvad's hints name.

orvad's hints speak to API clients ("read the logs at GET /api/v1/executions/<id>/logs"). The CLI
prints the command that does the same (`orva logs hello --execution <id>`), naming the function
the command was given, and the flag behind a VALIDATION error's details.field. The API's own hint
stays in the error (printed under --json).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import click

PERMISSIONS = ("invoke", "read", "write", "admin")
# an API reference in a hint: an optional method, the path, and an optional JSON body after it
_API_REF = re.compile(r"(?:\b(GET|POST|PUT|DELETE|PATCH) )?(/api/v1/[^\s)\]\"',;]*)(?: \{[^{}]*\})?")
_EXECUTION_ERRORS = ("FUNCTION_ERROR", "WORKER_CRASHED", "TIMEOUT")


def _context() -> click.Context | None:
    return click.get_current_context(silent=True)


def current_function(ctx: click.Context | None = None) -> str | None:
    """The function the running command was given (NAME, --name, --function), if it takes one."""
    ctx = ctx or _context()
    if ctx is None:
        return None
    words = ctx.command_path.split()
    if words[1:2] == ["keys"]:  # `keys create NAME`: NAME is a key's
        return None
    for param in ("function", "name"):
        value = ctx.params.get(param)
        if isinstance(value, str) and value:
            return value
    return None


def flag_for(field: str, ctx: click.Context | None = None) -> str | None:
    """The option (or argument) of the running command that sets an API field: memory_mb -> --memory-mb."""
    ctx = ctx or _context()
    if ctx is None:
        return None
    wanted = [field, field.rsplit(".", 1)[-1]]  # pool.min_warm is `pool set`'s --min-warm
    if field == "name" and ctx.params.get("rename"):
        wanted.insert(0, "rename")
    for name in wanted:
        for param in ctx.command.params:
            if param.name == name:
                if isinstance(param, click.Option):
                    return max(param.opts, key=len)
                return param.human_readable_name
    return None


def _last_segment(path: str, index: int) -> str | None:
    """A real id in an API path (not a `{id}` placeholder), or None."""
    parts = path.strip("/").split("/")
    value = parts[index] if len(parts) > index else ""
    return value if value and not value.startswith("{") else None


def command_for(method: str | None, path: str, fn: str | None) -> str:
    """The `orva` command doing what an API call does."""
    f = fn or "NAME"
    path = path.split("?")[0].rstrip(".")
    rules: list[tuple[str, Callable[[], str]]] = [
        (
            r"/api/v1/deployments/[^/]+(/logs|/stream)?",
            lambda: " ".join(filter(None, ("orva build-log", f, _last_segment(path, 3)))),
        ),
        (r"/api/v1/functions/[^/]+/deployments", lambda: f"orva deployments {f}"),
        (r"/api/v1/functions/[^/]+/deploy(-inline)?", lambda: f"orva deploy DIR --name {f}"),
        (r"/api/v1/functions/[^/]+/rollback", lambda: f"orva rollback {f} VERSION"),
        (r"/api/v1/functions/[^/]+/diff", lambda: f"orva diff {f} FROM TO"),
        (r"/api/v1/functions/[^/]+/kv", lambda: f"orva kv list {f}"),
        (
            r"/api/v1/functions/[^/]+/kv/.+",
            lambda: f"orva kv get {f} {shlex.quote(unquote(path.split('/kv/', 1)[1]))}",
        ),
        (r"/api/v1/functions/[^/]+/secrets(/.*)?", lambda: f"orva secrets list {f}"),
        (
            r"/api/v1/functions/[^/]+/cron/[^/]+(/run)?",
            lambda: (
                f"orva cron {'delete' if method == 'DELETE' else 'update'} {f} "
                f"{shlex.quote(unquote(_last_segment(path.removesuffix('/run'), 5) or 'SCHEDULE'))}"
            ),
        ),
        (
            r"/api/v1/functions/[^/]+/cron",
            lambda: (
                f"orva cron create {fn or 'FUNCTION'} NAME EXPRESSION"
                if method == "POST"
                else f"orva cron list {f}"
            ),
        ),
        (r"/api/v1/cron", lambda: "orva cron list"),
        (r"/api/v1/traces/[^/]+", lambda: f"orva traces get {_last_segment(path, 3) or 'TRACE_ID'}"),
        (r"/api/v1/traces", lambda: "orva traces list"),
        (r"/api/v1/jobs/[^/]+/retry", lambda: f"orva jobs retry {_last_segment(path, 3) or 'JOB_ID'}"),
        (
            r"/api/v1/jobs/[^/]+",
            lambda: (
                f"orva jobs {'cancel' if method == 'DELETE' else 'get'} {_last_segment(path, 3) or 'JOB_ID'}"
            ),
        ),
        (r"/api/v1/jobs", lambda: f"orva jobs enqueue {f}" if method == "POST" else "orva jobs list"),
        (  # issue 23: captured requests, replay, fixtures (orva_cli/commands/replay.py)
            r"/api/v1/executions/[^/]+/(request|replay)",
            lambda: f"orva executions {path.rsplit('/', 1)[1]} {_last_segment(path, 3) or 'ID'}",
        ),
        (
            r"/api/v1/functions/[^/]+/fixtures(/[^/]+)?",
            lambda: (
                {"DELETE": f"orva fixtures delete {f} ", "PUT": f"orva fixtures save {f} "}.get(
                    method or "",
                    f"orva fixtures save {f} " if method == "POST" else f"orva fixtures list {f}",
                )
                + (
                    shlex.quote(unquote(_last_segment(path, 5) or "NAME"))
                    if method in ("DELETE", "PUT", "POST")
                    else ""
                )
            ).strip(),
        ),
        (
            r"/api/v1/executions/[^/]+(/logs)?",
            lambda: " ".join(filter(None, ("orva logs", f, "--execution", _last_segment(path, 3) or "ID"))),
        ),
        (r"/api/v1/executions(/.*)?", lambda: f"orva logs {f}"),
        (
            r"/api/v1/functions/[^/]+",
            lambda: f"orva functions update {f}" if method == "PUT" else f"orva functions get {f}",
        ),
        (
            r"/api/v1/functions",
            lambda: (
                "orva functions create NAME --runtime python" if method == "POST" else "orva functions list"
            ),
        ),
        (r"/api/v1/system/health", lambda: "orva system health"),
        (r"/api/v1/system/storage", lambda: "orva system storage"),  # issue 24
        (r"/api/v1/system/vacuum", lambda: "orva system vacuum"),
        (r"/api/v1/activity", lambda: "orva activity"),
        (  # issue 24: egress rules
            r"/api/v1/firewall/rules(/.*)?",
            lambda: {
                "POST": "orva firewall rules add TARGET",
                "PUT": f"orva firewall rules update {_last_segment(path, 4) or 'ID'}",
                "DELETE": f"orva firewall rules delete {_last_segment(path, 4) or 'ID'}",
            }.get(method or "", "orva firewall rules list"),
        ),
        (r"/api/v1/firewall/resolve", lambda: "orva firewall resolve HOST"),
        (
            r"/api/v1/firewall/dns",
            lambda: "orva firewall dns set SERVER" if method == "PUT" else "orva firewall dns get",
        ),
        (r"/api/v1/system/metrics.*", lambda: "orva system metrics"),
        (r"/api/v1/keys(/.*)?", lambda: "orva keys create NAME" if method == "POST" else "orva keys list"),
        (
            r"/api/v1/channels(/.*)?",
            lambda: "orva channels create NAME -f FUNCTION" if method == "POST" else "orva channels list",
        ),
        (
            r"/api/v1/oauth/connected-apps(/.*)?",
            lambda: "orva oauth revoke CLIENT_ID" if method == "DELETE" else "orva oauth apps",
        ),
        (
            r"/api/v1/routes",
            lambda: {
                "PUT": "orva routes set PATH FUNCTION",
                "POST": "orva routes set PATH FUNCTION",
                "DELETE": "orva routes delete PATH",
            }.get(method or "", "orva routes list"),
        ),
        (r"/api/v1/pool/.*", lambda: f"orva pool set {f}"),
        # the assistant (issue 22)
        (
            r"/api/v1/ai/providers/[^/]+/test",
            lambda: f"orva ai providers test {_last_segment(path, 4) or 'PROVIDER'}",
        ),
        (
            r"/api/v1/ai/providers/[^/]+/models",
            lambda: f"orva ai providers models {_last_segment(path, 4) or 'PROVIDER'}",
        ),
        (
            r"/api/v1/ai/providers(/.*)?",
            lambda: (
                "orva ai providers add LABEL --kind KIND" if method == "POST" else "orva ai providers list"
            ),
        ),
        (r"/api/v1/ai/settings", lambda: "orva ai settings"),
        (r"/api/v1/ai/chat", lambda: "orva ai chat MESSAGE"),
        (
            r"/api/v1/ai/conversations/[^/]+/stream",
            lambda: f"orva ai chat --attach {_last_segment(path, 4) or 'ID'}",
        ),
        (
            r"/api/v1/ai/conversations/[^/]+/cancel",
            lambda: f"orva ai cancel {_last_segment(path, 4) or 'ID'}",
        ),
        (
            r"/api/v1/ai/conversations/[^/]+.*",
            lambda: f"orva ai conversations show {_last_segment(path, 4) or 'ID'}",
        ),
        (r"/api/v1/ai/conversations", lambda: "orva ai conversations list"),
        (r"/api/v1/ai/tool-calls/[^/]+/reject", lambda: f"orva ai reject {_last_segment(path, 4) or 'ID'}"),
        (r"/api/v1/ai/tool-calls/[^/]+(/.*)?", lambda: f"orva ai approve {_last_segment(path, 4) or 'ID'}"),
        (r"/api/v1/auth/sessions(/.*)?", lambda: "orva sessions list"),  # issue 24
        (r"/api/v1/auth/.*", lambda: "orva login"),
    ]
    for pattern, command in rules:
        if re.fullmatch(pattern, path):
            return command()
    return "orva --help"


def _translated(hint: str, fn: str | None) -> str:
    """Every API reference in a hint replaced by its `orva` command."""
    text = _API_REF.sub(lambda m: f"`{command_for(m.group(1), m.group(2), fn)}`", hint)
    return text.replace("{id}", fn or "ID")


def _by_code(code: str, details: dict[str, Any], fn: str | None, ctx: click.Context | None) -> str | None:
    """The hint for the codes the CLI can say better than the API, or None."""
    f = fn or "NAME"
    if code == "NOT_FOUND" and details.get("capture_requests") is False:  # orvad/api/replay.py
        name = details.get("function") or f
        return (
            f"request capture is off for {name}: turn it on with `orva functions update {name} --capture-requests` "
            "(later executions keep their request)"
        )
    if code == "NOT_DEPLOYED":
        return f"deploy code first: `orva deploy DIR --name {f}` (`orva init DIR` writes a starter folder)"
    if code == "BUILDING":
        return (
            f"no version of it is built yet: `orva deployments {f}` shows its builds, "
            f"`orva deploy DIR --name {f}` starts one"
        )
    if code == "NOT_ACTIVE":
        if details.get("status") == "error":
            return (
                f"deploy a version that builds: `orva deploy DIR --name {f}`; "
                f"why the last build failed: `orva build-log {f}`"
            )
        return f"resume it: `orva functions update {f} --status active`"
    if code == "BUILD_FAILED":
        dep = details.get("deployment_id")
        return (
            f"the build log: `orva build-log {f}{' ' + dep if dep else ''}`; "
            "the version serving before, if any, still does"
        )
    if code in _EXECUTION_ERRORS and details.get("execution_id"):
        eid = details["execution_id"]
        return f"execution {eid}: its logs with `orva logs {f} --execution {eid}`"
    if code == "VALIDATION" and isinstance(details.get("field"), str):
        flag = flag_for(details["field"], ctx)
        if flag is not None and ctx is not None:
            return f"fix {flag} and run it again (`{ctx.command_path} --help` describes it)"
    if code == "FORBIDDEN" and details.get("required") in PERMISSIONS:
        need = details["required"]
        return (
            f"this API key lacks '{need}': use a key that has it (an admin makes one with "
            f"`orva keys create NAME -p {need}`)"
        )
    if code in ("AMBIGUOUS", "VERSION_NOT_FOUND") and fn:
        return f"`orva deployments {fn}` lists its versions, ids and code hashes"
    return None


def for_cli(code: str, hint: str | None, details: dict[str, Any]) -> str | None:
    """The hint to print for an API error met by the running command."""
    ctx = _context()
    fn = current_function(ctx)
    better = _by_code(code, details, fn, ctx)
    if better is not None:
        return better
    return _translated(hint, fn) if hint else None
