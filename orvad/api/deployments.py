"""/api/v1/deployments: one record, its stored build log, and the live SSE stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, int_param
from orvad.errors import NotFound
from orvad.store.functions import Deployment

SSE_PING_S = 15


async def _deployment(request: Request) -> Deployment:
    dep = await daemon_of(request).function_store.deployment(request.path_params["id"])
    if dep is None:
        raise NotFound(f"no deployment {request.path_params['id']}",
                       hint="list a function's deployments with GET /api/v1/functions/{id}/deployments")
    return dep


async def get_deployment(request: Request) -> Response:
    """One deployment record."""
    return JSONResponse(asdict(await _deployment(request)))


async def get_logs(request: Request) -> Response:
    """Stored build log lines in order; page with ?after_seq= and ?limit= (1..5000)."""
    dep = await _deployment(request)
    after = int_param(request, "after_seq", 0, 0, 2**63 - 1)  # SQLite's INTEGER range
    limit = int_param(request, "limit", 1000, 1, 5000)
    daemon = daemon_of(request)
    await daemon.batch.flush()  # lines are written in batches: a build that just ended has its last ones queued
    lines = await daemon.function_store.logs(dep.id, after, limit + 1)
    more = len(lines) > limit
    lines = lines[:limit]
    return JSONResponse({"deployment_id": dep.id, "status": dep.status, "lines": lines,
                         "next_after_seq": lines[-1]["seq"] if more else None})


async def _replay(request: Request, dep: Deployment) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A finished build, read back from the database: its lines, phases and final record."""
    store = daemon_of(request).function_store
    await daemon_of(request).batch.flush()
    after = 0
    while batch := await store.logs(dep.id, after, 1000):
        for line in batch:
            yield "log", line
        after = batch[-1]["seq"]
    for phase in dep.phases:
        yield "phase", phase
    yield dep.status, asdict(dep)


async def stream(request: Request) -> Response:
    """SSE: `log`, `phase`, then `succeeded`, `failed` or `superseded` with the record; the stream then ends."""
    dep = await _deployment(request)
    live = daemon_of(request).builder.live_log(dep.id)
    events = live.follow() if live is not None else _replay(request, dep)

    async def frames() -> AsyncIterator[dict[str, str]]:
        async for event, data in events:
            yield {"event": event, "data": json.dumps(data)}

    return EventSourceResponse(frames(), ping=SSE_PING_S, headers={"Cache-Control": "no-store"})


routes = [
    Route("/api/v1/deployments/{id}", get_deployment, methods=["GET"]),
    Route("/api/v1/deployments/{id}/logs", get_logs, methods=["GET"]),
    Route("/api/v1/deployments/{id}/stream", stream, methods=["GET"]),
]
