"""SQL for jobs (issue 23): durable background invocations and their attempts.

Every state change is one write transaction, conditional on the state it expects (``WHERE status = ...``,
``AND lease_owner = ?``), so a job is claimed by one runner at a time and an attempt's end never overwrites a
cancel or a newer lease. Write transactions serialise on both drivers (SQLite's one writer; on PostgreSQL the
cluster-wide write lock of orvad/store/postgres/driver.py), so a claim, a recovery or a renewal read inside
one sees every other node's committed claims (docs/CLUSTER.md, "Leases: work that runs once"). A lease's
owner is a run id (orvad/cluster/nodes.py): the process start that holds it. Times: ``now``, ``run_at``, ``lease_until`` and
``idempotency_until`` are Unix seconds (REAL); ``*_at`` texts are RFC 3339 (orvad/clock.py).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from orvad.clock import epoch_iso
from orvad.store.sql import Database, Row

STATUSES = ("pending", "running", "failed", "succeeded", "dead", "cancelled")
DUE = ("pending", "failed")  # waiting for run_at
_COLS = (
    "id, function_id, function_name, status, trigger, source, request, attempts, tries, max_attempts, run_at,"
    " lease_owner, lease_until, idempotency_key, idempotency_until, trace_id, parent_span_id, last_error,"
    " created_at, updated_at, finished_at"
)


@dataclass(frozen=True, slots=True)
class JobRow:
    id: str
    function_id: str
    function_name: str
    status: str
    trigger: str
    source: str
    request: str
    attempts: int
    tries: int
    max_attempts: int
    run_at: float
    lease_owner: str | None
    lease_until: float | None
    idempotency_key: str | None
    idempotency_until: float | None
    trace_id: str | None
    parent_span_id: str | None
    last_error: str | None
    created_at: str
    updated_at: str
    finished_at: str | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    job_id: str
    attempt: int
    execution_id: str | None
    outcome: str
    status_code: int | None
    error: str | None
    started_at: str
    finished_at: str | None


class Wake(NamedTuple):
    """When the runner has something to do next (Unix seconds; None: nothing of that kind)."""

    run_at: float | None  # the earliest waiting job comes due
    lease_end: float | None  # the earliest lease runs out (its node gone or stopped: recovered, counted)


@dataclass(frozen=True, slots=True)
class Finish:
    """An attempt's end, kept by the runner until its next write (``JobStore.settle``)."""

    job: JobRow
    ended: float  # Unix seconds: the attempt's end (its row's finished_at; the job's when it ends)
    outcome: str  # succeeded | failed
    execution_id: str | None
    status_code: int | None
    error: str | None
    next_status: str  # succeeded | failed | dead
    run_at: float


_FINISH_ATTEMPT = (
    "UPDATE job_attempts SET outcome = ?, execution_id = ?, status_code = ?, error = ?,"
    " finished_at = ?, started = 1 WHERE job_id = ? AND attempt = ?"
)
_STARTED = "UPDATE job_attempts SET started = 1 WHERE job_id = ? AND attempt = ?"
# a claimed attempt that never started: its row goes, and the job is given back as it was (not counted)
_UNCLAIM_ATTEMPT = "DELETE FROM job_attempts WHERE job_id = ? AND attempt = ? AND started = 0"
_UNCLAIM_JOB = (
    "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, updated_at = ?,"
    " tries = CASE WHEN tries > 0 THEN tries - 1 ELSE 0 END,"
    " attempts = CASE WHEN status = 'running' AND attempts > 0 THEN attempts - 1"
    " WHEN status = 'running' THEN 0 ELSE attempts END,"
    " status = CASE WHEN status = 'running' THEN 'pending' ELSE status END,"
    " run_at = CASE WHEN status = 'running' THEN ? ELSE run_at END WHERE id = ?"
)
# the leased jobs to recover or release, with whether their current attempt started
_LEASED = (
    "SELECT j.id, j.tries, COALESCE(a.started, 1) FROM jobs j LEFT JOIN job_attempts a"
    " ON a.job_id = j.id AND a.attempt = j.tries AND a.outcome = 'running' WHERE "
)
# the leases recover() may take: held by another run, or expired (the owner's liveness is judged in Python)
_FOREIGN = (
    "SELECT j.id, j.tries, COALESCE(a.started, 1), j.lease_owner, j.lease_until FROM jobs j"
    " LEFT JOIN job_attempts a ON a.job_id = j.id AND a.attempt = j.tries AND a.outcome = 'running'"
    " WHERE j.lease_owner IS NOT NULL AND (j.lease_owner <> ? OR j.lease_until <= ?)"
)
_FOREIGN_IDS = (
    "SELECT lease_owner, lease_until FROM jobs WHERE lease_owner IS NOT NULL"
    " AND (lease_owner <> ? OR lease_until <= ?)"
)
_RENEW = "UPDATE jobs SET lease_until = ? WHERE lease_owner = ? RETURNING id, tries"
_FINISH_JOB = (
    "UPDATE jobs SET status = CASE WHEN status = 'running' THEN ? ELSE status END,"
    " run_at = CASE WHEN status = 'running' THEN ? ELSE run_at END,"
    " last_error = CASE WHEN CAST(? AS TEXT) IS NOT NULL THEN ? ELSE last_error END,"
    " finished_at = CASE WHEN status = 'running' AND ? IN ('succeeded', 'dead') THEN ?"
    " ELSE finished_at END,"
    " lease_owner = NULL, lease_until = NULL, updated_at = ?"
    " WHERE id = ? AND lease_owner = ?"
)


