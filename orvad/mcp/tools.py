"""Operator mode's tool catalog: one definition per tool (name, description, JSON Schema, required
permission, destructive or not) and its handler, which calls the services directly (never the HTTP API).

A handler returns the tool's answer as a JSON value; an ``OrvaError`` it raises becomes a tool result
with ``isError`` (code, message, hint), never a protocol error, so the agent can read and recover.
``invoke_function`` returns a ``ToolReply`` instead: the function's reply, shaped for the agent.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from orvad import __version__
from orvad.errors import Forbidden, NotFound, OrvaError, ValidationError
from orvad.invoke import InvokeRequest
from orvad.models import FunctionStatus
from orvad.services.serialisers import function_json

if TYPE_CHECKING:
    from orvad.daemon import Daemon

MAX_LIMIT = 200


@dataclass(frozen=True)
class Caller:
    """Who is calling /mcp in operator mode: an API key, its permissions, and the key itself (an
    ``api_key`` function invoked through ``invoke_function`` is admitted with it)."""

    key_id: str  # the API key's id, or the channel's in channel mode
    key_name: str
    permissions: frozenset[str]  # none in channel mode
    token: str
    channel_id: str | None = None  # channel mode: the channel's tools only

    def can(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass
class ToolReply:
    """A tool result other than plain JSON: text, optional structured content, error or not."""

    text: str
    structured: dict[str, Any] | None = None
    is_error: bool = False


Handler = Callable[["Daemon", Caller, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class ToolDef:
    name: str
    description: str
    input_schema: dict[str, Any]
    permission: str  # read, invoke, write or admin (orvad/auth/keys.py PERMISSIONS)
    handler: Handler
    destructive: bool = False
    read_only: bool = True
    annotations: dict[str, Any] = field(default_factory=dict)

    def schema(self) -> dict[str, Any]:
        """The inputSchema: a destructive tool also takes the required ``confirm: true``."""
        if not self.destructive:
            return self.input_schema
        props = {**self.input_schema.get("properties", {}), "confirm": _CONFIRM}
        required = [*self.input_schema.get("required", []), "confirm"]
        return {**self.input_schema, "properties": props, "required": required}


_CONFIRM = {
    "type": "boolean",
    "const": True,
    "description": "must be true: this tool cannot be undone",
}


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_FUNCTION_ARG = {"type": "string", "description": "the function's id or name"}
_LIMIT_ARG = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_LIMIT,
    "description": "at most this many (default 50)",
}


def _bad(field_name: str, message: str, hint: str) -> ValidationError:
    return ValidationError(f"{field_name} {message}", hint=hint, details={"field": field_name})


def _string(args: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = args.get(name)
    if value is None:
        if required:
            raise _bad(name, "is required", f"pass {name} in the tool's arguments")
        return None
    if not isinstance(value, str) or not value:
        raise _bad(name, "must be a non-empty string", f"pass {name} as a string")
    return value


def _limit(args: dict[str, Any]) -> int:
    value = args.get("limit", 50)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise _bad(
            "limit", f"must be an integer from 1 to {MAX_LIMIT}", f"pass limit between 1 and {MAX_LIMIT}"
        )
    return value


# the handlers
async def list_functions(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fns = daemon.functions.list(
        status=_string(args, "status"), runtime=_string(args, "runtime"), text=_string(args, "q")
    )
    limit = _limit(args)
    return {"functions": [function_json(f) for f in fns[:limit]], "total": len(fns)}


async def get_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    return function_json(daemon.functions.resolve(_string(args, "function", required=True) or ""))


async def list_executions(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    wanted = _string(args, "function")
    function_id = daemon.functions.resolve(wanted).id if wanted else None
    status = _string(args, "status")
    filters: dict[str, Any] = {"function_id": function_id, "status": status, "since": None, "until": None}
    rows = await daemon.executions.list(**filters, cursor=None, limit=_limit(args))
    return {"executions": rows, "total": await daemon.executions.count(**filters)}


async def get_execution_logs(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    execution_id = _string(args, "execution_id", required=True) or ""
    found = await daemon.executions.logs(execution_id)
    if found is None:
        raise NotFound(
            f"no execution {execution_id}",
            hint="list executions with the list_executions tool; rows are written a few milliseconds after the reply",
        )
    logs, truncated = found
    return {"execution_id": execution_id, "logs": logs, "truncated": truncated}


async def health(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    checks = await daemon.health_checks()
    ok = all(c["ok"] for c in checks.values() if c.get("required", True))
    return {
        "status": "ok" if ok else "unhealthy",
        "version": __version__,
        "uptime_s": daemon.uptime_s(),
        "checks": checks,
    }


async def invoke_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = daemon.functions.resolve(_string(args, "function", required=True) or "")
    method = (_string(args, "method") or "POST").upper()
    path = _string(args, "path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    headers: list[tuple[bytes, bytes]] = []
    sent = args.get("headers") or {}
    if not isinstance(sent, dict) or not all(isinstance(v, str) for v in sent.values()):
        raise _bad("headers", "must be an object of strings", 'pass headers like {"x-trace": "1"}')
    for name, value in sent.items():
        if name.lower() in ("x-orva-api-key", "authorization"):
            continue  # the caller's own credential admits it (below), never one the agent names
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    query = args.get("query") or {}
    if not isinstance(query, dict):
        raise _bad("query", "must be an object", 'pass query like {"page": "2"}')
    body = args.get("body")
    raw: bytes
    if body is None:
        raw = b""
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = json.dumps(body).encode()
        if "content-type" not in sent:
            headers.append((b"content-type", b"application/json"))
    # an api_key function admits the caller's own key (it has invoke: the tool requires it);
    # the handler never sees it (orvad/invoke/event.py removes Orva's credentials)
    headers.append((b"x-orva-api-key", caller.token.encode()))
    result = await daemon.invoker.dispatch(
        InvokeRequest(
            fn,
            subpath=path,
            trigger="mcp",
            method=method,
            headers=headers,
            query=urlencode({k: str(v) for k, v in query.items()}).encode(),
            body=raw,
        )
    )
    return reply_result(result.status, result.header("content-type"), result.body, result.complete)


def reply_result(status: int, content_type: str | None, body: bytes, complete: bool) -> ToolReply:
    """A function's reply as a tool result: JSON as text plus structuredContent (an object as is,
    anything else under ``result``), other text as text; a status of 400 or more is an error result."""
    text = body.decode("utf-8", errors="replace")
    structured: dict[str, Any] | None = None
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "" or media.endswith("json"):  # a handler's dict body may come without a content-type
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        else:
            if media or isinstance(parsed, (dict, list)):
                structured = parsed if isinstance(parsed, dict) else {"result": parsed}
    is_error = status >= 400 or not complete
    if not complete:
        text += "\n[the reply was cut: the function's stream failed after its first bytes]"
    return ToolReply(text=text, structured=structured, is_error=is_error)


async def delete_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = await daemon.functions.delete(_string(args, "function", required=True) or "")
    return {"id": fn.id, "name": fn.name, "deleted": True}


TOOLS: tuple[ToolDef, ...] = (
    ToolDef(
        "list_functions",
        "List the functions deployed on this Orva, newest first, optionally filtered by status, runtime "
        "or a text in the name or description.",
        _obj(
            {
                "status": {"type": "string", "enum": [s.value for s in FunctionStatus]},
                "runtime": {"type": "string", "description": "a runtime id or a language, e.g. python"},
                "q": {"type": "string", "description": "text the name or description contains"},
                "limit": _LIMIT_ARG,
            }
        ),
        "read",
        list_functions,
    ),
    ToolDef(
        "get_function",
        "Get one function's settings (runtime, auth mode, limits, active deployment) by id or name.",
        _obj({"function": _FUNCTION_ARG}, ("function",)),
        "read",
        get_function,
    ),
    ToolDef(
        "invoke_function",
        "Invoke a function and return its reply: JSON replies as text plus structured content, text as "
        "text; a handler error or a status of 400 or more is an error result with the code and message. "
        "The execution is recorded with trigger 'mcp'.",
        _obj(
            {
                "function": _FUNCTION_ARG,
                "method": {"type": "string", "description": "HTTP method the handler sees (default POST)"},
                "path": {"type": "string", "description": "the path after /fn/<name> (default /)"},
                "query": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "body": {"description": "a string is sent as is; anything else as JSON"},
            },
            ("function",),
        ),
        "invoke",
        invoke_function,
        read_only=False,
    ),
    ToolDef(
        "delete_function",
        "Delete a function with its versions on disk, secrets, routes and pool. Cannot be undone.",
        _obj({"function": _FUNCTION_ARG}, ("function",)),
        "write",
        delete_function,
        destructive=True,
        read_only=False,
    ),
    ToolDef(
        "list_executions",
        "List recorded invocations, newest first, optionally of one function and with one status.",
        _obj(
            {
                "function": _FUNCTION_ARG,
                "status": {
                    "type": "string",
                    "enum": ["success", "error", "timeout", "crashed", "rejected", "killed", "shutting_down"],
                },
                "limit": _LIMIT_ARG,
            }
        ),
        "read",
        list_executions,
    ),
    ToolDef(
        "get_execution_logs",
        "Get what a function printed during one invocation (bounded; `truncated` says if it was cut).",
        _obj({"execution_id": {"type": "string"}}, ("execution_id",)),
        "read",
        get_execution_logs,
    ),
    ToolDef(
        "health",
        "This Orva's health: every check (database, sandbox, disk, ...), its version and uptime.",
        _obj({}),
        "read",
        health,
    ),
)

BY_NAME = {t.name: t for t in TOOLS}


def visible(caller: Caller) -> list[ToolDef]:
    """The tools this caller's permissions allow, in catalog order."""
    return [t for t in TOOLS if caller.can(t.permission)]


