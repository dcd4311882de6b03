"""/api/v1/functions/{id}/kv: an operator's view of a function's KV state (issue 23; docs/API.md, KV).

GET needs `read`, PUT and DELETE `write` (the guard's map); writes are audit-log rows like every other
management call. A key travels URL-encoded in the path (``a/b`` may be sent as ``a%2Fb`` or as is).
PUT takes ``{"value", "ttl_s"?, "if_version"?}`` as JSON, or the raw bytes of a bytes value with any other
content type (then ``?ttl_s=`` and ``?if_version=``). GET answers JSON, or the raw value with
``Accept: application/octet-stream``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, int_param, read_object
from orvad.errors import KvVersionConflict, NotFound, ValidationError
from orvad.kv.service import (
    LIST_DEFAULT,
    LIST_MAX,
    MAX_VALUE_BYTES,
    check_key,
    check_ttl,
    check_version,
    encode_value,
    meta_json,
    ms_iso,
    too_large,
    wire_value,
)
from orvad.models import Function
from orvad.store.kv import UNCONDITIONAL, KvEntry, VersionMismatch

RAW = "application/octet-stream"


def _fn(request: Request) -> Function:
    return daemon_of(request).functions.resolve(request.path_params["id"])


def _key(request: Request) -> str:
    return check_key(request.path_params["key"])


def _entry_json(fn: Function, entry: KvEntry) -> dict[str, Any]:
    return {"function_id": fn.id, **meta_json(entry), "value": wire_value(entry.kind, entry.value)}


def _list_hint(fn: Function) -> str:
    return f"list its keys with GET /api/v1/functions/{fn.name}/kv"


async def list_keys(request: Request) -> Response:
    """Live keys of the function in byte order, from ?prefix=, after ?cursor= (next_cursor of the last page)."""
    fn = _fn(request)
    kv = daemon_of(request).kv
    prefix = check_key(request.query_params.get("prefix", ""), "prefix", empty=True)
    cursor = request.query_params.get("cursor") or None
    if cursor is not None:
        check_key(cursor, "cursor")
    limit = int_param(request, "limit", LIST_DEFAULT, 1, LIST_MAX)
    rows, next_cursor = await kv.list_keys(fn.id, prefix, cursor, limit)
    return JSONResponse(
        {
            "function_id": fn.id,
            "keys": [meta_json(m) for m in rows],
            "next_cursor": next_cursor,
            "usage": await kv.usage(fn.id),
        }
    )


async def get_key(request: Request) -> Response:
    """One key: its value (bytes as {"$bytes": base64}), type, size, version and expiry."""
    fn = _fn(request)
    key = _key(request)
    entry = await daemon_of(request).kv.get(fn.id, key)
    if entry is None:
        raise NotFound(
            f"function {fn.name} has no KV key {key!r} (or it expired)",
            hint=_list_hint(fn),
            details={"key": key},
        )
    if RAW in request.headers.get("accept", ""):
        return Response(
            entry.value,
            media_type=RAW if entry.kind == "bytes" else "application/json",
            headers={
                "X-Orva-KV-Type": entry.kind,
                "X-Orva-KV-Version": str(entry.version),
                "X-Orva-KV-Expires-At": ms_iso(entry.expires_at) or "",
            },
        )
    return JSONResponse(_entry_json(fn, entry))


def _query_number(request: Request, field: str) -> Any:
    raw = request.query_params.get(field)
    if raw is None:
        return None
    try:
        number = float(raw) if field == "ttl_s" else int(raw)
    except ValueError:
        raise ValidationError(f"?{field}= must be a number", details={"field": field}) from None
    return number


async def put_key(request: Request) -> Response:
    """Create or replace one key; with if_version only when the key's version is that (0: absent)."""
    fn = _fn(request)
    key = _key(request)
    daemon = daemon_of(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        body = await read_object(request, ("value", "ttl_s", "if_version"))
        if "value" not in body:
            raise ValidationError(
                "value is required",
                hint='send {"value": <JSON>} (bytes as {"$bytes": "<base64>"}), or the raw bytes with '
                "Content-Type: application/octet-stream",
                details={"field": "value"},
            )
        kind, raw = encode_value(body["value"])
        ttl = check_ttl(body.get("ttl_s"))
        expect = check_version(body["if_version"], "if_version") if "if_version" in body else UNCONDITIONAL
    else:
        raw = await request.body()
        if len(raw) > MAX_VALUE_BYTES:
            raise too_large("value", len(raw))
        kind = "bytes"
        ttl = check_ttl(_query_number(request, "ttl_s"))
        expect = (
            check_version(_query_number(request, "if_version"), "if_version")
            if "if_version" in request.query_params
            else UNCONDITIONAL
        )
    try:
        written = await daemon.kv.put(fn.id, fn.name, key, kind, raw, ttl, expect)
    except VersionMismatch as exc:
        raise KvVersionConflict(
            f"KV key {key!r} of {fn.name} is at version {exc.current}"
            + (" (absent)" if exc.current == 0 else "")
            + f", not {expect}",
            hint=f"read it again (GET /api/v1/functions/{fn.name}/kv/{quote(key, safe='')}) and send "
            "if_version with its version",
            details={"key": key, "version": exc.current, "expected": expect},
        ) from None
    entry = await daemon.kv.get(fn.id, key)
    if entry is None or entry.version != written.version:  # expired or written again meanwhile
        return JSONResponse(
            {
                "function_id": fn.id,
                "key": key,
                "type": kind,
                "size": len(raw),
                "version": written.version,
                "expires_at": ms_iso(written.expires_at),
            }
        )
    return JSONResponse(meta_json(entry) | {"function_id": fn.id})


async def delete_key(request: Request) -> Response:
    """Delete one key (404 when it does not exist or has expired)."""
    fn = _fn(request)
    key = _key(request)
    if not await daemon_of(request).kv.delete_many(fn.id, [key]):
        raise NotFound(
            f"function {fn.name} has no KV key {key!r} (or it expired)",
            hint=_list_hint(fn),
            details={"key": key},
        )
    return JSONResponse({"function_id": fn.id, "key": key, "deleted": True})


routes = [
    Route("/api/v1/functions/{id}/kv", list_keys, methods=["GET"]),
    Route("/api/v1/functions/{id}/kv/{key:path}", get_key, methods=["GET"]),
    Route("/api/v1/functions/{id}/kv/{key:path}", put_key, methods=["PUT"]),
    Route("/api/v1/functions/{id}/kv/{key:path}", delete_key, methods=["DELETE"]),
]
