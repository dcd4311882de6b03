"""Admin tools: API keys (list, create with the secret shown once, revoke) and channels (list, get,
create, set functions, rotate the token, delete). The KeyService and ChannelService the REST API's
keys and channels modules call; an API key with ``admin`` only."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from orvad.clock import utcnow
from orvad.mcp.catalog.base import obj, text, tool
from orvad.mcp.results import Caller, bad, string_arg
from orvad.models import PERMISSIONS
from orvad.services.serialisers import channel_detail_json, key_json

if TYPE_CHECKING:
    from orvad.daemon import Daemon

_SHOWN_ONCE = "shown once, in this result only: store it now (orvad keeps only its hash)"


def _expiry(args: dict[str, Any]) -> datetime | None:
    days = args.get("expires_in_days")
    if days is None:
        return None
    if not 1 <= days <= 3650:
        raise bad("expires_in_days", "must be from 1 to 3650", "pass a whole number of days")
    return utcnow() + timedelta(days=days)


async def list_keys(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    return {"keys": [key_json(k) for k in await daemon.keys.list()]}


async def create_key(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    name = string_arg(args, "name", required=True) or ""
    if len(name) > 64:
        raise bad("name", "must be at most 64 characters", "pass a shorter name")
    permissions = args.get("permissions") or list(PERMISSIONS)
    if not all(p in PERMISSIONS for p in permissions):
        raise bad(
            "permissions", f"must be drawn from {', '.join(PERMISSIONS)}", 'pass e.g. ["read", "invoke"]'
        )
    row, plaintext = await daemon.keys.create(name, frozenset(permissions), _expiry(args))
    return {**key_json(row), "key": plaintext, "note": "the key is " + _SHOWN_ONCE}


async def revoke_key(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    key_id = string_arg(args, "key_id", required=True) or ""
    await daemon.keys.revoke(key_id)
    return {"id": key_id, "deleted": True, "was_this_key": key_id == caller.key_id}


async def list_channels(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    rows = await daemon.channels.list()
    return {
        "channels": [
            {
                "id": r.id,
                "name": r.name,
                "description": r.description,
                "prefix": r.prefix,
                "function_count": r.function_count,
                "last_used_at": r.last_used_at,
                "expires_at": r.expires_at,
                "created_at": r.created_at,
            }
            for r in rows
        ]
    }


async def get_channel(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    return channel_detail_json(await daemon.channels.get(string_arg(args, "channel", required=True) or ""))


def _descriptions(args: dict[str, Any]) -> dict[str, str] | None:
    value = args.get("descriptions")
    if value is not None and not all(isinstance(v, str) and len(v) <= 1024 for v in value.values()):
        raise bad("descriptions", "must map function ids or names to strings (at most 1024 characters)", "")
    return value


async def create_channel(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    name = string_arg(args, "name", required=True) or ""
    description = args.get("description") or ""
    if len(name) > 64 or len(description) > 1024:
        raise bad("name", "must be at most 64 characters (description 1024)", "pass a shorter one")
    channel, token = await daemon.channels.create(
        name, description, list(args.get("functions") or []), _expiry(args)
    )
    return {**channel_detail_json(channel), "token": token, "note": "the token is " + _SHOWN_ONCE}


async def set_channel_functions(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    channel = await daemon.channels.set_functions(
        string_arg(args, "channel", required=True) or "", list(args["functions"]), _descriptions(args)
    )
    return channel_detail_json(channel)


async def rotate_channel_token(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    channel, token = await daemon.channels.rotate(string_arg(args, "channel", required=True) or "")
    return {**channel_detail_json(channel), "token": token, "note": "the new token is " + _SHOWN_ONCE}


async def delete_channel(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    channel_id = await daemon.channels.delete(string_arg(args, "channel", required=True) or "")
    return {"id": channel_id, "deleted": True}


_CHANNEL = text("the channel's id or name")
_FUNCTIONS = {
    "type": "array",
    "items": {"type": "string"},
    "maxItems": 256,
    "description": "function ids or names; each becomes one tool (its name in snake_case)",
}
_DAYS = {"type": "integer", "minimum": 1, "maximum": 3650, "description": "expires after this many days"}

TOOLS = (
    tool(
        "list_keys",
        "Every API key: id, name, prefix, permissions, expiry, last use; never the key itself.",
        obj({}),
        "admin",
        list_keys,
    ),
    tool(
        "create_key",
        "Create an API key with the given permissions (default: all). The key is in this result only, "
        "once: hand it over or store it at once.",
        obj(
            {
                "name": text("a label for the key"),
                "permissions": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(PERMISSIONS)},
                    "minItems": 1,
                },
                "expires_in_days": _DAYS,
            },
            ("name",),
        ),
        "admin",
        create_key,
        target="name",
    ),
    tool(
        "revoke_key",
        "Revoke an API key by id: every request with it fails from the next one on (this session's own "
        "key too, if named).",
        obj({"key_id": text("the key's id (list_keys)")}, ("key_id",)),
        "admin",
        revoke_key,
        destructive=True,
        target="key_id",
    ),
    tool(
        "list_channels",
        "Every channel (a bundle of functions an agent reaches at /mcp with one token): name, function "
        "count, expiry, last use; never the token.",
        obj({}),
        "admin",
        list_channels,
    ),
    tool(
        "get_channel",
        "One channel with its functions, their tool names and description overrides.",
        obj({"channel": _CHANNEL}, ("channel",)),
        "admin",
        get_channel,
        target="channel",
    ),
    tool(
        "create_channel",
        "Create a channel bundling functions as MCP tools for an agent. Its token (orva_chn_...) is in "
        "this result only, once.",
        obj(
            {
                "name": text("unique channel name"),
                "description": text("what the channel is for"),
                "functions": _FUNCTIONS,
                "expires_in_days": _DAYS,
            },
            ("name",),
        ),
        "admin",
        create_channel,
        target="name",
    ),
    tool(
        "set_channel_functions",
        "Replace a channel's functions; `descriptions` (function -> text) overrides a tool's "
        "description, and overrides of functions kept in the set survive unless sent anew.",
        obj(
            {
                "channel": _CHANNEL,
                "functions": _FUNCTIONS,
                "descriptions": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            ("channel", "functions"),
        ),
        "admin",
        set_channel_functions,
        target="channel",
    ),
    tool(
        "rotate_channel_token",
        "Issue a new token for a channel (in this result, once); the old token stops working at once, so "
        "agents using it are cut off until given the new one.",
        obj({"channel": _CHANNEL}, ("channel",)),
        "admin",
        rotate_channel_token,
        destructive=True,
        target="channel",
    ),
    tool(
        "delete_channel",
        "Delete a channel; its token stops working at once (the functions stay).",
        obj({"channel": _CHANNEL}, ("channel",)),
        "admin",
        delete_channel,
        destructive=True,
        target="channel",
    ),
)
