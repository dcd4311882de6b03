"""orva.jobs: background invocations, run later by orvad with retries (docs/SDK.md, Jobs).

A function enqueues jobs for itself, or for the functions its ``may_invoke`` names; it sees only its own
jobs (the jobs that run it). Sync functions, and async twins with an ``a`` prefix::

    from orva import jobs
    job_id = jobs.enqueue("send-welcome-email", {"user": 42}, delay_seconds=10, max_attempts=3)
    jobs.get(job_id)["status"]        # pending | running | failed | succeeded | dead | cancelled
    jobs.list(status="dead")["jobs"]

The job's function gets ``payload`` as the JSON body of ``POST /`` (``event["body"]``), with the headers
``x-orva-trigger: job`` and ``x-orva-job-id``. Failures raise ``orva.OrvaError`` (``.code``, ``.message``).
"""

from __future__ import annotations

from typing import Any

from orva import _channel

__all__ = ["enqueue", "get", "list", "aenqueue", "aget", "alist"]


def _enqueue_args(
    function: str | None,
    payload: Any,
    delay_seconds: float | None,
    scheduled_at: str | float | None,
    max_attempts: int | None,
    idempotency_key: str | None,
    idempotency_window_s: float | None,
) -> dict[str, Any]:
    args: dict[str, Any] = {"payload": payload}
    for name, value in (
        ("function", function),
        ("delay_seconds", delay_seconds),
        ("scheduled_at", scheduled_at),
        ("max_attempts", max_attempts),
        ("idempotency_key", idempotency_key),
        ("idempotency_window_s", idempotency_window_s),
    ):
        if value is not None:
            args[name] = value
    return args


def _list_args(status: str | None, limit: int | None, cursor: str | None) -> dict[str, Any]:
    return {k: v for k, v in (("status", status), ("limit", limit), ("cursor", cursor)) if v is not None}


def enqueue(
    function: str | None = None,
    payload: Any = None,
    *,
    delay_seconds: float | None = None,
    scheduled_at: str | float | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
    idempotency_window_s: float | None = None,
) -> str:
    """Queue a job for ``function`` (a name; None: this function); returns the job's id. With an
    ``idempotency_key`` already used within its window, the existing job's id (no second job)."""
    job = _channel.call(
        "jobs.enqueue",
        _enqueue_args(function, payload, delay_seconds, scheduled_at, max_attempts, idempotency_key, idempotency_window_s),
    )
    return str(job["id"])


def get(job_id: str) -> dict[str, Any]:
    """One of this function's jobs, with its attempts (``attempts_list``)."""
    return dict(_channel.call("jobs.get", {"id": job_id}))


def list(status: str | None = None, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:  # noqa: A001
    """This function's jobs, newest first: ``{"jobs": [...], "next_cursor": id | None}``."""
    return dict(_channel.call("jobs.list", _list_args(status, limit, cursor)))


async def aenqueue(
    function: str | None = None,
    payload: Any = None,
    *,
    delay_seconds: float | None = None,
    scheduled_at: str | float | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
    idempotency_window_s: float | None = None,
) -> str:
    job = await _channel.acall(
        "jobs.enqueue",
        _enqueue_args(function, payload, delay_seconds, scheduled_at, max_attempts, idempotency_key, idempotency_window_s),
    )
    return str(job["id"])


async def aget(job_id: str) -> dict[str, Any]:
    return dict(await _channel.acall("jobs.get", {"id": job_id}))


async def alist(status: str | None = None, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
    return dict(await _channel.acall("jobs.list", _list_args(status, limit, cursor)))
