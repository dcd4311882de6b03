"""SQL for executions and their logs: written through the batched writer, read with filters."""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

from orvad.store.batch import BatchWriter, Params
from orvad.store.captures import INSERT_REQUEST
from orvad.store.paths import recorded_path
from orvad.store.sql import Database

COLUMNS = (
    "id",
    "function_id",
    "function_name",
    "code_hash",
    "trigger",
    "method",
    "path",
    "status",
    "status_code",
    "cold_start",
    "duration_ms",
    "queue_ms",
    "request_bytes",
    "response_bytes",
    "error_code",
    "error_message",
    "started_at",
    "finished_at",
    "channel_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "trace_root",
    "outlier",
)
_INSERT = f"INSERT INTO executions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
_PATH = COLUMNS.index("path")
_REQUIRED = COLUMNS[: COLUMNS.index("channel_id")]
# optional in a row handed in: only a channel's tool call has a channel_id; the trace columns (issue 23)
_OPTIONAL = (("channel_id", None), ("trace_id", None), ("span_id", None), ("parent_span_id", None))
_ALL = itemgetter(*COLUMNS)  # a whole row (what ExecutionRecord.as_row gives) in one C call
_INSERT_LOG = "INSERT INTO execution_logs (execution_id, logs, truncated) VALUES (?, ?, ?)"


def _filters(
    function_id: str | None, status: str | None, since: str | None, until: str | None
) -> tuple[list[str], list[Any]]:
    """The conditions (fixed SQL text) and their parameters for the filters that are set."""
    given = (
        ("function_id = ?", function_id),
        ("status = ?", status),
        ("started_at >= ?", since),
        ("started_at < ?", until),
    )
    return [sql for sql, value in given if value is not None], [
        value for _, value in given if value is not None
    ]


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _row(row: Any) -> dict[str, Any]:
    values = dict(row)
    values["cold_start"] = bool(values["cold_start"])
    values["outlier"] = bool(values["outlier"])
    values["trace_root"] = bool(values["trace_root"])
    return values


class ExecutionStore:
    def __init__(self, db: Database, batch: BatchWriter) -> None:
        self._db = db
        self._batch = batch

    def record(
        self,
        execution: dict[str, Any],
        logs: str,
        truncated: bool,
        written: Callable[[], None] | None = None,
        request: Params | None = None,
    ) -> None:
        """Queue the execution and its log; never touches the database on the caller's path.
        `written` is called once both rows are committed. An invocation that printed nothing gets
        no log row (most do not print): one row to write instead of two. ``request``: its captured
        request's row (orvad/invoke/capture.py), queued right after the execution's."""
        row: Any
        try:
            row = _ALL(execution)  # booleans are bound as 1 and 0
        except KeyError:  # a row without the optional columns
            row = [execution[c] for c in _REQUIRED]
            row.extend(execution.get(c, default) for c, default in _OPTIONAL)
            row.append(execution.get("trace_root", True))
            row.append(execution.get("outlier", False))
        path = row[_PATH]
        if recorded_path(path) is not path:  # the invoke path cuts it already; the table's bound holds here
            row = list(row)
            row[_PATH] = recorded_path(path)
        if request is not None:
            # the captured request has no foreign key (0023): it names its execution's row as its parent, and
            # is not queued when that row was dropped (the writer's queue full)
            if not self._batch.submit(_INSERT, row):
                return
            key = row[0]
            if not logs and not truncated:
                self._batch.submit(INSERT_REQUEST, request, written, key)
                return
            self._batch.submit(INSERT_REQUEST, request, None, key)
        elif not logs and not truncated:
            self._batch.submit(_INSERT, row, written)
            return
        else:
            self._batch.submit(_INSERT, row)
        self._batch.submit(_INSERT_LOG, (execution["id"], logs, int(truncated)), written)

    async def summary(self, since: str) -> list[dict[str, Any]]:
        """Per function: invocations, errors (any status but success) and the last start since `since`."""
        rows = await self._db.fetchall(
            "SELECT function_id, COUNT(*), SUM(CASE WHEN status != 'success' THEN 1 ELSE 0 END), MAX(started_at) FROM executions"
            " WHERE started_at >= ? GROUP BY function_id",
            (since,),
        )
        return [
            {"function_id": r[0], "invocations": r[1], "errors": r[2], "last_invoked_at": r[3]} for r in rows
        ]

    async def list(
        self,
        *,
        function_id: str | None,
        status: str | None,
        since: str | None,
        until: str | None,
        cursor: str | None,
        limit: int,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Newest first: after ``cursor`` (an id) or ``offset`` rows in. The WHERE names only the filters
        given, so SQLite picks the index that fits (function_id: (function_id, id), a time range: started_at)."""
        where, params = _filters(function_id, status, since, until)
        if cursor is not None:
            where, params = [*where, "id < ?"], [*params, cursor]
        rows = await self._db.fetchall(
            f"SELECT * FROM executions{_where(where)} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_row(r) for r in rows]

    async def count(
        self, *, function_id: str | None, status: str | None, since: str | None, until: str | None
    ) -> int:
        """How many executions the same filters match, whatever the page: one COUNT over an index."""
        where, params = _filters(function_id, status, since, until)
        row = await self._db.fetchone(f"SELECT COUNT(*) FROM executions{_where(where)}", params)
        return int(row[0]) if row else 0

    async def get(self, execution_id: str) -> dict[str, Any] | None:
        row = await self._db.fetchone("SELECT * FROM executions WHERE id = ?", (execution_id,))
        return _row(row) if row else None

    async def logs(self, execution_id: str) -> tuple[str, bool] | None:
        """None for an unknown execution; an execution that printed nothing has no log row."""
        row = await self._db.fetchone(
            "SELECT l.logs, l.truncated FROM executions e LEFT JOIN execution_logs l"
            " ON l.execution_id = e.id WHERE e.id = ?",
            (execution_id,),
        )
        return (row[0] or "", bool(row[1])) if row else None

    async def delete_older_than(self, cutoff: str) -> int:
        return await self._db.execute("DELETE FROM executions WHERE started_at < ?", (cutoff,))
