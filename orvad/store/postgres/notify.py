"""PostgreSQL's side of change propagation between nodes (orvad/cluster/propagation.py, docs/CLUSTER.md
"Change propagation"): the notifications a write sends and the connection that listens for them.

``NotifyingPgDatabase`` is the PostgreSQL driver with one addition: every write transaction notes which
cached tables its INSERT/UPDATE/DELETE statements changed (a statement that changed no row, and
bookkeeping such as ``last_used_at``, does not count) and, before it commits, sends
``pg_notify('orva_changes', {"o": origin, "k": [kinds], "t": time})``. PostgreSQL delivers a notification
only when its transaction commits, after the commit, so a node that hears it reads the committed rows; a
rolled-back write says nothing. The payload names kinds of cache, never a row's content.

``listen`` holds one dedicated connection (not from the pool, named ``orva-listen`` in
``pg_stat_activity``) LISTENing on the channels, and returns when it is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import Any, Literal

import asyncpg

from orvad.store.postgres.driver import PgDatabase
from orvad.store.sql import Database, Row

log = logging.getLogger(__name__)

CHANGES_CHANNEL = "orva_changes"
EVENTS_CHANNEL = "orva_events"
NOTIFY_MAX_BYTES = 7900  # PostgreSQL refuses a payload of 8000 bytes or more
LISTENER_NAME = "orva-listen"  # the listening connection's application_name in pg_stat_activity
KEEPALIVE_S = 2.0  # the listening connection is asked SELECT 1 this often when quiet

Kind = Literal[
    "functions",
    "keys",
    "routes",
    "secrets",
    "pool_configs",
    "channels",
    "oauth",
    "firewall",
    "inbound_webhooks",
    "webhooks",
    "cron",
]
# the tables whose rows a node caches (or, for cron, waits on), by the cache they belong to
TABLE_KINDS: dict[str, Kind] = {
    "functions": "functions",
    "api_keys": "keys",
    "routes": "routes",
    "secrets": "secrets",
    "pool_config": "pool_configs",
    "channels": "channels",
    "channel_functions": "channels",
    "oauth_clients": "oauth",
    "oauth_tokens": "oauth",
    "firewall_rules": "firewall",
    "firewall_settings": "firewall",
    "inbound_webhooks": "inbound_webhooks",
    "webhooks": "webhooks",
    "cron_schedules": "cron",
}
_WRITE = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.I)
# bookkeeping no cache holds: when a key, session, channel or client was last used, a webhook's counters
_BOOKKEEPING = re.compile(r"^\s*UPDATE\s+\w+\s+SET\s+(?:last_used_at|last_seen_at|deliveries)\b", re.I)


def kind_of(sql: str) -> Kind | None:
    """The cache a write statement changes, or None (a read, a table no node caches, bookkeeping)."""
    found = _WRITE.match(sql)
    if found is None or _BOOKKEEPING.match(sql):
        return None
    return TABLE_KINDS.get(found.group(1).lower())


class WatchedTransaction:
    """A write transaction that notes which caches its statements changed (``kinds``)."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx
        self.kinds: set[Kind] = set()

    def _note(self, sql: str, changed: bool) -> None:
        kind = kind_of(sql) if changed else None
        if kind is not None:
            self.kinds.add(kind)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        count: int = await self._tx.execute(sql, params)
        self._note(sql, count > 0)
        return count

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._tx.executemany(sql, rows)
        self._note(sql, True)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = await self._tx.fetchone(sql, params)
        self._note(sql, row is not None)
        return row

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        rows: list[Row] = await self._tx.fetchall(sql, params)
        self._note(sql, bool(rows))
        return rows

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        await self._tx.copy_rows(table, columns, rows)
        kind = TABLE_KINDS.get(table)
        if kind is not None:
            self.kinds.add(kind)


def change_payload(origin: str, kinds: Iterable[Kind]) -> str:
    return json.dumps({"o": origin, "k": sorted(kinds), "t": time.time()}, separators=(",", ":"))


