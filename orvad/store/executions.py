"""SQL for executions and their logs: written through the batched writer, read with filters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orvad.store.batch import BatchWriter
from orvad.store.db import Database
from orvad.store.paths import recorded_path

COLUMNS = ("id", "function_id", "function_name", "code_hash", "trigger", "method", "path", "status", "status_code",
           "cold_start", "duration_ms", "queue_ms", "request_bytes", "response_bytes", "error_code",
           "error_message", "started_at", "finished_at")
_INSERT = f"INSERT INTO executions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
_PATH = COLUMNS.index("path")
_INSERT_LOG = "INSERT INTO execution_logs (execution_id, logs, truncated) VALUES (?, ?, ?)"


def _row(row: Any) -> dict[str, Any]:
    values = dict(row)
    values["cold_start"] = bool(values["cold_start"])
    return values


class ExecutionStore:
    def __init__(self, db: Database, batch: BatchWriter) -> None:
        self._db = db
        self._batch = batch

    def record(self, execution: dict[str, Any], logs: str, truncated: bool,
               written: Callable[[], None] | None = None) -> None:
        """Queue the execution and its log; never touches the database on the caller's path.
        `written` is called once both rows are committed. An invocation that printed nothing gets
        no log row (most do not print): one row to write instead of two."""
        row: list[Any] = [execution[c] if c != "cold_start" else int(execution[c]) for c in COLUMNS]
        row[_PATH] = recorded_path(row[_PATH])  # the invoke path cuts it already; the table's bound holds here
        if not logs and not truncated:
            self._batch.submit(_INSERT, row, written)
            return
        self._batch.submit(_INSERT, row)
        self._batch.submit(_INSERT_LOG, (execution["id"], logs, int(truncated)), written)

    async def summary(self, since: str) -> list[dict[str, Any]]:
        """Per function: invocations, errors (any status but success) and the last start since `since`."""
        rows = await self._db.fetchall(
            "SELECT function_id, COUNT(*), SUM(status != 'success'), MAX(started_at) FROM executions"
            " WHERE started_at >= ? GROUP BY function_id", (since,))
        return [{"function_id": r[0], "invocations": r[1], "errors": r[2], "last_invoked_at": r[3]} for r in rows]

    async def list(self, *, function_id: str | None, status: str | None, since: str | None, until: str | None,
                   cursor: str | None, limit: int) -> list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT * FROM executions WHERE (?1 IS NULL OR function_id = ?1) AND (?2 IS NULL OR status = ?2)"
            " AND (?3 IS NULL OR started_at >= ?3) AND (?4 IS NULL OR started_at < ?4)"
            " AND (?5 IS NULL OR id < ?5) ORDER BY id DESC LIMIT ?6",
            (function_id, status, since, until, cursor, limit))
        return [_row(r) for r in rows]

    async def get(self, execution_id: str) -> dict[str, Any] | None:
        row = await self._db.fetchone("SELECT * FROM executions WHERE id = ?", (execution_id,))
        return _row(row) if row else None

    async def logs(self, execution_id: str) -> tuple[str, bool] | None:
        """None for an unknown execution; an execution that printed nothing has no log row."""
        row = await self._db.fetchone("SELECT l.logs, l.truncated FROM executions e LEFT JOIN execution_logs l"
                                      " ON l.execution_id = e.id WHERE e.id = ?", (execution_id,))
        return (row[0] or "", bool(row[1])) if row else None

    async def delete_older_than(self, cutoff: str) -> int:
        return await self._db.execute("DELETE FROM executions WHERE started_at < ?", (cutoff,))
