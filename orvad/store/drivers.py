"""Which driver a database URL means: SQLite in the data dir (no URL, the default) or PostgreSQL.

asyncpg is imported only by an orvad that uses PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from orvad.store.db import SqliteDatabase
from orvad.store.maintenance import Storage
from orvad.store.sql import Database

if TYPE_CHECKING:
    from orvad.store.postgres.storage import PgStorage


def database_for(url: str, data_dir: Path) -> Database:
    """The (unopened) database orvad uses: ``url`` is empty or a postgresql:// URL (orvad/config.py checks it)."""
    if not url:
        return SqliteDatabase(data_dir / "orva.db")
    from orvad.store.postgres.driver import PgDatabase

    return PgDatabase(url)


def storage_for(db: Database) -> Storage | PgStorage:
    """The database's figures (and, on SQLite, its vacuum) for GET /api/v1/system/storage."""
    if isinstance(db, SqliteDatabase):
        return Storage(db)
    from orvad.store.postgres.driver import PgDatabase
    from orvad.store.postgres.storage import PgStorage

    assert isinstance(db, PgDatabase)
    return PgStorage(db)
