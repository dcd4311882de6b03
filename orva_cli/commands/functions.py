"""`orva functions ...`, and a function's versions: `deployments`, `rollback`, `diff`."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from orva_cli.client import CliError
from orva_cli.context import App, fn_path, function_argument, json_option, pass_app
from orva_cli.ids import is_full_id, resolve_prefix
from orva_cli.output import Col

FUNCTION_COLUMNS = (
    Col("NAME", "name", flex=True),
    Col("RUNTIME", "runtime"),
    Col("STATUS", "status"),
    Col("DEPLOYED", "deployed"),
    Col("UPDATED", "updated_at"),
    Col("ID", "id", short=True),
)
DEPLOYMENT_COLUMNS = (
    Col("", "active", empty=""),
    Col("VERSION", "version"),
    Col("ID", "id", short=True),
    Col("STATUS", "status"),
    Col("SOURCE", "source"),
    Col("HASH", "code_hash"),
    Col("AGE", "submitted_at"),
    Col("ERROR", "error_message", flex=True),
)
HASH_SHOWN = 8  # hex digits of a code hash in tables; `rollback --hash` takes any unique prefix of 6 or more


def _env_pairs(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        pairs[name] = value
    return pairs


def function_options(f: Any) -> Any:
    """The settable fields of a function, shared by `create` and `update` (None: not given)."""
    options = [
        click.option(
            "--runtime", help="python, node, or a versioned id such as python3.11 (see /api/v1/runtimes)."
        ),
        click.option("--entrypoint", help="The handler file [default: handler.py / handler.js]."),
        click.option("--description"),
        click.option("--memory-mb", type=int, help="Memory limit, 16..4096 [default 128]."),
        click.option("--cpus", type=float, help="CPU share [default 1]."),
        click.option("--timeout-ms", type=int, help="Per-request time limit [default 30000]."),
        click.option(
            "--env",
            "env_vars",
            multiple=True,
            metavar="KEY=VALUE",
            callback=_env_pairs,
            help="An environment variable (repeatable).",
        ),
        click.option("--network-mode", type=click.Choice(["none", "egress"])),
        click.option("--auth-mode", type=click.Choice(["none", "api_key", "signed"])),
        click.option("--max-concurrency", type=int, help="0 = no limit beyond the pool."),
        click.option("--concurrency-policy", type=click.Choice(["queue", "reject"])),
        click.option("--rate-limit-per-min", type=int, help="Per client address; 0 = none."),
        click.option(
            "--signature-version",
            type=click.IntRange(1, 2),
            help="Signed form: 2 covers method and path [default for new functions], 1 the old one.",
        ),
        click.option(
            "--csp-sandbox/--no-csp-sandbox",
            default=None,
            help="Sandbox replies on the dashboard's origin [default: on].",
        ),
        click.option(
            "--capture-requests/--no-capture-requests",
            default=None,
            help="Keep each execution's request, credentials redacted, for replay [default: on].",
        ),
        click.option(
            "--cors-origin",
            "cors_origin",
            multiple=True,
            metavar="ORIGIN",
            help="A page origin (https://app.example.com) that may call the function from the browser, or * "
            "for any (repeatable; replaces the function's list).",
        ),
        click.option(
            "--no-cors",
            is_flag=True,
            default=None,
            help="Turn orvad's CORS off for this function (its handler may answer CORS itself).",
        ),
        click.option(
            "--inherit-cors",
            is_flag=True,
            default=None,
            help="Use the server's ORVA_CORS_ORIGINS again [default for new functions].",
        ),
        click.option(
            "--input-schema",
            "input_schema",
            type=click.File("r"),
            metavar="FILE",
            help="A JSON file (- for stdin): the JSON Schema of the function's MCP tool arguments in a "
            'channel (top-level "type": "object"); they reach the handler as the JSON body of a POST.',
        ),
        click.option(
            "--no-input-schema",
            is_flag=True,
            default=None,
            help="Drop the input schema: the tool takes body, query, headers, method and path again [default].",
        ),
        click.option(
            "--may-invoke",
            "may_invoke",
            multiple=True,
            metavar="NAME",
            help="A function this one may call with orva.invoke, or * for any (repeatable; replaces the "
            "function's list; needs a key with invoke too).",
        ),
        click.option(
            "--no-may-invoke",
            is_flag=True,
            default=None,
            help="Take every grant away: the function may call no function [default for new functions].",
        ),
        click.option(
            "--egress-allow",
            "egress_allow",
            multiple=True,
            metavar="CIDR|HOST",
            help="network_mode egress only to this address, CIDR or hostname (repeatable; replaces the "
            "function's list; docs/NETWORK.md, Egress rules).",
        ),
        click.option(
            "--no-egress-allow",
            is_flag=True,
            default=None,
            help="No allow list: egress anywhere the egress rules allow [default].",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def show_function(app: App, fn: dict[str, Any]) -> None:
    app.out.show(fn, lambda f: app.out.record(_for_people(f)))


def _for_people(fn: dict[str, Any]) -> dict[str, Any]:
    shown = {**fn, "cors_origins": cors_text(fn)} if "cors_origins" in fn else dict(fn)
    if "may_invoke" in fn:
        names = fn["may_invoke"]
        shown["may_invoke"] = "any function (*)" if names == ["*"] else ",".join(names) or "none"
    return shown


def cors_text(fn: dict[str, Any]) -> str:
    """cors_origins for people: null and [] both look empty, and mean different things."""
    origins = fn.get("cors_origins")
    if origins is None:
        return "inherit (the server's ORVA_CORS_ORIGINS)"
    return ",".join(origins) if origins else "off (orvad adds no CORS headers)"


@click.group("functions")
def functions_group() -> None:
    """List, inspect, create, change and delete functions.

    \b
    Example:
      orva functions create hello --runtime python --memory-mb 256
    """


def runtime_matches(runtime: str, wanted: str) -> bool:
    """`python` matches python and every versioned python id (python3.12), as well as an exact id."""
    rest = runtime[len(wanted) :] if runtime.startswith(wanted) else None
    return rest is not None and (rest == "" or re.fullmatch(r"[0-9][0-9.]*|\.[0-9][0-9.]*", rest) is not None)


def deployed(fn: dict[str, Any]) -> str:
    """The DEPLOYED cell: the newest deployment's version, and its status unless it succeeded."""
    last = fn.get("last_deployment")
    if not last:
        return "-"
    return f"v{last['version']}" + ("" if last["status"] == "succeeded" else f" {last['status']}")