class ReloadGates:
    """Read-your-writes on the writing node: a reload of a cache (orvad/cluster/propagation.py) and this
    node's commit of a write to the same cache never overlap.

    Without them a reload that read the rows just before a local write committed could assign its (older)
    copy after the writer had put the new row in memory: the writer's own next request saw the old state
    until the reload its own notification started had run (tests/cluster/test_reload_gates.py holds such a
    reload between its read and its assignment). A reload holds its kind's
    gate while it reads and assigns; a write transaction takes the gates of the kinds it changed just
    before it commits and gives them back after the commit, so a reload either ran wholly before the
    commit (the writer's memory update comes after it) or reads the committed rows.

    A writer waits at most ``WAIT_S`` (it holds the cluster-wide write lock meanwhile: a reload whose change
    subscribers write, or one waiting for a pooled connection, must not hold it up for good); past that it
    commits without the gate, logged."""

    WAIT_S = 1.0

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._holders: dict[str, asyncio.Task[Any] | None] = {}

    @asynccontextmanager
    async def holding(self, kinds: Iterable[str], *, wait_s: float | None = None) -> AsyncIterator[None]:
        """The gates of ``kinds`` (in name order; one this task holds already is not taken again)."""
        task = asyncio.current_task()
        taken: list[str] = []
        try:
            for kind in sorted(set(kinds)):
                lock = self._locks.setdefault(kind, asyncio.Lock())
                if lock.locked() and self._holders.get(kind) is task:
                    continue
                try:
                    await (lock.acquire() if wait_s is None else asyncio.wait_for(lock.acquire(), wait_s))
                except TimeoutError:
                    log.warning("a write committed while its cache was being reloaded", extra={"kind": kind})
                    continue
                self._holders[kind] = task
                taken.append(kind)
            yield
        finally:
            for kind in taken:
                self._holders[kind] = None
                self._locks[kind].release()


class NotifyingPgDatabase(PgDatabase):
    """The PostgreSQL driver whose write transactions, before they commit, NOTIFY the caches they changed."""

    origin: str = ""
    gates: ReloadGates

    @classmethod
    def wrapping(cls, db: PgDatabase) -> NotifyingPgDatabase:
        """The same database (URL, pool sizes, timeout) with notifications; ``db`` must not be open."""
        out = cls(db.dsn, min_size=db._sizes[0], max_size=db._sizes[1], timeout_s=db._timeout_s)
        out.origin = uuid.uuid4().hex  # this process: a node hears its own notifications too
        out.gates = ReloadGates()
        return out

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[WatchedTransaction]:  # type: ignore[override]
        async with AsyncExitStack() as gated:  # the gates go back after the commit (the inner block's end)
            async with super().transaction() as tx:
                watched = WatchedTransaction(tx)
                yield watched
                if watched.kinds:  # delivered only if this transaction commits, after it does
                    await gated.enter_async_context(
                        self.gates.holding(watched.kinds, wait_s=ReloadGates.WAIT_S)
                    )
                    await tx.execute(
                        "SELECT pg_notify(?, ?)",
                        (CHANGES_CHANNEL, change_payload(self.origin, watched.kinds)),
                    )


def notifying(db: Database) -> Database:
    """``db`` as orvad uses it: on PostgreSQL, with change notifications; SQLite's unchanged."""
    if isinstance(db, PgDatabase) and not isinstance(db, NotifyingPgDatabase):
        return NotifyingPgDatabase.wrapping(db)
    return db


class NotifyFailed(Exception):
    """A notification could not be sent, or the listening connection could not be opened."""


async def notify(db: NotifyingPgDatabase, channel: str, payload: str) -> None:
    """Send one notification now, outside any write transaction (the events' fan-out)."""
    try:
        await db.fetchone("SELECT pg_notify(?, ?)", (channel, payload))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise NotifyFailed(str(exc)) from exc


async def listen(
    dsn: str,
    channels: Mapping[str, Callable[[str], None]],
    on_listening: Callable[[int], Awaitable[None]],
) -> None:
    """Open one connection, LISTEN on each channel (its callback gets each payload), await
    ``on_listening(backend pid)``, and return once the connection is lost (terminated, closed, or a
    keepalive unanswered). NotifyFailed when it cannot be opened."""
    try:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(
            dsn, timeout=10, server_settings={"application_name": LISTENER_NAME}
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise NotifyFailed(str(exc) or type(exc).__name__) from exc
    lost = asyncio.Event()
    try:
        conn.add_termination_listener(lambda _c: lost.set())
        for channel, callback in channels.items():

            def heard(
                _c: object,
                _pid: int,
                _channel: str,
                payload: object,
                callback: Callable[[str], None] = callback,
            ) -> None:
                callback(str(payload))

            await conn.add_listener(channel, heard)
        await on_listening(conn.get_server_pid())
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), KEEPALIVE_S)
            except TimeoutError:
                await conn.execute("SELECT 1", timeout=KEEPALIVE_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning(
            "the change listener's connection was lost", extra={"error": str(exc) or type(exc).__name__}
        )
    finally:
        with suppress(Exception):
            conn.terminate()
