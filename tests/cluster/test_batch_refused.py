"""The batched writer (orvad/store/batch.py) and a row the database can never store, on both drivers: the row
is refused (logged, counted in rows_refused), and the rows queued before and after it are written. Before,
such a row failed its whole batch at every retry, so nothing queued after it was ever recorded (the way the
NUL character stopped a PostgreSQL orvad's execution records: tests/cluster/test_nul_values.py)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from orvad.store.batch import BatchWriter, DeferredRow
from orvad.store.db import SqliteDatabase
from orvad.store.postgres.driver import PgDatabase
from orvad.store.sql import Database, ValueRefused
from tests.helpers import until
from tests.pg import ThrowawayPostgres

INSERT = "INSERT INTO rows (id, n) VALUES (?, ?)"


class BrokenRow(DeferredRow):
    """A deferred row whose values cannot be made (its ``make`` raises, the same way every time)."""

    __slots__ = ("held_bytes",)

    def __init__(self) -> None:
        self.held_bytes = 64

    def make(self) -> tuple[Any, ...]:
        raise TypeError("not serialisable")


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    db: Database
    if request.param == "sqlite":
        db = SqliteDatabase(tmp_path / "t.db")
    else:
        pg: ThrowawayPostgres = request.getfixturevalue("pg_cluster")  # a sync fixture (pg_dsn is async)
        name = f"t_{secrets.token_hex(6)}"
        admin = await asyncpg.connect(pg.dsn())
        await admin.execute(f'CREATE DATABASE "{name}"')
        db = PgDatabase(pg.dsn(name))
    await db.open()
    await db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, n BIGINT)")
    try:
        yield db
    finally:
        await db.close()
        if request.param == "postgresql":
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()


async def ids(db: Database) -> list[int]:
    return [row[0] for row in await db.fetchall("SELECT id FROM rows ORDER BY id")]


async def test_a_value_the_database_cannot_store_is_refused_and_the_rows_around_it_are_written(
    database: Database,
) -> None:
    with pytest.raises(ValueRefused):  # the driver-neutral error, on a plain write too
        await database.execute(INSERT, (99, 2**70))

    writer = BatchWriter(database, interval_s=0.01)
    announced: list[int] = []
    writer.submit(INSERT, (1, 1), lambda: announced.append(1))
    writer.submit(INSERT, (2, 2**70), lambda: announced.append(2))  # past 64 bits on both drivers
    writer.submit(INSERT, BrokenRow(), lambda: announced.append(0))
    writer.submit(INSERT, (3, 3), lambda: announced.append(3))
    writer.start()
    try:
        await until(lambda: writer.pending == 0 and writer.rows_written == 2, 10, "the good rows written")
        assert await ids(database) == [1, 3]
        assert writer.rows_refused == 2 and announced == [1, 3]

        writer.submit(INSERT, (4, 4))  # the writer goes on: nothing is kept for a retry
        await until(lambda: writer.rows_written == 3, 10, "a later row written")
        assert await ids(database) == [1, 3, 4] and writer.rows_refused == 2
    finally:
        await writer.stop()
