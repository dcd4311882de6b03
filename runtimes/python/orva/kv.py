"""orva.kv: this function's own key-value state (docs/SDK.md, KV).

Every call goes to orvad over the worker's own channel; orvad acts on the calling function's namespace
only. Sync functions, and async twins with an ``a`` prefix::

    from orva import kv
    kv.put("visits", 0)
    kv.put("user:42", {"name": "Ada"}, ttl_seconds=3600)   # ttl_seconds: Go Orva's name for ttl_s
    kv.list(prefix="user:")            # ["user:42"] (.next_cursor, .entries)
    n = kv.incr("visits")              # -> 1
    entry = kv.get_entry("visits")     # Entry(value=1, version=..., expires_at=None)
    ok, version = kv.cas("visits", 5, entry.version)

Values are JSON (dict, list, str, int, float, bool, None) or ``bytes`` (also bytearray/memoryview), at most
1 MiB each. Failures raise ``orva.OrvaError`` (``.code``, ``.message``, ``.hint``).
"""

from __future__ import annotations

import base64
from typing import Any, NamedTuple

from orva import _channel

__all__ = [
    "Entry",
    "Page",
    "CasResult",
    "get",
    "get_entry",
    "put",
    "delete",
    "list",
    "get_many",
    "put_many",
    "delete_many",
    "incr",
    "cas",
    "aget",
    "aget_entry",
    "aput",
    "adelete",
    "alist",
    "aget_many",
    "aput_many",
    "adelete_many",
    "aincr",
    "acas",
]

_list = list  # `list` below is kv.list


class Entry(NamedTuple):
    value: Any
    version: int
    expires_at: str | None  # RFC 3339 UTC, or None: never


class CasResult(NamedTuple):
    ok: bool  # written
    version: int  # the new version when ok; otherwise the key's current one (0: absent)


