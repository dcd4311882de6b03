"""/api/v1/system/metrics(.json), the metrics history, info, storage and vacuum, /api/v1/events (SSE) and
/api/v1/audit-log."""

from __future__ import annotations

import asyncio
import json
import platform
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad import __version__
from orvad.api.activity import hide_reads_param
from orvad.api.common import daemon_of, int_param, listing, moment_param, page_params, principal_of
from orvad.auth.guard import identify
from orvad.builder.safetree import MAX_DEPTH, tree_bytes
from orvad.errors import Forbidden, Unauthorized, ValidationError
from orvad.services.metrics_history import MAX_MINUTES

EVENT_TYPES = ("metrics", "execution", "deployment", "function", "activity")
ADMIN_EVENT_TYPES = frozenset({"activity"})  # audit rows: for `admin` only (a read key gets the rest)
METRICS_EVERY_S = 5.0
PING_S = 15
RECHECK_S = 1.0  # an open stream checks its caller's key or session again this often: a revoked one ends it


async def metrics(request: Request) -> Response:
    """Prometheus text exposition (also at GET /metrics, the Go original's path)."""
    body = daemon_of(request).metrics.prometheus_text()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


async def metrics_json(request: Request) -> Response:
    """The dashboard's view: totals, rates, latency percentiles, pools, memory reserved; and the Go
    original's blocks (uptime_seconds, host, totals, rates, active_requests, sandbox, build_queue)."""
    return JSONResponse(daemon_of(request).metrics.snapshot())


async def metrics_history(request: Request) -> Response:
    """The snapshot's rates, percentiles and live workers sampled every interval_s, oldest first (?minutes=)."""
    minutes = int_param(request, "minutes", 10, 1, MAX_MINUTES)
    history = daemon_of(request).metrics_history
    return JSONResponse({"interval_s": history.interval_s, "points": history.points(minutes)})


def _data_dir_size(root: Path) -> tuple[int, str | None]:
    """Bytes of the files in the data dir, and a note when part of it could not be measured."""
    total, deep = tree_bytes(root)
    if not deep:
        return total, None
    return total, (
        f"data_dir_bytes is short: {len(deep)} folder(s) nested deeper than {MAX_DEPTH} were not "
        f"measured, e.g. {deep[0][:200]!r}; deleting the function that owns them removes them"
    )


async def info(request: Request) -> Response:
    """Version and build facts of this orvad, and how much disk its data dir uses."""
    daemon = daemon_of(request)
    settings, host = daemon.settings, daemon.host
    facts = host.facts if host else None
    size, note = await asyncio.to_thread(_data_dir_size, settings.data_dir)
    return JSONResponse(
        {
            "version": __version__,
            "python": platform.python_version(),
            "server": settings.server,
            "uptime_s": daemon.uptime_s(),
            "data_dir": str(settings.data_dir),
            "data_dir_bytes": size,
            "nsjail": facts.nsjail if facts else None,
            "cgroups": facts.cgroup if facts else None,
            "runtimes": [r["id"] for r in daemon.runtimes.list()],
            "host_warnings": [*(host.warnings if host else []), *([note] if note else [])],
            "functions_url": settings.functions_origin or None,
        }
    )


def _dir_bytes(root: Path) -> dict[str, Any]:
    """Bytes and files' count of the version trees (every function's versions/) and the build cache."""
    versions = sum(tree_bytes(d)[0] for d in (root / "functions").glob("*/versions") if d.is_dir())
    staging = sum(tree_bytes(d)[0] for d in (root / "functions").glob("*/staging") if d.is_dir())
    return {
        "versions_bytes": versions,
        "staging_bytes": staging,
        "build_cache_bytes": tree_bytes(root / "build-cache")[0],
        "data_dir_bytes": tree_bytes(root)[0],
    }


async def storage(request: Request) -> Response:
    """What orvad keeps on disk: the database (file, WAL, free pages, rows and bytes per table), the
    version trees, the build cache, and the vacuum running or last run (docs/OPERATIONS.md)."""
    daemon = daemon_of(request)
    database = await daemon.storage.stats()
    dirs = await asyncio.to_thread(_dir_bytes, daemon.settings.data_dir)
    tables = {t["name"]: t for t in database["tables"]}
    empty = {"rows": 0, "bytes": 0}
    run = daemon.storage.current
    return JSONResponse(
        {
            "database": database,
            **dirs,
            "executions": {k: tables.get("executions", empty)[k] for k in ("rows", "bytes")},
            "logs": {k: tables.get("execution_logs", empty)[k] for k in ("rows", "bytes")},
            "vacuum": run.as_dict() if run else None,
        }
    )


