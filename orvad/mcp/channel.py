"""Channel mode: one tool per function bundled in the caller's channel (orvad/services/channels.py),
a call invokes the function like ``/fn`` and its reply is the tool result. Nothing else is exposed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orvad.errors import Forbidden, NotFound, OrvaError
from orvad.mcp.invocation import invoke
from orvad.mcp.results import Caller, ToolReply, error_reply

if TYPE_CHECKING:
    from orvad.daemon import Daemon


CHANNEL_INPUT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [],
    "properties": {
        "body": {"description": "the request body: a string as is, anything else as JSON"},
        "query": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "method": {"type": "string", "description": "HTTP method the handler sees (default POST)"},
        "path": {"type": "string", "description": "the path after the function's own (default /)"},
    },
}


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
        return await invoke(daemon, caller, fn, args)
    except OrvaError as exc:
        return error_reply(exc)
