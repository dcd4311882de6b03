"""Running functions: invoke one (through the same dispatch as /fn, trigger mcp) and read what was
recorded: executions, one execution, and what it printed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orvad.errors import NotFound
from orvad.mcp.catalog.base import FUNCTION, LIMIT, obj, text, tool
from orvad.mcp.invocation import invoke
from orvad.mcp.results import Caller, limit_arg, string_arg

if TYPE_CHECKING:
    from orvad.daemon import Daemon

STATUSES = ["success", "error", "timeout", "crashed", "rejected", "killed", "shutting_down"]
_NO_ROW = "list executions with list_executions; rows are written a few milliseconds after the reply"


async def invoke_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    return await invoke(
        daemon, caller, daemon.functions.resolve(string_arg(args, "function", required=True) or ""), args
    )


async def list_executions(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    wanted = string_arg(args, "function")
    function_id = daemon.functions.resolve(wanted).id if wanted else None
    filters: dict[str, Any] = {
        "function_id": function_id,
        "status": string_arg(args, "status"),
        "since": None,
        "until": None,
    }
    rows = await daemon.executions.list(**filters, cursor=None, limit=limit_arg(args))
    return {"executions": rows, "total": await daemon.executions.count(**filters)}


async def get_execution(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    execution_id = string_arg(args, "execution_id", required=True) or ""
    row = await daemon.executions.get(execution_id)
    if row is None:
        raise NotFound(f"no execution {execution_id}", hint=_NO_ROW)
    return row


async def get_execution_logs(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    execution_id = string_arg(args, "execution_id", required=True) or ""
    found = await daemon.executions.logs(execution_id)
    if found is None:
        raise NotFound(f"no execution {execution_id}", hint=_NO_ROW)
    logs, truncated = found
    return {"execution_id": execution_id, "logs": logs, "truncated": truncated}


_EXECUTION = text("an execution id (list_executions, or the reply's X-Orva-Execution-Id)")

TOOLS = (
    tool(
        "invoke_function",
        "Invoke a function and return its reply: JSON replies as text plus structured content, text as "
        "text; a handler error or a status of 400 or more is an error result with the code and message. "
        "The execution is recorded with trigger 'mcp'.",
        obj(
            {
                "function": FUNCTION,
                "method": text("HTTP method the handler sees (default POST)"),
                "path": text("the path after /fn/<name> (default /)"),
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
        target="function",
    ),
    tool(
        "list_executions",
        "List recorded invocations, newest first, optionally of one function and with one status.",
        obj({"function": FUNCTION, "status": {"type": "string", "enum": STATUSES}, "limit": LIMIT}),
        "read",
        list_executions,
        target="function",
    ),
    tool(
        "get_execution",
        "One recorded invocation: function, status, trigger, duration, cold start, error.",
        obj({"execution_id": _EXECUTION}, ("execution_id",)),
        "read",
        get_execution,
        target="execution_id",
    ),
    tool(
        "get_execution_logs",
        "Get what a function printed during one invocation (bounded; `truncated` says if it was cut).",
        obj({"execution_id": _EXECUTION}, ("execution_id",)),
        "read",
        get_execution_logs,
        target="execution_id",
    ),
)
