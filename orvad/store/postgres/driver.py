"""The PostgreSQL driver (``ORVA_DATABASE_URL=postgresql://...``): it satisfies ``orvad.store.sql.Database``.

The store's SQL, written with SQLite's ``?`` placeholders, runs unchanged: ``translate`` turns each ``?``
outside literals, quoted names and comments into ``$1``, ``$2``... (cached per statement). Rows are asyncpg
``Record``s, which read by index and by name like ``sqlite3.Row``.

Writes serialise as on SQLite, on every node: each write transaction first takes one transaction-scoped
advisory lock (``WRITE_LOCK``), so a store's read-then-write sequence (the next version number, a unique
check, a claim) means on N nodes what it means on one, and two nodes' batches never deadlock. Reads take
no lock and see the last committed state (READ COMMITTED).

PostgreSQL infers every parameter's type: ``? IS NULL`` alone is refused (write ``CAST(? AS TEXT)``), and
asyncpg checks Python types strictly (an ``int`` for a TEXT column is an error).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, NoReturn

import asyncpg

from orvad.errors import InsufficientStorage
from orvad.store.batch import multi_row
from orvad.store.postgres.migrate import migrate
from orvad.store.sql import DatabaseUnusable, Driver, IntegrityError, IntegrityKind, Row, ValueRefused
from orvad.urls import redact_url

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key (a bigint) every write transaction takes: "orvawrit" in ASCII
WRITE_LOCK = 0x6F72_7661_7772_6974
_TAKE_WRITE_LOCK = f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"

_INTEGRITY: dict[type[Exception], IntegrityKind] = {
    asyncpg.UniqueViolationError: "unique",
    asyncpg.ForeignKeyViolationError: "foreign_key",
    asyncpg.NotNullViolationError: "not_null",
    asyncpg.CheckViolationError: "check",
}
_KEY = re.compile(r"Key \((?P<columns>[^)]*)\)=")


def integrity_error(exc: asyncpg.IntegrityConstraintViolationError) -> IntegrityError:
    """PostgreSQL's constraint violation as the driver-neutral one (the key's table and columns named)."""
    kind: IntegrityKind = next((k for cls, k in _INTEGRITY.items() if isinstance(exc, cls)), "other")
    found = _KEY.match(getattr(exc, "detail", None) or "")
    columns = tuple(c.strip().strip('"') for c in found.group("columns").split(",")) if found else ()
    return IntegrityError(str(exc), kind, getattr(exc, "table_name", None), columns)


# a string literal, a quoted name, a line or block comment, a dollar-quoted body, or a placeholder
_TOKENS = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/|(\$[A-Za-z_]*\$).*?\1|(\?)(\d*)""",
    re.S,
)


@lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """SQLite's placeholders as PostgreSQL's: ``?NNN`` is ``$NNN`` (the same parameter wherever it is
    repeated), and a bare ``?`` is one more than the largest number given so far, as SQLite numbers them.
    Anything inside a literal, a quoted name or a comment is left as it is. A statement with ``$n`` of its
    own is refused (no mixing)."""
    count = 0

    def number(found: re.Match[str]) -> str:
        nonlocal count
        if found.group(2) is None:
            return found.group(0)
        if found.group(3):
            count = max(count, int(found.group(3)))
            return f"${int(found.group(3))}"
        count += 1
        return f"${count}"

    out = _TOKENS.sub(number, sql)
    if count and re.search(r"\$\d", _TOKENS.sub(lambda m: "" if m.group(2) else " ", sql)):
        raise ValueError(f"a statement mixes ? and $n placeholders: {sql[:80]!r}")
    return out


# text compared byte by byte, as SQLite's BINARY does: KV keys listed "ordered bytewise", cursors over ids
BYTEWISE_COLLATIONS = ("C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic")


async def check_collation(conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]) -> None:
    """Refuse a database whose default collation is not bytewise: orvad's lists and cursors order text as
    SQLite does, byte by byte, and a locale's collation (en_US.UTF-8) orders and compares differently."""
    row = await conn.fetchrow(
        "SELECT datcollate, to_jsonb(d) ->> 'datlocprovider' FROM pg_database d WHERE datname = current_database()"
    )
    assert row is not None
    collate, provider = str(row[0]), row[1]  # provider: PostgreSQL 15+, 'c' libc or 'i' ICU
    if provider == "i":
        collate = "an ICU locale"
    if collate not in BYTEWISE_COLLATIONS:
        raise DatabaseUnusable(
            f"the database's collation is {collate!r}; orvad needs bytewise text order (C): create it with "
            "CREATE DATABASE orva TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
            "(docs/CLUSTER.md, Text order)"
        )


