"""/api/v1/pool/config: read and partially update a function's warm-pool settings (applied live);
and the `pool` object of PUT /api/v1/functions/{id}, saved together with the function's fields."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, read_object
from orvad.errors import ValidationError
from orvad.models import SETTABLE_STATUSES, Function
from orvad.pool.tunables import PoolConfig
from orvad.services.functions import SETTABLE
from orvad.services.poolconfigs import FIELDS
from orvad.services.serialisers import pool_config_json

if TYPE_CHECKING:
    from orvad.daemon import Daemon

log = logging.getLogger(__name__)


async def get_config(request: Request) -> Response:
    """The pool settings of ?function_id= (an id or name); defaults until changed."""
    daemon = daemon_of(request)
    wanted = request.query_params.get("function_id")
    if not wanted:
        raise ValidationError("?function_id= is required", details={"field": "function_id"})
    fn = daemon.functions.resolve(wanted)
    return JSONResponse({"function_id": fn.id, **pool_config_json(daemon.pool_configs.get(fn.id))})


async def put_config(request: Request) -> Response:
    """Partial update {function_id, min_warm?, max_warm?, idle_ttl_seconds?, target_concurrency?, scale_to_zero?}."""
    daemon = daemon_of(request)
    body = await read_object(request, ("function_id", *FIELDS))
    if not isinstance(body.get("function_id"), str):
        raise ValidationError("function_id is required", details={"field": "function_id"})
    fn = daemon.functions.resolve(body.pop("function_id"))
    config = await daemon.pool_configs.update(fn.id, body)
    return JSONResponse({"function_id": fn.id, **pool_config_json(config)})


async def post_config(request: Request) -> Response:
    """The same partial update as PUT, by POST: the method the Go original's clients use."""
    return await put_config(request)


async def update_with_pool(
    daemon: Daemon, id_or_name: str, body: dict[str, Any], pool: Any
) -> tuple[Function, PoolConfig]:
    """Every field (the function's and the pool's) is validated before anything is saved; if the pool's
    row then cannot be written, the function's fields are written back as they were."""
    before = daemon.functions.resolve(id_or_name)
    config = daemon.pool_configs.check(before.id, pool)
    fn = await daemon.functions.update(before.id, body)  # validates every field, then saves
    try:
        return fn, await daemon.pool_configs.save(fn.id, config)
    except Exception:
        restore = {f: getattr(before, f) for f in body if f in SETTABLE}
        if "status" in body and before.status in SETTABLE_STATUSES:
            restore["status"] = before.status
        try:
            await daemon.functions.update(fn.id, restore)
        except Exception:
            log.exception(
                "pool settings not saved, and the function's fields could not be written back",
                extra={"function_id": fn.id, "fields": sorted(restore)},
            )
        raise


routes = [
    Route("/api/v1/pool/config", get_config, methods=["GET"]),
    Route("/api/v1/pool/config", put_config, methods=["PUT"]),
    Route("/api/v1/pool/config", post_config, methods=["POST"]),
]
