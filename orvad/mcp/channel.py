"""Channel mode: one tool per function bundled in the caller's channel (orvad/services/channels.py),
a call invokes the function like ``/fn`` and its reply is the tool result. Nothing else is exposed.

The bundle is read again on every list and every call, so a function taken out of the channel (or
deleted) stops being callable at once, in an open session too. A call is authorised by the channel:
the function's ``auth_mode`` (``api_key``, ``signed``) is satisfied by it (``InvokeRequest.channel_id``);
its rate limit, ``max_concurrency``, pool and timeout apply as on ``/fn``.

Tool names: two bundled functions cannot share a tool name when the bundle is set (TOOL_NAME_COLLISION),
but a function renamed afterwards can take another member's. Then the older function (by id: the one
created first) keeps the name and each later one is listed as ``<name>_<last 6 hex of its id>``, stable
across lists, sessions and restarts, and a warning is logged; the next ``PUT .../functions`` of the
channel refuses the set until one of them is renamed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orvad.errors import NotFound, OrvaError
from orvad.inputschema import DEFAULT
from orvad.mcp.invocation import invoke, invoke_arguments
from orvad.mcp.results import Caller, ToolReply, error_reply

if TYPE_CHECKING:
    from orvad.daemon import Daemon

log = logging.getLogger(__name__)

CHANNEL_INPUT: dict[str, Any] = DEFAULT  # a function without an input_schema: the request's parts
_TOOLS_HINT = "list the tools with tools/list"


@dataclass(frozen=True)
class ChannelTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    function_id: str


def _suffixed(tool: str, function_id: str, taken: set[str]) -> str:
    """A name for a function whose tool name another member has: stable, from its own id."""
    digits = function_id.replace("-", "")
    for width in (6, 12, len(digits)):
        name = f"{tool}_{digits[-width:]}"
        if name not in taken:
            return name
    raise AssertionError("two functions share an id")  # ids are unique


async def channel_tools(daemon: Daemon, caller: Caller) -> list[ChannelTool]:
    """The tools of every function bundled in the caller's channel, in function id order."""
    channel = await daemon.channels.get(caller.channel_id or "")
    members = sorted(channel.functions, key=lambda f: f.function_id)
    taken = {f.tool for f in members}
    seen: set[str] = set()
    tools = []
    for f in members:
        fn = daemon.functions.get(f.function_id)
        if fn is None:
            continue
        name = f.tool
        if name in seen:
            name = _suffixed(f.tool, f.function_id, taken | seen)
            log.warning(
                "two functions of a channel map to one MCP tool name (renamed after joining); the later "
                "one is listed under a suffixed name",
                extra={"channel_id": channel.row.id, "tool": f.tool, "function": f.name, "listed_as": name},
            )
        seen.add(name)
        tools.append(
            ChannelTool(
                name=name,
                description=f.description or f.function_description or f"Invoke the function {f.name}",
                input_schema=fn.input_schema if fn.input_schema is not None else CHANNEL_INPUT,
                function_id=f.function_id,
            )
        )
    return tools


async def call_channel_tool(daemon: Daemon, caller: Caller, name: str, args: dict[str, Any]) -> ToolReply:
    """A channel's tool: invoke its function (trigger mcp, the channel's id recorded), the reply as the
    tool result."""
    try:
        found = {t.name: t.function_id for t in await channel_tools(daemon, caller)}
        if name not in found:
            raise NotFound(f"no tool {name!r} in this channel", hint=_TOOLS_HINT, details={"tool": name})
        fn = daemon.functions.get(found[name])
        if fn is None:
            raise NotFound(f"the function behind {name} no longer exists", hint=_TOOLS_HINT)
        if fn.input_schema is not None:
            return await invoke_arguments(daemon, caller, fn, args)
        return await invoke(daemon, caller, fn, args)
    except OrvaError as exc:
        return error_reply(exc)