def _rowcount(status: str) -> int:
    """asyncpg's command status ("UPDATE 3", "INSERT 0 1", "DELETE 0") -> the rows it changed."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


# PostgreSQL's text cannot hold the NUL character (SQLite's can): a NUL in a value orvad stores (a
# function's log output, a request path, a name a client sent) is stored as U+FFFD, the replacement
# character, instead of failing the write (docs/CLUSTER.md "The NUL character"). One
# memchr per text value; the values are left as they are when none holds a NUL.
NUL_STANDIN = "\ufffd"


def storable(params: Sequence[Any]) -> Sequence[Any]:
    """``params`` with each NUL in a text value replaced by U+FFFD (the same object when there is none)."""
    if not any(type(p) is str and "\x00" in p for p in params):
        return params
    return [p.replace("\x00", NUL_STANDIN) if type(p) is str else p for p in params]


# From this many rows a plain INSERT goes by COPY (bench/pg_bulk.py; docs/CLUSTER.md, "The batched writer's
# bulk path"): at 13 rows COPY and a multi-row INSERT cost about the same, at 100 rows COPY took 13 us a row
# against 17, at 500 rows 8.5 against 12.
COPY_MIN_ROWS = 32
_PLAIN_INSERT = re.compile(r"\s*INSERT INTO (\w+) \(([\w, ]+)\) VALUES \(\?(?:, \?)*\)\s*", re.IGNORECASE)


@lru_cache(maxsize=256)
def plain_insert(sql: str) -> tuple[str, tuple[str, ...]] | None:
    """(table, columns) of ``INSERT INTO t (a, b) VALUES (?, ?)`` with nothing after it (COPY can take its rows),
    else None (an ``ON CONFLICT`` clause, an expression among the values, another statement)."""
    found = _PLAIN_INSERT.fullmatch(sql)
    if found is None:
        return None
    columns = tuple(c.strip() for c in found.group(2).split(","))
    return (found.group(1), columns) if len(columns) == sql.count("?") else None


class PgTransaction:
    """Statements on one connection inside one write transaction, with SQLite's placeholders."""

    def __init__(self, conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return _rowcount(await self._conn.execute(translate(sql), *storable(params)))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(translate(sql), (storable(row) for row in rows))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        return await self._conn.fetchrow(translate(sql), *storable(params))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(await self._conn.fetch(translate(sql), *storable(params)))

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """The bulk path (COPY ... FROM STDIN, binary): the batched writer's plain INSERTs of many rows."""
        records = [tuple(storable(row)) for row in rows]
        try:
            await self._conn.copy_records_to_table(table, records=records, columns=list(columns))
        except (OverflowError, TypeError, ValueError) as exc:  # a value COPY's encoder cannot write
            raise ValueRefused(f"COPY into {table}: {exc}") from exc


class PgDatabase:
    """A pool of connections to one PostgreSQL database, migrated on open."""

    driver: Driver = "postgresql"

    def __init__(self, dsn: str, min_size: int = 2, max_size: int = 10, timeout_s: float = 10.0) -> None:
        self.dsn = dsn
        self._sizes = (min(min_size, max_size), max_size)
        self._timeout_s = timeout_s
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self.schema_version = 0
        self.storage_full_since: float | None = None

    def __repr__(self) -> str:
        return f"PgDatabase({redact_url(self.dsn)!r})"

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self) -> None:
        where = redact_url(self.dsn)
        try:
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._sizes[0],
                max_size=self._sizes[1],
                timeout=self._timeout_s,
                command_timeout=self._timeout_s * 3,
            )
        except (TimeoutError, OSError) as exc:
            raise DatabaseUnusable(
                f"cannot reach PostgreSQL at {where}: {exc or type(exc).__name__}"
                " (is the server running, and does ORVA_DATABASE_URL name its host and port?)"
            ) from None
        except asyncpg.PostgresError as exc:  # wrong password, no such database or role
            raise DatabaseUnusable(f"PostgreSQL at {where} refused orvad: {exc}") from None
        assert pool is not None
        try:
            async with pool.acquire() as conn:
                await check_collation(conn)
                self.schema_version = await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _require(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise RuntimeError("database is not open")
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgTransaction]:
        """One write transaction on one pooled connection, serialised with every other write on every node:
        committed when the block ends, rolled back when it raises."""
        try:
            async with self._require().acquire() as conn, conn.transaction():
                await conn.execute(_TAKE_WRITE_LOCK)
                yield PgTransaction(conn)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise integrity_error(exc) from exc
        except asyncpg.DataError as exc:  # SQLSTATE class 22, or a value asyncpg cannot encode for its type
            raise ValueRefused(str(exc)) from exc
        except asyncpg.DiskFullError as exc:
            self._full(exc)
        self.storage_full_since = None

    def _full(self, exc: Exception) -> NoReturn:
        if self.storage_full_since is None:
            self.storage_full_since = asyncio.get_running_loop().time()
            log.error("the database cannot write: its server's disk is full", extra={"error": str(exc)})
        raise InsufficientStorage(f"the database could not be written: {exc}") from exc

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One write statement in its own transaction; returns the number of rows changed."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def write_all(self, statements: Iterable[tuple[str, Any]]) -> None:
        """Run write statements as one transaction."""
        async with self.transaction() as tx:
            for sql, params in statements:
                await tx.execute(sql, params)

    async def write_batch(self, groups: Sequence[tuple[str, Sequence[Sequence[Any]]]]) -> None:
        """The batched writer's path, in one transaction: a plain INSERT (no clause after its values) of at
        least ``COPY_MIN_ROWS`` rows by binary COPY, anything else as multi-row statements."""
        async with self.transaction() as tx:
            for sql, rows in groups:
                target = plain_insert(sql) if len(rows) >= COPY_MIN_ROWS else None
                if target is not None:
                    await tx.copy_rows(target[0], target[1], rows)
                    continue
                for statement, params in multi_row(sql, list(rows)):
                    await tx.execute(statement, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._require().acquire() as conn:
            return await conn.fetchrow(translate(sql), *storable(params))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._require().acquire() as conn:
            return list(await conn.fetch(translate(sql), *storable(params)))

    async def ping(self) -> None:
        await self.fetchone("SELECT 1")
