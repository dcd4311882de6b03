"""SQL for traces: user spans (written through the batched writer) and the reads over executions and spans
that GET /api/v1/traces answers from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from orvad.store.batch import BatchWriter
from orvad.store.sql import Database

SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "execution_id",
    "function_id",
    "name",
    "start_ms",
    "duration_ms",
    "status",
    "attributes",
)
_INSERT_SPAN = (
    f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({', '.join('?' for _ in SPAN_COLUMNS)})"
)
# an SDK call's span (kind sdk; the column's default is user)
_INSERT_SDK_SPAN = (
    f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}, kind)"
    f" VALUES ({', '.join('?' for _ in SPAN_COLUMNS)}, 'sdk')"
)
# a trace failed when any of its executions did not succeed or any user span says error
_FAILED = (
    "(e.status != 'success'"
    " OR EXISTS (SELECT 1 FROM executions c WHERE c.trace_id = e.trace_id AND c.status != 'success')"
    " OR EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = e.trace_id AND s.status = 'error'))"
)
_EXECUTION_FIELDS = (
    "id, function_id, function_name, trigger, method, path, status, status_code, cold_start, duration_ms,"
    " started_at, finished_at, error_code, span_id, parent_span_id, outlier"
)


class TraceStore:
    def __init__(self, db: Database, batch: BatchWriter) -> None:
        self._db = db
        self._batch = batch

    def record_spans(self, rows: Sequence[Sequence[Any]]) -> None:
        """Queue user spans (values in SPAN_COLUMNS' order); never touches the database on the caller's path."""
        for row in rows:
            self._batch.submit(_INSERT_SPAN, row)

    def record_sdk_span(self, row: Sequence[Any]) -> None:
        """Queue one SDK call's span (SPAN_COLUMNS' order), kind ``sdk``; no database work on the caller's path."""
        self._batch.submit(_INSERT_SDK_SPAN, row)

    async def entries(
        self,
        *,
        function_id: str | None,
        status: str | None,
        since: str | None,
        until: str | None,
        cursor: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Executions that entered a trace from outside orvad, newest first (``status``: ok | error, the
        trace's as a whole)."""
        where, params = ["e.trace_root = 1", "e.trace_id IS NOT NULL"], []
        for sql, value in (
            ("e.function_id = ?", function_id),
            ("e.started_at >= ?", since),
            ("e.started_at < ?", until),
            ("e.id < ?", cursor),
        ):
            if value is not None:
                where.append(sql)
                params.append(value)
        if status == "error":
            where.append(_FAILED)
        elif status == "ok":
            where.append(f"NOT {_FAILED}")
        rows = await self._db.fetchall(
            "SELECT e.id, e.trace_id, e.function_id, e.function_name, e.trigger, e.status, e.started_at,"
            f" e.duration_ms FROM executions e WHERE {' AND '.join(where)} ORDER BY e.id DESC LIMIT ?",
            (*params, limit),
        )
        return [dict(r) for r in rows]

    async def summaries(self, trace_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per trace: its executions (count, failures, the first start, every start and duration to find
        the last end) and its user spans (count, errors, the first start and last end in Unix ms)."""
        if not trace_ids:
            return {}
        marks = ", ".join("?" for _ in trace_ids)
        out: dict[str, dict[str, Any]] = {
            t: {"executions": [], "spans": 0, "span_errors": 0, "span_start": None, "span_end": None}
            for t in trace_ids
        }
        for row in await self._db.fetchall(
            f"SELECT trace_id, started_at, duration_ms, status FROM executions WHERE trace_id IN ({marks})",
            tuple(trace_ids),
        ):
            out[row[0]]["executions"].append((row[1], row[2], row[3]))
        for row in await self._db.fetchall(
            "SELECT trace_id, COUNT(*), SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), MIN(start_ms),"
            " MAX(start_ms + duration_ms)"
            f" FROM spans WHERE trace_id IN ({marks}) GROUP BY trace_id",
            tuple(trace_ids),
        ):
            entry = out[row[0]]
            entry["spans"], entry["span_errors"], entry["span_start"], entry["span_end"] = (
                row[1],
                row[2] or 0,
                row[3],
                row[4],
            )
        return out

    async def executions(self, trace_id: str, limit: int) -> list[dict[str, Any]]:
        """A trace's executions, oldest first (at most ``limit``)."""
        rows = await self._db.fetchall(
            f"SELECT {_EXECUTION_FIELDS} FROM executions WHERE trace_id = ? ORDER BY id LIMIT ?",
            (trace_id, limit),
        )
        return [dict(r) for r in rows]

    async def spans(self, trace_id: str, limit: int) -> list[dict[str, Any]]:
        """A trace's user spans and SDK call spans (``kind``), in the order they were written (at most
        ``limit``)."""
        rows = await self._db.fetchall(
            f"SELECT {', '.join(SPAN_COLUMNS)}, kind FROM spans WHERE trace_id = ? ORDER BY id LIMIT ?",
            (trace_id, limit),
        )
        return [dict(r) for r in rows]
