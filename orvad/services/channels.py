"""Channels (issue 21): a named bundle of functions behind one static token, exposed only at /mcp.

The token is ``orva_chn_`` + 32 hex, shown once (create, rotate); only its SHA-256 is stored, as
API keys are (orvad/auth/keys.py). An in-memory map by hash answers ``authenticate`` without a
database read; create, rotate and delete update it in the same call that writes the database, so
a rotated or deleted token fails on the very next request.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orvad.clock import iso, now_iso, parse_iso, utcnow
from orvad.errors import Conflict, NotFound, ToolNameCollision
from orvad.ids import uuid7
from orvad.services.functions import FunctionService
from orvad.store.channels import ChannelRow, ChannelStore, NameTaken

TOKEN_PREFIX = "orva_chn_"
_TOUCH_EVERY_S = 60  # last_used_at granularity: at most one queued write per channel per minute
_HINT = "list channels with GET /api/v1/channels"


def hash_token(plaintext: str) -> str:
    """SHA-256 hex, as API keys are hashed (orvad/auth/keys.py)."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def looks_like_channel_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX)


def tool_name(function_name: str) -> str:
    """The MCP tool name of a function: snake_case (``my-fn`` -> ``my_fn``)."""
    return re.sub(r"[^a-z0-9]+", "_", function_name.lower()).strip("_")


@dataclass(frozen=True)
class ChannelFunction:
    function_id: str
    name: str
    tool: str
    description: str | None  # the override, or None
    function_description: str


@dataclass(frozen=True)
class Channel:
    row: ChannelRow
    functions: list[ChannelFunction]


class ChannelService:
    def __init__(self, store: ChannelStore, functions: FunctionService) -> None:
        self._store = store
        self._functions = functions
        self._by_hash: dict[str, ChannelRow] = {}
        self._last_touch: dict[str, float] = {}

    async def load(self) -> None:
        self._by_hash = {c.token_hash: c for c in await self._store.all()}

    def _check_tools(self, function_ids: list[str]) -> list[str]:
        """The functions' ids (names resolved), each once; TOOL_NAME_COLLISION when two share a tool name."""
        seen: dict[str, str] = {}
        ids: list[str] = []
        for ref in function_ids:
            fn = self._functions.resolve(ref)
            if fn.id in ids:
                continue
            tool = tool_name(fn.name)
            if tool in seen:
                raise ToolNameCollision(
                    f"functions {seen[tool]!r} and {fn.name!r} would both be the MCP tool {tool!r}",
                    details={"tool": tool, "functions": [seen[tool], fn.name]},
                )
            seen[tool] = fn.name
            ids.append(fn.id)
        return ids

    async def create(
        self, name: str, description: str, function_ids: list[str], expires_at: datetime | None
    ) -> tuple[Channel, str]:
        ids = self._check_tools(function_ids)
        token = TOKEN_PREFIX + secrets.token_hex(16)
        row = ChannelRow(
            id=uuid7(),
            name=name,
            description=description,
            token_hash=hash_token(token),
            prefix=token[:13],
            expires_at=iso(expires_at) if expires_at else None,
            last_used_at=None,
            created_at=now_iso(),
        )
        try:
            await self._store.insert(row, [(fid, None) for fid in ids])
        except NameTaken:
            raise Conflict(f"a channel named {name!r} exists already", hint=_HINT) from None
        self._by_hash[row.token_hash] = row
        return await self.get(row.id), token

    async def list(self) -> list[ChannelRow]:
        return await self._store.all()

    async def _row(self, id_or_name: str) -> ChannelRow:
        row = await self._store.get(id_or_name)
        if row is None:
            raise NotFound(f"no channel {id_or_name!r}", hint=_HINT, details={"channel": id_or_name})
        return row

    async def get(self, id_or_name: str) -> Channel:
        row = await self._row(id_or_name)
        bundled = []
        for fid, override in await self._store.functions(row.id):
            fn = self._functions.get(fid)
            if fn is not None:
                bundled.append(ChannelFunction(fid, fn.name, tool_name(fn.name), override, fn.description))
        return Channel(row, bundled)

    async def patch(self, id_or_name: str, changes: dict[str, Any]) -> Channel:
        """Change name, description and/or expires_at (a datetime, or None to never expire)."""
        row = await self._row(id_or_name)
        name = changes.get("name", row.name)
        description = changes.get("description", row.description)
        expires_at = iso(changes["expires_at"]) if changes.get("expires_at") else None
        if "expires_at" not in changes:
            expires_at = row.expires_at
        try:
            await self._store.update(row.id, name, description, expires_at)
        except NameTaken:
            raise Conflict(f"a channel named {name!r} exists already", hint=_HINT) from None
        await self.load()
        return await self.get(row.id)

    async def set_functions(
        self, id_or_name: str, function_ids: builtins.list[str], descriptions: dict[str, str] | None
    ) -> Channel:
        """Replace the function set; overrides of ids kept in the set survive unless sent anew."""
        row = await self._row(id_or_name)
        ids = self._check_tools(function_ids)
        kept = dict(await self._store.functions(row.id))
        for ref, text in (descriptions or {}).items():
            fid = self._functions.resolve(ref).id
            if fid not in ids:
                raise NotFound(
                    f"descriptions names function {ref!r}, which is not in function_ids",
                    hint="every key of descriptions must be one of function_ids",
                    details={"function": ref},
                )
            kept[fid] = text or None
        await self._store.replace_functions(row.id, [(fid, kept.get(fid)) for fid in ids])
        return await self.get(row.id)

    async def rotate(self, id_or_name: str) -> tuple[Channel, str]:
        row = await self._row(id_or_name)
        token = TOKEN_PREFIX + secrets.token_hex(16)
        await self._store.set_token(row.id, hash_token(token), token[:13])
        self._by_hash.pop(row.token_hash, None)
        await self.load()
        return await self.get(row.id), token

    async def delete(self, id_or_name: str) -> str:
        row = await self._row(id_or_name)
        await self._store.delete(row.id)
        self._by_hash = {h: c for h, c in self._by_hash.items() if c.id != row.id}
        return row.id

    def authenticate(self, token: str) -> Channel | None:
        """The live channel for this token, or None (unknown, rotated, deleted or expired).

        Answers from memory; last_used_at goes through the batch writer, at most once a minute.
        The returned Channel's function list is empty: read it with ``get(channel.row.id)``.
        """
        if not looks_like_channel_token(token):
            return None
        digest = hash_token(token)
        row = self._by_hash.get(digest)
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        now = utcnow()
        if row.expires_at and parse_iso(row.expires_at) <= now:
            return None
        stamp = now.timestamp()
        if stamp - self._last_touch.get(row.id, 0.0) >= _TOUCH_EVERY_S:
            self._last_touch[row.id] = stamp
            self._store.touch(row.id, iso(now))
        return Channel(row, [])
