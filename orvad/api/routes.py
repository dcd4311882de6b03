"""/api/v1/routes: custom URL paths that reach a function."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, principal_of, read_object
from orvad.errors import Forbidden, ValidationError
from orvad.services.serialisers import route_json


def _name(request: Request, function_id: str) -> str | None:
    fn = daemon_of(request).functions.get(function_id)
    return fn.name if fn else None


async def list_routes(request: Request) -> Response:
    """Every custom route (?function_id= to filter, an id or a name)."""
    daemon = daemon_of(request)
    wanted = request.query_params.get("function_id")
    function_id = daemon.functions.resolve(wanted).id if wanted else None  # an id or a name, as everywhere
    entries = [e for e in daemon.routes.table.all() if function_id is None or e.function_id == function_id]
    return JSONResponse(
        {"routes": [route_json(e, _name(request, e.function_id)) for e in entries], "next_cursor": None}
    )


async def _save_route(request: Request, replace: bool) -> Response:
    daemon = daemon_of(request)
    body = await read_object(request, ("path", "function_id", "methods"))
    if not isinstance(body.get("function_id"), str):
        raise ValidationError(
            "function_id is required (a function id or name)", details={"field": "function_id"}
        )
    fn = daemon.functions.resolve(body["function_id"])
    path = body.get("path")
    if isinstance(path, str) and path.lower().startswith("/.well-known"):
        principal = principal_of(request)
        if principal is None or not principal.can(
            "admin"
        ):  # ACME HTTP-01, security.txt, app links: the host's
            raise Forbidden(
                "routes under /.well-known/ speak for the whole host name (certificates, app links): "
                "they need the admin permission",
                details={"required": "admin", "field": "path"},
                hint="ask an operator with an admin key to create this route",
            )
    entry, replaced = await daemon.routes.create(
        body.get("path"), fn.id, body.get("methods", "*"), replace=replace
    )
    return JSONResponse(route_json(entry, fn.name), status_code=200 if replaced else 201)


async def create_route(request: Request) -> Response:
    """Map a path ('/exact' or '/prefix/*') and methods ('*' or 'GET,POST') to a function (409 if taken)."""
    return await _save_route(request, replace=False)


async def put_route(request: Request) -> Response:
    """Create the route at `path`, or replace the one there at once (200 replaced, 201 created)."""
    return await _save_route(request, replace=True)


async def delete_route(request: Request) -> Response:
    """Remove the route at ?path=."""
    path = request.query_params.get("path")
    await daemon_of(request).routes.delete(path)
    return JSONResponse({"path": path, "deleted": True})


routes = [
    Route("/api/v1/routes", list_routes, methods=["GET"]),
    Route("/api/v1/routes", create_route, methods=["POST"]),
    Route("/api/v1/routes", put_route, methods=["PUT"]),
    Route("/api/v1/routes", delete_route, methods=["DELETE"]),
]
