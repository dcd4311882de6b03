"""GET /api/v1/openapi.json, generated from the route table, the permission map and api/schemas.py."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from orvad import __version__
from orvad.api.schemas import EXAMPLES, OPS, RECORDS, Facts, Op, bodies
from orvad.auth.guard import requirement

_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                k: {"type": t}
                for k, t in (
                    ("code", "string"),
                    ("message", "string"),
                    ("request_id", "string"),
                    ("hint", "string"),
                    ("retry_after_s", "integer"),
                    ("details", "object"),
                )
            },
        }
    },
}
_ERROR = {"$ref": "#/components/responses/Error"}
_DESCRIPTIONS = {
    "302": "redirect to /web/",
    "503": "unavailable for now (a failed check, start-up, a full build queue, no dashboard build)",
}


def operation_id(route: Route, taken: set[str]) -> str:
    """`<module>_<endpoint>` (functions_create_function); a second route of the same endpoint gets `_2`."""
    module = route.endpoint.__module__.rsplit(".", 1)[-1]
    base = f"{module}_{route.endpoint.__name__}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def _responses(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, content in op.ok.items():
        response: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, "success")}
        if content:
            response["content"] = {t: {"schema": s} for t, s in content.items()}
        if status in op.links:
            response["links"] = op.links[status]
        if status in op.headers:
            response["headers"] = {
                name: {"required": True, "schema": schema} for name, schema in op.headers[status].items()
            }
        out[status] = response
    out["default"] = _ERROR
    return out


def _operation(
    method: str, path: str, route: Route, summary: str, op_id: str, path_params: list[dict[str, Any]]
) -> dict[str, Any]:
    need = requirement(method, path)
    op = OPS.get((method, path), Op())
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": op_id,
        "x-orva-auth": need,
        "responses": _responses(op),
    }
    params = [*path_params, *(p.openapi() for p in op.query)]
    if params:
        operation["parameters"] = params
    if op.body:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{op.body}"},
                    "example": EXAMPLES[op.body],
                }
            },
        }
    if op.raw_body:  # other content types, alone or beside the JSON body
        operation.setdefault("requestBody", {"required": True, "content": {}})
        operation["requestBody"]["content"].update({t: {"schema": s} for t, s in op.raw_body.items()})
    if need == "public":
        operation["security"] = []
    elif need == "session":
        operation["security"] = [{"session": []}]
    else:
        operation["security"] = [{"apiKey": [need]}, {"bearer": [need]}, {"session": []}]
    return operation


def build_spec(
    routes: list[BaseRoute], cookie_name: str = "session_token", facts: Facts | None = None
) -> dict[str, Any]:
    facts = facts or Facts({"python": ["python"]}, 1)
    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    for route in routes:
        if not isinstance(route, Route) or not route.include_in_schema:
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        path_params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
            for name in _PARAM.findall(route.path)
        ]
        summary = (route.endpoint.__doc__ or route.name).strip().splitlines()[0]
        op_id = operation_id(route, taken)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(path, {})[method.lower()] = _operation(
                method, path, route, summary, op_id, path_params
            )
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
            "schemas": {**RECORDS, **bodies(facts), "Error": ERROR_SCHEMA},
            "responses": {
                "Error": {
                    "description": "error envelope (docs/ERRORS.md); Retry-After when retry_after_s is set",
                    "headers": {
                        "X-Request-ID": {
                            "required": True,
                            "description": "equals error.request_id",
                            "schema": {"type": "string", "minLength": 1},
                        }
                    },
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            },
        },
    }


async def openapi(request: Request) -> Response:
    """This API's OpenAPI 3.1 document, generated from the route table."""
    daemon = request.app.state.daemon
    return JSONResponse(
        build_spec(request.app.routes, daemon.sessions.cookie_name, Facts.of(daemon.runtimes))
    )


routes = [Route("/api/v1/openapi.json", openapi, methods=["GET"])]
