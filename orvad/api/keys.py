"""/api/v1/keys: create (plaintext shown once), list, revoke."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, listing, page_params, read_object, require_str
from orvad.clock import parse_iso, utcnow
from orvad.errors import ValidationError
from orvad.jsonvalues import json_int
from orvad.models import PERMISSIONS
from orvad.services.serialisers import key_json


def _permissions(body: dict[str, Any]) -> frozenset[str]:
    raw = body.get("permissions", list(PERMISSIONS))
    if not isinstance(raw, list) or not raw or not all(isinstance(p, str) and p in PERMISSIONS for p in raw):
        raise ValidationError(
            f"permissions must be a non-empty list drawn from {', '.join(PERMISSIONS)}",
            details={"field": "permissions", "allowed": list(PERMISSIONS)},
        )
    return frozenset(raw)


def _expiry(body: dict[str, Any]) -> datetime | None:
    days, at = body.get("expires_in_days"), body.get("expires_at")
    if days is not None and at is not None:
        raise ValidationError("send expires_in_days or expires_at, not both", details={"field": "expires_at"})
    if days is not None:
        count = json_int(days)
        if count is None or not 1 <= count <= 3650:
            raise ValidationError(
                "expires_in_days must be an integer in 1..3650", details={"field": "expires_in_days"}
            )
        return utcnow() + timedelta(days=count)
    if at is not None:
        try:
            moment = parse_iso(at) if isinstance(at, str) else None
            if moment is not None:
                moment.astimezone(UTC)  # a time zone past 9999-12-31 in UTC (was a 500 at the row's write)
        except (ValueError, OverflowError):
            moment = None
        if moment is None or moment <= utcnow():
            raise ValidationError(
                "expires_at must be an RFC 3339 timestamp in the future", details={"field": "expires_at"}
            )
        return moment
    return None


async def create(request: Request) -> Response:
    """Mint a key; the plaintext is in `key` of this answer and never again."""
    body = await read_object(request, ("name", "permissions", "expires_in_days", "expires_at"))
    name = require_str(body, "name", max_len=64)
    assert name is not None
    row, plaintext = await daemon_of(request).keys.create(name, _permissions(body), _expiry(body))
    return JSONResponse({**key_json(row), "key": plaintext}, status_code=201)


async def list_keys(request: Request) -> Response:
    """All keys, newest first: prefixes, names, permissions, last use; never the key itself."""
    limit, cursor = page_params(request)
    keys = [key_json(k) for k in await daemon_of(request).keys.list() if cursor is None or k.id < cursor]
    return listing("keys", keys[: limit + 1], limit)


async def revoke(request: Request) -> Response:
    """Revoke a key; it fails on the very next request."""
    key_id = request.path_params["id"]
    await daemon_of(request).keys.revoke(key_id)
    return JSONResponse({"id": key_id, "deleted": True})


routes = [
    Route("/api/v1/keys", list_keys, methods=["GET"]),
    Route("/api/v1/keys", create, methods=["POST"]),
    Route("/api/v1/keys/{id}", revoke, methods=["DELETE"]),
]
