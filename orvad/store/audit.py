"""SQL for the audit trail: rows go through the batched writer; reads filter and page."""

from __future__ import annotations

from typing import Any

from orvad.store.batch import BatchWriter
from orvad.store.db import Database

COLUMNS = ("id", "ts", "actor_kind", "actor_id", "actor_name", "method", "path", "target_id", "status",
           "request_id", "client_ip")
_INSERT = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"


class AuditStore:
    def __init__(self, db: Database, batch: BatchWriter) -> None:
        self._db = db
        self._batch = batch

    def record(self, row: dict[str, Any]) -> None:
        self._batch.submit(_INSERT, [row[c] for c in COLUMNS])

    async def list(self, *, actor_id: str | None, method: str | None, path_prefix: str | None,
                   since: str | None, cursor: str | None, limit: int) -> list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT * FROM audit_log WHERE (?1 IS NULL OR actor_id = ?1) AND (?2 IS NULL OR method = ?2)"
            " AND (?3 IS NULL OR substr(path, 1, length(?3)) = ?3) AND (?4 IS NULL OR ts >= ?4)"
            " AND (?5 IS NULL OR id < ?5) ORDER BY id DESC LIMIT ?6",
            (actor_id, method, path_prefix, since, cursor, limit))
        return [dict(r) for r in rows]
