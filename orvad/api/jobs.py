"""/api/v1/jobs: durable background invocations (issue 23; docs/API.md, Jobs).

GET needs ``read``; POST and DELETE ``write``, and enqueueing or retrying a job (which runs a function)
needs ``invoke`` as well: a write-only key cannot run functions through the queue.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, int_param, principal_of, read_object, require_str
from orvad.errors import Forbidden, NotFound, ValidationError
from orvad.jobs.service import Job, parse_when
from orvad.store.jobs import STATUSES

_FIELDS = ("function", "payload", "scheduled_at", "max_attempts", "idempotency_key", "idempotency_window_s")


def _needs_invoke(request: Request, what: str) -> None:
    principal = principal_of(request)
    if principal is None or not principal.can("invoke"):
        raise Forbidden(
            f"{what} runs a function: it needs the invoke permission as well as write",
            details={"required": "invoke"},
            hint='use a key with both write and invoke (POST /api/v1/keys {"permissions": ["write", "invoke"]})',
        )


async def enqueue(request: Request) -> Response:
    """A job: 202 with it once its row is committed; 200 with the existing job when its idempotency_key was
    used for the function within the window (no second job)."""
    body = await read_object(request, _FIELDS)
    ident = require_str(body, "function", max_len=200)
    assert ident is not None
    _needs_invoke(request, "enqueueing a job")
    daemon = daemon_of(request)
    fn = daemon.functions.resolve(ident)
    if fn.auth_mode == "signed":
        # as for operator calls from /mcp: holding invoke is not the webhook's signature
        raise Forbidden(
            f"function {fn.name} is signed: a job for it must come from a signed request",
            details={"field": "function", "auth_mode": "signed"},
            hint=f"send the signed request to /fn/{fn.name} with X-Orva-Invocation-Type: Event (it answers 202 "
            "with the job), or change the function's auth_mode",
        )
    scheduled = body.get("scheduled_at")
    if scheduled is not None and not isinstance(scheduled, str):
        raise ValidationError(
            "scheduled_at must be an RFC 3339 time",
            hint="for example 2030-01-01T12:00:00Z (leave it out to run now)",
            details={"field": "scheduled_at"},
        )
    job = await daemon.jobs.enqueue(
        fn.id,
        body.get("payload"),
        scheduled_at=parse_when(scheduled, "scheduled_at") if scheduled is not None else None,
        max_attempts=body.get("max_attempts", 3),  # checked by the service (null: 3)
        idempotency_key=body.get("idempotency_key"),
        idempotency_window_s=body.get("idempotency_window_s"),
        source="api",
    )
    return JSONResponse(job.to_json() | {"created": job.created}, status_code=202 if job.created else 200)


async def list_jobs(request: Request) -> Response:
    """Newest first; ?function_id= (id or name), ?status=, ?limit=, ?cursor= (next_cursor of the last page)."""
    daemon = daemon_of(request)
    limit = int_param(request, "limit", 50, 1, 500)
    cursor = request.query_params.get("cursor") or None
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValidationError(
            f"status must be one of {', '.join(STATUSES)}",
            hint="for the dead-letter list send GET /api/v1/jobs?status=dead",
            details={"field": "status"},
        )
    ident = request.query_params.get("function_id") or None
    function_id = None
    if ident is not None:
        fn = daemon.functions.get(ident)
        if fn is None:
            try:
                fn = daemon.functions.resolve(ident)
            except NotFound:
                fn = None
        function_id = fn.id if fn is not None else ident  # a deleted function's jobs stay listable by id
    jobs = await daemon.jobs.list_jobs(function_id=function_id, status=status, cursor=cursor, limit=limit)
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return JSONResponse(
        {
            "jobs": [j.to_json() for j in jobs],
            "next_cursor": jobs[-1].id if more and jobs else None,
            "counts": await daemon.jobs.counts(function_id),
        }
    )


async def _full(request: Request, job: Job) -> dict[str, object]:
    return job.to_json() | {"attempts_list": await daemon_of(request).jobs.attempts(job.id)}


async def get_job(request: Request) -> Response:
    """One job with its attempts (each an execution: GET /api/v1/executions/{execution_id})."""
    job = await daemon_of(request).jobs.get(request.path_params["id"])
    return JSONResponse(await _full(request, job))


async def cancel_job(request: Request) -> Response:
    """Cancel a pending or failed (waiting to retry) job; a running one is marked cancelled at once and its
    attempt in progress runs to its end (recorded), with no attempt after it."""
    job = await daemon_of(request).jobs.cancel(request.path_params["id"])
    return JSONResponse(await _full(request, job))


async def retry_job(request: Request) -> Response:
    """A dead, failed or cancelled job back to pending, due now, with a fresh round of max_attempts."""
    _needs_invoke(request, "retrying a job")
    job = await daemon_of(request).jobs.retry(request.path_params["id"])
    return JSONResponse(await _full(request, job))


routes = [
    Route("/api/v1/jobs", enqueue, methods=["POST"]),
    Route("/api/v1/jobs", list_jobs, methods=["GET"]),
    Route("/api/v1/jobs/{id}", get_job, methods=["GET"]),
    Route("/api/v1/jobs/{id}", cancel_job, methods=["DELETE"]),
    Route("/api/v1/jobs/{id}/retry", retry_job, methods=["POST"]),
]
