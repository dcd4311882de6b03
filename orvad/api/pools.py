"""/api/v1/pool/config: read and partially update a function's warm-pool settings (applied live)."""

from __future__ import annotations

from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, read_object
from orvad.errors import ValidationError
from orvad.poolconfig import FIELDS


async def get_config(request: Request) -> Response:
    """The pool settings of ?function_id= (an id or name); defaults until changed."""
    daemon = daemon_of(request)
    wanted = request.query_params.get("function_id")
    if not wanted:
        raise ValidationError("?function_id= is required", details={"field": "function_id"})
    fn = daemon.functions.resolve(wanted)
    return JSONResponse({"function_id": fn.id, **asdict(daemon.pool_configs.get(fn.id))})


async def put_config(request: Request) -> Response:
    """Partial update {function_id, min_warm?, max_warm?, idle_ttl_seconds?, target_concurrency?, scale_to_zero?}."""
    daemon = daemon_of(request)
    body = await read_object(request, ("function_id", *FIELDS))
    if not isinstance(body.get("function_id"), str):
        raise ValidationError("function_id is required", details={"field": "function_id"})
    fn = daemon.functions.resolve(body.pop("function_id"))
    config = await daemon.pool_configs.update(fn.id, body)
    return JSONResponse({"function_id": fn.id, **asdict(config)})


routes = [
    Route("/api/v1/pool/config", get_config, methods=["GET"]),
    Route("/api/v1/pool/config", put_config, methods=["PUT"]),
]
