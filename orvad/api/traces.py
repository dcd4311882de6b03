"""/api/v1/traces: traces (each entered by an execution from outside orvad) and one trace's span tree."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, listing, moment_param, page_params
from orvad.errors import ValidationError
from orvad.traces.service import STATUSES


async def list_traces(request: Request) -> Response:
    """Traces, newest first: filters ?function_id= (id or name of the function the trace entered),
    ?status= (ok | error: whether any execution or user span of the trace failed), ?since=, ?until=;
    paging ?limit= (default 50, at most 500) and ?cursor= (next_cursor)."""
    daemon = daemon_of(request)
    limit, cursor = page_params(request)
    wanted = request.query_params.get("function_id")
    function_id = daemon.functions.resolve(wanted).id if wanted else None
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise ValidationError(
            f"status must be one of {', '.join(STATUSES)}",
            details={"field": "status"},
            hint="send ?status=ok, or ?status=error for the traces where something failed",
        )
    rows = await daemon.traces.page(
        function_id=function_id,
        status=status,
        since=moment_param(request, "since"),
        until=moment_param(request, "until"),
        cursor=cursor,
        limit=limit,
    )
    return listing("traces", rows, limit)


async def get_trace(request: Request) -> Response:
    """One trace: its executions and user spans in tree order, with offsets and durations."""
    return JSONResponse(await daemon_of(request).traces.tree(request.path_params["trace_id"]))


routes = [
    Route("/api/v1/traces", list_traces, methods=["GET"]),
    Route("/api/v1/traces/{trace_id}", get_trace, methods=["GET"]),
]
