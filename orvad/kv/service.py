"""Each function's KV state (issue 23): the rules (keys, values, TTLs, counts, quota), the SDK's operations,
the operators' reads and writes, and the sweeper of expired keys.

The SDK's operations (``sdk_get`` ...) act only on ``caller.function_id``: the caller comes from orvad's own
record of the invocation (orvad/sdk/calls.py), never from anything in ``args``; unknown argument fields are
refused, so a ``function_id`` sent by a handler is an error, not a switch. Keys are plain strings in one flat
namespace per function: ``../other`` is a key like any other, of the caller's own namespace.

Values are JSON, or bytes (``{"$bytes": "<base64>"}`` on the wire: an object whose only member is
``$bytes`` is read as bytes). A value's size is its compact UTF-8 JSON text, or its byte count: at most
1 MiB. Every write gives the key a new version from a counter of the function's namespace: versions grow
and are never reused, so a key deleted and written again cannot satisfy an old compare-and-set.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orvad.clock import epoch_iso
from orvad.errors import (
    KvNotInteger,
    KvQuotaExceeded,
    NotFound,
    PayloadTooLarge,
    ValidationError,
)
from orvad.sdk.calls import Caller, SdkRouter
from orvad.store.kv import (
    INT64_MAX,
    INT64_MIN,
    KEEP_TTL,
    UNCONDITIONAL,
    FunctionGone,
    KvEntry,
    KvMeta,
    KvPut,
    KvStore,
    Limits,
    NotInteger,
    QuotaExceeded,
    VersionMismatch,
)

log = logging.getLogger(__name__)

MAX_VALUE_BYTES = 1024 * 1024  # one value: its JSON text or its bytes
MAX_KEY_BYTES = 512
MAX_MANY = 100  # keys in one get_many / put_many / delete_many
MAX_MANY_BYTES = 8 * 1024 * 1024  # the values of one put_many, or the answer of one get_many
LIST_DEFAULT, LIST_MAX = 100, 1000
MAX_TTL_S = 10 * 365 * 86400
MAX_VERSION = 2**53  # versions stay exact in every JSON reader (JavaScript's safe integers)
SWEEP_BATCH = 1000
# control characters (C0, DEL, C1), lone surrogates, and U+10FFFF (the end of a prefix range in store/kv.py)
_BAD_KEY = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\U0010ffff]")
_B64_MAX = (MAX_VALUE_BYTES + 2) // 3 * 4
KEY_RULE = f"a key is a string of 1..{MAX_KEY_BYTES} UTF-8 bytes without control characters"
_DOCS = "see docs/SDK.md, KV"


@dataclass(frozen=True, slots=True)
class Written:
    key: str
    version: int
    expires_at: int | None


def ms_iso(ms: int | None) -> str | None:
    return None if ms is None else epoch_iso(ms / 1000)


def check_key(key: Any, field: str = "key", *, empty: bool = False) -> str:
    if not isinstance(key, str) or (not key and not empty):
        raise ValidationError(
            f"{field} must be a string" + ("" if empty else " of at least one character"),
            hint=KEY_RULE,
            details={"field": field},
        )
    if len(key) > MAX_KEY_BYTES or _BAD_KEY.search(key) or len(key.encode()) > MAX_KEY_BYTES:
        raise ValidationError(
            f"{field} is not a valid KV key ({min(len(key.encode(errors='replace')), 10**6)} bytes)",
            hint=KEY_RULE,
            details={"field": field, "max_bytes": MAX_KEY_BYTES},
        )
    return key


def check_ttl(ttl: Any, field: str = "ttl_s") -> float | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0.001 <= ttl <= MAX_TTL_S:
        raise ValidationError(
            f"{field} must be a number of seconds in 0.001..{MAX_TTL_S} (or null: never expires)",
            details={"field": field},
        )
    return float(ttl)


def encode_value(value: Any, field: str = "value") -> tuple[str, bytes]:
    """(kind, stored bytes) of a wire value; PAYLOAD_TOO_LARGE past 1 MiB."""
    if isinstance(value, dict) and len(value) == 1 and "$bytes" in value:
        text = value["$bytes"]
        if not isinstance(text, str):
            raise ValidationError(f"{field}.$bytes must be a base64 string", details={"field": field})
        if len(text) > _B64_MAX + 4:
            raise too_large(field, len(text) * 3 // 4)
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(
                f"{field}.$bytes is not valid base64",
                hint="standard base64 with padding",
                details={"field": field},
            ) from None
        kind = "bytes"
    else:
        try:
            raw = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        except (ValueError, TypeError, RecursionError) as exc:
            raise ValidationError(
                f"{field} is not a JSON value ({str(exc)[:100]})",
                hint='store JSON (no NaN or Infinity), or bytes as {"$bytes": "<base64>"}',
                details={"field": field},
            ) from None
        kind = "json"
    if len(raw) > MAX_VALUE_BYTES:
        raise too_large(field, len(raw))
    return kind, raw


def too_large(field: str, size: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{field} is {size} bytes: a KV value holds at most {MAX_VALUE_BYTES} (1 MiB)",
        hint="store a smaller value, or split it over several keys",
        details={"field": field, "size": size, "max": MAX_VALUE_BYTES},
    )


def wire_value(kind: str, raw: bytes) -> Any:
    if kind == "bytes":
        return {"$bytes": base64.b64encode(raw).decode()}
    return json.loads(raw)


def _args(args: dict[str, Any], op: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ValidationError(
            f"{op}: unknown argument(s) {', '.join(unknown)[:200]}",
            hint=f"{op} takes {', '.join(allowed)}; {_DOCS}",
            details={"fields": unknown[:20]},
        )
    for name in required:
        if name not in args:
            raise ValidationError(f"{op}: {name} is required", details={"field": name})


def _key_list(raw: Any, op: str) -> list[str]:
    if not isinstance(raw, list) or len(raw) > MAX_MANY:
        raise ValidationError(
            f"{op}: keys must be a list of at most {MAX_MANY} keys",
            details={"field": "keys", "max": MAX_MANY},
        )
    keys = [check_key(k, "keys") for k in raw]
    if len(set(keys)) != len(keys):
        raise ValidationError(f"{op}: each key at most once", details={"field": "keys"})
    return keys


class KvService:
    def __init__(
        self,
        store: KvStore,
        *,
        max_keys: int,
        max_bytes: int,
        sweep_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.limits = Limits(max_keys, max_bytes)
        self.sweep_s = sweep_s
        self._clock = clock
        self.swept = 0  # expired rows the sweeper removed since start

    def _now(self) -> tuple[int, str]:
        now = self._clock()
        return int(now * 1000), epoch_iso(now)

    def _expiry(self, now_ms: int, ttl: float | None) -> int | None:
        return None if ttl is None else now_ms + max(1, round(ttl * 1000))

    def _quota(self, exc: QuotaExceeded, function_name: str) -> KvQuotaExceeded:
        return KvQuotaExceeded(
            f"function {function_name}'s KV would hold {exc.keys} keys and {exc.bytes} bytes: at most "
            f"{exc.limits.max_keys} keys and {exc.limits.max_bytes} bytes",
            hint="delete keys (or give them a TTL), or raise ORVA_KV_MAX_KEYS / ORVA_KV_MAX_BYTES",
            details={
                "keys": exc.keys,
                "bytes": exc.bytes,
                "max_keys": exc.limits.max_keys,
                "max_bytes": exc.limits.max_bytes,
            },
        )

    # the shared core of both faces
    async def get(self, function_id: str, key: str) -> KvEntry | None:
        now_ms, _ = self._now()
        return await self._store.get(function_id, key, now_ms)

    async def list_keys(
        self, function_id: str, prefix: str, cursor: str | None, limit: int
    ) -> tuple[list[KvMeta], str | None]:
        now_ms, _ = self._now()
        rows = await self._store.list_keys(function_id, prefix, cursor, limit + 1, now_ms)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, rows[-1].key if more and rows else None

    async def usage(self, function_id: str) -> dict[str, int]:
        keys, used = await self._store.usage(function_id)
        return {
            "keys": keys,
            "bytes": used,
            "max_keys": self.limits.max_keys,
            "max_bytes": self.limits.max_bytes,
        }

    async def put(
        self,
        function_id: str,
        function_name: str,
        key: str,
        kind: str,
        raw: bytes,
        ttl: float | None,
        expect: int = UNCONDITIONAL,
    ) -> Written:
        """Write one key; VersionMismatch escapes when ``expect`` is not met (each face answers it its way)."""
        return (await self.put_many(function_id, function_name, [(key, kind, raw)], ttl, expect))[0]

    async def put_many(
        self,
        function_id: str,
        function_name: str,
        items: list[tuple[str, str, bytes]],
        ttl: float | None,
        expect: int = UNCONDITIONAL,
    ) -> list[Written]:
        now_ms, now = self._now()
        expires_at = self._expiry(now_ms, ttl)
        puts = [KvPut(k, kind, raw, expires_at, expect) for k, kind, raw in items]
        try:
            versions = await self._store.put_many(
                function_id, puts, now_ms=now_ms, now=now, limits=self.limits
            )
        except QuotaExceeded as exc:
            raise self._quota(exc, function_name) from None
        except FunctionGone:
            raise NotFound(
                f"function {function_name} no longer exists", details={"function": function_name}
            ) from None
        return [Written(p.key, v, expires_at) for p, v in zip(puts, versions, strict=True)]

    async def delete_many(self, function_id: str, keys: list[str]) -> list[str]:
        now_ms, _ = self._now()
        return await self._store.delete_many(function_id, keys, now_ms)

    async def incr(
        self, function_id: str, function_name: str, key: str, by: int, ttl: float | None, keep_ttl: bool
    ) -> tuple[int, Written]:
        now_ms, now = self._now()
        expires_at = KEEP_TTL if keep_ttl else self._expiry(now_ms, ttl)
        try:
            value, version = await self._store.incr(
                function_id, key, by, expires_at, now_ms=now_ms, now=now, limits=self.limits
            )
        except NotInteger as exc:
            raise KvNotInteger(
                f"cannot increment KV key {key!r}: {exc.reason}",
                hint="increment only keys holding an integer (or absent ones: they start at 0)",
                details={"key": key},
            ) from None
        except QuotaExceeded as exc:
            raise self._quota(exc, function_name) from None
        except FunctionGone:
            raise NotFound(
                f"function {function_name} no longer exists", details={"function": function_name}
            ) from None
        return value, Written(key, version, None if keep_ttl else expires_at)

    # the sweeper (a task of the daemon: orvad/daemon.py)
    async def sweep_once(self) -> int:
        """Delete every key expired by now, in batches (each its own short transaction); how many went."""
        total = 0
        while True:
            now_ms, _ = self._now()
            gone = await self._store.sweep(now_ms, SWEEP_BATCH)
            total += gone
            if gone < SWEEP_BATCH:
                break
            await asyncio.sleep(0)  # let other writers in between batches
        self.swept += total
        if total:
            log.debug("swept expired KV keys", extra={"count": total})
        return total

    async def run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:  # a failed sweep (disk full, ...) is retried at the next tick
                log.exception("KV sweep failed")
            await asyncio.sleep(self.sweep_s)

    # the SDK's operations: orvad/sdk/calls.py routes kv.* here; only caller.function_id is ever touched
    async def sdk_get(self, caller: Caller, args: dict[str, Any]) -> Any:
        _args(args, "kv.get", ("key",), ("key",))
        entry = await self.get(caller.function_id, check_key(args["key"]))
        return None if entry is None else _sdk_entry(entry)

    async def sdk_put(self, caller: Caller, args: dict[str, Any]) -> Any:
        _args(args, "kv.put", ("key", "value", "ttl_s"), ("key", "value"))
        key = check_key(args["key"])
        kind, raw = encode_value(args["value"])
        w = await self.put(
            caller.function_id, caller.function_name, key, kind, raw, check_ttl(args.get("ttl_s"))
        )
        return {"version": w.version, "expires_at": ms_iso(w.expires_at)}

    async def sdk_delete(self, caller: Caller, args: dict[str, Any]) -> Any:
        _args(args, "kv.delete", ("key",), ("key",))
        return {"deleted": bool(await self.delete_many(caller.function_id, [check_key(args["key"])]))}

    async def sdk_list(self, caller: Caller, args: dict[str, Any]) -> Any:
        _args(args, "kv.list", ("prefix", "cursor", "limit"))
        prefix = check_key(args.get("prefix") or "", "prefix", empty=True)
        cursor = args.get("cursor")
        cursor = check_key(cursor, "cursor") if cursor is not None else None
        limit = args.get("limit", LIST_DEFAULT)
        if limit is None:
            limit = LIST_DEFAULT
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIST_MAX:
            raise ValidationError(
                f"kv.list: limit must be an integer in 1..{LIST_MAX}", details={"field": "limit"}
            )
        rows, next_cursor = await self.list_keys(caller.function_id, prefix, cursor, limit)
        return {"keys": [meta_json(m) for m in rows], "next_cursor": next_cursor}

    async def sdk_get_many(self, caller: Caller, args: dict[str, Any]) -> Any:
        _args(args, "kv.get_many", ("keys",), ("keys",))
        keys = _key_list(args["keys"], "kv.get_many")
        now_ms, _ = self._now()
        found = await self._store.get_many(caller.function_id, keys, now_ms)
        total = sum(e.size for e in found.values())
        if total > MAX_MANY_BYTES:
            raise PayloadTooLarge(
                f"kv.get_many: the values hold {total} bytes together, more than {MAX_MANY_BYTES} at once",
                hint="ask for fewer keys at a time",
                details={"size": total, "max": MAX_MANY_BYTES},
            )
        return {"entries": {k: _sdk_entry(e) for k, e in found.items()}}

    async def sdk_put_many(self, caller: Caller, args: dict[str, Any]) -> Any:
        _args(args, "kv.put_many", ("items", "ttl_s"), ("items",))
        items = args["items"]
        if not isinstance(items, dict) or len(items) > MAX_MANY:
            raise ValidationError(
                f"kv.put_many: items must be an object of at most {MAX_MANY} key: value",
                details={"field": "items", "max": MAX_MANY},
            )
        encoded = []
        total = 0
        for key, value in items.items():
            kind, raw = encode_value(value, "items")
            total += len(raw)
            encoded.append((check_key(key, "items"), kind, raw))
        if total > MAX_MANY_BYTES:
            raise PayloadTooLarge(
                f"kv.put_many: the values hold {total} bytes together, more than {MAX_MANY_BYTES} at once",
                hint="write fewer keys at a time",
                details={"size": total, "max": MAX_MANY_BYTES},
            )
        written = await self.put_many(
            caller.function_id, caller.function_name, encoded, check_ttl(args.get("ttl_s"))
        )
        return {"versions": {w.key: w.version for w in written}}

    async def sdk_delete_many(self, caller: Caller, args: dict[str, Any]) -> Any:
        _args(args, "kv.delete_many", ("keys",), ("keys",))
        keys = _key_list(args["keys"], "kv.delete_many")
        return {"deleted": len(await self.delete_many(caller.function_id, keys))}

    async def sdk_incr(self, caller: Caller, args: dict[str, Any]) -> Any:
        _args(args, "kv.incr", ("key", "by", "ttl_s"), ("key",))
        key = check_key(args["key"])
        by = args.get("by", 1)
        if isinstance(by, bool) or not isinstance(by, int) or not INT64_MIN <= by <= INT64_MAX:
            raise ValidationError("kv.incr: by must be a 64-bit integer", details={"field": "by"})
        keep = args.get("ttl_s") is None
        value, w = await self.incr(
            caller.function_id, caller.function_name, key, by, check_ttl(args.get("ttl_s")), keep
        )
        return {"value": value, "version": w.version}

    async def sdk_cas(self, caller: Caller, args: dict[str, Any]) -> Any:
        _args(args, "kv.cas", ("key", "value", "version", "ttl_s"), ("key", "value"))
        key = check_key(args["key"])
        expect = check_version(args.get("version"))
        kind, raw = encode_value(args["value"])
        ttl = check_ttl(args.get("ttl_s"))
        try:
            w = await self.put(caller.function_id, caller.function_name, key, kind, raw, ttl, expect)
        except VersionMismatch as exc:
            return {"ok": False, "version": exc.current}
        return {"ok": True, "version": w.version, "expires_at": ms_iso(w.expires_at)}

    def register(self, router: SdkRouter) -> None:
        """The kv.* operations on the SDK router (orvad/sdk/calls.py SdkRouter)."""
        for op, handler in (
            ("kv.get", self.sdk_get),
            ("kv.put", self.sdk_put),
            ("kv.delete", self.sdk_delete),
            ("kv.list", self.sdk_list),
            ("kv.get_many", self.sdk_get_many),
            ("kv.put_many", self.sdk_put_many),
            ("kv.delete_many", self.sdk_delete_many),
            ("kv.incr", self.sdk_incr),
            ("kv.cas", self.sdk_cas),
        ):
            router.register(op, handler)


def check_version(raw: Any, field: str = "version") -> int:
    """A compare-and-set's expected version: 0 or null mean "only if absent"."""
    if raw is None:
        return 0
    if isinstance(raw, float) and raw.is_integer():  # JSON has one number type: 2.0 is 2
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_VERSION:
        raise ValidationError(
            f"{field} must be a key's version (a whole number), or 0/null for a key that must not exist yet",
            details={"field": field},
        )
    return raw


def _sdk_entry(entry: KvEntry) -> dict[str, Any]:
    return {
        "value": wire_value(entry.kind, entry.value),
        "version": entry.version,
        "expires_at": ms_iso(entry.expires_at),
    }


def meta_json(m: KvMeta | KvEntry) -> dict[str, Any]:
    return {
        "key": m.key,
        "type": m.kind,
        "size": m.size,
        "version": m.version,
        "expires_at": ms_iso(m.expires_at),
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    }
