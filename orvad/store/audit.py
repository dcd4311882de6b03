"""SQL for the audit trail: rows go through the batched writer; reads filter and page; old rows are pruned.

Anonymous refused calls (no key or session was recognised, the answer is 4xx/5xx) get no row:
anyone who reaches the port could write them without bound. They are counted by reason in
``orva_audit_refused_total`` (``refused_reason``); docs/API.md says so."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orvad.store.batch import BatchWriter
from orvad.store.paths import recorded_path
from orvad.store.sql import Database

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


# Control characters (C0, DEL, C1), line and paragraph separators and the bidirectional overrides: a decoded
# request path (%1B, %0A), a key's, channel's or OAuth client's name or a User-Agent may carry them, and a
# terminal showing the row (`orva activity`, `orva sessions list`) or a line-based log reader would obey them.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with each control or direction character written as its escape (``\\x1b``, ``\\u202e``)."""
    if _UNPRINTABLE.search(text) is None:
        return text
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


def refused_reason(status: int) -> str:
    """The ``reason`` label of ``orva_audit_refused_total`` for an anonymous call answered ``status``."""
    if status >= 500:
        return "error"
    return _REASONS.get(status, "invalid")


def insert(row: dict[str, Any]) -> tuple[str, list[Any]]:
    """The INSERT of one audit row, for a caller that writes it inside its own transaction; text columns
    are stored printable (``printable``), then the path ones cut."""
    values = [printable(row[c]) if isinstance(row[c], str) else row[c] for c in COLUMNS]
    return _INSERT, [recorded_path(v) if c in _CUT and v else v for c, v in zip(COLUMNS, values, strict=True)]


# Reads: API calls that changed nothing (?hide_reads=true leaves them out; MCP tool calls stay, reads or not).
READ_METHODS = ("GET", "HEAD", "OPTIONS")
_NOT_READ = f"method NOT IN ({', '.join(repr(m) for m in READ_METHODS)})"

# The activity feed's sources: the audit row's method tells them apart (docs/OPERATIONS.md "Activity feed").
SOURCE_METHODS = {"mcp": "MCP", "assistant": "AI", "cli": "CLI", "webhook": "WEBHOOK"}
SOURCES = ("api", *SOURCE_METHODS)
_METHOD_SOURCES = {method: source for source, method in SOURCE_METHODS.items()}


def source_of(method: str) -> str:
    """``api`` for an HTTP method, else the source its pseudo-method names (MCP -> mcp, ...)."""
    return _METHOD_SOURCES.get(method, "api")


def activity_row(row: dict[str, Any]) -> dict[str, Any]:
    """An audit row as the activity feed shows it: the stored columns plus ``source``."""
    return {**row, "source": source_of(row["method"])}


@dataclass(frozen=True)
class ActivityFilter:
    source: str | None = None
    actor_id: str | None = None
    q: str | None = None
    since: str | None = None
    until: str | None = None
    status_min: int | None = None
    hide_reads: bool = False


def _like(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, its own % and _ taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _activity_where(f: ActivityFilter, cursor: str | None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if f.source == "api":
        clauses.append(f"method NOT IN ({', '.join('?' for _ in SOURCE_METHODS)})")
        params.extend(SOURCE_METHODS.values())
    elif f.source is not None:
        clauses.append("method = ?")
        params.append(SOURCE_METHODS[f.source])
    if f.hide_reads:
        clauses.append(_NOT_READ)
    for clause, value in (
        ("actor_id = ?", f.actor_id),
        ("ts >= ?", f.since),
        ("ts < ?", f.until),
        ("status >= ?", f.status_min),
        ("id < ?", cursor),
    ):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if f.q:
        # lower() on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not (same rows on both)
        clauses.append(
            "("
            + " OR ".join(
                f"lower({c}) LIKE lower(?) ESCAPE '\\'" for c in ("path", "method", "actor_name", "target_id")
            )
            + ")"
        )
        params.extend([_like(f.q)] * 4)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class AuditStore:
    def __init__(self, db: Database, batch: BatchWriter) -> None:
        self._db = db
        self._batch = batch

    def record(self, row: dict[str, Any], after: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Queue one row; ``after`` gets the row as stored (paths cut) once it is committed."""
        sql, values = insert(row)
        if after is None:
            self._batch.submit(sql, values)
            return
        stored = dict(zip(COLUMNS, values, strict=True))
        self._batch.submit(sql, values, lambda: after(stored))

    async def activity(self, f: ActivityFilter, *, cursor: str | None, limit: int) -> list[dict[str, Any]]:
        """Audit rows as the activity feed, newest first (ids are UUIDv7: a cursor is the last id seen)."""
        where, params = _activity_where(f, cursor)
        rows = await self._db.fetchall(
            f"SELECT {', '.join(COLUMNS)} FROM audit_log{where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [activity_row(dict(r)) for r in rows]

    async def list(
        self,
        *,
        actor_id: str | None,
        method: str | None,
        path_prefix: str | None,
        since: str | None,
        cursor: str | None,
        limit: int,
        hide_reads: bool = False,
    ) -> list[dict[str, Any]]:
        reads = f" AND {_NOT_READ}" if hide_reads else ""
        rows = await self._db.fetchall(
            # CAST(? AS TEXT) IS NULL: PostgreSQL must know a parameter's type (docs/CLUSTER.md)
            "SELECT * FROM audit_log WHERE (CAST(?1 AS TEXT) IS NULL OR actor_id = ?1)"
            " AND (CAST(?2 AS TEXT) IS NULL OR method = ?2)"
            " AND (CAST(?3 AS TEXT) IS NULL OR substr(path, 1, length(?3)) = ?3)"
            " AND (CAST(?4 AS TEXT) IS NULL OR ts >= ?4)"
            f" AND (CAST(?5 AS TEXT) IS NULL OR id < ?5){reads} ORDER BY id DESC LIMIT ?6",
            (actor_id, method, path_prefix, since, cursor, limit),
        )
        return [dict(r) for r in rows]

    async def delete_older_than(self, cutoff: str) -> int:
        """Prune rows whose ``ts`` is before ``cutoff`` (audit_retention_days); answers how many went."""
        return await self._db.execute("DELETE FROM audit_log WHERE ts < ?", (cutoff,))
