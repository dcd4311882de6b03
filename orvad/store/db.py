"""The SQLite driver (the embedded default): one writer connection that serialises transactions, one
reader, migrations. It satisfies ``orvad.store.sql.Database``.

aiosqlite serialises statements per connection but not transactions, so every write goes
through ``SqliteDatabase.transaction()`` which holds an asyncio lock and uses ``BEGIN IMMEDIATE``.
WAL lets the reader run while the writer commits.

A write that finds the disk full (SQLITE_FULL, ENOSPC, EDQUOT) raises ``InsufficientStorage``
(507) here, at the source, and ``storage_full_since`` says so until a write commits again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from orvad.errors import InsufficientStorage, is_disk_full
from orvad.store.batch import multi_row
from orvad.store.sql import Driver, IntegrityError, IntegrityKind, Row, ValueRefused

log = logging.getLogger(__name__)
T = TypeVar("T")

PRAGMAS = (
    # before any table exists (a new file): freed pages can be returned in steps (store/maintenance.py);
    # an older file keeps its mode until its first vacuum
    "PRAGMA auto_vacuum=INCREMENTAL",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
)


def migration_files() -> list[tuple[int, str, str]]:
    """(number, name, sql) for every numbered migration shipped with orvad, in order."""
    folder = resources.files("orvad.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text()))
    found.sort()
    numbers = [n for n, _, _ in found]
    if numbers != list(range(1, len(numbers) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..n without gaps: {numbers}")
    return found


def integrity_error(exc: sqlite3.IntegrityError) -> IntegrityError:
    """SQLite's constraint failure as the driver-neutral one ("UNIQUE constraint failed: t.a, t.b")."""
    text = str(exc)
    kinds: dict[str, IntegrityKind] = {
        "UNIQUE": "unique",
        "PRIMARY KEY": "unique",
        "FOREIGN KEY": "foreign_key",
        "NOT NULL": "not_null",
        "CHECK": "check",
    }
    kind: IntegrityKind = next((k for prefix, k in kinds.items() if text.startswith(prefix)), "other")
    table: str | None = None
    columns: tuple[str, ...] = ()
    if kind == "unique" and ": " in text:
        names = [name.strip() for name in text.split(": ", 1)[1].split(",")]
        table = names[0].split(".", 1)[0]
        columns = tuple(name.split(".", 1)[-1] for name in names)
    return IntegrityError(text, kind, table, columns)


# what sqlite3 raises for a value it cannot store or bind: an int past 64 bits, "string or blob too big",
# "Error binding parameter 1: type 'dict' is not supported" (other ProgrammingErrors, a closed connection
# among them, are not about a value)
_VALUE_ERRORS = (OverflowError, sqlite3.DataError, sqlite3.ProgrammingError)


def refuses_value(exc: BaseException) -> bool:
    """Whether ``exc`` is sqlite3 refusing a statement's value (``ValueRefused``)."""
    return isinstance(exc, OverflowError | sqlite3.DataError) or (
        isinstance(exc, sqlite3.ProgrammingError) and str(exc).startswith("Error binding parameter")
    )


