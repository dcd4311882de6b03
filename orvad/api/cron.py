"""/api/v1/functions/{id}/cron and /api/v1/cron: a function's schedules, and all of them (issue 23; docs/API.md, Cron).

GET needs `read`, the rest `write` (the guard's map); every change is an audit-log row like every other
management call. ``{cid}`` is a schedule's id or its name (names are unique per function). POST upserts by
name: a name the function already has changes that schedule (fields left out keep their value), a new name
(or none) creates one.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, page_params, read_object
from orvad.cron.service import FIELDS
from orvad.errors import ValidationError
from orvad.models import Function


def _fn(request: Request) -> Function:
    return daemon_of(request).functions.resolve(request.path_params["id"])


async def list_for_function(request: Request) -> Response:
    """The function's schedules, newest first."""
    fn = _fn(request)
    cron = daemon_of(request).cron
    rows = await cron.list_for(fn.id)
    return JSONResponse({"function_id": fn.id, "schedules": await cron.to_json(rows)})


async def upsert(request: Request) -> Response:
    """Create a schedule (201), or change the one with this name (200)."""
    fn = _fn(request)
    body = await read_object(request, FIELDS)
    cron = daemon_of(request).cron
    row, created = await cron.upsert(fn, body, "api")
    return JSONResponse((await cron.to_json([row]))[0], status_code=201 if created else 200)


async def get_one(request: Request) -> Response:
    """One schedule, by id or name."""
    fn = _fn(request)
    cron = daemon_of(request).cron
    row = await cron.find(fn, request.path_params["cid"])
    return JSONResponse((await cron.to_json([row]))[0])


async def update(request: Request) -> Response:
    """Change the fields sent; a new expression, timezone or enabled recomputes next_run_at from now."""
    fn = _fn(request)
    body = await read_object(request, FIELDS)
    if not body:
        raise ValidationError(
            "send at least one field to change",
            hint=f"fields: {', '.join(FIELDS)}",
            details={"fields": list(FIELDS)},
        )
    cron = daemon_of(request).cron
    row = await cron.update(fn, request.path_params["cid"], body)
    return JSONResponse((await cron.to_json([row]))[0])


async def delete(request: Request) -> Response:
    """Delete a schedule; runs already enqueued still run."""
    fn = _fn(request)
    row = await daemon_of(request).cron.delete(fn, request.path_params["cid"])
    return JSONResponse({"id": row.id, "name": row.name, "function_id": fn.id, "deleted": True})


async def run_now(request: Request) -> Response:
    """Run the schedule once now, as a job (its payload, trigger cron); next_run_at is unchanged."""
    fn = _fn(request)
    cron = daemon_of(request).cron
    row, job_id = await cron.run_now(fn, request.path_params["cid"])
    return JSONResponse({"schedule": (await cron.to_json([row]))[0], "job_id": job_id}, status_code=202)


def _enabled(request: Request) -> bool | None:
    raw = request.query_params.get("enabled")
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ValidationError(
        "enabled must be true or false",
        hint="send ?enabled=true or ?enabled=false",
        details={"field": "enabled"},
    )


async def list_all(request: Request) -> Response:
    """Every schedule (?function_id= a function's id or name, ?enabled=), newest first, paged with ?cursor=."""
    daemon = daemon_of(request)
    limit, cursor = page_params(request, default=100, maximum=1000)
    function_id = None
    if request.query_params.get("function_id"):
        function_id = daemon.functions.resolve(request.query_params["function_id"]).id
    rows, total = await daemon.cron.list_all(
        function_id=function_id, enabled=_enabled(request), cursor=cursor, limit=limit
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return JSONResponse(
        {
            "schedules": await daemon.cron.to_json(rows),
            "next_cursor": rows[-1].id if more and rows else None,
            "total": total,
        }
    )


routes = [
    Route("/api/v1/cron", list_all, methods=["GET"]),
    Route("/api/v1/functions/{id}/cron", list_for_function, methods=["GET"]),
    Route("/api/v1/functions/{id}/cron", upsert, methods=["POST"]),
    Route("/api/v1/functions/{id}/cron/{cid}", get_one, methods=["GET"]),
    Route("/api/v1/functions/{id}/cron/{cid}", update, methods=["PUT"]),
    Route("/api/v1/functions/{id}/cron/{cid}", delete, methods=["DELETE"]),
    Route("/api/v1/functions/{id}/cron/{cid}/run", run_now, methods=["POST"]),
]
