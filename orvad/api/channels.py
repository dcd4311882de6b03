"""/api/v1/channels: operator-managed bundles of functions for /mcp (issue 21). Admin key or session."""

from __future__ import annotations

import re
import shlex
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, listing, page_params, read_object, require_str
from orvad.api.keys import _expiry
from orvad.errors import ValidationError
from orvad.services.serialisers import channel_detail_json, channel_json

MAX_DESCRIPTION = 1024
MAX_FUNCTIONS = 256
# client-config: the snippets read the token from this environment variable (docs/MCP.md, "Client set-up")
TOKEN_VAR = "ORVA_CHANNEL_TOKEN"
TOKEN_SLOT = "<paste the orva_chn_ token here>"
# mcp-remote refuses plain http except for these hosts unless given --allow-http
_MCP_REMOTE_LOCAL = ("localhost", "127.0.0.1")


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
    return JSONResponse({**channel_detail_json(channel), "token": token}, status_code=201)


async def list_channels(request: Request) -> Response:
    """All channels, newest first; never the token."""
    limit, cursor = page_params(request)
    rows = [
        channel_json(c) for c in await daemon_of(request).channels.list() if cursor is None or c.id < cursor
    ]
    return listing("channels", rows[: limit + 1], limit)


async def get(request: Request) -> Response:
    """A channel with its bundled functions and their description overrides."""
    return JSONResponse(channel_detail_json(await daemon_of(request).channels.get(request.path_params["id"])))


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
    return JSONResponse(channel_detail_json(channel))


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
    return JSONResponse(channel_detail_json(channel))


async def rotate(request: Request) -> Response:
    """Issue a new token (in `token`, once); the previous one stops working at once."""
    channel, token = await daemon_of(request).channels.rotate(request.path_params["id"])
    return JSONResponse({**channel_detail_json(channel), "token": token})


async def delete(request: Request) -> Response:
    """Delete a channel and its function bundle; its token stops working at once."""
    channel_id = await daemon_of(request).channels.delete(request.path_params["id"])
    return JSONResponse({"id": channel_id, "deleted": True})


# a Host header as a URL may carry it: a name or an IP (IPv6 in brackets), an optional numeric port
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


def base_url(request: Request) -> str:
    """Where clients reach this orvad: ORVA_PUBLIC_URL, else the request's own scheme and Host (a Host
    that is not a plain name[:port], e.g. one carrying shell syntax in its port, gives orvad's own
    address instead: the URL ends up in a line pasted into a shell)."""
    daemon = daemon_of(request)
    public = daemon.settings.public_url
    if public:
        return str(public).rstrip("/")
    host = request.headers.get("host") or ""
    if not _HOST.fullmatch(host):
        host = f"{daemon.settings.host}:{daemon.settings.port}"
    return f"{request.url.scheme}://{host}"


def server_key(channel_name: str) -> str:
    """The mcpServers key: orva-<channel name> reduced to letters, digits, - and _."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", channel_name.lower()).strip("-") or "channel"
    return f"orva-{slug}"[:64]


def client_config(url: str, channel_name: str) -> dict[str, Any]:
    """Ready-to-paste MCP client configuration for a channel at `url` (…/mcp), the token left out:
    each snippet reads it from the environment variable TOKEN_VAR (docs/MCP.md, "Client set-up")."""
    key = server_key(channel_name)
    split = urlsplit(url)
    allow_http = (
        ["--allow-http"] if split.scheme == "http" and split.hostname not in _MCP_REMOTE_LOCAL else []
    )
    # mcp-remote substitutes ${VAR} in --header values from its environment; the header argument holds no
    # space because Claude Desktop on Windows and Cursor pass args to npx unquoted (mcp-remote's README)
    args = ["-y", "mcp-remote", url, "--header", f"X-Orva-API-Key:${{{TOKEN_VAR}}}", *allow_http]
    # one word for the URL whatever it holds (ORVA_PUBLIC_URL or the Host); the header's ${VAR} is the
    # shell's to expand, so it stays in double quotes
    shell = " ".join(
        [
            "npx -y mcp-remote",
            shlex.quote(url),
            f'--header "Authorization: Bearer ${{{TOKEN_VAR}}}"',
            *allow_http,
        ]
    )
    return {
        "url": url,
        "token_placeholder": TOKEN_VAR,
        "server_name": key,
        "claude_desktop": {
            "mcpServers": {key: {"command": "npx", "args": args, "env": {TOKEN_VAR: TOKEN_SLOT}}}
        },
        "cursor": {
            "mcpServers": {key: {"url": url, "headers": {"Authorization": f"Bearer ${{env:{TOKEN_VAR}}}"}}}
        },
        "mcp_remote": shell,
    }


async def get_client_config(request: Request) -> Response:
    """MCP client configuration for the channel (Claude Desktop, Cursor, an mcp-remote line); never the token."""
    channel = await daemon_of(request).channels.get(request.path_params["id"])
    return JSONResponse(client_config(base_url(request) + "/mcp", channel.row.name))


routes = [
    Route("/api/v1/channels", list_channels, methods=["GET"]),
    Route("/api/v1/channels", create, methods=["POST"]),
    Route("/api/v1/channels/{id}", get, methods=["GET"]),
    Route("/api/v1/channels/{id}", patch, methods=["PATCH"]),
    Route("/api/v1/channels/{id}", delete, methods=["DELETE"]),
    Route("/api/v1/channels/{id}/functions", put_functions, methods=["PUT"]),
    Route("/api/v1/channels/{id}/rotate", rotate, methods=["POST"]),
    Route("/api/v1/channels/{id}/client-config", get_client_config, methods=["GET"]),
]
