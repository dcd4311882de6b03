"""Schedules (issue 23): the rules for a schedule, the operator's and the SDK's faces, and the scheduler loop.

Each run is a job (orvad/jobs/), enqueued with trigger ``cron``, the schedule's payload, the header
``x-orva-cron-id`` and the idempotency key ``cron:<schedule id>:<tick>``: a tick enqueued and then caught in
a crash before ``next_run_at`` moved on is enqueued again at the next start with the same key, and the jobs
queue answers with the job it already has. So a tick runs at most once, and a run accepted by the queue
gets the jobs' retries and durability.

The scheduler (``run``, a task of the daemon) sleeps until the earliest ``next_run_at`` of an enabled
schedule, or until a schedule changes (``wake``), then runs what is due (orvad/cron/schedule.py ``plan``:
one run per due schedule, for the latest tick that has come; a schedule whose tick passed while orvad was
down runs once at start with ``catch_up: once``, not at all with ``skip``).

On N nodes (docs/CLUSTER.md, "Leases: work that runs once") every node's scheduler looks at the same due
schedules; a tick fires once because its job's idempotency key is checked and inserted in one write
transaction (writes serialise across the cluster), so the second node to enqueue a tick gets the first
one's job back (``created`` false: not counted, not logged as a run), and ``advance`` is conditional on the
``next_run_at`` it read, so only one node moves the schedule on. "While orvad was down" means while no node
was up: ``cluster_up_s`` tells how long the cluster's live nodes had been running before this scheduler
started, so a node joining a running cluster treats a tick that has just come as due, not as missed.

Time comes from ``clock`` (orvad/clock.py): the system clock, or a test's file (ORVA_TEST_CLOCK_FILE).

The SDK's operations (``cron.upsert``, ``cron.list``, ``cron.delete``) act only on ``caller.function_id``,
orvad's own record of who is calling; unknown argument fields are refused, so a handler cannot name another
function's schedules.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from orvad.clock import WallClock, iso, now_iso, parse_iso
from orvad.cron.schedule import CATCH_UP, next_tick, parse_expression, parse_timezone, plan
from orvad.errors import Conflict, CronLimitReached, NotFound, PayloadTooLarge, ValidationError
from orvad.ids import uuid7
from orvad.models import Function
from orvad.sdk.calls import Caller
from orvad.services.functions import NAME_RE, NAME_RULE
from orvad.store.cron import CronConfig, CronRow, CronStore, FunctionGone, NameTaken, TooMany

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 64 * 1024
FIELDS = ("name", "expression", "timezone", "payload", "enabled", "catch_up")
IDEMPOTENCY_WINDOW_S = 30 * 86400  # the jobs' longest: a crash between a run's enqueue and its advance
RETRY_S = 5.0  # a run that could not be enqueued (the disk is full, ...) is tried again after this
MAX_WAIT_S = 60.0  # the loop looks at the clock at least this often (a wall clock set forward or back)
_DOCS = "see docs/API.md, Cron"


class JobQueue(Protocol):
    """What cron needs of orvad/jobs' JobService."""

    async def enqueue(
        self,
        function_id: str,
        payload: Any,
        *,
        idempotency_key: str | None = None,
        idempotency_window_s: float | None = None,
        trigger: str = "job",
        headers: dict[str, str] | None = None,
        source: str = "api",
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class Checked:
    """A schedule's fields after the rules (absent ones None: the stored value or the default)."""

    name: str | None
    expression: str | None
    timezone: str | None
    payload: str | None
    enabled: bool | None
    catch_up: str | None


def check_name(raw: Any, field: str = "name") -> str:
    if not isinstance(raw, str) or not NAME_RE.fullmatch(raw):
        raise ValidationError(
            f"{field} must be a schedule name of {NAME_RULE}",
            hint=f"for example nightly-report; {_DOCS}",
            details={"field": field},
        )
    return raw


def check_fields(body: dict[str, Any]) -> Checked:
    """Every rule of a schedule's fields; only the fields present are checked."""
    name = check_name(body["name"]) if "name" in body else None
    expression = parse_expression(body["expression"]).text if "expression" in body else None
    timezone = None
    if "timezone" in body:
        parse_timezone(body["timezone"])
        timezone = body["timezone"]
    payload = None
    if "payload" in body:
        try:
            payload = json.dumps(body["payload"], separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (ValueError, TypeError, RecursionError):
            raise ValidationError(
                "payload must be a JSON value",
                hint="send JSON (no NaN or Infinity)",
                details={"field": "payload"},
            ) from None
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(
                f"payload is {len(payload.encode())} bytes of JSON: a schedule's payload holds at most "
                f"{MAX_PAYLOAD_BYTES} (64 KiB)",
                hint="keep the data in KV and put its key in the payload",
                details={"field": "payload", "max": MAX_PAYLOAD_BYTES},
            )
    enabled = None
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise ValidationError("enabled must be true or false", details={"field": "enabled"})
        enabled = body["enabled"]
    catch_up = None
    if "catch_up" in body:
        if body["catch_up"] not in CATCH_UP:
            raise ValidationError(
                'catch_up must be "once" or "skip"',
                hint='"once": a tick missed while orvad was down runs once at start (never once per missed tick); '
                '"skip": it does not run',
                details={"field": "catch_up"},
            )
        catch_up = body["catch_up"]
    return Checked(name, expression, timezone, payload, enabled, catch_up)


def schedule_json(row: CronRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "function_id": row.function_id,
        "function_name": row.function_name,
        "name": row.name,
        "expression": row.expression,
        "timezone": row.timezone,
        "payload": json.loads(row.payload),
        "enabled": row.enabled,
        "catch_up": row.catch_up,
        "source": row.source,
        "next_run_at": row.next_run_at,
        "last_run_at": row.last_run_at,
        "last_tick_at": row.last_tick_at,
        "last_status": row.last_status,
        "last_job_id": row.last_job_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _args(args: dict[str, Any], op: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ValidationError(
            f"{op}: unknown argument(s) {', '.join(unknown)[:200]}",
            hint=f"{op} takes {', '.join(allowed)}; see docs/SDK.md, Cron",
            details={"fields": unknown[:20]},
        )
    for name in required:
        if name not in args:
            raise ValidationError(f"{op}: {name} is required", details={"field": name})


class CronService:
    def __init__(
        self,
        store: CronStore,
        *,
        clock: WallClock,
        max_per_function: int,
        jobs: JobQueue | None = None,
    ) -> None:
        self._store = store
        self.clock = clock
        self.max_per_function = max_per_function
        self.jobs = jobs
        self._wake = asyncio.Event()
        self._started: str | None = None  # the clock at the scheduler's start: ticks up to it were missed
        self._retry: dict[str, float] = {}  # schedule id -> loop time before which a failed enqueue waits
        self.fired = (
            0  # runs enqueued since start (by this node: a tick another node enqueued is not counted)
        )
        # seconds the cluster's other live nodes were up before this scheduler started (orvad/cluster/nodes.py);
        # 0 on one node. A tick after the cluster came up is never "missed while down".
        self.cluster_up_s: Callable[[], float] = lambda: 0.0
        self._earlier = 0.0

    def wake(self) -> None:
        """A schedule changed: the scheduler looks again at once."""
        self._wake.set()

    def _now(self) -> datetime:
        return self.clock.now()

    def _first(self, expression: str, timezone: str, enabled: bool) -> str | None:
        if not enabled:
            return None
        return iso(_next(expression, timezone, self._now()))

    # reads
    async def to_json(self, rows: list[CronRow]) -> list[dict[str, Any]]:
        return [schedule_json(r) for r in rows]

    async def list_for(self, function_id: str) -> list[CronRow]:
        return await self._store.list_schedules(function_id=function_id)

    async def list_all(
        self, *, function_id: str | None, enabled: bool | None, cursor: str | None, limit: int
    ) -> tuple[list[CronRow], int]:
        rows = await self._store.list_schedules(
            function_id=function_id, enabled=enabled, cursor=cursor, limit=limit + 1
        )
        return rows, await self._store.count(function_id=function_id, enabled=enabled)

    async def find(self, fn: Function, cid: str) -> CronRow:
        """A schedule of ``fn`` by id or by name."""
        row = await self._store.get(cid)
        if row is None or row.function_id != fn.id:
            row = await self._store.get_by_name(fn.id, cid)
        if row is None:
            raise NotFound(
                f"function {fn.name} has no schedule {cid!r}",
                hint=f"list its schedules with GET /api/v1/functions/{fn.name}/cron",
                details={"schedule": cid},
            )
        return row

    # writes
    async def upsert(self, fn: Function, body: dict[str, Any], source: str) -> tuple[CronRow, bool]:
        """Create the schedule named ``body["name"]`` or change the one of that name (fields left out keep
        their value); a create without a name gets one. (row, created)."""
        checked = check_fields(body)
        existing = await self._store.get_by_name(fn.id, checked.name) if checked.name else None
        if existing is not None:
            return await self._change(fn, existing, checked, source), False
        if checked.expression is None:
            raise ValidationError(
                "expression is required",
                hint=f'for example {{"expression": "*/5 * * * *", "timezone": "UTC"}}; {_DOCS}',
                details={"field": "expression"},
            )
        config = CronConfig(
            name=checked.name or f"cron-{uuid7()[-8:]}",
            expression=checked.expression,
            timezone=checked.timezone or "UTC",
            payload=checked.payload or "null",
            enabled=True if checked.enabled is None else checked.enabled,
            catch_up=checked.catch_up or "once",
            source=source,
        )
        try:
            row = await self._store.create(
                uuid7(),
                fn.id,
                config,
                self._first(config.expression, config.timezone, config.enabled),
                now_iso(),
                self.max_per_function,
            )
        except TooMany as exc:
            raise CronLimitReached(
                f"function {fn.name} has {exc.count} schedules: at most {self.max_per_function}",
                hint="delete schedules it no longer needs, or raise ORVA_CRON_MAX_PER_FUNCTION",
                details={"count": exc.count, "max": self.max_per_function},
            ) from None
        except NameTaken:  # created meanwhile by another call: that one is the schedule to change
            again = await self._store.get_by_name(fn.id, config.name)
            if again is None:
                raise
            return await self._change(fn, again, checked, source), False
        except FunctionGone:
            raise NotFound(f"function {fn.name} no longer exists", details={"function": fn.name}) from None
        self.wake()
        return row, True

    async def update(self, fn: Function, cid: str, body: dict[str, Any], source: str = "api") -> CronRow:
        checked = check_fields(body)  # a bad body is 400 whether or not the schedule exists
        return await self._change(fn, await self.find(fn, cid), checked, source)

    async def _change(self, fn: Function, row: CronRow, checked: Checked, source: str) -> CronRow:
        config = CronConfig(
            name=checked.name if checked.name is not None else row.name,
            expression=checked.expression if checked.expression is not None else row.expression,
            timezone=checked.timezone if checked.timezone is not None else row.timezone,
            payload=checked.payload if checked.payload is not None else row.payload,
            enabled=checked.enabled if checked.enabled is not None else row.enabled,
            catch_up=checked.catch_up if checked.catch_up is not None else row.catch_up,
            source=source,
        )
        timing = (config.expression, config.timezone, config.enabled) != (
            row.expression,
            row.timezone,
            row.enabled,
        )
        try:
            ok = await self._store.replace(
                row.id,
                row.version,
                config,
                self._first(config.expression, config.timezone, config.enabled) if timing else None,
                not timing,
                now_iso(),
            )
        except NameTaken:
            raise Conflict(
                f"function {fn.name} already has a schedule named {config.name!r}",
                hint=f"choose another name, or change that schedule (PUT /api/v1/functions/{fn.name}/cron/"
                f"{config.name})",
                details={"field": "name", "name": config.name},
            ) from None
        if not ok:
            raise Conflict(
                f"schedule {row.name} of {fn.name} changed (or was deleted) while this change was made",
                hint=f"read it again (GET /api/v1/functions/{fn.name}/cron) and send the change again",
                details={"schedule": row.id},
            )
        self.wake()
        changed = await self._store.get(row.id)
        assert changed is not None
        return changed

    async def delete(self, fn: Function, cid: str) -> CronRow:
        row = await self.find(fn, cid)
        await self._store.delete(row.id)
        self.wake()
        return row

    # the scheduler (a task of the daemon: orvad/daemon.py)
    async def run(self) -> None:
        self._started = iso(self._now())
        log.info("cron scheduler started", extra={"clock": type(self.clock).__name__, "at": self._started})
        while True:
            try:
                await self.run_due()
            except Exception:  # a failed pass (the database, ...) is tried again after RETRY_S
                log.exception("cron pass failed")
                await self._pause(RETRY_S)
                continue
            await self._pause(await self._wait_s())

    async def _wait_s(self) -> float:
        loop = asyncio.get_running_loop()
        earliest = await self._store.earliest()
        wait = MAX_WAIT_S
        if earliest is not None:
            wait = min(wait, max(0.0, (parse_iso(earliest) - self._now()).total_seconds()))
        pending = [t for t in self._retry.values() if t > loop.time()]
        if wait == 0 and pending:  # only runs that failed to enqueue are due: wait for their retry
            wait = max(0.01, min(pending) - loop.time())
        if self.clock.poll_s is not None:
            wait = min(wait, self.clock.poll_s) if wait > 0 else self.clock.poll_s
        return wait

    async def _pause(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    async def run_due(self) -> int:
        """One pass: every due schedule gets its plan carried out; how many runs were enqueued."""
        if self._started is None:
            self._started = iso(self._now())
        now = self._now()
        loop = asyncio.get_running_loop()
        fired = 0
        for row in await self._store.due(iso(now)):
            if self._retry.get(row.id, 0) > loop.time():
                continue
            try:
                fired += await self._fire(row, now)
                self._retry.pop(row.id, None)
            except Exception:
                log.exception(
                    "could not enqueue a cron run", extra={"schedule": row.id, "function": row.function_id}
                )
                self._retry[row.id] = loop.time() + RETRY_S
        return fired

    async def _fire(self, row: CronRow, now: datetime) -> int:
        assert row.next_run_at is not None and self._started is not None
        try:
            expr, zone = parse_expression(row.expression), parse_timezone(row.timezone)
        except ValidationError as exc:  # the tz database changed under a stored schedule
            log.error(
                "schedule cannot be computed; it stays due until changed",
                extra={"schedule": row.id, "error": exc.message},
            )
            self._retry[row.id] = asyncio.get_running_loop().time() + MAX_WAIT_S
            return 0
        down = row.next_run_at <= self._up_since()
        decision = plan(expr, zone, parse_iso(row.next_run_at), now, row.catch_up, down=down)
        if decision is None:
            return 0
        job_id: str | None = None
        if decision.run_tick is not None:
            job_id = await self._enqueue(row, decision.run_tick)
        if decision.missed > 1 or (down and decision.run_tick is None):
            log.info(
                "cron ticks missed",
                extra={
                    "schedule": row.id,
                    "function": row.function_name,
                    "missed": decision.missed,
                    "catch_up": row.catch_up,
                    "ran": decision.run_tick is not None,
                },
            )
        await self._store.advance(
            row.id,
            row.version,
            expected_next=row.next_run_at,
            next_run_at=iso(decision.next_run_at),
            last_run_at=iso(now) if job_id else None,
            last_tick_at=iso(decision.run_tick) if decision.run_tick and job_id else None,
            last_job_id=job_id,
        )
        return 1 if job_id else 0

    def _up_since(self) -> str:
        """Since when a scheduler has been running: this one's start, or a live node's earlier one."""
        assert self._started is not None
        try:  # the longest seen: a node that was up at this start and is gone since still was
            self._earlier = max(self._earlier, float(self.cluster_up_s()))
        except Exception:  # the registry's view cannot be read: what was seen before
            pass
        if not self._earlier:
            return self._started
        return iso(parse_iso(self._started) - timedelta(seconds=self._earlier))

    async def _enqueue(self, row: CronRow, tick: datetime | None) -> str | None:
        """One run of ``row`` as a job; its id (None: the function is gone, nothing to run)."""
        if self.jobs is None:
            raise RuntimeError("the jobs service is not wired to cron")
        key = f"cron:{row.id}:{iso(tick)}" if tick is not None else None
        try:
            job = await self.jobs.enqueue(
                row.function_id,
                json.loads(row.payload),
                idempotency_key=key,
                idempotency_window_s=IDEMPOTENCY_WINDOW_S if key else None,
                trigger="cron",
                headers={"x-orva-cron-id": row.id, "x-orva-cron-name": row.name},
                source="cron",
            )
        except NotFound:
            return None
        if not getattr(job, "created", True):  # another node enqueued this tick first: its job, not a new run
            log.debug("cron tick already enqueued", extra={"schedule": row.id, "job": job.id})
            return str(job.id)
        self.fired += 1
        log.info(
            "cron run enqueued",
            extra={
                "schedule": row.id,
                "function": row.function_name,
                "tick": iso(tick) if tick else None,
                "job": job.id,
            },
        )
        return str(job.id)

    async def run_now(self, fn: Function, cid: str) -> tuple[CronRow, str]:
        """Run a schedule once now, by hand (its next tick unchanged); (schedule, job id)."""
        row = await self.find(fn, cid)
        job_id = await self._enqueue(row, None)
        if job_id is None:
            raise NotFound(f"function {fn.name} no longer exists", details={"function": fn.name})
        await self._store.record_run(
            row.id, last_run_at=iso(self._now()), last_tick_at=None, last_job_id=job_id
        )
        again = await self._store.get(row.id)
        return (again or row), job_id

    # the SDK's operations: orvad/sdk/calls.py routes cron.* here; only caller.function_id is ever touched
    def _caller_fn(self, caller: Caller, functions: Callable[[str], Function | None]) -> Function:
        fn = functions(caller.function_id)
        if fn is None:
            raise NotFound(f"function {caller.function_name} no longer exists")
        return fn

    def register(self, router: Any, functions: Callable[[str], Function | None]) -> None:
        """The cron.* operations on the SDK router (orvad/sdk/calls.py SdkRouter); ``functions``: id -> Function."""

        async def upsert(caller: Caller, args: dict[str, Any]) -> Any:
            _args(args, "cron.upsert", FIELDS, ("name",))
            row, created = await self.upsert(self._caller_fn(caller, functions), args, "sdk")
            return {**(await self.to_json([row]))[0], "created": created}

        async def list_(caller: Caller, args: dict[str, Any]) -> Any:
            _args(args, "cron.list", ())
            return {"schedules": await self.to_json(await self.list_for(caller.function_id))}

        async def delete(caller: Caller, args: dict[str, Any]) -> Any:
            _args(args, "cron.delete", ("name",), ("name",))
            name = check_name(args["name"])
            row = await self._store.get_by_name(caller.function_id, name)
            if row is None:
                return {"deleted": False}
            await self._store.delete(row.id)
            self.wake()
            return {"deleted": True}

        router.register("cron.upsert", upsert)
        router.register("cron.list", list_)
        router.register("cron.delete", delete)


def _next(expression: str, timezone: str, after: datetime) -> datetime:
    return next_tick(parse_expression(expression), parse_timezone(timezone), after)
