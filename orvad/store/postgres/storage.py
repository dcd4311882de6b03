"""GET /api/v1/system/storage's database figures on PostgreSQL; no vacuum from orvad (autovacuum does it)."""

from __future__ import annotations

import asyncio
from typing import Any

from orvad.errors import SqliteOnly
from orvad.store.maintenance import Mode, VacuumRun
from orvad.store.postgres.driver import PgDatabase
from orvad.urls import redact_url

_TABLES = (
    "SELECT relname AS name, pg_total_relation_size(relid) AS bytes FROM pg_stat_user_tables"
    " WHERE schemaname = current_schema() ORDER BY pg_total_relation_size(relid) DESC, relname"
)


class PgStorage:
    """The same shape as ``orvad.store.maintenance.Storage``: per table its rows (counted, as on SQLite)
    and bytes (indexes and TOAST included), and the database's size."""

    current: VacuumRun | None = None
    running = False

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    async def stats(self) -> dict[str, Any]:
        tables = []
        for r in await self._db.fetchall(_TABLES):
            name = str(r["name"])
            quoted = '"' + name.replace('"', '""') + '"'
            count = await self._db.fetchone(f"SELECT COUNT(*) FROM {quoted}")
            tables.append({"name": name, "rows": int(count[0]) if count else 0, "bytes": int(r["bytes"])})
        size = await self._db.fetchone("SELECT pg_database_size(current_database())")
        return {
            "driver": "postgresql",
            "path": redact_url(self._db.dsn),
            "bytes": int(size[0]) if size is not None else 0,
            "tables": tables,
        }

    def start_vacuum(self, mode: Mode | None) -> asyncio.Task[None]:
        raise SqliteOnly(
            "this orvad's database is PostgreSQL (ORVA_DATABASE_URL): orvad vacuums only its embedded SQLite file",
            hint="PostgreSQL's autovacuum reclaims space; run VACUUM (or VACUUM FULL) in psql to force it",
        )

    async def close(self) -> None:
        return None
