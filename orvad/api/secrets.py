"""/api/v1/functions/{id}/secrets: names only out, values only in."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, read_object, trusted_needs_admin
from orvad.api.settled import until_served


async def list_secrets(request: Request) -> Response:
    """The secret names of a function (never the values)."""
    daemon = daemon_of(request)
    fn = daemon.functions.resolve(request.path_params["id"])
    return JSONResponse({"function_id": fn.id, "secrets": await daemon.secrets.names(fn.id)})


async def upsert_secret(request: Request) -> Response:
    """Create or replace one secret ({key, value}); answers once the next invocation sees it."""
    daemon = daemon_of(request)
    fn = daemon.functions.resolve(request.path_params["id"])
    trusted_needs_admin(request, fn)
    body = await read_object(request, ("key", "value"))
    await daemon.secrets.upsert(fn.id, body.get("key"), body.get("value"))
    key = body["key"]
    await until_served(
        daemon,
        fn,
        f"secret {key}",
        f"set it again (POST /api/v1/functions/{fn.name}/secrets) or remove it "
        f"(DELETE /api/v1/functions/{fn.name}/secrets/{key})",
    )
    return JSONResponse({"function_id": fn.id, "key": body["key"], "stored": True})


async def delete_secret(request: Request) -> Response:
    """Remove one secret; answers once no new invocation gets it."""
    daemon = daemon_of(request)
    fn = daemon.functions.resolve(request.path_params["id"])
    trusted_needs_admin(request, fn)
    key = request.path_params["key"]
    await daemon.secrets.delete(fn.id, key)
    await until_served(
        daemon,
        fn,
        f"removal of secret {key}",
        f"set {key} again if the handler needs it (POST /api/v1/functions/{fn.name}/secrets)",
    )
    return JSONResponse({"function_id": fn.id, "key": request.path_params["key"], "deleted": True})


routes = [
    Route("/api/v1/functions/{id}/secrets", list_secrets, methods=["GET"]),
    Route("/api/v1/functions/{id}/secrets", upsert_secret, methods=["POST"]),
    Route("/api/v1/functions/{id}/secrets/{key}", delete_secret, methods=["DELETE"]),
]
