"""/api/v1/executions: recorded invocations and exactly the output each one captured."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, listing, moment_param, paging
from orvad.clock import iso, utcnow
from orvad.errors import NotFound, ValidationError

STATUSES = ("success", "error", "timeout", "crashed", "rejected", "killed", "shutting_down")


async def list_executions(request: Request) -> Response:
    """Invocations, newest first; filters ?function_id= (id or name), ?status=, ?since=, ?until=; paging
    ?limit= with ?cursor= or ?offset=; ``total`` counts every execution the filters match."""
    daemon = daemon_of(request)
    page = paging(request, "/api/v1/executions")
    wanted = request.query_params.get("function_id")
    function_id = daemon.functions.resolve(wanted).id if wanted else None
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status must be one of {', '.join(STATUSES)}", details={"field": "status"})
    filters = {
        "function_id": function_id,
        "status": status,
        "since": moment_param(request, "since"),
        "until": moment_param(request, "until"),
    }
    rows = await daemon.executions.list(
        **filters, cursor=page.cursor, limit=page.limit + 1, offset=page.offset
    )
    return listing("executions", rows, page.limit, total=await daemon.executions.count(**filters))


async def summary(request: Request) -> Response:
    """Invocations and errors per function since ?since= (default: the last hour)."""
    since = moment_param(request, "since") or iso(utcnow() - timedelta(hours=1))
    return JSONResponse({"since": since, "functions": await daemon_of(request).executions.summary(since)})


async def get_execution(request: Request) -> Response:
    """One execution record."""
    row = await daemon_of(request).executions.get(request.path_params["id"])
    if row is None:
        raise NotFound(
            f"no execution {request.path_params['id']}",
            hint="executions are written a few milliseconds after the response; retry shortly",
        )
    return JSONResponse(row)


async def get_logs(request: Request) -> Response:
    """What the handler printed during this invocation (bounded; `truncated` says if it was cut)."""
    found = await daemon_of(request).executions.logs(request.path_params["id"])
    if found is None:
        raise NotFound(f"no execution {request.path_params['id']}")
    logs, truncated = found
    return JSONResponse({"execution_id": request.path_params["id"], "logs": logs, "truncated": truncated})


routes = [
    Route("/api/v1/executions", list_executions, methods=["GET"]),
    Route("/api/v1/executions/summary", summary, methods=["GET"]),
    Route("/api/v1/executions/{id}", get_execution, methods=["GET"]),
    Route("/api/v1/executions/{id}/logs", get_logs, methods=["GET"]),
]
