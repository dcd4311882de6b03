"""SQL for the audit trail: rows go through the batched writer; reads filter and page; old rows are pruned.

Anonymous refused calls (no key or session was recognised, the answer is 4xx/5xx) get no row:
anyone who reaches the port could write them without bound. They are counted by reason in
``orva_audit_refused_total`` (``refused_reason``); docs/API.md says so."""

from __future__ import annotations

from typing import Any

from orvad.store.batch import BatchWriter
from orvad.store.db import Database
from orvad.store.paths import recorded_path

COLUMNS = (
    "id",
    "ts",
    "actor_kind",
    "actor_id",
    "actor_name",
    "method",
    "path",
    "target_id",
    "status",
    "request_id",
    "client_ip",
)
_INSERT = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
_CUT = ("path", "target_id")  # both come from the request's path: kept to RECORDED_PATH_MAX characters
_REASONS = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 413: "too_large", 429: "throttled"}


def refused_reason(status: int) -> str:
    """The ``reason`` label of ``orva_audit_refused_total`` for an anonymous call answered ``status``."""
    if status >= 500:
        return "error"
    return _REASONS.get(status, "invalid")


def insert(row: dict[str, Any]) -> tuple[str, list[Any]]:
    """The INSERT of one audit row, for a caller that writes it inside its own transaction."""
    return _INSERT, [recorded_path(row[c]) if c in _CUT and row[c] else row[c] for c in COLUMNS]


class AuditStore:
    def __init__(self, db: Database, batch: BatchWriter) -> None:
        self._db = db
        self._batch = batch

    def record(self, row: dict[str, Any]) -> None:
        self._batch.submit(*insert(row))

    async def list(
        self,
        *,
        actor_id: str | None,
        method: str | None,
        path_prefix: str | None,
        since: str | None,
        cursor: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT * FROM audit_log WHERE (?1 IS NULL OR actor_id = ?1) AND (?2 IS NULL OR method = ?2)"
            " AND (?3 IS NULL OR substr(path, 1, length(?3)) = ?3) AND (?4 IS NULL OR ts >= ?4)"
            " AND (?5 IS NULL OR id < ?5) ORDER BY id DESC LIMIT ?6",
            (actor_id, method, path_prefix, since, cursor, limit),
        )
        return [dict(r) for r in rows]

    async def delete_older_than(self, cutoff: str) -> int:
        """Prune rows whose ``ts`` is before ``cutoff`` (audit_retention_days); answers how many went."""
        return await self._db.execute("DELETE FROM audit_log WHERE ts < ?", (cutoff,))