@functions_group.command("list")
@click.option("--status", type=click.Choice(["created", "building", "active", "inactive", "error"]))
@click.option("--runtime", help="python or node (every version of it), or an exact id such as python3.11.")
@click.option(
    "--limit", type=click.IntRange(1, 1000), help="Show one page of this many functions [default 50]."
)
@click.option("--offset", type=click.IntRange(0, 1_000_000), help="Show one page, after skipping this many.")
@json_option
@pass_app
def list_functions(
    app: App, status: str | None, runtime: str | None, limit: int | None, offset: int | None
) -> None:
    """List every function, newest first (or one page of them with --limit/--offset).

    DEPLOYED is the newest deployment's version (with its status when it did not succeed).

    \b
    Examples:
      orva functions list --status active
      orva functions list --runtime python
      orva functions list --limit 20 --offset 40
    """
    params = {"status": status} if status else {}
    if limit is not None or offset is not None:  # one page, filtered by orvad (which knows offset and total)
        page = app.get("/api/v1/functions", **params, runtime=runtime, limit=limit or 50, offset=offset or 0)
        shown = page["functions"]
        app.out.show(
            shown,
            lambda rows: app.out.table([{**f, "deployed": deployed(f)} for f in rows], FUNCTION_COLUMNS),
        )
        if not app.out.json:
            first = (offset or 0) + 1
            app.out.note(
                f"{first}-{first + len(shown) - 1} of {page['total']}"
                if shown
                else f"none past {offset or 0} of {page['total']}"
            )
        return
    # --runtime is matched here (python matches python3.12): the same on every orvad version
    items = [
        f
        for f in app.client.pages("/api/v1/functions", "functions", params)
        if runtime is None or runtime_matches(f["runtime"], runtime)
    ]
    app.out.show(
        items, lambda rows: app.out.table([{**f, "deployed": deployed(f)} for f in rows], FUNCTION_COLUMNS)
    )


@functions_group.command("get")
@function_argument
@json_option
@pass_app
def get_function(app: App, name: str) -> None:
    """Show one function (by name or id).

    \b
    Example:
      orva functions get hello --json
    """
    show_function(app, app.get(fn_path(name)))


@functions_group.command("create")
@click.argument("name")
@function_options
@json_option
@pass_app
def create_function(app: App, /, name: str, **fields: Any) -> None:
    """Create a function record (deploy code into it with `orva deploy`).

    NAME: 1..63 characters of a-z 0-9 - _, starting with a letter.

    \b
    Example:
      orva functions create hello --runtime python --env GREETING=hi
    """
    if not fields["runtime"]:
        raise click.UsageError("--runtime is required to create a function")
    show_function(app, app.post("/api/v1/functions", {"name": name, **_given(fields)}))


