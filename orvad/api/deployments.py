"""/api/v1/deployments: one record, its stored build log, and the live SSE stream; how a deploy answers
(202 at once, or with ?wait=true the end of its build)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, int_param
from orvad.builder.buildlog import BuildLog
from orvad.errors import BuildFailedError, NotFound, ValidationError
from orvad.models import Deployment, DeploymentStatus
from orvad.services.serialisers import deployment_json

SSE_PING_S = 15
WAIT_DEFAULT_S, WAIT_MAX_S = 300, 600  # ?timeout_s= of a deploy with ?wait=true
LOG_TAIL_LINES = 20  # build log lines a BUILD_FAILED answer carries


async def _deployment(request: Request) -> Deployment:
    dep = await daemon_of(request).function_store.deployment(request.path_params["id"])
    if dep is None:
        raise NotFound(
            f"no deployment {request.path_params['id']}",
            hint="list a function's deployments with GET /api/v1/functions/<function name>/deployments",
        )
    return dep


def wait_timeout(request: Request) -> float | None:
    """A deploy's ?wait=true[&timeout_s=N]: how long to wait for the build (None: answer 202 at once)."""
    wait = request.query_params.get("wait", "false").lower()
    if wait not in ("true", "false", "1", "0"):
        raise ValidationError("wait must be true or false", details={"field": "wait"})
    return (
        float(int_param(request, "timeout_s", WAIT_DEFAULT_S, 1, WAIT_MAX_S))
        if wait in ("true", "1")
        else None
    )


def deploy_answer(dep: Deployment) -> dict[str, Any]:
    """A deploy's or rollback's answer: the record, plus `deployment_id` (= id) as the Go original sent it."""
    return {**deployment_json(dep), "deployment_id": dep.id}


async def deployed(request: Request, dep: Deployment, timeout_s: float | None) -> Response:
    """The answer to a deploy: 202 with the record; with ?wait=true 200 once the build ended (the next
    invocation runs the new version), 422 BUILD_FAILED when it failed, 202 past timeout_s."""
    accepted = {"Location": f"/api/v1/deployments/{dep.id}"}
    if timeout_s is None:
        return JSONResponse(deploy_answer(dep), status_code=202, headers=accepted)
    daemon = daemon_of(request)
    final = await daemon.builder.wait(dep.id, timeout_s)
    if final is None:
        current = await daemon.function_store.deployment(dep.id)
        return JSONResponse(deploy_answer(current or dep), status_code=202, headers=accepted)
    if final.status != DeploymentStatus.FAILED:
        return JSONResponse(deploy_answer(final), headers=accepted)
    last = await daemon.function_store.last_log_seq(final.id)  # (flushes the queued lines first)
    tail = await daemon.function_store.logs(final.id, max(0, last - LOG_TAIL_LINES), LOG_TAIL_LINES)
    raise BuildFailedError(
        f"the build of deployment {final.id} failed: {final.error_message}",
        details={
            "deployment_id": final.id,
            "function_id": final.function_id,
            "log_tail": [line["line"] for line in tail],
        },
        hint=f"read the whole build log at GET /api/v1/deployments/{final.id}/logs, fix the code "
        "and deploy again; the previously active version keeps serving",
    )


async def get_deployment(request: Request) -> Response:
    """One deployment record."""
    return JSONResponse(deployment_json(await _deployment(request)))


async def get_logs(request: Request) -> Response:
    """Stored build log lines in order; page with ?after_seq= and ?limit= (1..5000)."""
    dep = await _deployment(request)
    after = int_param(request, "after_seq", 0, 0, 2**63 - 1)  # SQLite's INTEGER range
    limit = int_param(request, "limit", 1000, 1, 5000)
    daemon = daemon_of(request)
    await (
        daemon.batch.flush()
    )  # lines are written in batches: a build that just ended has its last ones queued
    lines = await daemon.function_store.logs(dep.id, after, limit + 1)
    more = len(lines) > limit
    lines = lines[:limit]
    return JSONResponse(
        {
            "deployment_id": dep.id,
            "status": dep.status,
            "lines": lines,
            "next_after_seq": lines[-1]["seq"] if more else None,
        }
    )


async def _replay(request: Request, dep: Deployment) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A finished build, read back from the database: its lines, phases and final record."""
    store = daemon_of(request).function_store
    await daemon_of(request).batch.flush()
    after = 0
    while batch := await store.logs(dep.id, after, 1000):
        for line in batch:
            yield "log", line
        after = batch[-1]["seq"]
    for mark in dep.phases:
        yield "phase", {"phase": str(mark["phase"]), "ts": mark["ts"]}
    yield str(dep.status), deployment_json(dep)


async def _resumed(
    request: Request, dep: Deployment, live: BuildLog
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A running build's live events; a build resumed after a restart keeps only the lines since then in
    memory, so the stored lines before its first live one come first."""
    first = next((data["seq"] for event, data in live.events if event == "log"), 1)
    if first > 1:
        store = daemon_of(request).function_store
        await daemon_of(request).batch.flush()
        after = 0
        while after < first - 1 and (batch := await store.logs(dep.id, after, min(1000, first - 1 - after))):
            for line in batch:
                yield "log", line
            after = batch[-1]["seq"]
    async for event in live.follow():
        yield event


async def stream(request: Request) -> Response:
    """SSE: `log`, `phase`, then `succeeded`, `failed` or `superseded` with the record; the stream then ends."""
    dep = await _deployment(request)
    live = daemon_of(request).builder.live_log(dep.id)
    events = _resumed(request, dep, live) if live is not None else _replay(request, dep)

    async def frames() -> AsyncIterator[dict[str, str]]:
        async for event, data in events:
            yield {"event": event, "data": json.dumps(data)}

    return EventSourceResponse(frames(), ping=SSE_PING_S, headers={"Cache-Control": "no-store"})


routes = [
    Route("/api/v1/deployments/{id}", get_deployment, methods=["GET"]),
    Route("/api/v1/deployments/{id}/logs", get_logs, methods=["GET"]),
    Route("/api/v1/deployments/{id}/stream", stream, methods=["GET"]),
]
