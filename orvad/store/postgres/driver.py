"""A prototype of the PostgreSQL driver seam (issue 25, phase 1): not wired into orvad's start-up.

``PgDatabase`` offers the surface the store modules use on ``orvad.store.db.Database`` (execute,
executemany, fetchone, fetchall, transaction, write_all, ping), over an asyncpg pool, so the store's SQL,
written with SQLite's ``?`` placeholders, runs unchanged where both dialects agree: ``translate`` turns
each ``?`` outside literals, quoted names and comments into ``$1``, ``$2``... (cached per statement).
Rows are asyncpg ``Record``s, which read by index and by name like ``aiosqlite.Row``.

What differs, and is phase 2's (docs/CLUSTER.md):
- a transaction yields a ``PgTransaction`` (execute returns the row count; fetchone/fetchall), not an
  aiosqlite connection with cursors;
- PostgreSQL must infer every parameter's type: ``? IS NULL`` alone is refused (write ``CAST(? AS TEXT)``,
  which both accept), and asyncpg checks Python types strictly (an ``int`` for a TEXT column is an error);
- transactions are READ COMMITTED, not serialised by one writer: the store's read-then-write sequences
  need ``FOR UPDATE``, an advisory lock, or ``isolation="serializable"`` with a retry;
- SQLite-only SQL (PRAGMA, VACUUM INTO, INSERT OR IGNORE, rowid, strftime) needs a twin.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, Literal

import asyncpg

from orvad.store.postgres.migrate import migrate

Isolation = Literal["read_committed", "repeatable_read", "serializable"]

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


def _rowcount(status: str) -> int:
    """asyncpg's command status ("UPDATE 3", "INSERT 0 1", "DELETE 0") -> the rows it changed."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgTransaction:
    """Statements on one connection inside one transaction, with SQLite's placeholders."""

    def __init__(self, conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return _rowcount(await self._conn.execute(translate(sql), *params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(translate(sql), rows)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> asyncpg.Record | None:
        return await self._conn.fetchrow(translate(sql), *params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[asyncpg.Record]:
        return list(await self._conn.fetch(translate(sql), *params))

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """The bulk path (COPY ... FROM STDIN, binary): for the batched writer's execution rows."""
        await self._conn.copy_records_to_table(table, records=list(rows), columns=list(columns))


class PgDatabase:
    """A pool of connections to one PostgreSQL database, migrated on open."""

    def __init__(self, dsn: str, min_size: int = 1, max_size: int = 10, timeout_s: float = 10.0) -> None:
        self.dsn = dsn
        self._sizes = (min_size, max_size)
        self._timeout_s = timeout_s
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self.schema_version = 0

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def open(self) -> None:
        pool = await asyncpg.create_pool(
            self.dsn,
            min_size=self._sizes[0],
            max_size=self._sizes[1],
            timeout=self._timeout_s,
            command_timeout=self._timeout_s * 3,
        )
        try:
            async with pool.acquire() as conn:
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
    async def transaction(self, isolation: Isolation = "read_committed") -> AsyncIterator[PgTransaction]:
        """One transaction on one pooled connection: committed when the block ends, rolled back when it raises."""
        async with self._require().acquire() as conn, conn.transaction(isolation=isolation):
            yield PgTransaction(conn)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One write statement in its own transaction; returns the number of rows changed."""
        async with self._require().acquire() as conn:
            return _rowcount(await conn.execute(translate(sql), *params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def write_all(self, statements: Iterable[tuple[str, Any]]) -> None:
        """Run write statements as one transaction (the batched writer's path)."""
        async with self.transaction() as tx:
            for sql, params in statements:
                await tx.execute(sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> asyncpg.Record | None:
        async with self._require().acquire() as conn:
            return await conn.fetchrow(translate(sql), *params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[asyncpg.Record]:
        async with self._require().acquire() as conn:
            return list(await conn.fetch(translate(sql), *params))

    async def ping(self) -> None:
        await self.fetchone("SELECT 1")
