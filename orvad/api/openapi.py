"""GET /api/v1/openapi.json, generated from the route table and the permission map."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from orvad import __version__
from orvad.auth.guard import requirement

_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def build_spec(routes: list[BaseRoute], cookie_name: str = "session_token") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                  for name in _PARAM.findall(route.path)]
        doc = (route.endpoint.__doc__ or route.name).strip().splitlines()[0]
        for method in sorted((route.methods or set()) - {"HEAD"}):
            need = requirement(method, path)
            operation: dict[str, Any] = {
                "summary": doc,
                "operationId": f"{method.lower()}_{route.name}",
                "x-orva-auth": need,
                "responses": {"default": {"$ref": "#/components/responses/Error"}},
            }
            if params:
                operation["parameters"] = params
            if need == "public":
                operation["security"] = []
            elif need == "session":
                operation["security"] = [{"session": []}]
            else:
                operation["security"] = [{"apiKey": [need]}, {"bearer": [need]}, {"session": []}]
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Orva API", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Orva-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": cookie_name},
            },
            "responses": {"Error": {"description": "error envelope", "content": {"application/json": {"schema": {
                "type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message", "request_id"],
                    "properties": {k: {"type": t} for k, t in (
                        ("code", "string"), ("message", "string"), ("request_id", "string"), ("hint", "string"),
                        ("retry_after_s", "integer"), ("details", "object"))},
                }}}}}}},
        },
    }


async def openapi(request: Request) -> Response:
    """This API's OpenAPI 3.1 document, generated from the route table."""
    return JSONResponse(build_spec(request.app.routes, request.app.state.daemon.sessions.cookie_name))


routes = [Route("/api/v1/openapi.json", openapi, methods=["GET"])]