@functions_group.command("update")
@function_argument
@function_options
@click.option(
    "--rename",
    metavar="NEW_NAME",
    help="Give the function a new name (1..63 characters of a-z 0-9 - _, starting with a letter).",
)
@click.option("--status", type=click.Choice(["active", "inactive"]), help="inactive stops serving it.")
@click.option(
    "--unset-env", multiple=True, metavar="KEY", help="Remove an environment variable (repeatable)."
)
@json_option
@pass_app
def update_function(
    app: App, /, name: str, rename: str | None, unset_env: tuple[str, ...], **fields: Any
) -> None:
    """Change some fields of a function.

    --env adds to its variables and --unset-env removes one; other fields keep their values.

    \b
    Examples:
      orva functions update hello --memory-mb 512 --env LOG_LEVEL=debug --status active
      orva functions update hello --cors-origin https://app.example.com --cors-origin http://localhost:3000
      orva functions update checkout --may-invoke resize --may-invoke notify
    """
    body = _given(fields)
    if rename:
        body["name"] = rename
    if body.get("env_vars") or unset_env:  # the server replaces env_vars whole; merge with what is there
        current = dict(app.get(fn_path(name))["env_vars"])
        current.update(body.get("env_vars", {}))
        body["env_vars"] = {k: v for k, v in current.items() if k not in unset_env}
    if not body:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    show_function(app, app.put(fn_path(name), body))


@functions_group.command("delete")
@function_argument
@click.option("--yes", "-y", is_flag=True, help="Do not ask (needed when not on a terminal).")
@json_option
@pass_app
def delete_function(app: App, name: str, yes: bool) -> None:
    """Delete a function and everything it has. Irreversible.

    Its versions, secrets, routes, pool settings and executions go with it.

    \b
    Example:
      orva functions delete hello --yes
    """
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("deleting needs --yes when not on a terminal")
        click.confirm(f"delete function {name} and everything it has?", abort=True)
    answer = app.delete(fn_path(name))
    app.out.show(answer, lambda d: app.out.text(f"deleted function {name}"))


def all_deployments(app: App, name: str) -> list[dict[str, Any]]:
    return list(app.client.pages(fn_path(name, "deployments"), "deployments", {"limit": 500}))


def is_version(ref: str) -> bool:
    """A version number (the VERSION column): digits without a leading zero. orvad's ids start with 0."""
    return ref.isdigit() and not ref.startswith("0")


def deployment_id(app: App, name: str, ref: str) -> str:
    """A deployment id from an id, a unique prefix of one (as `orva deployments` shows them), or a
    version number."""
    if is_full_id(ref):
        return ref
    listed = all_deployments(app, name)
    hint = f"`orva deployments {name}` lists them"
    if is_version(ref):
        for dep in listed:
            if dep["version"] == int(ref):
                return str(dep["id"])
        raise CliError("VERSION_NOT_FOUND", f"{name} has no version {ref}", hint)
    return resolve_prefix(ref, (d["id"] for d in listed), "deployment", hint, of=f" of {name}")


def code_hash(app: App, name: str, ref: str) -> str:
    """A code hash from a unique prefix of one (6 hex digits or more) among the function's built versions."""
    if len(ref) == 64:
        return ref
    built = (d["code_hash"] for d in all_deployments(app, name) if d["code_hash"] and d["status"] != "failed")
    return resolve_prefix(ref, built, "code hash", f"`orva deployments {name}` lists them", of=f" of {name}")


def _input_schema(file: Any) -> Any:
    """The JSON in an --input-schema file (orvad checks that it is a JSON Schema of an object)."""
    try:
        return json.loads(file.read())
    except ValueError as exc:
        raise click.BadParameter(f"{file.name} is not JSON: {exc}", param_hint="--input-schema") from None