def _to_wire(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    return value


def _from_wire(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("$bytes"), str):
        return base64.b64decode(value["$bytes"])
    return value


def _entry(raw: Any) -> Entry | None:
    if raw is None:
        return None
    return Entry(_from_wire(raw["value"]), raw["version"], raw.get("expires_at"))


def _opt(args: dict[str, Any], **more: Any) -> dict[str, Any]:
    args.update({k: v for k, v in more.items() if v is not None})
    return args


class Page(_list):  # type: ignore[type-arg]
    """One page of ``kv.list``: a list of the key names (Go Orva's shape), with ``.next_cursor`` (pass it
    back as ``cursor`` for the next page; None: the last page) and ``.entries`` (one dict per key: key,
    type, size, version, expires_at, ...)."""

    next_cursor: str | None
    entries: _list[dict[str, Any]]


def _page(raw: dict[str, Any]) -> Page:
    page = Page(e["key"] for e in raw["keys"])
    page.next_cursor = raw["next_cursor"]
    page.entries = _list(raw["keys"])
    return page


def _ttl(ttl_s: float | None, ttl_seconds: float | None) -> float | None:
    return ttl_seconds if ttl_s is None else ttl_s


def _many(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: _from_wire(e["value"]) for k, e in raw["entries"].items()}


# sync
def get(key: str, default: Any = None) -> Any:
    """The value at ``key``, or ``default`` when it is absent or expired."""
    entry = get_entry(key)
    return default if entry is None else entry.value


def get_entry(key: str) -> Entry | None:
    """The value with its version (for ``cas``) and expiry, or None."""
    return _entry(_channel.call("kv.get", {"key": key}))


def put(key: str, value: Any, ttl_s: float | None = None, *, ttl_seconds: float | None = None) -> int:
    """Set ``key`` (expiring after ``ttl_s`` seconds if given; ``ttl_seconds``: the same, Go Orva's name);
    its new version."""
    args = _opt({"key": key, "value": _to_wire(value)}, ttl_s=_ttl(ttl_s, ttl_seconds))
    return int(_channel.call("kv.put", args)["version"])


def delete(key: str) -> bool:
    """Delete ``key``; whether it existed (a missing key is no error)."""
    return bool(_channel.call("kv.delete", {"key": key})["deleted"])


def list(prefix: str = "", cursor: str | None = None, limit: int = 100) -> Page:  # noqa: A001
    """One page of the key names starting with ``prefix`` (a ``Page``: a list of str with ``.next_cursor``,
    passed back as ``cursor`` for the next page, and ``.entries``: {key, type, size, version, expires_at,
    ...} per key)."""
    return _page(_channel.call("kv.list", _opt({"prefix": prefix, "limit": limit}, cursor=cursor)))


def get_many(keys: _list[str]) -> dict[str, Any]:
    """key -> value of the keys that exist (at most 100 keys)."""
    return _many(_channel.call("kv.get_many", {"keys": _list(keys)}))


def put_many(
    items: dict[str, Any], ttl_s: float | None = None, *, ttl_seconds: float | None = None
) -> dict[str, int]:
    """Set every key of ``items`` at once (all or none; at most 100); key -> new version."""
    wire = {k: _to_wire(v) for k, v in items.items()}
    return dict(
        _channel.call("kv.put_many", _opt({"items": wire}, ttl_s=_ttl(ttl_s, ttl_seconds)))["versions"]
    )


def delete_many(keys: _list[str]) -> int:
    """Delete the keys (at most 100); how many existed."""
    return int(_channel.call("kv.delete_many", {"keys": _list(keys)})["deleted"])


def incr(key: str, by: int = 1, ttl_s: float | None = None) -> int:
    """Add ``by`` to the integer at ``key`` (absent: 0) atomically; the new value. The key keeps its expiry
    unless ``ttl_s`` is given."""
    return int(_channel.call("kv.incr", _opt({"key": key, "by": by}, ttl_s=ttl_s))["value"])


def cas(key: str, value: Any, version: int | None, ttl_s: float | None = None) -> CasResult:
    """Set ``key`` only if its version is ``version`` (0 or None: only if absent)."""
    raw = _channel.call(
        "kv.cas", _opt({"key": key, "value": _to_wire(value), "version": version}, ttl_s=ttl_s)
    )
    return CasResult(bool(raw["ok"]), int(raw["version"]))


# async twins
async def aget(key: str, default: Any = None) -> Any:
    entry = await aget_entry(key)
    return default if entry is None else entry.value


async def aget_entry(key: str) -> Entry | None:
    return _entry(await _channel.acall("kv.get", {"key": key}))


async def aput(key: str, value: Any, ttl_s: float | None = None, *, ttl_seconds: float | None = None) -> int:
    args = _opt({"key": key, "value": _to_wire(value)}, ttl_s=_ttl(ttl_s, ttl_seconds))
    raw = await _channel.acall("kv.put", args)
    return int(raw["version"])


async def adelete(key: str) -> bool:
    return bool((await _channel.acall("kv.delete", {"key": key}))["deleted"])


async def alist(prefix: str = "", cursor: str | None = None, limit: int = 100) -> Page:
    return _page(await _channel.acall("kv.list", _opt({"prefix": prefix, "limit": limit}, cursor=cursor)))


async def aget_many(keys: _list[str]) -> dict[str, Any]:
    return _many(await _channel.acall("kv.get_many", {"keys": _list(keys)}))


async def aput_many(
    items: dict[str, Any], ttl_s: float | None = None, *, ttl_seconds: float | None = None
) -> dict[str, int]:
    wire = {k: _to_wire(v) for k, v in items.items()}
    raw = await _channel.acall("kv.put_many", _opt({"items": wire}, ttl_s=_ttl(ttl_s, ttl_seconds)))
    return dict(raw["versions"])


async def adelete_many(keys: _list[str]) -> int:
    return int((await _channel.acall("kv.delete_many", {"keys": _list(keys)}))["deleted"])


async def aincr(key: str, by: int = 1, ttl_s: float | None = None) -> int:
    return int((await _channel.acall("kv.incr", _opt({"key": key, "by": by}, ttl_s=ttl_s)))["value"])


async def acas(key: str, value: Any, version: int | None, ttl_s: float | None = None) -> CasResult:
    raw = await _channel.acall(
        "kv.cas", _opt({"key": key, "value": _to_wire(value), "version": version}, ttl_s=ttl_s)
    )
    return CasResult(bool(raw["ok"]), int(raw["version"]))
