"""The PostgreSQL migrations and their runner.

The rule (docs/CLUSTER.md "Migrations"): SQLite's numbered migrations (orvad/store/migrations/) stay the
one list of schema versions. PostgreSQL's folder (orvad/store/postgres/migrations/) starts with a baseline,
``<BASELINE>_baseline.sql``, the schema SQLite's 0001..BASELINE make, written for PostgreSQL; after it, every
SQLite migration has a twin with the same number and file name. A fresh database gets the baseline and
records versions 1..BASELINE under SQLite's names, so ``schema_migrations`` reads the same on both drivers.
tests/cluster/test_pg_schema.py compares the schemas both runners make.

N orvad nodes may start at once: the runner holds a session advisory lock while it migrates, and each
migration is one transaction (PostgreSQL's DDL is transactional).
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import asyncpg

from orvad.store.db import migration_files as sqlite_migration_files

log = logging.getLogger(__name__)

BASELINE = 22
# pg_advisory_lock key (a bigint): "orvamigr" in ASCII, the same on every node of a cluster
LOCK_KEY = 0x6F72_7661_6D69_6772

SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL DEFAULT (to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')))"
)


def migration_files() -> list[tuple[int, str, str]]:
    """(number, name, sql) of PostgreSQL's migrations, checked against SQLite's: the baseline first, then
    one twin, same number and name, for each SQLite migration after it (and none it lacks)."""
    folder = resources.files("orvad.store.postgres") / "migrations"
    found = sorted(
        (int(entry.name.split("_", 1)[0]), entry.name, entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    check_twins([name for _, name, _ in found], [name for _, name, _ in sqlite_migration_files()])
    return found


def check_twins(postgres: list[str], sqlite: list[str]) -> None:
    """Raise unless ``postgres`` (file names, in order) is the baseline then a twin of each of ``sqlite``'s
    migrations after it, no more and no less."""
    baseline = f"{BASELINE:04d}_baseline.sql"
    if not postgres or postgres[0] != baseline:
        raise RuntimeError(f"the PostgreSQL migrations must start with {baseline}")
    expected = [name for name in sqlite if int(name.split("_", 1)[0]) > BASELINE]
    if postgres[1:] != expected:
        raise RuntimeError(
            f"the PostgreSQL migrations after the baseline {postgres[1:]} are not SQLite's {expected}:"
            " every SQLite migration after the baseline needs a twin of the same name in"
            " orvad/store/postgres/migrations/ (docs/CLUSTER.md, Migrations)"
        )


async def migrate(
    conn: asyncpg.Connection[Any] | asyncpg.pool.PoolConnectionProxy[Any], upto: int | None = None
) -> int:
    """Bring the database ``conn`` is connected to up to the latest version (or ``upto``, for tests of one
    migration on an older schema); returns the version it is at."""
    files = migration_files()
    sqlite_names = {number: name for number, name, _ in sqlite_migration_files()}
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(SCHEMA_MIGRATIONS)
        current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"))
        if 0 < current < BASELINE:
            raise RuntimeError(f"a PostgreSQL database at version {current}, below the baseline {BASELINE}")
        for number, name, sql in files:
            if number <= current or (upto is not None and number > upto):
                continue
            async with conn.transaction():
                await conn.execute(sql)  # no arguments: the simple protocol, several statements at once
                if number == BASELINE:
                    versions = [(n, sqlite_names[n]) for n in range(1, BASELINE + 1)]
                else:
                    versions = [(number, name)]
                await conn.executemany(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", versions
                )
            log.info("applied migration", extra={"migration": name, "driver": "postgresql"})
            current = number
        return current
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
