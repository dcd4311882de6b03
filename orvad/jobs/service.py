"""Jobs (issue 23): durable background invocations of a function.

A job is a request for one function kept in the database until it has run: enqueued by the API
(``POST /api/v1/jobs``), by a handler (``orva.jobs.enqueue``), by an ``X-Orva-Invocation-Type: Event`` call
of ``/fn`` or a route (the request itself becomes the job), or by cron (``trigger="cron"``). ``enqueue``
returns once the row is committed: an accepted job is never lost.

The runner (``run``, a daemon task) claims due jobs with a lease (``JobStore.claim``: one conditional UPDATE
... RETURNING inside a write transaction, which serialises with every other node's: a job is claimed by one
node), runs each attempt through ``Invoker.dispatch`` (an execution with the job's trigger, linked to the job
by its attempt row and ``requestContext.jobId``), renews its leases while they run, and ends each attempt
with a conditional UPDATE fenced by its lease. A lease names this run (``owner``: the node registry's run id,
orvad/cluster/nodes.py). A lease whose owner is not a live run (its node missed 3 heartbeats, stopped, or
was restarted: a new run id), or whose time ran out, is taken (``JobStore.recover``, checked every
``recover_s``): its attempt is recorded ``lost`` and the job is due again (attempt counted), on whichever
node claims it next. Jobs are at least once: an attempt cut by a node's death runs again. Never two at a
time on nodes that reach the database: a runner whose renewal finds a lease gone (taken) stops that attempt.
Without a registry (``live_owners`` None) one orvad owns the data directory, and every lease of another run
is an attempt that orvad's death cut.

Outcomes: a reply with a status below 500 (2xx, 3xx, and 4xx: the handler's deliberate answer) succeeds; a
5xx reply or any failure (the handler raised, timed out, crashed, or the function could not run) fails the
attempt: the job waits ``backoff`` (exponential, with jitter) and is due again, until ``max_attempts`` fail:
then it is ``dead`` (the dead-letter list). A job whose function was deleted ends ``dead`` with the reason
FUNCTION_DELETED and no further attempt.

Concurrency: at most ``ORVA_JOBS_CONCURRENCY`` attempts at once, and per function its ``max_concurrency``
when set, else what its pool can serve at once (``max_warm`` x ``target_concurrency``). The runner wakes on
every enqueue and retry and when an attempt ends, and otherwise sleeps until the next ``run_at``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from orvad.clock import epoch_iso
from orvad.errors import (
    Forbidden,
    JobNotCancellable,
    JobNotRetryable,
    NotFound,
    OrvaError,
    PayloadTooLarge,
    ValidationError,
)
from orvad.ids import uuid7
from orvad.invoke import Grant, Invoker, InvokeRequest
from orvad.models import Function
from orvad.sdk.calls import Caller
from orvad.services.changes import Change, FunctionDeleted
from orvad.services.functions import FunctionService, may_invoke_allows
from orvad.store.jobs import ALL_LIVE, STATUSES, AttemptRow, Finish, JobRow, JobStore, error_text
from orvad.traces.context import TraceContext

log = logging.getLogger(__name__)

MAX_ATTEMPTS_LIMIT = 25
DEFAULT_WINDOW_S = 86400.0
MAX_WINDOW_S = 30 * 86400.0
MAX_KEY_CHARS = 200
MAX_DELAY_S = 10 * 365 * 86400.0
TRIGGERS = ("job", "cron", "event", "webhook")  # webhook: an inbound webhook's async delivery
COALESCE_S = 0.004  # a busy runner writes the attempt ends of this moment and its next claim in one write
SOURCES = ("api", "sdk", "event", "cron")
_DOCS_HINT = "see docs/API.md, Jobs"


@dataclass(frozen=True, slots=True)
class Job:
    row: JobRow
    created: bool = True  # False: an idempotency key matched this existing job (no new job)

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def function_id(self) -> str:
        return self.row.function_id

    @property
    def status(self) -> str:
        return self.row.status

    def to_json(self) -> dict[str, Any]:
        r = self.row
        return {
            "id": r.id,
            "function_id": r.function_id,
            "function_name": r.function_name,
            "status": r.status,
            "trigger": r.trigger,
            "source": r.source,
            "attempts": r.attempts,
            "tries": r.tries,
            "max_attempts": r.max_attempts,
            "run_at": epoch_iso(r.run_at),
            "lease_until": epoch_iso(r.lease_until) if r.lease_until is not None else None,
            "idempotency_key": r.idempotency_key,
            "idempotency_expires_at": (
                epoch_iso(r.idempotency_until) if r.idempotency_until is not None else None
            ),
            "trace_id": r.trace_id,
            "last_error": json.loads(r.last_error) if r.last_error else None,
            "created_at": r.created_at,
            "updated_at": r.updated_at,
            "finished_at": r.finished_at,
        }


def attempt_json(a: AttemptRow) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "execution_id": a.execution_id,
        "outcome": a.outcome,
        "status_code": a.status_code,
        "error": json.loads(a.error) if a.error else None,
        "started_at": a.started_at,
        "finished_at": a.finished_at,
    }


def check_max_attempts(value: Any, field: str = "max_attempts") -> int:
    if value is None:
        return 3
    if isinstance(value, float) and value.is_integer():  # JSON's 3.0 is the integer 3
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise ValidationError(
            f"{field} must be an integer in 1..{MAX_ATTEMPTS_LIMIT}",
            hint=f"send {field} from 1 to {MAX_ATTEMPTS_LIMIT} (default 3)",
            details={"field": field, "min": 1, "max": MAX_ATTEMPTS_LIMIT},
        )
    return value


def check_key(value: Any, field: str = "idempotency_key") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY_CHARS or not value.isprintable():
        raise ValidationError(
            f"{field} must be a string of 1..{MAX_KEY_CHARS} printable characters",
            hint="use a key that names the work, e.g. order-1234-receipt",
            details={"field": field},
        )
    return value


def check_window(value: Any, field: str = "idempotency_window_s") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= MAX_WINDOW_S:
        raise ValidationError(
            f"{field} must be a number of seconds in 1..{int(MAX_WINDOW_S)}",
            hint=f"send {field} from 1 to {int(MAX_WINDOW_S)} (default {int(DEFAULT_WINDOW_S)}, with a key)",
            details={"field": field},
        )
    return float(value)


def encode_payload(payload: Any, max_bytes: int, field: str = "payload") -> bytes:
    try:
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValidationError(
            f"{field} is not a JSON value ({str(exc)[:100]})",
            hint="send any JSON value (no NaN or Infinity)",
            details={"field": field},
        ) from None
    if len(raw) > max_bytes:
        raise PayloadTooLarge(
            f"{field} is {len(raw)} bytes; a job's payload may be at most {max_bytes}",
            hint="send a smaller payload (ORVA_MAX_BODY_BYTES), or store the data in KV and pass its key",
            details={"field": field, "max_bytes": max_bytes},
        )
    return raw


def new_job_id() -> str:
    return "job_" + uuid7().replace("-", "")


# event headers that never go into a job's stored request: credentials, and what the runner sets itself
_STRIPPED = frozenset(
    {
        b"authorization",
        b"proxy-authorization",
        b"cookie",
        b"x-orva-api-key",
        b"x-orva-signature",
        b"x-orva-timestamp",
        b"x-orva-csrf",
        b"x-orva-invocation-type",
        b"x-orva-trigger",
        b"x-orva-job-id",
        b"content-length",
        b"host",
    }
)


class JobService:
    def __init__(
        self,
        store: JobStore,
        functions: FunctionService,
        invoker: Invoker,
        *,
        capacity_of: Callable[[Function], int],
        concurrency: int = 64,
        lease_s: float = 30.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 600.0,
        max_payload_bytes: int = 6 * 1024 * 1024,
        retention_s: float = 7 * 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store, self._functions, self._invoker = store, functions, invoker
        self._capacity_of = capacity_of
        self.concurrency, self.lease_s = concurrency, lease_s
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.max_payload_bytes = max_payload_bytes
        self.retention_s = retention_s  # succeeded and cancelled jobs are deleted this long after they end
        self.clock = clock  # Unix seconds; tests may replace it
        self.owner = f"run_{uuid.uuid4().hex}"  # this orvad run's lease owner (the daemon: its node's run id)
        # the run ids of the live nodes (orvad/cluster/nodes.py): leases of other runs are taken only when
        # their owner is not among them (or expired); None: one orvad, every other run is dead
        self.live_owners: Callable[[], Awaitable[Collection[str] | Mapping[str, str]]] | None = None
        self.recover_s = lease_s / 3  # how often leases of gone nodes (or expired ones) are looked for
        self._recover_soon = asyncio.Event()
        self.recovered = 0  # attempts taken over (lost) since start
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}  # job id -> its attempt
        self._tries: dict[str, int] = {}  # job id -> the attempt number running (its row's tries)
        self._per_function: dict[str, int] = {}  # function id -> its attempts running
        # claimed (leased, attempt counted) and not started yet: an attempt's end starts the next at once,
        # without waiting for the runner's next write
        self._ready: dict[str, collections.deque[JobRow]] = {}
        self._held: set[str] = set()  # the ids in _ready
        self._finished: list[Finish] = []  # attempt ends not written yet (the runner's next write)
        # told of each attempt end that ended its job (succeeded or dead; not one cancelled while it ran), once
        # written: outbound webhooks
        self.on_end: Callable[[Finish], None] | None = None
        self._started: list[tuple[str, int]] = []  # (job id, attempt) started since the runner's last write
        self._stopping = False
        self._random = random.Random()

    # enqueue
    async def enqueue(
        self,
        function_id: str,
        payload: Any,
        *,
        scheduled_at: float | None = None,
        max_attempts: int = 3,
        idempotency_key: str | None = None,
        idempotency_window_s: float | None = None,
        trigger: str = "job",
        trace_parent: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        source: str = "api",
    ) -> Job:
        """A job whose handler gets ``payload`` as the JSON body of ``POST /``; committed when this returns."""
        fn = self._functions.get(function_id)
        if fn is None:
            raise NotFound(
                f"no function {function_id!r}",
                hint="list functions with GET /api/v1/functions",
                details={"function": function_id},
            )
        body = encode_payload(payload, self.max_payload_bytes)
        extra = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in (headers or {}).items()
            if k.lower().encode("latin-1") not in _STRIPPED
        ]
        request = {
            "method": "POST",
            "path": "/",
            "query": "",
            "headers": [["content-type", "application/json"], *([k.decode(), v.decode()] for k, v in extra)],
            "body": base64.b64encode(body).decode(),
        }
        return await self._insert(
            fn,
            request,
            scheduled_at=scheduled_at,
            max_attempts=max_attempts,
            idempotency_key=idempotency_key,
            idempotency_window_s=idempotency_window_s,
            trigger=trigger,
            trace_parent=trace_parent,
            source=source,
        )

    async def enqueue_request(self, request: InvokeRequest, trigger: str = "event") -> dict[str, Any]:
        """``X-Orva-Invocation-Type: Event`` (the invoke path checked the function's gates and auth_mode
        already): the request itself, credentials removed, becomes a job; the 202's body."""
        assert request.body is not None
        if len(request.body) > self.max_payload_bytes:
            raise PayloadTooLarge(
                f"the request body is {len(request.body)} bytes; an Event invocation's may be at most "
                f"{self.max_payload_bytes}",
                hint="send a smaller body (ORVA_MAX_BODY_BYTES)",
            )
        key = request.header(b"x-orva-idempotency-key")
        stored = {
            "method": request.method,
            "path": request.subpath,
            "query": request.query.decode("latin-1"),
            "headers": [
                [k.decode("latin-1"), v.decode("latin-1")]
                for k, v in request.headers
                if k not in _STRIPPED and k != b"x-orva-idempotency-key"
            ],
            "body": base64.b64encode(request.body).decode(),
            "raw_path": request.raw_path.decode("latin-1") if request.raw_path else None,
            "raw_skip": request.raw_skip,
            "client": request.client,
            "webhook_id": request.webhook_id,  # an inbound webhook's async delivery (orvad/webhooks)
        }
        job = await self._insert(
            request.function,
            stored,
            scheduled_at=None,
            max_attempts=3,
            idempotency_key=check_key(key, "X-Orva-Idempotency-Key"),
            idempotency_window_s=None,
            trigger=trigger,
            trace_parent=None,
            source="event",
        )
        return {"job_id": job.id, "status": job.status, "created": job.created, "job": job.to_json()}

    async def _insert(
        self,
        fn: Function,
        request: dict[str, Any],
        *,
        scheduled_at: float | None,
        max_attempts: int,
        idempotency_key: str | None,
        idempotency_window_s: float | None,
        trigger: str,
        trace_parent: tuple[str, str] | None,
        source: str,
    ) -> Job:
        max_attempts = check_max_attempts(max_attempts)
        idempotency_key = check_key(idempotency_key)
        window = check_window(idempotency_window_s)
        if trigger not in TRIGGERS:
            raise ValueError(f"unknown job trigger {trigger!r}")
        now = self.clock()
        run_at = now
        if scheduled_at is not None:
            if isinstance(scheduled_at, bool) or not isinstance(scheduled_at, int | float):
                raise ValidationError("scheduled_at must be a time", details={"field": "scheduled_at"})
            if scheduled_at > now + MAX_DELAY_S:
                raise ValidationError(
                    "scheduled_at is more than 10 years ahead",
                    hint="schedule a job at most 10 years ahead (or use cron)",
                    details={"field": "scheduled_at"},
                )
            run_at = max(now, float(scheduled_at))
        stamp = epoch_iso(now)
        job_id = new_job_id()
        headers = request["headers"]
        headers.append(["x-orva-trigger", trigger if trigger in ("cron", "webhook") else "job"])
        headers.append(["x-orva-job-id", job_id])
        row = JobRow(
            id=job_id,
            function_id=fn.id,
            function_name=fn.name,
            status="pending",
            trigger=trigger,
            source=source,
            request=json.dumps(request),
            attempts=0,
            tries=0,
            max_attempts=max_attempts,
            run_at=run_at,
            lease_owner=None,
            lease_until=None,
            idempotency_key=idempotency_key,
            idempotency_until=(now + (window or DEFAULT_WINDOW_S) if idempotency_key is not None else None),
            trace_id=trace_parent[0] if trace_parent else None,
            parent_span_id=trace_parent[1] if trace_parent else None,
            last_error=None,
            created_at=stamp,
            updated_at=stamp,
            finished_at=None,
        )
        stored, created = await self._store.insert(row, now)
        if created:
            self._wake.set()
        return Job(stored, created)

    # operators' reads and changes
    async def get(self, job_id: str) -> Job:
        row = await self._store.get(job_id) if isinstance(job_id, str) else None
        if row is None:
            raise NotFound(
                f"no job {job_id!r}",
                hint="list jobs with GET /api/v1/jobs",
                details={"job_id": job_id},
            )
        return Job(row)

    async def attempts(self, job_id: str) -> list[dict[str, Any]]:
        return [attempt_json(a) for a in await self._store.attempts(job_id)]

    async def list_jobs(
        self, *, function_id: str | None, status: str | None, cursor: str | None, limit: int
    ) -> list[Job]:
        if status is not None and status not in STATUSES:
            raise ValidationError(
                f"status must be one of {', '.join(STATUSES)}",
                hint="for the dead-letter list send ?status=dead",
                details={"field": "status"},
            )
        rows = await self._store.list_jobs(function_id=function_id, status=status, cursor=cursor, limit=limit)
        return [Job(r) for r in rows]

    async def cancel(self, job_id: str) -> Job:
        job = await self.get(job_id)
        if not await self._store.cancel(job_id, self.clock()):
            raise JobNotCancellable(
                f"job {job_id} is {(await self.get(job_id)).status}: only a pending, failed or running job "
                "can be cancelled",
                hint=f"retry it instead with POST /api/v1/jobs/{job_id}/retry"
                if job.status in ("dead", "cancelled")
                else "a succeeded job is done; enqueue a new one with POST /api/v1/jobs",
                details={"job_id": job_id, "status": job.status},
            )
        return await self.get(job_id)

    async def retry(self, job_id: str) -> Job:
        job = await self.get(job_id)
        if not await self._store.retry(job_id, self.clock()):
            current = await self.get(job_id)
            raise JobNotRetryable(
                f"job {job_id} is {current.status}"
                + (" (its cancelled attempt is still running)" if current.row.lease_owner else "")
                + ": only a dead, failed or cancelled job can be retried",
                hint=f"wait for it to end (GET /api/v1/jobs/{job_id}); a succeeded job is done: enqueue a new "
                "one with POST /api/v1/jobs",
                details={"job_id": job_id, "status": current.status},
            )
        self._wake.set()
        del job
        return await self.get(job_id)

    async def counts(self, function_id: str | None = None) -> dict[str, int]:
        return await self._store.counts(function_id)

    async def apply(self, change: Change) -> None:
        """A deleted function's waiting jobs end dead at once (FUNCTION_DELETED), not when they come due."""
        if isinstance(change, FunctionDeleted):
            fn = change.fn
            await self._store.end_function(
                fn.id,
                self.clock(),
                error_text(
                    "FUNCTION_DELETED", f"function {fn.name} ({fn.id}) was deleted; the job cannot run"
                ),
            )

    # the SDK's operations: the caller's own jobs only
    async def sdk_enqueue(self, caller: Caller, args: dict[str, Any]) -> Any:
        allowed = {
            "function",
            "payload",
            "delay_seconds",
            "scheduled_at",
            "max_attempts",
            "idempotency_key",
            "idempotency_window_s",
        }
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise ValidationError(
                f"jobs.enqueue: unknown argument(s): {', '.join(unknown)}",
                hint=f"allowed: {', '.join(sorted(allowed))} ({_DOCS_HINT.replace('API', 'SDK')})",
                details={"fields": unknown},
            )
        target = self._sdk_target(caller, args.get("function"))
        delay = args.get("delay_seconds")
        scheduled = args.get("scheduled_at")
        if delay is not None and scheduled is not None:
            raise ValidationError(
                "jobs.enqueue: send delay_seconds or scheduled_at, not both",
                details={"field": "delay_seconds"},
            )
        at: float | None = None
        if delay is not None:
            if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_DELAY_S:
                raise ValidationError(
                    f"jobs.enqueue: delay_seconds must be a number in 0..{int(MAX_DELAY_S)}",
                    details={"field": "delay_seconds"},
                )
            at = self.clock() + float(delay)
        elif scheduled is not None:
            at = parse_when(scheduled, "scheduled_at")
        job = await self.enqueue(
            target.id,
            args.get("payload"),
            scheduled_at=at,
            max_attempts=args.get("max_attempts", 3),  # checked by _insert
            idempotency_key=args.get("idempotency_key"),
            idempotency_window_s=args.get("idempotency_window_s"),
            trace_parent=(caller.trace_id, caller.span_id) if caller.trace_id and caller.span_id else None,
            source="sdk",
        )
        return job.to_json() | {"created": job.created}

    def _sdk_target(self, caller: Caller, ident: Any) -> Function:
        """The function a handler enqueues for: itself (no ``function``, or its own name or id), or one its
        ``may_invoke`` names. FORBIDDEN before NOT_FOUND: it is not told whether others exist."""
        if ident is None or ident in (caller.function_id, caller.function_name):
            own = self._functions.get(caller.function_id)
            if own is None:
                raise NotFound("the calling function was deleted")
            return own
        if not isinstance(ident, str) or not ident:
            raise ValidationError(
                "jobs.enqueue: function must be a function's name", details={"field": "function"}
            )
        own = self._functions.get(caller.function_id)
        allowed = own.may_invoke if own is not None else ()
        try:
            target: Function | None = self._functions.resolve(ident)
        except NotFound:
            target = None
        name = target.name if target is not None else ident
        if not may_invoke_allows(tuple(allowed), name):
            raise Forbidden(
                f"{caller.function_name} may not enqueue jobs for {ident}: a function enqueues jobs for itself, "
                "or for the functions its may_invoke names",
                hint=f"add the name to the caller's may_invoke: PUT /api/v1/functions/{caller.function_name} "
                f'{{"may_invoke": [..., "{name}"]}}',
                details={"field": "function", "function": ident},
            )
        if target is None:
            raise NotFound(f"no function {ident!r}", details={"function": ident})
        return target

    async def sdk_get(self, caller: Caller, args: dict[str, Any]) -> Any:
        job_id = args.get("id")
        if set(args) - {"id"} or not isinstance(job_id, str):
            raise ValidationError("jobs.get takes {id: <job id>}", details={"field": "id"})
        row = await self._store.get(job_id)
        if row is None or row.function_id != caller.function_id:  # another function's job: not told apart
            raise NotFound(f"no job {job_id!r} of this function", details={"job_id": job_id})
        return Job(row).to_json() | {"attempts_list": await self.attempts(job_id)}

    async def sdk_list(self, caller: Caller, args: dict[str, Any]) -> Any:
        unknown = set(args) - {"status", "cursor", "limit"}
        if unknown:
            raise ValidationError(
                f"jobs.list: unknown argument(s): {', '.join(sorted(unknown))}",
                hint="allowed: status, cursor, limit",
                details={"fields": sorted(unknown)},
            )
        limit = args.get("limit", 50)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
            raise ValidationError("jobs.list: limit must be an integer in 1..500", details={"field": "limit"})
        cursor = args.get("cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise ValidationError("jobs.list: cursor must be a string", details={"field": "cursor"})
        status = args.get("status")
        if status is not None and not isinstance(status, str):
            raise ValidationError("jobs.list: status must be a string", details={"field": "status"})
        jobs = await self.list_jobs(function_id=caller.function_id, status=status, cursor=cursor, limit=limit)
        more = len(jobs) > limit
        jobs = jobs[:limit]
        return {"jobs": [j.to_json() for j in jobs], "next_cursor": jobs[-1].id if more and jobs else None}

    # the runner
    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> int:
        return len(self._running)

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed: base x 2^(n-1), capped, with jitter
        (a uniform draw from half of it to all of it)."""
        full = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** max(0, attempts - 1))
        return full * (0.5 + self._random.random() / 2)

    async def run(self) -> None:
        """The runner: recover what a previous run left leased, then claim and run due jobs until cancelled."""
        recovered = await self._store.recover(self.owner, self.clock(), await self._live())
        self.recovered += recovered
        if recovered:
            log.warning(
                "jobs: attempts cut by an orvad's stop (this node's last run, or a node gone) are due again",
                extra={"jobs": recovered},
            )
        renewer = asyncio.get_running_loop().create_task(self._leases(), name="orva-jobs-leases")
        try:
            while True:
                self._wake.clear()
                backlog = await self._fill()
                if self._finished or self._started:  # during the write: written by the next one
                    self._wake.set()
                delay = self.lease_s / 3 if backlog or self._held else await self._sleep_for()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                if self._running or self._held:
                    # busy: let the attempt ends of this moment gather, one write for all of them and the
                    # next claim (the claimed-ahead jobs keep the pool busy meanwhile)
                    await asyncio.sleep(COALESCE_S)
        finally:
            self._stopping = True  # no claimed job starts any more
            renewer.cancel()
            running = list(self._running.values())
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running, timeout=2)
            # the attempts that ended are written; a clean stop: the cut attempts (and the claimed ones not
            # started) are not counted and their jobs are due at the next start (a crash leaves the leases
            # instead: the next start records those attempts lost, counted)
            with contextlib.suppress(Exception):
                if self._finished or self._started:
                    finishes, self._finished = self._finished, []
                    started, self._started = self._started, []
                    await self._store.settle(finishes, started, (), self.owner, self.clock(), self.lease_s)
                if running or self._held:
                    released = await self._store.release(self.owner, self.clock())
                    log.info(
                        "jobs: attempts cut by the stop run again at the next start", extra={"jobs": released}
                    )

    async def _sleep_for(self) -> float:
        wake = await self._store.next_wake()
        now = self.clock()
        delays = [self.lease_s / 3]
        if wake.run_at is not None:  # due since the claim looked (its clock read a moment ago): at once
            delays.append(max(0.0, wake.run_at - now))
        if wake.lease_end is not None:
            if wake.lease_end <= now:  # a lease ran out: the lease loop takes it now
                self._recover_soon.set()
                delays.append(self.recover_s)
            else:
                delays.append(wake.lease_end - now)
        return float(min(delays))

    async def _live(self) -> Collection[str] | None:
        """The live run ids (this one among them), or None without a registry. When the registry cannot be
        read every run counts as live: then only expired leases are taken."""
        if self.live_owners is None:
            return None
        try:
            found = await self.live_owners()
        except Exception as exc:
            log.warning(
                "jobs: the live nodes could not be read", extra={"error": f"{type(exc).__name__}: {exc}"}
            )
            return ALL_LIVE
        return {self.owner, *(found.values() if isinstance(found, Mapping) else found)}

    async def _recover(self) -> int:
        """Take the leases of runs that are gone (and expired ones): a read first, a write only when there
        is something to take."""
        live = await self._live()
        now = self.clock()
        if not await self._store.takeable(self.owner, now, live):
            return 0
        taken = await self._store.recover(self.owner, now, live)
        if taken:
            self.recovered += taken
            log.warning(
                "jobs: took over the leases of attempts whose node is gone (or whose lease ran out)",
                extra={"jobs": taken},
            )
        return taken

    def _holding(self) -> dict[str, int]:
        """{job id: attempt} of the attempts this run runs or has claimed ahead, as they are now."""
        held = {job_id: tries for job_id, tries in self._tries.items() if job_id in self._running}
        for queue in self._ready.values():
            held.update((r.id, r.tries) for r in queue)
        return held

    def _fence(self, before: dict[str, int], held: dict[str, int]) -> None:
        """Stop what this run no longer holds: an attempt (or a claimed one) that it held before the renewal
        (``before``) and is still the same attempt, but whose lease the renewal did not find (another node
        took it: this node was judged gone, or its lease ran out). Its end would not be recorded anyway."""
        lost = {job_id for job_id, tries in before.items() if held.get(job_id) != tries}
        if not lost:
            return
        for job_id, task in list(self._running.items()):
            if job_id in lost and self._tries.get(job_id) == before[job_id]:
                log.warning(
                    "jobs: an attempt's lease was taken by another node; stopping it",
                    extra={"job_id": job_id},
                )
                task.cancel()
        for function_id, queue in list(self._ready.items()):
            kept = collections.deque(r for r in queue if not (r.id in lost and r.tries == before[r.id]))
            for row in queue:
                if row not in kept:
                    self._held.discard(row.id)
            if kept:
                self._ready[function_id] = kept
            else:
                self._ready.pop(function_id, None)

    async def _leases(self) -> None:
        """Renew this run's leases every third of a lease, prune old jobs, and every ``recover_s`` (or when
        the runner saw a lease run out) take the leases of gone nodes."""
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + self.lease_s / 3
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(self.recover_s, renew_at - loop.time()))):
                    await self._recover_soon.wait()
            self._recover_soon.clear()
            try:
                if loop.time() >= renew_at:
                    renew_at = loop.time() + self.lease_s / 3
                    if self._running or self._held or self._finished:
                        before = self._holding()
                        held = await self._store.renew(self.owner, self.clock() + self.lease_s)
                        self._fence(before, held)
                    await self._store.prune(self.clock() - self.retention_s)
                if await self._recover():
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database unreachable, ...: tried again at the next turn
                log.error(
                    "jobs: renewing or recovering leases failed",
                    extra={"error": f"{type(exc).__name__}: {exc}"},
                )

    def _capacity(self, function_id: str) -> int:
        fn = self._functions.get(function_id)
        return max(1, self._capacity_of(fn)) if fn is not None else 1

    async def _fill(self) -> bool:
        """One write: the attempt ends gathered since the last, and a claim of due jobs up to the free
        capacity, plus as many claimed ahead per function (started as that function's attempts end). True
        when due jobs were left for lack of capacity."""
        self._start_ready()
        finishes, self._finished = self._finished, []
        started, self._started = self._started, []
        now = self.clock()
        claimed = len(self._running) + len(self._held)
        free = 2 * self.concurrency - claimed  # running, and as many claimed ahead
        chosen: list[str] = []
        left = False
        if free > 0:
            due = await self._store.due(now, max(free * 2, 64))
            taking: dict[str, int] = {}
            for job_id, function_id in due:
                if job_id in self._running or job_id in self._held:
                    continue
                fn = self._functions.get(function_id)
                if fn is None:
                    await self._store.end(
                        job_id,
                        now,
                        "dead",
                        error_text(
                            "FUNCTION_DELETED", f"function {function_id} was deleted; the job cannot run"
                        ),
                    )
                    continue
                busy = (
                    self._per_function.get(function_id, 0)
                    + len(self._ready.get(function_id, ()))
                    + taking.get(function_id, 0)
                )
                if busy >= 2 * max(1, self._capacity_of(fn)) or len(chosen) >= free:
                    left = True
                    continue
                taking[function_id] = taking.get(function_id, 0) + 1
                chosen.append(job_id)
        elif self._held or self._running:
            left = True
        if not finishes and not started and not chosen:
            return left
        ended: set[str] = set()  # the jobs this write ended (a cancelled one is not announced as ended)
        try:
            rows = await self._store.settle(finishes, started, chosen, self.owner, now, self.lease_s, ended)
        except BaseException:
            # not written: the next write tries again (the leases are renewed meanwhile)
            self._finished[:0] = finishes
            self._started[:0] = started
            raise
        if self.on_end is not None:
            for finish in finishes:
                if finish.job.id in ended:
                    try:
                        self.on_end(finish)
                    except Exception:  # a listener's failure never stops the runner
                        log.exception("jobs: the job-end listener failed", extra={"job_id": finish.job.id})
        for row in rows:
            self._ready.setdefault(row.function_id, collections.deque()).append(row)
            self._held.add(row.id)
        self._start_ready()
        return left

    def _start_ready(self, function_id: str | None = None) -> None:
        """Start claimed jobs while their function and the runner have room (one function's, or all)."""
        if self._stopping:
            return
        for fid in [function_id] if function_id is not None else list(self._ready):
            queue = self._ready.get(fid)
            if queue is None:
                continue
            cap = self._capacity(fid)
            while queue and len(self._running) < self.concurrency and self._per_function.get(fid, 0) < cap:
                row = queue.popleft()
                self._held.discard(row.id)
                self._per_function[fid] = self._per_function.get(fid, 0) + 1
                self._started.append((row.id, row.tries))  # recorded by the runner's next write
                self._wake.set()
                self._tries[row.id] = row.tries
                self._running[row.id] = asyncio.get_running_loop().create_task(
                    self._attempt(row), name=f"orva-job-{row.id}"
                )
            if not queue:
                self._ready.pop(fid, None)

    async def _attempt(self, job: JobRow) -> None:
        try:
            await self._run_attempt(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("jobs: an attempt's bookkeeping failed", extra={"job_id": job.id})
        finally:
            self._running.pop(job.id, None)
            if self._tries.get(job.id) == job.tries:
                self._tries.pop(job.id, None)
            count = self._per_function.get(job.function_id, 1) - 1
            if count > 0:
                self._per_function[job.function_id] = count
            else:
                self._per_function.pop(job.function_id, None)
            self._start_ready(job.function_id)  # the next claimed job takes the slot at once
            self._wake.set()

    async def _run_attempt(self, job: JobRow) -> None:
        fn = self._functions.get(job.function_id)
        execution_id: str | None = None
        status_code: int | None = None
        error: str | None = None
        if fn is None:
            self._finished.append(
                Finish(
                    job,
                    self.clock(),
                    outcome="failed",
                    execution_id=None,
                    status_code=None,
                    error=error_text("FUNCTION_DELETED", f"function {job.function_id} was deleted"),
                    next_status="dead",
                    run_at=job.run_at,
                )
            )
            return
        try:
            result = await self._invoker.dispatch(self._request(fn, job))
            execution_id, status_code = result.execution_id or None, result.status
            ok = result.status < 500
            if not ok:
                error = error_text("HANDLER_5XX", f"the handler answered {result.status}")
        except OrvaError as exc:
            ok = False
            execution_id = (exc.details or {}).get("execution_id")
            status_code = exc.status
            error = error_text(exc.code, exc.message)
        if ok:
            next_status, run_at = "succeeded", job.run_at
        elif job.attempts >= job.max_attempts:
            next_status, run_at = "dead", job.run_at
        else:
            next_status, run_at = "failed", self.clock() + self.backoff(job.attempts)
        # written by the runner's next write, with the other ends of that moment and its next claim; until
        # then the lease stays (renewed): a crash in between runs the job again (at least once, docs/SDK.md)
        self._finished.append(
            Finish(
                job,
                self.clock(),
                outcome="succeeded" if ok else "failed",
                execution_id=execution_id,
                status_code=status_code,
                error=error,
                next_status=next_status,
                run_at=run_at,
            )
        )

    def _request(self, fn: Function, job: JobRow) -> InvokeRequest:
        stored = json.loads(job.request)
        parent = (
            TraceContext(job.trace_id, job.parent_span_id) if job.trace_id and job.parent_span_id else None
        )
        raw_path = stored.get("raw_path")
        return InvokeRequest(
            fn,
            subpath=stored["path"],
            trigger=job.trigger if job.trigger in ("cron", "webhook") else "job",
            method=stored["method"],
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored["headers"]],
            query=stored["query"].encode("latin-1"),
            body=base64.b64decode(stored["body"]),
            client=stored.get("client") or "",
            request_id=job.id,
            raw_path=raw_path.encode("latin-1") if raw_path else None,
            raw_skip=stored.get("raw_skip"),
            grant=Grant("job", job.id),
            trace_parent=parent,
            job_id=job.id,
            webhook_id=stored.get("webhook_id"),
        )


def parse_when(value: Any, field: str) -> float:
    """A time as Unix seconds (a number) or RFC 3339 text."""
    from orvad.clock import parse_iso

    if isinstance(value, bool):
        raise ValidationError(f"{field} must be a time", details={"field": field})
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_iso(value).timestamp()
        except ValueError:
            pass
    raise ValidationError(
        f"{field} must be an RFC 3339 time (or Unix seconds)",
        hint="for example 2030-01-01T12:00:00Z",
        details={"field": field},
    )


__all__ = ["Job", "JobService", "parse_when"]