async def call(daemon: Daemon, caller: Caller, name: str, args: dict[str, Any]) -> ToolReply:
    """Run tool ``name`` for ``caller``: its permission, ``confirm`` for a destructive one, then the
    handler; an OrvaError becomes an error result naming its code, message and hint."""
    try:
        tool = BY_NAME.get(name)
        if tool is None or not caller.can(tool.permission):
            if tool is None:
                raise NotFound(f"no tool {name!r}", hint="list the tools with tools/list")
            raise Forbidden(
                f"the tool {name} needs an API key with the {tool.permission!r} permission",
                hint=f'create a key that has it with POST /api/v1/keys (permissions: ["{tool.permission}"])',
                details={"required": tool.permission, "granted": sorted(caller.permissions)},
            )
        if tool.destructive and args.get("confirm") is not True:
            raise _bad(
                "confirm", "must be true", f"{name} cannot be undone: call it again with confirm: true"
            )
        outcome = await tool.handler(daemon, caller, args)
    except OrvaError as exc:
        return error_reply(exc)
    if isinstance(outcome, ToolReply):
        return outcome
    return ToolReply(text=json.dumps(outcome), structured=outcome if isinstance(outcome, dict) else None)


# channel mode: one tool per function bundled in the channel (orvad/services/channels.py)
CHANNEL_INPUT: dict[str, Any] = _obj(
    {
        "body": {"description": "the request body: a string as is, anything else as JSON"},
        "query": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "method": {"type": "string", "description": "HTTP method the handler sees (default POST)"},
        "path": {"type": "string", "description": "the path after the function's own (default /)"},
    }
)