def _given(fields: dict[str, Any]) -> dict[str, Any]:
    fields = dict(fields)
    origins, off, inherit = (
        fields.pop("cors_origin", ()),
        fields.pop("no_cors", None),
        fields.pop("inherit_cors", None),
    )
    schema_file, no_schema = fields.pop("input_schema", None), fields.pop("no_input_schema", None)
    callees, no_callees = fields.pop("may_invoke", ()), fields.pop("no_may_invoke", None)
    if callees and no_callees:
        raise click.UsageError("give one of --may-invoke and --no-may-invoke")
    if schema_file is not None and no_schema:
        raise click.UsageError("give one of --input-schema and --no-input-schema")
    body = {k: v for k, v in fields.items() if v is not None and v != {}}
    if schema_file is not None:
        body["input_schema"] = _input_schema(schema_file)
    elif no_schema:
        body["input_schema"] = None
    if sum(1 for given in (origins, off, inherit) if given) > 1:
        raise click.UsageError("give one of --cors-origin, --no-cors and --inherit-cors")
    if origins:
        body["cors_origins"] = list(origins)
    elif off:
        body["cors_origins"] = []
    elif inherit:
        body["cors_origins"] = None
    if callees:
        body["may_invoke"] = list(callees)
    elif no_callees:
        body["may_invoke"] = []
    allowed, no_allowed = fields.pop("egress_allow", ()), fields.pop("no_egress_allow", None)
    body.pop("egress_allow", None), body.pop("no_egress_allow", None)
    if allowed and no_allowed:
        raise click.UsageError("give one of --egress-allow and --no-egress-allow")
    if allowed:
        body["egress_allow"] = list(allowed)
    elif no_allowed:
        body["egress_allow"] = []
    return body


@click.command()
@function_argument
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@json_option
@pass_app
def deployments(app: App, name: str, limit: int) -> None:
    """List a function's deployments, newest first; * marks the active one.

    `orva rollback`, `orva diff` and `orva build-log` take a VERSION, an ID (or the prefix shown
    here) or, for rollback, a HASH prefix. --json adds `"active": true|false` to each.

    \b
    Example:
      orva deployments hello --limit 5
    """
    active = app.get(fn_path(name))["active_deployment_id"]
    items = [
        {**d, "active": d["id"] == active}
        for d in app.get(fn_path(name, "deployments"), limit=limit)["deployments"]
    ]
    app.out.show(
        items,
        lambda rows: app.out.table(
            [
                {**d, "active": "*" if d["active"] else "", "code_hash": (d["code_hash"] or "")[:HASH_SHOWN]}
                for d in rows
            ],
            DEPLOYMENT_COLUMNS,
        ),
    )


@click.command()
@function_argument
@click.argument("deployment_ref", metavar="[DEPLOYMENT_ID]", required=False)
@click.option(
    "--hash",
    "hash_ref",
    metavar="H",
    help="Roll back to the version with this code hash (or a unique prefix of 6+ hex digits) instead.",
)
@json_option
@pass_app
def rollback(app: App, name: str, deployment_ref: str | None, hash_ref: str | None) -> None:
    """Make an earlier successful version of NAME active again.

    DEPLOYMENT_ID is a deployment's id, a unique prefix of one, or its version number (see
    `orva deployments NAME`).

    \b
    Examples:
      orva rollback hello 3
      orva rollback hello 019df210-12
      orva rollback hello --hash 3f2a9c
    """
    if (deployment_ref is None) == (hash_ref is None):
        raise click.UsageError("give a DEPLOYMENT_ID or --hash H (one of them)")
    body = (
        {"deployment_id": deployment_id(app, name, deployment_ref)}
        if deployment_ref
        else {"code_hash": code_hash(app, name, str(hash_ref))}
    )
    dep = app.post(fn_path(name, "rollback"), body)
    app.out.show(
        dep,
        lambda d: app.out.text(
            f"rolled back {name} to {d['parent_deployment_id']} (code hash {d['code_hash'][:12]})"
        ),
    )


@click.command()
@function_argument
@click.argument("from_id", metavar="FROM")
@click.argument("to_id", metavar="TO")
@json_option
@pass_app
def diff(app: App, name: str, from_id: str, to_id: str) -> None:
    """Diff the code of two deployments of a function.

    Compares the handler and the dependency manifest (requirements.txt / package.json).

    FROM and TO are deployment ids (or unique prefixes) or version numbers (see
    `orva deployments NAME`). The diff is unified, and coloured on a terminal.

    \b
    Examples:
      orva diff hello 1 2
      orva diff hello 019df210-...-0001 019df210-...-0002 | less -R
    """
    params = {"from": deployment_id(app, name, from_id), "to": deployment_id(app, name, to_id)}
    if app.out.json:
        app.out.dump(app.get(fn_path(name, "diff"), **params))
        return
    text = app.client.text(fn_path(name, "diff"), params={**params, "format": "unified"})
    styles = (("+++", "bold"), ("---", "bold"), ("+", "green"), ("-", "red"), ("@@", "cyan"))
    for line in text.splitlines():
        style = next((s for prefix, s in styles if line.startswith(prefix)), "")
        app.out.text(line, style)


commands = [functions_group, deployments, rollback, diff]
