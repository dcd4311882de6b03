"""/api/v1/activity: the audit log read as one feed of what happened (every API call a key or session made,
reads included; MCP tool calls, the assistant's tool calls, webhook deliveries, host commands), filtered
and paged newest first. ``?hide_reads=true`` leaves out the API reads (GET/HEAD), as the audit log does.

Built on the audit log (orvad/auth/audit.py, orvad/store/audit.py): no second log. Live: each committed row
is the event ``activity`` on GET /api/v1/events. Needs ``admin`` like the audit log (the guard's map).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orvad.api.common import daemon_of, int_param, listing, moment_param, page_params
from orvad.errors import ValidationError
from orvad.store.audit import SOURCES, ActivityFilter, printable

Q_MAX = 200  # characters of ?q=


def hide_reads_param(request: Request) -> bool:
    """``?hide_reads=true|1``: leave out the API calls that read (GET, HEAD); also GET /api/v1/audit-log's."""
    raw = request.query_params.get("hide_reads", "").lower()
    if raw not in ("", "true", "false", "1", "0"):
        raise ValidationError(
            "hide_reads must be true or false",
            hint="send ?hide_reads=true to leave out the reads (GET), or leave it out for every row",
            details={"field": "hide_reads"},
        )
    return raw in ("true", "1")


async def activity(request: Request) -> Response:
    """Activity rows, newest first (?source=&actor_id=&q=&since=&until=&status_min=&hide_reads=&limit=&cursor=)."""
    limit, cursor = page_params(request)
    params = request.query_params
    source = params.get("source") or None
    if source is not None and source not in SOURCES:
        raise ValidationError(
            f"source must be one of {', '.join(SOURCES)}",
            hint=f"send ?source= as one of {', '.join(SOURCES)}, or leave it out for every source",
            details={"field": "source", "allowed": list(SOURCES)},
        )
    q = params.get("q") or None
    if q is not None and len(q) > Q_MAX:
        raise ValidationError(
            f"q must be at most {Q_MAX} characters",
            hint="search for a shorter part of the path, method or actor name",
            details={"field": "q", "max": Q_MAX},
        )
    if q is not None:
        q = printable(q)  # rows hold control characters escaped (a NUL would also end SQLite's LIKE pattern)
    status_min = int_param(request, "status_min", 0, 0, 999) if "status_min" in params else None
    rows = await daemon_of(request).audit.activity(
        ActivityFilter(
            source=source,
            actor_id=params.get("actor_id") or None,
            q=q,
            since=moment_param(request, "since"),
            until=moment_param(request, "until"),
            status_min=status_min,
            hide_reads=hide_reads_param(request),
        ),
        cursor=cursor,
        limit=limit + 1,
    )
    return listing("activity", rows, limit)


routes = [Route("/api/v1/activity", activity, methods=["GET"])]