def _row(r: Row) -> JobRow:
    return JobRow(*r)


class _AllLive(frozenset[str]):
    """Every run counts as live (the registry could not be read): only expired leases are taken."""

    def __contains__(self, item: object) -> bool:
        return True


ALL_LIVE: Collection[str] = _AllLive()


def _takeable(
    lease_owner: str, until: float | None, owner: str, now: float, live: Collection[str] | None
) -> bool:
    """A lease ``owner`` may take: expired, or held by another run that is not live (``live`` None: every
    other run is dead)."""
    if until is not None and until <= now:
        return True
    return lease_owner != owner and (live is None or lease_owner not in live)


def error_text(code: str, message: str) -> str:
    return json.dumps({"code": code, "message": message[:1000]})


class JobStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # writes
    async def insert(self, row: JobRow, now: float) -> tuple[JobRow, bool]:
        """Insert a job; with an idempotency key, the live job holding the same key for the function is
        returned instead (checked and inserted in one transaction: never a second job)."""
        async with self._db.transaction() as tx:
            if row.idempotency_key is not None:
                found = await tx.fetchone(
                    f"SELECT {_COLS} FROM jobs WHERE function_id = ? AND idempotency_key = ?"
                    " AND idempotency_until > ? ORDER BY id DESC LIMIT 1",
                    (row.function_id, row.idempotency_key, now),
                )
                if found is not None:
                    return _row(found), False
            await tx.execute(
                f"INSERT INTO jobs ({_COLS}) VALUES ({', '.join('?' * 21)})",
                (
                    row.id,
                    row.function_id,
                    row.function_name,
                    row.status,
                    row.trigger,
                    row.source,
                    row.request,
                    row.attempts,
                    row.tries,
                    row.max_attempts,
                    row.run_at,
                    row.lease_owner,
                    row.lease_until,
                    row.idempotency_key,
                    row.idempotency_until,
                    row.trace_id,
                    row.parent_span_id,
                    row.last_error,
                    row.created_at,
                    row.updated_at,
                    row.finished_at,
                ),
            )
        return row, True

    async def takeable(self, owner: str, now: float, live: Collection[str] | None = None) -> int:
        """How many leases ``recover`` would take now (a read, no write lock): the cheap check a runner makes
        often, so the write happens only when there is something to take."""
        rows = await self._db.fetchall(_FOREIGN_IDS, (owner, now))
        return sum(1 for lease_owner, until in rows if _takeable(lease_owner, until, owner, now, live))

    async def recover(self, owner: str, now: float, live: Collection[str] | None = None) -> int:
        """Attempts whose lease ``owner`` (this run) may take: held by a run that is not live, or expired
        whoever holds it. ``live``: the run ids of the live nodes (orvad/cluster/nodes.py ``live_runs``);
        None: no registry, one orvad owns the data dir, so every other run is dead (a crash before this start).
        Each is recorded ``lost``, and its job due again now (or dead when it has no attempt left). Decided
        inside the write transaction: two nodes recovering at once take each lease once."""
        stamp = epoch_iso(now)
        lost = error_text("ATTEMPT_LOST", "orvad stopped (or lost the lease) while the attempt ran")
        async with self._db.transaction() as tx:
            rows = [
                (job_id, tries, started)
                for job_id, tries, started, lease_owner, until in await tx.fetchall(_FOREIGN, (owner, now))
                if _takeable(lease_owner, until, owner, now, live)
            ]
            for job_id, tries, started in rows:
                if not started:  # claimed ahead, never started: given back, not counted
                    await tx.execute(_UNCLAIM_ATTEMPT, (job_id, tries))
                    await tx.execute(_UNCLAIM_JOB, (stamp, now, job_id))
                    continue
                await tx.execute(
                    "UPDATE job_attempts SET outcome = 'lost', error = ?, finished_at = ?"
                    " WHERE job_id = ? AND attempt = ? AND outcome = 'running'",
                    (lost, stamp, job_id, tries),
                )
                await tx.execute(
                    "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, updated_at = ?, last_error = ?,"
                    " status = CASE WHEN status != 'running' THEN status"
                    " WHEN attempts >= max_attempts THEN 'dead' ELSE 'failed' END,"
                    " finished_at = CASE WHEN status = 'running' AND attempts >= max_attempts THEN ?"
                    " ELSE finished_at END,"
                    " run_at = ? WHERE id = ?",
                    (stamp, lost, stamp, now, job_id),
                )
        return len(rows)

    async def release(self, owner: str, now: float) -> int:
        """A clean stop: the attempts ``owner`` still runs were cut by orvad, not failed by the handler: recorded
        ``lost`` and not counted; their jobs are due again at once (cancelled ones stay cancelled)."""
        stamp = epoch_iso(now)
        cut = error_text(
            "ORVAD_STOPPED", "orvad stopped while the attempt ran; it runs again after the start"
        )
        async with self._db.transaction() as tx:
            rows = list(await tx.fetchall(_LEASED + "j.lease_owner = ?", (owner,)))
            for job_id, tries, started in rows:
                if not started:  # claimed ahead, never started: given back as it was
                    await tx.execute(_UNCLAIM_ATTEMPT, (job_id, tries))
                    await tx.execute(_UNCLAIM_JOB, (stamp, now, job_id))
                    continue
                await tx.execute(
                    "UPDATE job_attempts SET outcome = 'lost', error = ?, finished_at = ?"
                    " WHERE job_id = ? AND attempt = ? AND outcome = 'running'",
                    (cut, stamp, job_id, tries),
                )
                await tx.execute(
                    "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, updated_at = ?,"
                    " attempts = CASE WHEN status = 'running' AND attempts > 0 THEN attempts - 1"
                    " WHEN status = 'running' THEN 0 ELSE attempts END,"
                    " status = CASE WHEN status = 'running' THEN 'pending' ELSE status END,"
                    " run_at = CASE WHEN status = 'running' THEN ? ELSE run_at END WHERE id = ?",
                    (stamp, now, job_id),
                )
        return len(rows)

    async def claim(self, ids: Sequence[str], owner: str, now: float, lease_s: float) -> list[JobRow]:
        """Take the due jobs among ``ids`` (one attempt each, counted now); the ones taken, leased to ``owner``."""
        return await self.settle((), (), ids, owner, now, lease_s)

    async def settle(
        self,
        finishes: Sequence[Finish],
        started: Sequence[tuple[str, int]],
        ids: Sequence[str],
        owner: str,
        now: float,
        lease_s: float,
        ended: set[str] | None = None,
    ) -> list[JobRow]:
        """The runner's one write: the attempt ends it holds (``finishes``), the attempts that started since
        its last write (``started``: (job id, attempt)), then a claim of the due jobs among ``ids`` (one attempt
        each, counted now, leased to ``owner``, not started yet), in one transaction.
        The claim is one conditional ``UPDATE ... RETURNING``: the rows taken come back from the write itself.

        A finish is fenced by its lease (``lease_owner = owner``) and never overwrites a cancel; the job's
        ``updated_at`` is the moment of this write, the attempt's ``finished_at`` the attempt's own end.
        ``ended``, when given, receives the ids of the jobs this write ended as their finish said (succeeded
        or dead): not one cancelled while its attempt ran, nor one whose lease another runner took."""
        stamp = epoch_iso(now)
        marks = ", ".join("?" * len(ids))
        attempt_rows = [
            (f.outcome, f.execution_id, f.status_code, f.error, epoch_iso(f.ended), f.job.id, f.job.tries)
            for f in finishes
        ]
        job_rows = [
            (
                f.next_status,
                f.run_at,
                f.error,
                f.error,
                f.next_status,
                epoch_iso(f.ended),
                stamp,
                f.job.id,
                owner,
            )
            for f in finishes
        ]

        async with self._db.transaction() as tx:
            if started:
                await tx.executemany(_STARTED, started)
            if finishes:
                await tx.executemany(_FINISH_ATTEMPT, attempt_rows)
                await tx.executemany(_FINISH_JOB, job_rows)
                if ended is not None:
                    final = {
                        f.job.id: f.next_status for f in finishes if f.next_status in ("succeeded", "dead")
                    }
                    if final:
                        ended.update(
                            job_id
                            for job_id, status in await tx.fetchall(
                                f"SELECT id, status FROM jobs WHERE id IN ({', '.join('?' * len(final))})",
                                list(final),
                            )
                            if final[job_id] == status
                        )
            taken: list[JobRow] = []
            if ids:
                taken = [
                    JobRow(*r)
                    for r in await tx.fetchall(
                        "UPDATE jobs SET status = 'running', attempts = attempts + 1, tries = tries + 1,"
                        " lease_owner = ?, lease_until = ?, updated_at = ?"
                        f" WHERE id IN ({marks}) AND status IN ('pending', 'failed') AND run_at <= ?"
                        f" AND lease_owner IS NULL RETURNING {_COLS}",
                        (owner, now + lease_s, stamp, *ids, now),
                    )
                ]
                # tries grows with every claim, so each number is new (DO NOTHING: the first row stands)
                await tx.executemany(
                    "INSERT INTO job_attempts (job_id, attempt, outcome, started_at, started)"
                    " VALUES (?, ?, 'running', ?, 0) ON CONFLICT DO NOTHING",
                    [(r.id, r.tries, stamp) for r in taken],
                )
        return taken

    async def renew(self, owner: str, until: float) -> dict[str, int]:
        """Every lease ``owner`` holds lasts until ``until``; {job id: attempt} of the leases it still holds (a
        lease another node took meanwhile is not among them: the runner stops that attempt)."""
        async with self._db.transaction() as tx:
            return {str(r[0]): int(r[1]) for r in await tx.fetchall(_RENEW, (until, owner))}

    async def finish(
        self,
        job: JobRow,
        owner: str,
        now: float,
        *,
        outcome: str,  # succeeded | failed
        execution_id: str | None,
        status_code: int | None,
        error: str | None,
        next_status: str,  # succeeded | failed | dead
        run_at: float,
    ) -> None:
        """An attempt's end on its own (the runner batches them: ``settle``)."""
        finish = Finish(job, now, outcome, execution_id, status_code, error, next_status, run_at)
        await self.settle((finish,), (), (), owner, now, 0.0)

    async def end(self, job_id: str, now: float, status: str, error: str) -> None:
        """A job that cannot run at all (its function is gone): ``status`` with the reason, no attempt."""
        stamp = epoch_iso(now)
        await self._db.execute(
            "UPDATE jobs SET status = ?, last_error = ?, finished_at = ?, updated_at = ?,"
            " lease_owner = NULL, lease_until = NULL WHERE id = ? AND status IN ('pending', 'failed')",
            (status, error, stamp, stamp, job_id),
        )

    async def end_function(self, function_id: str, now: float, error: str) -> int:
        """The function was deleted: its waiting jobs end ``dead`` with the reason (a running attempt ends as it
        does; its job is then found without a function and ends the same way)."""
        stamp = epoch_iso(now)
        return await self._db.execute(
            "UPDATE jobs SET status = 'dead', last_error = ?, finished_at = ?, updated_at = ?"
            " WHERE function_id = ? AND status IN ('pending', 'failed') AND lease_owner IS NULL",
            (error, stamp, stamp, function_id),
        )

    async def prune(self, before: float, limit: int = 1000) -> int:
        """Succeeded and cancelled jobs that ended before ``before`` (their attempts with them); dead ones stay."""
        return await self._db.execute(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status IN ('succeeded', 'cancelled')"
            " AND lease_owner IS NULL AND finished_at < ? LIMIT ?)",
            (epoch_iso(before), limit),
        )

    async def cancel(self, job_id: str, now: float) -> bool:
        """pending/failed/running -> cancelled (a running attempt goes on to its end; none follows)."""
        stamp = epoch_iso(now)
        changed = await self._db.execute(
            "UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ?"
            " WHERE id = ? AND status IN ('pending', 'failed', 'running')",
            (stamp, stamp, job_id),
        )
        return changed > 0

    async def retry(self, job_id: str, now: float) -> bool:
        """dead/failed/cancelled (no attempt running) -> pending, due now, with a fresh round of attempts."""
        changed = await self._db.execute(
            "UPDATE jobs SET status = 'pending', attempts = 0, run_at = ?, finished_at = NULL, updated_at = ?"
            " WHERE id = ? AND status IN ('dead', 'failed', 'cancelled') AND lease_owner IS NULL",
            (now, epoch_iso(now), job_id),
        )
        return changed > 0

    # reads
    async def get(self, job_id: str) -> JobRow | None:
        row = await self._db.fetchone(f"SELECT {_COLS} FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _row(row)

    async def attempts(self, job_id: str) -> list[AttemptRow]:
        rows = await self._db.fetchall(
            "SELECT job_id, attempt, execution_id, outcome, status_code, error, started_at, finished_at"
            " FROM job_attempts WHERE job_id = ? ORDER BY attempt",
            (job_id,),
        )
        return [AttemptRow(*r) for r in rows]

    async def list_jobs(
        self,
        *,
        function_id: str | None,
        status: str | None,
        cursor: str | None,
        limit: int,
    ) -> list[JobRow]:
        """Newest first, ``limit`` + 1 rows (the caller tells whether there is a next page)."""
        where: list[str] = []
        params: list[object] = []
        if function_id is not None:
            where.append("function_id = ?")
            params.append(function_id)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if cursor is not None:
            where.append("id < ?")
            params.append(cursor)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._db.fetchall(
            f"SELECT {_COLS} FROM jobs{clause} ORDER BY id DESC LIMIT ?", (*params, limit + 1)
        )
        return [_row(r) for r in rows]

    async def due(self, now: float, limit: int) -> list[tuple[str, str]]:
        """(id, function_id) of due jobs, earliest first."""
        rows = await self._db.fetchall(
            "SELECT id, function_id FROM jobs WHERE status IN ('pending', 'failed') AND run_at <= ?"
            " AND lease_owner IS NULL ORDER BY run_at, id LIMIT ?",
            (now, limit),
        )
        return [(r[0], r[1]) for r in rows]

    async def next_wake(self) -> Wake:
        """The earliest moments something becomes due: a waiting job's run_at, and a lease's end."""
        row = await self._db.fetchone(
            "SELECT (SELECT MIN(run_at) FROM jobs WHERE status IN ('pending', 'failed') AND lease_owner IS NULL),"
            " (SELECT MIN(lease_until) FROM jobs WHERE lease_owner IS NOT NULL)"
        )
        if row is None:
            return Wake(None, None)
        return Wake(*(None if t is None else float(t) for t in row))

    async def counts(self, function_id: str | None = None) -> dict[str, int]:
        if function_id is None:
            rows = await self._db.fetchall("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        else:
            rows = await self._db.fetchall(
                "SELECT status, COUNT(*) FROM jobs WHERE function_id = ? GROUP BY status", (function_id,)
            )
        found = {r[0]: r[1] for r in rows}
        return {s: int(found.get(s, 0)) for s in STATUSES}
