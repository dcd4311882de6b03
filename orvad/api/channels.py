"""/api/v1/channels: operator-managed bundles of functions for /mcp (issue 21). Admin key or session."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, listing, page_params, read_object, require_str
from orvad.api.keys import _expiry
from orvad.errors import ValidationError
from orvad.services.channels import Channel
from orvad.store.channels import ChannelRow

MAX_DESCRIPTION = 1024
MAX_FUNCTIONS = 256


def channel_json(row: ChannelRow, function_count: int | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "prefix": row.prefix,
        "function_count": row.function_count if function_count is None else function_count,
        "last_used_at": row.last_used_at,
        "expires_at": row.expires_at,
        "created_at": row.created_at,
    }


def detail_json(channel: Channel) -> dict[str, Any]:
    return {
        **channel_json(channel.row, len(channel.functions)),
        "functions": [
            {
                "function_id": f.function_id,
                "name": f.name,
                "tool_name": f.tool,
                "description": f.description,
                "function_description": f.function_description,
            }
            for f in channel.functions
        ],
    }


def _description(body: dict[str, Any]) -> str | None:
    if "description" not in body:
        return None
    value = body["description"]
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise ValidationError(
            f"description must be a string of at most {MAX_DESCRIPTION} characters",
            details={"field": "description"},
        )
    return value


def _function_ids(body: dict[str, Any], *, required: bool) -> list[str]:
    raw = body.get("function_ids")
    if raw is None and not required:
        return []
    if (
        not isinstance(raw, list)
        or len(raw) > MAX_FUNCTIONS
        or not all(isinstance(f, str) and 1 <= len(f) <= 128 for f in raw)
    ):
        raise ValidationError(
            f"function_ids must be a list of at most {MAX_FUNCTIONS} function ids (or names)",
            hint="find ids with GET /api/v1/functions",
            details={"field": "function_ids"},
        )
    return raw


async def create(request: Request) -> Response:
    """Create a channel; the plaintext token is in `token` of this answer and never again."""
    body = await read_object(
        request, ("name", "description", "function_ids", "expires_in_days", "expires_at")
    )
    name = require_str(body, "name", max_len=64)
    assert name is not None
    description = _description(body) or ""
    ids = _function_ids(body, required=False)
    expiry = _expiry(body)
    channel, token = await daemon_of(request).channels.create(name, description, ids, expiry)
    return JSONResponse({**detail_json(channel), "token": token}, status_code=201)


async def list_channels(request: Request) -> Response:
    """All channels, newest first; never the token."""
    limit, cursor = page_params(request)
    rows = [
        channel_json(c) for c in await daemon_of(request).channels.list() if cursor is None or c.id < cursor
    ]
    return listing("channels", rows[: limit + 1], limit)


async def get(request: Request) -> Response:
    """A channel with its bundled functions and their description overrides."""
    return JSONResponse(detail_json(await daemon_of(request).channels.get(request.path_params["id"])))


async def patch(request: Request) -> Response:
    """Change name, description or expires_at (null: never expires); the function set is unchanged."""
    body = await read_object(request, ("name", "description", "expires_at"))
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = require_str(body, "name", max_len=64)
    if "description" in body:
        changes["description"] = _description(body) or ""
    if "expires_at" in body:
        changes["expires_at"] = (
            None if body["expires_at"] is None else _expiry({"expires_at": body["expires_at"]})
        )
    channel = await daemon_of(request).channels.patch(request.path_params["id"], changes)
    return JSONResponse(detail_json(channel))


async def put_functions(request: Request) -> Response:
    """Replace the function set; overrides of ids kept in the set survive unless sent in `descriptions`."""
    body = await read_object(request, ("function_ids", "descriptions"))
    ids = _function_ids(body, required=True)
    descriptions = body.get("descriptions")
    if descriptions is not None and (
        not isinstance(descriptions, dict)
        or not all(isinstance(v, str) and len(v) <= MAX_DESCRIPTION for v in descriptions.values())
    ):
        raise ValidationError(
            f"descriptions must be an object of function id -> string (at most {MAX_DESCRIPTION} characters)",
            details={"field": "descriptions"},
        )
    channel = await daemon_of(request).channels.set_functions(request.path_params["id"], ids, descriptions)
    return JSONResponse(detail_json(channel))


async def rotate(request: Request) -> Response:
    """Issue a new token (in `token`, once); the previous one stops working at once."""
    channel, token = await daemon_of(request).channels.rotate(request.path_params["id"])
    return JSONResponse({**detail_json(channel), "token": token})


async def delete(request: Request) -> Response:
    """Delete a channel and its function bundle; its token stops working at once."""
    channel_id = await daemon_of(request).channels.delete(request.path_params["id"])
    return JSONResponse({"id": channel_id, "deleted": True})


routes = [
    Route("/api/v1/channels", list_channels, methods=["GET"]),
    Route("/api/v1/channels", create, methods=["POST"]),
    Route("/api/v1/channels/{id}", get, methods=["GET"]),
    Route("/api/v1/channels/{id}", patch, methods=["PATCH"]),
    Route("/api/v1/channels/{id}", delete, methods=["DELETE"]),
    Route("/api/v1/channels/{id}/functions", put_functions, methods=["PUT"]),
    Route("/api/v1/channels/{id}/rotate", rotate, methods=["POST"]),
]
