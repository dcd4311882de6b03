"""Change propagation between the nodes of one PostgreSQL database (issue 25, docs/CLUSTER.md).

Each node keeps caches of the database in memory (the function catalogue, routes, API keys by hash,
pool configs, channels, OAuth clients and tokens, firewall rules, webhooks) and updates them in the
same call that writes the database. A write made on another node reaches them this way:

- **Sending, in the write's own transaction.** ``NotifyingPgDatabase`` is the PostgreSQL driver with one
  addition: every write transaction notes which cached tables its INSERT/UPDATE/DELETE statements changed
  (statements that changed no row, and bookkeeping such as ``last_used_at``, do not count) and, before
  it commits, sends ``pg_notify('orva_changes', {"o": origin, "k": [kinds], "t": time})``. PostgreSQL
  delivers a notification only when its transaction commits, after the commit, so a node that hears it
  reads the committed rows; a rolled-back write says nothing. Every writer is covered (the API, MCP, the
  assistant, the builder, in-process CLI commands) without a line in the services. The payload names
  kinds of cache, never a row's content (no secret ever travels in it).
- **Receiving.** ``Propagation.run`` holds one dedicated connection (not from the pool) that LISTENs, and
  reloads the named caches, coalescing a burst into one reload per kind. Functions, pool configs and
  secrets are compared with what the node holds and each difference is published as the local typed
  change (``FunctionCreated/Changed/Deleted``, ``PoolConfigChanged``, ``SecretsChanged``) on the
  ``remote`` channel, whose subscribers are the node-local ones (the reconciler's pools, the builder's
  files, inbound webhooks' memory): a side effect that must happen once in the cluster (an outbound
  ``function.deleted`` event, a deleted function's jobs ended) has happened on the writing node.
  A node reloads after its own notifications too: a reload started for another node's change may have
  read just before this node's own commit, and the reload after the commit puts the cache right.
- **Reconnect.** A lost connection (the server restarted, the backend terminated, a keepalive that does
  not answer) is opened again with a back-off; notifications sent meanwhile are lost, so after every
  (re)connect, the first one included (it closes the gap between start's load and LISTEN), every cache
  is reloaded.
- **Events.** ``/api/v1/events`` on any node shows the whole cluster's ``execution``, ``deployment`` and
  ``activity`` events: each node forwards its own in batches on ``orva_events`` and publishes other
  nodes' on its bus with ``from_node`` added (so they are never forwarded again). ``function`` events
  are not forwarded: each node's reconciler publishes its own when it applies the change. ``metrics``
  are per node and not forwarded.

On SQLite (one node) none of this runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, Literal

import asyncpg

from orvad.store.postgres.driver import PgDatabase
from orvad.store.sql import Database, Row

if TYPE_CHECKING:
    from orvad.services.bus import Bus

log = logging.getLogger(__name__)

CHANGES_CHANNEL = "orva_changes"
EVENTS_CHANNEL = "orva_events"
NOTIFY_MAX_BYTES = 7900  # PostgreSQL refuses a payload of 8000 bytes or more
FORWARDED_EVENTS = frozenset({"execution", "deployment", "activity"})
FROM_NODE = "from_node"  # the key a forwarded event carries: the node it happened on
LISTENER_NAME = "orva-listen"  # the listening connection in pg_stat_activity
KEEPALIVE_S = 2.0  # the listening connection is asked SELECT 1 this often when quiet
BACKOFF_S = (0.05, 5.0)  # reconnect back-off: first, largest
DELAYS_KEPT = 10_000

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


class NotifyingPgDatabase(PgDatabase):
    """The PostgreSQL driver whose write transactions, before they commit, NOTIFY the caches they changed."""

    origin: str = ""

    @classmethod
    def wrapping(cls, db: PgDatabase) -> NotifyingPgDatabase:
        """The same database (URL, pool sizes, timeout) with notifications; ``db`` must not be open."""
        out = cls(db.dsn, min_size=db._sizes[0], max_size=db._sizes[1], timeout_s=db._timeout_s)
        out.origin = uuid.uuid4().hex  # this process: a node hears its own notifications too
        return out

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[WatchedTransaction]:  # type: ignore[override]
        async with super().transaction() as tx:
            watched = WatchedTransaction(tx)
            yield watched
            if watched.kinds:  # delivered only if this transaction commits, after it does
                await tx.execute(
                    "SELECT pg_notify(?, ?)", (CHANGES_CHANNEL, change_payload(self.origin, watched.kinds))
                )


def notifying(db: Database) -> Database:
    """``db`` as orvad uses it: on PostgreSQL, with change notifications; SQLite's unchanged."""
    if isinstance(db, PgDatabase) and not isinstance(db, NotifyingPgDatabase):
        return NotifyingPgDatabase.wrapping(db)
    return db


Reload = Callable[[], Awaitable[None]]