class SqliteTransaction:
    """Statements on the writer connection inside ``SqliteDatabase.transaction()``; each is one job on
    the connection's thread (a query's rows are read to the end in it)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            # one hand-over to the connection's thread; a write without RETURNING is stepped to its end
            # there, so its cursor holds nothing open (a RETURNING statement goes through fetchone/fetchall)
            cur = await self._conn.execute(sql, params)
            return cur.rowcount
        except sqlite3.IntegrityError as exc:
            raise integrity_error(exc) from exc
        except _VALUE_ERRORS as exc:
            if refuses_value(exc):
                raise ValueRefused(str(exc)) from exc
            raise

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            await self._conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise integrity_error(exc) from exc
        except _VALUE_ERRORS as exc:
            if refuses_value(exc):
                raise ValueRefused(str(exc)) from exc
            raise

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        try:
            return list(await self._conn.execute_fetchall(sql, params))
        except sqlite3.IntegrityError as exc:
            raise integrity_error(exc) from exc


class SqliteDatabase:
    driver: Driver = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self.schema_version = 0
        self.storage_full_since: float | None = None  # loop time of the first write that found the disk full

    @property
    def is_open(self) -> bool:
        return self._writer is not None and self._reader is not None

    async def open(self) -> None:
        self._writer = await self._connect()
        await self._migrate()
        self._reader = await self._connect()

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        for pragma in PRAGMAS:
            await conn.execute(pragma)
        return conn

    async def _migrate(self) -> None:
        async with self.transaction() as tx:
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
            )
            row = await tx.fetchone("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            current = row[0] if row else 0
        for number, name, sql in migration_files():
            if number <= current:
                continue
            async with self.transaction() as tx:
                # executescript would COMMIT our transaction first; run statement by statement instead.
                for statement in _split_sql(sql):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (number, name)
                )
            log.info("applied migration", extra={"migration": name})
            current = number
        self.schema_version = current

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTransaction]:
        """One serialised write transaction on the writer connection."""
        conn = self._require(self._writer)
        async with self._write_lock:
            try:
                # A statement, once handed to the connection's thread, runs even if its caller is cancelled;
                # so BEGIN and COMMIT are inside the try, and any failure ends in a ROLLBACK queued after
                # them: the lock is never released with a transaction left open on the connection.
                await conn.execute("BEGIN IMMEDIATE")
                yield SqliteTransaction(conn)
                await conn.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):  # nothing open (BEGIN itself failed): nothing to undo
                    await conn.execute("ROLLBACK")
                self._raise_if_full(exc)
                raise
            self.storage_full_since = None

    async def write_batch(self, groups: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        """Multi-row INSERTs (``multi_row``), assembled on the writer's thread, in one transaction."""
        await self.write_all(statement for sql, rows in groups for statement in multi_row(sql, rows))

    async def write_all(self, statements: Iterable[tuple[str, Any]]) -> None:
        """Run write statements as one transaction in one job on the writer's thread (an iterator is
        consumed there: the batched writer's statements are assembled off the event loop).

        One hand-over to the thread and back, instead of one per statement: the batched writer's
        path, taken thousands of times a second under load, where every hand-over costs the event
        loop's thread a GIL switch. The transaction begins and ends inside the job, so a cancelled
        caller can never leave it open.
        """
        conn = self._require(self._writer)

        def run(raw: sqlite3.Connection) -> None:
            raw.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    raw.execute(sql, params)
                raw.execute("COMMIT")
            except BaseException:
                with suppress(sqlite3.Error):  # nothing open (BEGIN itself failed): nothing to undo
                    raw.execute("ROLLBACK")
                raise

        async with self._write_lock:
            # aiosqlite has no public "run this on the connection's thread"; _execute is how its
            # own methods do it (aiosqlite 0.17 to 0.22)
            try:
                await conn._execute(run, conn._conn)  # type: ignore[no-untyped-call]
            except sqlite3.IntegrityError as exc:
                raise integrity_error(exc) from exc
            except Exception as exc:
                if refuses_value(exc):
                    raise ValueRefused(str(exc)) from exc
                self._raise_if_full(exc)
                raise
            self.storage_full_since = None

    async def run_on_writer(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``job`` on the writer connection's thread holding the write lock, outside any transaction
        (VACUUM, checkpoints: store/maintenance.py); every other write waits until it returns."""
        conn = self._require(self._writer)
        async with self._write_lock:
            try:
                return await conn._execute(job, conn._conn)  # type: ignore[no-untyped-call,no-any-return]
            except Exception as exc:
                self._raise_if_full(exc)
                raise

    def _raise_if_full(self, exc: BaseException) -> None:
        """Turn a write that found the disk full into InsufficientStorage (the API's 507)."""
        if isinstance(exc, InsufficientStorage) or not is_disk_full(exc):
            return
        if self.storage_full_since is None:
            self.storage_full_since = asyncio.get_running_loop().time()
            log.error(
                "the database cannot write: the disk holding the data dir is full",
                extra={"path": str(self.path), "error": str(exc)},
            )
        raise InsufficientStorage(f"the database could not be written: {exc}") from exc

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement in its own transaction; returns the number of rows changed."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    # Each read runs to its end in one job on the reader's thread. A cursor stepped in one job and
    # closed in a later one leaves its statement active in between; concurrent reads then overlap,
    # the reader's read transaction never ends, and it goes on seeing an old snapshot (a
    # deployment inserted a moment ago was "not found" by its own build).
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query meant to return at most one (the whole result is read)."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self._require(self._reader).execute_fetchall(sql, params))

    async def ping(self) -> None:
        """Raise unless the reader can run a query (the health check)."""
        await self.fetchone("SELECT 1")

    @staticmethod
    def _require(conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if conn is None:
            raise RuntimeError("database is not open")
        return conn


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements; sqlite3.complete_statement knows about comments and strings."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buffer.splitlines()
    ):
        raise RuntimeError(f"migration ends with an incomplete statement: {buffer.strip()[:80]!r}")
    return statements
