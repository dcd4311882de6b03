"""Operator mode's tool catalog: the registry of every tool (``orvad/mcp/catalog/``: one definition per
tool, with name, description, JSON Schema, required permission, destructive or not, and its handler,
which calls the services directly, never the HTTP API), the filter by the caller's permissions, and a
call: permission, arguments checked against the schema, ``confirm: true`` for a destructive tool, then
the handler.

A handler returns the tool's answer as a JSON value; an ``OrvaError`` it raises becomes a tool result
with ``isError`` (code, message, hint), never a protocol error, so the agent can read and recover.
``invoke_function`` returns a ``ToolReply`` instead: the function's reply, shaped for the agent.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any

from orvad.errors import Forbidden, NotFound, OrvaError
from orvad.mcp.catalog import admin, config, functions, platform, runs, system
from orvad.mcp.catalog.base import ToolDef, check_args, without_nulls
from orvad.mcp.results import Caller, ToolReply, bad, error_reply

if TYPE_CHECKING:
    from orvad.daemon import Daemon

log = logging.getLogger(__name__)

__all__ = ["BY_NAME", "TOOLS", "ToolDef", "call", "target_of", "visible"]

TOOLS: tuple[ToolDef, ...] = (
    *functions.TOOLS,
    *runs.TOOLS,
    *config.TOOLS,
    *platform.TOOLS,
    *admin.TOOLS,
    *system.TOOLS,
)
BY_NAME = {t.name: t for t in TOOLS}
assert len(BY_NAME) == len(TOOLS), "two operator tools share a name"

# the services' hints name REST calls; an agent reads the tool that does the same
_HINTS = (
    (re.compile(r"GET /api/v1/functions/[^ ]+/deployments"), "the list_deployments tool"),
    (re.compile(r"GET /api/v1/functions/[^ ]+/kv\b"), "the kv_list tool"),
    (re.compile(r"GET /api/v1/functions\b"), "the list_functions tool"),
    (re.compile(r"GET /api/v1/routes"), "the list_routes tool"),
    (re.compile(r"GET /api/v1/runtimes"), "the list_runtimes tool"),
    (re.compile(r"GET /api/v1/keys"), "the list_keys tool"),
    (re.compile(r"GET /api/v1/channels"), "the list_channels tool"),
    (re.compile(r"GET /api/v1/deployments/[^ ]+/logs"), "the get_build_logs tool"),
    (re.compile(r"GET /api/v1/system/health"), "the health tool"),
    (re.compile(r"PUT /api/v1/routes"), "the set_route tool"),
    (re.compile(r"GET /api/v1/jobs\b"), "the list_jobs tool"),
    (re.compile(r"POST /api/v1/functions/[^ ]+/secrets"), "the set_secret tool"),
)


def _for_agent(exc: OrvaError) -> OrvaError:
    if exc.hint:
        for pattern, words in _HINTS:
            exc.hint = pattern.sub(words, exc.hint)
    return exc


def visible(caller: Caller) -> list[ToolDef]:
    """The tools this caller's permissions allow, in catalog order."""
    return [t for t in TOOLS if caller.can(t.permission)]


def target_of(name: str, args: dict[str, Any]) -> str | None:
    """What a call acts on, for its audit row: the value of the tool's ``target`` argument."""
    tool = BY_NAME.get(name)
    value = args.get(tool.target) if tool is not None and tool.target else None
    return value if isinstance(value, str) and value else None


async def call(daemon: Daemon, caller: Caller, name: str, args: dict[str, Any]) -> ToolReply:
    """Run tool ``name`` for ``caller``: its permission, its arguments, ``confirm`` for a destructive
    one, then the handler; an OrvaError becomes an error result naming its code, message and hint."""
    try:
        tool = BY_NAME.get(name)
        if tool is None:
            raise NotFound(f"no tool {name!r}", hint="list the tools with tools/list")
        if not caller.can(tool.permission):
            raise Forbidden(
                f"the tool {name} needs an API key with the {tool.permission!r} permission",
                hint=f"connect with an API key that has {tool.permission!r} (an admin creates one with the "
                f'create_key tool or POST /api/v1/keys, permissions: ["{tool.permission}"]); an OAuth '
                f"connector: connect again and grant the {tool.permission} scope",
                details={"required": tool.permission, "granted": sorted(caller.permissions)},
            )
        if tool.destructive and args.get("confirm") is not True:
            raise bad("confirm", "must be true", f"{name} cannot be undone: call it again with confirm: true")
        check_args(tool, args)
        outcome = await tool.handler(daemon, caller, without_nulls(tool, args))
    except OrvaError as exc:
        return error_reply(_for_agent(exc))
    except Exception:  # a bug: an error result (and the call's audit row), not a dead session
        log.exception("mcp tool failed", extra={"tool": name})
        return error_reply(
            OrvaError(
                f"the tool {name} failed inside orvad",
                hint="orvad's log has the traceback; retry or report it",
            )
        )
    if isinstance(outcome, ToolReply):
        return outcome
    return ToolReply(text=json.dumps(outcome), structured=outcome if isinstance(outcome, dict) else None)
