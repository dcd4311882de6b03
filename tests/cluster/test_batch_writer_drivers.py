"""The batched writer (orvad/store/batch.py) on both drivers.

- Its bulk path (``Database.write_batch``): SQLite's multi-row INSERTs; PostgreSQL's binary COPY for a plain
  INSERT of many rows, multi-row statements for the rest (an ON CONFLICT clause, a few rows). Every row
  arrives, with its values as written (a NUL in text as U+FFFD on PostgreSQL), deferred rows included.
- A row the database can never store is refused (logged, counted in rows_refused), and the rows queued before
  and after it are written. Before, such a row failed its whole batch at every retry, so nothing queued after
  it was ever recorded (the way the NUL character stopped a PostgreSQL orvad's execution records:
  tests/cluster/test_nul_values.py).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from orvad.store.batch import BatchWriter, DeferredRow
from orvad.store.db import SqliteDatabase
from orvad.store.postgres.driver import COPY_MIN_ROWS, PgDatabase, PgTransaction, plain_insert
from orvad.store.sql import Database, ValueRefused
from tests.helpers import until
from tests.pg import ThrowawayPostgres

INSERT = "INSERT INTO rows (id, n) VALUES (?, ?)"


class MadeRow(DeferredRow):
    """A deferred row: its values are made when its batch is written."""

    __slots__ = ("held_bytes", "id")

    def __init__(self, id: int) -> None:
        self.id, self.held_bytes = id, 64

    def make(self) -> tuple[Any, ...]:
        return (self.id, f"made {self.id}", None)


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
    await db.execute(
        "CREATE TABLE texts (id INTEGER PRIMARY KEY, t TEXT NOT NULL, b BLOB)".replace(
            "BLOB", "BYTEA" if request.param == "postgresql" else "BLOB"
        )
    )
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


def test_a_plain_insert_is_told_from_the_rest() -> None:
    assert plain_insert("INSERT INTO executions (id, a_b, c) VALUES (?, ?, ?)") == (
        "executions",
        ("id", "a_b", "c"),
    )
    for sql in (
        "INSERT INTO t (a) VALUES (?) ON CONFLICT DO NOTHING",  # COPY has no ON CONFLICT
        "INSERT INTO t (a, b) VALUES (?, 1)",  # a value that is not a parameter
        "INSERT INTO t (a, b) VALUES (?, ?); DELETE FROM t",
        "INSERT INTO t VALUES (?, ?)",  # no column list
        "UPDATE t SET a = ? WHERE b = ?",
    ):
        assert plain_insert(sql) is None, sql


async def test_a_batch_of_many_rows_arrives_whole_by_the_drivers_bulk_path(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies: list[tuple[str, int]] = []
    real_copy = PgTransaction.copy_rows

    async def counted(self: PgTransaction, table: str, columns: Any, rows: Any) -> None:
        rows = list(rows)
        copies.append((table, len(rows)))
        await real_copy(self, table, columns, rows)

    monkeypatch.setattr(PgTransaction, "copy_rows", counted)
    writer = BatchWriter(database, interval_s=0.01, max_batch=5000)
    text = "INSERT INTO texts (id, t, b) VALUES (?, ?, ?)"
    for i in range(1, 1001):
        writer.submit(text, (i, f"line {i}" + ("\x00nul" if i == 7 else ""), b"\x00\x01" if i == 8 else None))
    for i in range(1001, 1101):
        writer.submit(text, MadeRow(i))
    for i in range(1, 41):  # a clause after the values: never COPY; the repeats change nothing
        writer.submit("INSERT INTO rows (id, n) VALUES (?, ?) ON CONFLICT DO NOTHING", (i % 20, i))
    for i in range(100, 110):  # too few rows for COPY
        writer.submit(INSERT, (i, i))
    await writer.stop()  # writes everything queued, as one pass of the writer
    assert writer.rows_written == 1150 and writer.rows_refused == 0
    if isinstance(database, PgDatabase):
        assert copies == [("texts", 1100)] and 1100 >= COPY_MIN_ROWS > 10
    stored = {r[0]: (r[1], r[2]) for r in await database.fetchall("SELECT id, t, b FROM texts")}
    assert len(stored) == 1100 and stored[1] == ("line 1", None) and stored[1050] == ("made 1050", None)
    nul = "\ufffd" if isinstance(database, PgDatabase) else "\x00"  # PostgreSQL's text cannot hold NUL
    assert stored[7] == (f"line 7{nul}nul", None) and bytes(stored[8][1]) == b"\x00\x01"
    assert await ids(database) == [*range(20), *range(100, 110)]
    assert (await database.fetchone("SELECT n FROM rows WHERE id = 5"))[0] == 5  # the first of the repeats


async def test_a_refused_value_in_a_copied_group_leaves_the_other_rows_written(database: Database) -> None:
    writer = BatchWriter(database, interval_s=0.01, max_batch=5000)
    for i in range(1, 2 * COPY_MIN_ROWS + 1):
        writer.submit(INSERT, (i, 2**70 if i == 10 else i))
    await writer.stop()
    assert writer.rows_refused == 1 and writer.rows_written == 2 * COPY_MIN_ROWS - 1
    assert await ids(database) == [i for i in range(1, 2 * COPY_MIN_ROWS + 1) if i != 10]
