"""The rules behind the cluster's leases, in-process (docs/CLUSTER.md "Leases: work that runs once"); the real
nodes are in tests/cluster/test_leases.py.

- Cron: a schedule with ``catch_up: skip`` whose tick came just before this node's scheduler started is
  skipped on one node (orvad was down) but runs when other live nodes were up before this start (the
  cluster was not down: a node joining it must not skip a tick the others have not fired yet); a tick another
  node enqueued first is not counted as this node's run.
- Jobs: recover() on PostgreSQL takes the lease of a run that is not live, or an expired one, and leaves a
  live run's lease alone; with no registry (one orvad) every other run's lease is taken; when the registry
  cannot be read only expired leases are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from orvad.clock import iso
from orvad.cron.service import CronService
from orvad.store.cron import CronRow
from orvad.store.jobs import ALL_LIVE, JobStore
from orvad.store.postgres.driver import PgDatabase

NOW = datetime(2026, 5, 1, 12, 0, 10, tzinfo=UTC)
TICK = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)  # due 10 s before the scheduler started


class FixedClock:
    poll_s = None

    def now(self) -> datetime:
        return NOW


@dataclass
class FakeStore:
    rows: list[CronRow]
    advanced: list[dict[str, Any]] = field(default_factory=list)

    async def due(self, now: str, limit: int = 500) -> list[CronRow]:
        return [r for r in self.rows if r.next_run_at is not None and r.next_run_at <= now]

    async def advance(self, schedule_id: str, version: int, **kw: Any) -> bool:
        self.advanced.append(kw)
        return True


@dataclass
class Job:
    id: str
    created: bool


@dataclass
class FakeQueue:
    created: bool = True
    keys: list[str | None] = field(default_factory=list)

    async def enqueue(self, function_id: str, payload: Any, **kw: Any) -> Job:
        self.keys.append(kw.get("idempotency_key"))
        return Job("job_1", self.created)


ROW = CronRow(
    id="cron_1",
    function_id="fn_1",
    name="every-minute",
    expression="* * * * *",
    timezone="UTC",
    payload="null",
    enabled=True,
    catch_up="skip",
    source="api",
    next_run_at=iso(TICK),
    last_run_at=None,
    last_tick_at=None,
    last_job_id=None,
    version=1,
    created_at=iso(TICK),
    updated_at=iso(TICK),
    function_name="f",
)


def _service(store: FakeStore, queue: FakeQueue, cluster_up_s: float) -> CronService:
    service = CronService(store, clock=FixedClock(), max_per_function=5, jobs=queue)  # type: ignore[arg-type]
    service.cluster_up_s = lambda: cluster_up_s
    service._started = iso(NOW)  # the scheduler started now: the tick came 10 s before
    return service


async def test_a_skip_tick_just_before_this_start_is_skipped_alone_but_runs_when_the_cluster_was_up() -> None:
    alone_store, alone_queue = FakeStore([ROW]), FakeQueue()
    assert await _service(alone_store, alone_queue, 0.0).run_due() == 0
    assert alone_queue.keys == [] and alone_store.advanced[0]["last_job_id"] is None  # down: skipped
    # the others were up for a minute before this node started: the tick is due, not missed
    store, queue = FakeStore([ROW]), FakeQueue()
    assert await _service(store, queue, 60.0).run_due() == 1
    assert queue.keys == [f"cron:cron_1:{iso(TICK)}"] and store.advanced[0]["last_job_id"] == "job_1"
    # ... but not a tick older than the cluster's start: that one was missed while every node was down
    old = replace(ROW, next_run_at=iso(TICK - timedelta(minutes=5)))
    store, queue = FakeStore([old]), FakeQueue()
    assert await _service(store, queue, 60.0).run_due() == 0 and queue.keys == []


async def test_a_tick_another_node_enqueued_first_is_not_counted_here() -> None:
    store, queue = FakeStore([replace(ROW, catch_up="once")]), FakeQueue(created=False)
    service = _service(store, queue, 0.0)
    assert await service.run_due() == 1  # the pass took the tick (advanced with the job) ...
    assert service.fired == 0  # ... but the run is the other node's
    assert store.advanced[0]["last_job_id"] == "job_1"


_JOB = (
    "INSERT INTO jobs (id, function_id, function_name, status, trigger, source, request, attempts, tries,"
    " max_attempts, run_at, lease_owner, lease_until, created_at, updated_at)"
    " VALUES (?, 'f1', 'one', 'running', 'job', 'api', '{}', 1, 1, 3, 1.0, ?, ?, 't', 't')"
)


async def test_recover_takes_only_leases_of_runs_not_live_or_expired(pg_dsn: str) -> None:
    db = PgDatabase(pg_dsn)
    await db.open()
    try:
        await db.execute(
            "INSERT INTO functions (id, name, runtime, entrypoint, memory_mb, cpus, timeout_ms, network_mode,"
            " auth_mode, status, created_at, updated_at) VALUES ('f1', 'one', 'python', 'h.py', 128, 1.0, 1000,"
            " 'none', 'none', 'active', 't', 't')"
        )
        store = JobStore(db)
        now = 100.0
        for job_id, owner, until in [
            ("j_live", "run_b", 130.0),  # another node, alive, lease current
            ("j_gone", "run_c", 130.0),  # a node not live (gone, left or restarted)
            ("j_expired", "run_b", 99.0),  # a live node whose lease ran out
            ("j_mine", "run_a", 130.0),  # this run's own
        ]:
            await db.execute(_JOB, (job_id, owner, until))

        async def owners() -> dict[str, str | None]:
            return {r[0]: r[1] for r in await db.fetchall("SELECT id, lease_owner FROM jobs ORDER BY id")}

        # the registry could not be read: everyone counts as live, only the expired lease goes
        assert await store.takeable("run_a", now, ALL_LIVE) == 1
        assert await store.recover("run_a", now, ALL_LIVE) == 1
        assert (await owners())["j_expired"] is None
        live = {"run_a", "run_b"}
        assert await store.takeable("run_a", now, live) == 1
        assert await store.recover("run_a", now, live) == 1  # j_gone
        found = await owners()
        assert found == {"j_expired": None, "j_gone": None, "j_live": "run_b", "j_mine": "run_a"}
        job = await store.get("j_gone")  # the cut attempt counted, the job due again now on any node
        assert job is not None and job.status == "failed" and job.run_at == now and job.attempts == 1, job
        assert await store.takeable("run_a", now, live) == 0  # nothing left: the next look writes nothing
        # one orvad (no registry): every other run is dead
        assert await store.recover("run_a", now, None) == 1 and (await owners())["j_live"] is None
        # renew: the leases this run still holds
        assert await store.renew("run_a", 200.0) == {"j_mine": 1}
    finally:
        await db.close()
