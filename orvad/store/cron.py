"""SQL for cron (issue 23): the schedules, their due list, and the scheduler's advance after a run.

A schedule's configuration changes bump its ``version``; the scheduler's writes (``advance``) do not, and are
conditional on the version it read, so a schedule changed while its tick was being enqueued keeps the
change (the run already enqueued stands: it was due). Times are RFC 3339 UTC text with milliseconds and a
Z (orvad/clock.py ``iso``), which sort as they compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orvad.store.sql import Database, IntegrityError, Transaction

_COLUMNS = (
    "id, function_id, name, expression, timezone, payload, enabled, catch_up, source, next_run_at, last_run_at,"
    " last_tick_at, last_job_id, version, created_at, updated_at"
)
# the last run's status is its job's (orvad/jobs/; a job pruned or never written: NULL)
_SELECT = (
    f"SELECT {', '.join('c.' + c.strip() for c in _COLUMNS.split(','))}, f.name AS function_name,"
    " j.status AS last_status FROM cron_schedules c JOIN functions f ON f.id = c.function_id"
    " LEFT JOIN jobs j ON j.id = c.last_job_id"
)


@dataclass(frozen=True, slots=True)
class CronRow:
    id: str
    function_id: str
    name: str
    expression: str
    timezone: str
    payload: str  # compact JSON text
    enabled: bool
    catch_up: str
    source: str
    next_run_at: str | None
    last_run_at: str | None
    last_tick_at: str | None
    last_job_id: str | None
    version: int
    created_at: str
    updated_at: str
    function_name: str = ""
    last_status: str | None = None  # the last run's job status: pending | running | failed | succeeded | ...


@dataclass(frozen=True, slots=True)
class CronConfig:
    """What an operator or a handler sets; ``next_run_at`` is recomputed by the service when the timing
    (expression, timezone, enabled) changes, and left alone otherwise (None in ``replace``: keep)."""

    name: str
    expression: str
    timezone: str
    payload: str
    enabled: bool
    catch_up: str
    source: str


class NameTaken(Exception):
    """Another schedule of the function has this name."""


class FunctionGone(Exception):
    """The function does not exist (deleted meanwhile)."""


class TooMany(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


def _row(r: Any) -> CronRow:
    values = list(r)
    values[6] = bool(values[6])
    return CronRow(*values)


class CronStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # reads
    async def get(self, schedule_id: str) -> CronRow | None:
        row = await self._db.fetchone(f"{_SELECT} WHERE c.id = ?", (schedule_id,))
        return _row(row) if row else None

    async def get_by_name(self, function_id: str, name: str) -> CronRow | None:
        row = await self._db.fetchone(
            f"{_SELECT} WHERE c.function_id = ? AND c.name = ?", (function_id, name)
        )
        return _row(row) if row else None

    async def list_schedules(
        self,
        *,
        function_id: str | None = None,
        enabled: bool | None = None,
        cursor: str | None = None,
        limit: int = 1000,
    ) -> list[CronRow]:
        """Newest first (ids are UUIDv7), after ``cursor`` (the last id seen); up to ``limit``."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if function_id is not None:
            where.append("c.function_id = ?")
            params.append(function_id)
        if enabled is not None:
            where.append("c.enabled = ?")
            params.append(int(enabled))
        if cursor is not None:
            where.append("c.id < ?")
            params.append(cursor)
        rows = await self._db.fetchall(
            f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY c.id DESC LIMIT ?", (*params, limit)
        )
        return [_row(r) for r in rows]

    async def count(self, *, function_id: str | None = None, enabled: bool | None = None) -> int:
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if function_id is not None:
            where.append("function_id = ?")
            params.append(function_id)
        if enabled is not None:
            where.append("enabled = ?")
            params.append(int(enabled))
        row = await self._db.fetchone(
            f"SELECT COUNT(*) FROM cron_schedules WHERE {' AND '.join(where)}", params
        )
        return int(row[0]) if row else 0

    async def due(self, now: str, limit: int = 500) -> list[CronRow]:
        """Enabled schedules whose next_run_at has come, earliest first."""
        rows = await self._db.fetchall(
            f"{_SELECT} WHERE c.enabled = 1 AND c.next_run_at IS NOT NULL AND c.next_run_at <= ?"
            " ORDER BY c.next_run_at LIMIT ?",
            (now, limit),
        )
        return [_row(r) for r in rows]

    async def earliest(self) -> str | None:
        """The soonest next_run_at of an enabled schedule."""
        row = await self._db.fetchone(
            "SELECT MIN(next_run_at) FROM cron_schedules WHERE enabled = 1 AND next_run_at IS NOT NULL"
        )
        return row[0] if row else None

    # writes
    async def create(
        self,
        schedule_id: str,
        function_id: str,
        config: CronConfig,
        next_run_at: str | None,
        now: str,
        max_count: int,
    ) -> CronRow:
        """Insert a schedule; TooMany when the function already holds ``max_count``, NameTaken, FunctionGone."""
        try:
            async with self._db.transaction() as tx:
                await self._check_count(tx, function_id, max_count)
                await tx.execute(
                    "INSERT INTO cron_schedules (id, function_id, name, expression, timezone, payload, enabled,"
                    " catch_up, source, next_run_at, version, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
                    (
                        schedule_id,
                        function_id,
                        config.name,
                        config.expression,
                        config.timezone,
                        config.payload,
                        int(config.enabled),
                        config.catch_up,
                        config.source,
                        next_run_at,
                        now,
                        now,
                    ),
                )
        except IntegrityError as exc:
            raise _integrity(exc, function_id) from None
        row = await self.get(schedule_id)
        assert row is not None
        return row

    async def replace(
        self,
        schedule_id: str,
        version: int,
        config: CronConfig,
        next_run_at: str | None,
        keep_next: bool,
        now: str,
    ) -> bool:
        """Write a schedule's configuration if it is still at ``version`` (bumping it); next_run_at too unless
        ``keep_next``. False when it changed meanwhile or is gone."""
        sets = (
            "name = ?, expression = ?, timezone = ?, payload = ?, enabled = ?, catch_up = ?, source = ?,"
            " version = version + 1, updated_at = ?"
        )
        params: list[Any] = [
            config.name,
            config.expression,
            config.timezone,
            config.payload,
            int(config.enabled),
            config.catch_up,
            config.source,
            now,
        ]
        if not keep_next:
            sets += ", next_run_at = ?"
            params.append(next_run_at)
        try:
            changed = await self._db.execute(
                f"UPDATE cron_schedules SET {sets} WHERE id = ? AND version = ?",
                (*params, schedule_id, version),
            )
        except IntegrityError as exc:
            raise _integrity(exc, "") from None
        return changed == 1

    async def delete(self, schedule_id: str) -> bool:
        return await self._db.execute("DELETE FROM cron_schedules WHERE id = ?", (schedule_id,)) == 1

    async def advance(
        self,
        schedule_id: str,
        version: int,
        *,
        expected_next: str,
        next_run_at: str,
        last_run_at: str | None,
        last_tick_at: str | None,
        last_job_id: str | None,
    ) -> bool:
        """After a due tick: the next one, and the run (when one was enqueued). Only if the schedule is still
        at ``version`` with ``expected_next`` (neither changed nor advanced meanwhile)."""
        params: tuple[Any, ...]
        if last_job_id is None:
            sql, params = (
                "UPDATE cron_schedules SET next_run_at = ? WHERE id = ? AND version = ? AND next_run_at = ?",
                (next_run_at, schedule_id, version, expected_next),
            )
        else:
            sql = (
                "UPDATE cron_schedules SET next_run_at = ?, last_run_at = ?, last_tick_at = ?, last_job_id = ?"
                " WHERE id = ? AND version = ? AND next_run_at = ?"
            )
            params = (
                next_run_at,
                last_run_at,
                last_tick_at,
                last_job_id,
                schedule_id,
                version,
                expected_next,
            )
        return await self._db.execute(sql, params) == 1

    async def record_run(
        self, schedule_id: str, *, last_run_at: str, last_tick_at: str | None, last_job_id: str
    ) -> bool:
        """A run started by hand (``POST .../cron/{cid}/run``): the last run, next_run_at unchanged."""
        return (
            await self._db.execute(
                "UPDATE cron_schedules SET last_run_at = ?, last_tick_at = ?, last_job_id = ? WHERE id = ?",
                (last_run_at, last_tick_at, last_job_id, schedule_id),
            )
            == 1
        )

    @staticmethod
    async def _check_count(tx: Transaction, function_id: str, max_count: int) -> None:
        row = await tx.fetchone("SELECT COUNT(*) FROM cron_schedules WHERE function_id = ?", (function_id,))
        count = int(row[0]) if row else 0
        if count >= max_count:
            raise TooMany(count)


def _integrity(exc: IntegrityError, function_id: str) -> Exception:
    if exc.kind == "foreign_key":
        return FunctionGone(function_id)
    if exc.kind == "unique":
        return NameTaken(str(exc))
    return exc
