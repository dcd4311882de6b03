"""The storage interface every store module speaks: one ``Database`` protocol, two drivers.

- ``orvad.store.db.SqliteDatabase``: the embedded default, a file in the data dir (one writer
  connection that serialises transactions, one reader).
- ``orvad.store.postgres.driver.PgDatabase``: PostgreSQL for N nodes (``ORVA_DATABASE_URL``).

The store's SQL is written once, with SQLite's ``?``/``?N`` placeholders, in the dialect both accept
(tests/cluster/test_pg_statements.py checks every statement on PostgreSQL). Rows read by index and by
name (``row[0]``, ``row["id"]``, ``dict(row)``) on both. Every write (a transaction, ``execute``,
``executemany``, ``write_all``) serialises against every other write to the same database, on every
node (SQLite: one writer connection, ``BEGIN IMMEDIATE``; PostgreSQL: one transaction-scoped advisory
lock), so a store's read-then-write sequence means on N nodes what it means on one, and two nodes'
batches never deadlock. Reads never wait for it.

Errors: a unique, primary-key, foreign-key or check violation is ``IntegrityError`` on both drivers; a
value the database cannot store at all (a number past its range, a type it cannot bind) is ``ValueRefused``;
a full disk is ``orvad.errors.InsufficientStorage``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, TypeAlias

Driver = Literal["sqlite", "postgresql"]

# sqlite3.Row or asyncpg.Record: both read by index and by name, and dict() of either is the row by name
Row: TypeAlias = Any


IntegrityKind = Literal["unique", "foreign_key", "not_null", "check", "other"]


class IntegrityError(Exception):
    """A statement broke a constraint, on either driver: ``kind`` says which sort; for a unique (or primary
    key) violation, ``table`` and ``columns`` name the key that was taken."""

    def __init__(
        self, message: str, kind: IntegrityKind, table: str | None = None, columns: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.table = table
        self.columns = columns

    def taken(self, table: str, column: str) -> bool:
        """Whether this is a unique violation of a key of ``table`` that includes ``column``."""
        return self.kind == "unique" and self.table == table and column in self.columns


class ValueRefused(Exception):
    """A statement's value the database cannot store, whatever is in it (SQLite: an integer past 64 bits, a
    type it cannot bind; PostgreSQL: a data exception, SQLSTATE class 22): the same statement fails the same
    way every time, so a writer drops it (logged, counted) instead of retrying it."""


class DatabaseUnusable(Exception):
    """``Database.open`` could not reach or use the database (the message says why, never a password)."""


class Transaction(Protocol):
    """Statements inside one transaction: committed when its block ends, rolled back when it raises."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query (or of an INSERT/UPDATE/DELETE ... RETURNING), the rest read and dropped."""
        ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class Database(Protocol):
    driver: Driver
    schema_version: int
    storage_full_since: float | None

    @property
    def is_open(self) -> bool: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """One write transaction, serialised against every other one on this database (on every node)."""
        ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One write statement in its own transaction; the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    async def write_all(self, statements: Iterable[tuple[str, Any]]) -> None:
        """Statements as one transaction in one hand-over."""
        ...

    async def write_batch(self, groups: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        """The batched writer's path: each group's statement run for each of its rows, every group in one
        transaction, by the driver's bulk path (SQLite: multi-row INSERTs made on its writer's thread;
        PostgreSQL: binary COPY for a plain INSERT of many rows)."""
        ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def ping(self) -> None:
        """Raise unless a query can run (the health check)."""
        ...