async def channel_tools(daemon: Daemon, caller: Caller) -> list[tuple[str, str, str]]:
    """(tool name, description, function id) of every function bundled in the caller's channel."""
    channel = await daemon.channels.get(caller.channel_id or "")
    return [
        (f.tool, f.description or f.function_description or f"Invoke the function {f.name}", f.function_id)
        for f in channel.functions
    ]


async def call_channel_tool(daemon: Daemon, caller: Caller, name: str, args: dict[str, Any]) -> ToolReply:
    """A channel's tool: invoke its function (trigger mcp), the reply as the tool result."""
    try:
        found = {tool: fid for tool, _d, fid in await channel_tools(daemon, caller)}
        if name not in found:
            raise NotFound(f"no tool {name!r} in this channel", hint="list the tools with tools/list")
        fn = daemon.functions.get(found[name])
        if fn is None:
            raise NotFound(
                f"the function behind {name} no longer exists", hint="list the tools with tools/list"
            )
        if fn.auth_mode != "none":
            raise Forbidden(
                f"channel mode cannot invoke {fn.name} yet: its auth_mode is {fn.auth_mode}",
                hint="only functions with auth_mode none are invoked through a channel for now",
                details={"auth_mode": fn.auth_mode},
            )
        outcome = await invoke_function(daemon, caller, {**args, "function": fn.id})
    except OrvaError as exc:
        return error_reply(exc)
    assert isinstance(outcome, ToolReply)
    return outcome


def error_reply(exc: OrvaError) -> ToolReply:
    """An OrvaError as an error result: ``CODE: message (hint: ...)`` and the envelope's fields."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.hint:
        error["hint"] = exc.hint
    if exc.details:
        error["details"] = exc.details
    text = f"{exc.code}: {exc.message}" + (f" (hint: {exc.hint})" if exc.hint else "")
    return ToolReply(text=text, structured={"error": error}, is_error=True)
