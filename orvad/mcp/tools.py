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

from orvad import __version__
from orvad.errors import Forbidden, NotFound, OrvaError
from orvad.mcp.invocation import invoke
from orvad.mcp.results import (
    MAX_LIMIT,
    Caller,
    ToolReply,
    bad,
    error_reply,
    limit_arg,
    string_arg,
)
from orvad.models import FunctionStatus
from orvad.services.serialisers import function_json

if TYPE_CHECKING:
    from orvad.daemon import Daemon

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


# the handlers
async def list_functions(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fns = daemon.functions.list(
        status=string_arg(args, "status"), runtime=string_arg(args, "runtime"), text=string_arg(args, "q")
    )
    limit = limit_arg(args)
    return {"functions": [function_json(f) for f in fns[:limit]], "total": len(fns)}


async def get_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    return function_json(daemon.functions.resolve(string_arg(args, "function", required=True) or ""))


async def list_executions(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    wanted = string_arg(args, "function")
    function_id = daemon.functions.resolve(wanted).id if wanted else None
    status = string_arg(args, "status")
    filters: dict[str, Any] = {"function_id": function_id, "status": status, "since": None, "until": None}
    rows = await daemon.executions.list(**filters, cursor=None, limit=limit_arg(args))
    return {"executions": rows, "total": await daemon.executions.count(**filters)}


async def get_execution_logs(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    execution_id = string_arg(args, "execution_id", required=True) or ""
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
    return await invoke(
        daemon, caller, daemon.functions.resolve(string_arg(args, "function", required=True) or ""), args
    )


async def delete_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = await daemon.functions.delete(string_arg(args, "function", required=True) or "")
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
            raise bad("confirm", "must be true", f"{name} cannot be undone: call it again with confirm: true")
        outcome = await tool.handler(daemon, caller, args)
    except OrvaError as exc:
        return error_reply(exc)
    if isinstance(outcome, ToolReply):
        return outcome
    return ToolReply(text=json.dumps(outcome), structured=outcome if isinstance(outcome, dict) else None)