async def vacuum(request: Request) -> Response:
    """Checkpoint the WAL and vacuum the database on the writer's thread (?mode=incremental|full; default:
    incremental where the file allows it, else full). Answers the run when it ends; ?wait=false answers 202
    at once. 409 VACUUM_RUNNING while one runs."""
    daemon = daemon_of(request)
    mode = request.query_params.get("mode") or None
    if mode not in (None, "incremental", "full"):
        raise ValidationError(
            "mode must be incremental or full",
            hint="leave ?mode= out to let orvad choose, or send ?mode=full to rebuild the whole file",
            details={"field": "mode"},
        )
    wait = request.query_params.get("wait", "true").lower()
    if wait not in ("true", "false", "1", "0"):
        raise ValidationError("wait must be true or false", details={"field": "wait"})
    task = daemon.storage.start_vacuum(mode)  # type: ignore[arg-type]
    if wait in ("false", "0"):
        run = daemon.storage.current
        assert run is not None
        return JSONResponse(run.as_dict(), status_code=202)
    await asyncio.shield(task)  # a caller that leaves does not stop it
    run = daemon.storage.current
    assert run is not None
    return JSONResponse(run.as_dict())


async def events(request: Request) -> Response:
    """SSE of `metrics` (every 5 s), `execution`, `deployment`, `function` and `activity` events.

    Filters: ?types=execution,deployment and ?function_id=. A client that falls behind gets an
    `event: dropped` with the count of events it missed. `activity` (audit rows) needs `admin`: left out
    of a read key's default stream, 403 when it asks for it by name.
    """
    daemon = daemon_of(request)
    raw = request.query_params.get("types")
    types = frozenset(t.strip() for t in raw.split(",")) if raw else frozenset(EVENT_TYPES)
    if not types <= set(EVENT_TYPES):
        raise ValidationError(
            f"types must be a comma list of {', '.join(EVENT_TYPES)}", details={"field": "types"}
        )
    principal = principal_of(request)
    if (principal is None or not principal.can("admin")) and types & ADMIN_EVENT_TYPES:
        if raw:
            raise Forbidden(
                "the activity events need the 'admin' permission",
                hint="use a key with 'admin', or leave activity out of ?types=",
                details={"required": "admin"},
            )
        types -= ADMIN_EVENT_TYPES
    wanted = request.query_params.get("function_id")
    function_id = daemon.functions.resolve(wanted).id if wanted else None

    async def still_allowed() -> bool:
        """The stream's credential still works (a logged-out or revoked session, a deleted or expired key:
        the guard checked it once, when the stream opened)."""
        try:
            return await identify(request.scope, daemon.keys, daemon.sessions) is not None
        except Unauthorized:
            return False

    async def frames() -> AsyncIterator[dict[str, str]]:
        async with daemon.bus.subscribe(types | {"dropped"}) as sub:
            next_metrics = 0.0
            loop = asyncio.get_running_loop()
            checked = loop.time()
            while True:
                if "metrics" in types and loop.time() >= next_metrics:
                    next_metrics = loop.time() + METRICS_EVERY_S
                    yield {"event": "metrics", "data": json.dumps(daemon.metrics.snapshot())}
                timeout = max(0.05, next_metrics - loop.time()) if "metrics" in types else PING_S
                try:
                    event, data = await asyncio.wait_for(sub.get(), timeout)
                except TimeoutError:
                    event, data = "", {}
                if loop.time() - checked >= RECHECK_S:  # before anything more is sent
                    if not await still_allowed():
                        return
                    checked = loop.time()
                if not event:
                    continue
                if (
                    function_id
                    and event != "dropped"
                    and data.get("function_id", data.get("id")) != function_id
                ):
                    continue
                yield {"event": event, "data": json.dumps(data)}

    return EventSourceResponse(frames(), ping=PING_S, headers={"Cache-Control": "no-store"})


async def audit_log(request: Request) -> Response:
    """Management calls, newest first (?actor_id=, ?method=, ?path_prefix=, ?since=, ?hide_reads=)."""
    limit, cursor = page_params(request)
    q = request.query_params
    rows = await daemon_of(request).audit.list(
        actor_id=q.get("actor_id"),
        method=q.get("method"),
        path_prefix=q.get("path_prefix"),
        since=moment_param(request, "since"),
        cursor=cursor,
        limit=limit + 1,
        hide_reads=hide_reads_param(request),  # issue 24: reads are rows too
    )
    return listing("entries", rows, limit)


routes = [
    Route("/api/v1/system/metrics", metrics, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"], name="metrics_root"),  # the Go original's path for scrapers
    Route("/api/v1/system/metrics.json", metrics_json, methods=["GET"]),
    Route("/api/v1/system/metrics/history", metrics_history, methods=["GET"]),
    Route("/api/v1/system/info", info, methods=["GET"]),
    Route("/api/v1/system/storage", storage, methods=["GET"]),  # issue 24
    Route("/api/v1/system/vacuum", vacuum, methods=["POST"]),
    Route("/api/v1/events", events, methods=["GET"]),
    Route("/api/v1/audit-log", audit_log, methods=["GET"]),
]