class Propagation:
    """One node's listener: reloads the caches other nodes' writes changed, fans events out and in."""

    def __init__(
        self,
        db: NotifyingPgDatabase,
        reloads: Mapping[Kind, Reload],
        bus: Bus,
        node_id: str,
    ) -> None:
        self._db = db
        self._reloads = reloads
        self._bus = bus
        self.node_id = node_id
        self._pending: set[Kind] = set()
        self._sent_at: dict[Kind, float] = {}  # the oldest pending notification's send time, per kind
        self._wake = asyncio.Event()
        self.connects = 0  # how many times the listening connection was opened (1 + reconnects)
        self.backend_pid: int | None = None
        self.delays: deque[float] = deque(maxlen=DELAYS_KEPT)  # seconds from NOTIFY to the cache reloaded
        self.events_dropped = 0  # events too large for one notification

    # receiving
    def _heard_change(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            body = json.loads(str(payload))
            kinds = [k for k in body["k"] if k in self._reloads]
            sent = float(body["t"])
        except (ValueError, KeyError, TypeError):
            log.warning(
                "an unreadable change notification was ignored", extra={"payload": str(payload)[:200]}
            )
            return
        for kind in kinds:
            self._pending.add(kind)
            self._sent_at.setdefault(kind, sent)
        if kinds:
            self._wake.set()

    def _heard_events(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        try:
            body = json.loads(str(payload))
            if body["o"] == self._db.origin:
                return
            node = str(body["n"])
            events = [(str(topic), dict(data)) for topic, data in body["e"]]
        except (ValueError, KeyError, TypeError):
            log.warning("an unreadable event notification was ignored", extra={"payload": str(payload)[:200]})
            return
        for topic, data in events:
            if topic in FORWARDED_EVENTS:
                data[FROM_NODE] = node
                self._bus.publish(topic, data)

    async def reload_all(self) -> None:
        await self._reload(list(self._reloads))

    async def _reload(self, kinds: list[Kind]) -> None:
        for kind in kinds:
            try:
                await self._reloads[kind]()
            except (
                Exception
            ):  # one cache that cannot reload must not stop the others (logged; next change retries)
                log.exception(
                    "a cache could not be reloaded after another node's change", extra={"kind": kind}
                )

    async def _apply(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            kinds, self._pending = sorted(self._pending), set()
            sent, self._sent_at = self._sent_at, {}
            await self._reload(kinds)
            now = time.time()
            self.delays.extend(max(0.0, now - sent[k]) for k in kinds if k in sent)

    async def _listen(self) -> None:
        """Hold the LISTENing connection; open it again with a back-off when lost; reload every cache after
        each (re)connect (what was sent meanwhile is lost)."""
        backoff = BACKOFF_S[0]
        while True:
            try:
                conn: asyncpg.Connection[Any] = await asyncpg.connect(
                    self._db.dsn, timeout=10, server_settings={"application_name": LISTENER_NAME}
                )
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                log.warning(
                    "cannot open the change listener's connection",
                    extra={"error": str(exc), "retry_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_S[1])
                continue
            try:
                await self._hold(conn)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("the change listener's connection was lost", extra={"error": str(exc)})
            finally:
                self.backend_pid = None
                with suppress(Exception):
                    conn.terminate()
            backoff = BACKOFF_S[0]
            await asyncio.sleep(backoff)

    async def _hold(self, conn: asyncpg.Connection[Any]) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        await conn.add_listener(CHANGES_CHANNEL, self._heard_change)
        await conn.add_listener(EVENTS_CHANNEL, self._heard_events)
        self.backend_pid = conn.get_server_pid()
        self.connects += 1
        if self.connects > 1:
            log.warning(
                "change listener reconnected: every cache is reloaded", extra={"connects": self.connects}
            )
        started = time.monotonic()
        await self.reload_all()
        log.info(
            "change listener listening, every cache reloaded",
            extra={"connects": self.connects, "reload_ms": round((time.monotonic() - started) * 1000, 1)},
        )
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), KEEPALIVE_S)
            except TimeoutError:
                await conn.execute("SELECT 1", timeout=KEEPALIVE_S)

    # sending events
    async def _forward_events(self) -> None:
        async with self._bus.subscribe(FORWARDED_EVENTS, maxsize=10_000) as sub:
            while True:
                batch = [await sub.queue.get()]
                while not sub.queue.empty() and len(batch) < 200:
                    batch.append(sub.queue.get_nowait())
                local = [(t, d) for t, d in batch if FROM_NODE not in d]
                for payload in self._event_payloads(local):
                    try:
                        await self._db.fetchone("SELECT pg_notify(?, ?)", (EVENTS_CHANNEL, payload))
                    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                        log.warning("events could not be sent to the other nodes", extra={"error": str(exc)})

    def _event_payloads(self, events: list[tuple[str, dict[str, Any]]]) -> list[str]:
        """The events as notifications of at most NOTIFY_MAX_BYTES each (an event larger alone is dropped)."""
        head = json.dumps({"o": self._db.origin, "n": self.node_id, "e": []}, separators=(",", ":"))
        out: list[str] = []
        parts: list[str] = []
        size = len(head)
        for topic, data in events:
            part = json.dumps([topic, data], separators=(",", ":"), default=str)
            if len(head) + len(part.encode()) > NOTIFY_MAX_BYTES:
                self.events_dropped += 1
                continue
            if size + len(part.encode()) + 1 > NOTIFY_MAX_BYTES:
                out.append(head[:-3] + "[" + ",".join(parts) + "]}")
                parts, size = [], len(head)
            parts.append(part)
            size += len(part.encode()) + 1
        if parts:
            out.append(head[:-3] + "[" + ",".join(parts) + "]}")
        return out

    async def run(self) -> None:
        """The listener, the reloads and the events' forwarding, until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._apply())
            group.create_task(self._listen())
            group.create_task(self._forward_events())
