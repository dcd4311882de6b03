"""Change propagation between the nodes of one PostgreSQL database (issue 25, docs/CLUSTER.md).

Each node keeps caches of the database in memory (the function catalogue, routes, API keys by hash,
pool configs, channels, OAuth clients and tokens, firewall rules, webhooks) and updates them in the
same call that writes the database. A write made on another node reaches them this way:

- **Sending, in the write's own transaction.** ``NotifyingPgDatabase`` (orvad/store/postgres/notify.py)
  is the PostgreSQL driver with one addition: every write transaction notes which cached tables its INSERT/UPDATE/DELETE statements changed
  (statements that changed no row, and bookkeeping such as ``last_used_at``, do not count) and, before
  it commits, sends ``pg_notify('orva_changes', {"o": origin, "k": [kinds], "t": time})``. PostgreSQL
  delivers a notification only when its transaction commits, after the commit, so a node that hears it
  reads the committed rows; a rolled-back write says nothing. Every writer is covered (the API, MCP, the
  assistant, the builder, in-process CLI commands) without a line in the services. The payload names
  kinds of cache, never a row's content (no secret ever travels in it).
- **Receiving.** ``Propagation.run`` holds one dedicated connection (not from the pool, ``orva-listen`` in
  ``pg_stat_activity``; orvad/store/postgres/notify.py ``listen``) that LISTENs, and
  reloads the named caches, coalescing a burst into one reload per kind. Functions, pool configs and
  secrets are compared with what the node holds and each difference is published as the local typed
  change (``FunctionCreated/Changed/Deleted``, ``PoolConfigChanged``, ``SecretsChanged``) on the
  ``remote`` channel, whose subscribers are the node-local ones (the reconciler's pools, the builder's
  files, inbound webhooks' memory): a side effect that must happen once in the cluster (an outbound
  ``function.deleted`` event, a deleted function's jobs ended) has happened on the writing node.
  A node reloads after its own notifications too (cheap insurance); a reload and this node's own commit
  of the same kind never overlap (``ReloadGates``, orvad/store/postgres/notify.py), so the writing node
  reads its own write at once and a reload never puts an older copy over it.
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
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from orvad.store.postgres.notify import (
    CHANGES_CHANNEL,
    EVENTS_CHANNEL,
    NOTIFY_MAX_BYTES,
    Kind,
    NotifyFailed,
    listen,
    notify,
)
from orvad.store.postgres.notify import (  # the daemon's wiring names them here (it does not import the store's driver)
    NotifyingPgDatabase as NotifyingPgDatabase,
)
from orvad.store.postgres.notify import notifying as notifying

if TYPE_CHECKING:
    from orvad.services.bus import Bus

log = logging.getLogger(__name__)

FORWARDED_EVENTS = frozenset({"execution", "deployment", "activity"})
FROM_NODE = "from_node"  # the key a forwarded event carries: the node it happened on
# reloads that keep out of a local write's way themselves: the catalogue's reads under its own lock (held
# by every local write of a function, gate and all; the gate too would make the two wait on each other);
# the firewall's under its service's lock, which a local change holds from its nftables write (before the
# database's) to its memory's
SELF_GATED: frozenset[Kind] = frozenset({"functions", "firewall"})
BACKOFF_S = (0.05, 5.0)  # reconnect back-off: first, largest
DELAYS_KEPT = 10_000

Reload = Callable[[], Awaitable[None]]


class Propagation:
    """One node's listener: reloads the caches other nodes' writes changed, fans events out and in."""

    def __init__(
        self,
        db: NotifyingPgDatabase,
        reloads: Mapping[Kind, Reload],
        bus: Bus,
        node_id: str,
        registry: CollectorRegistry | None = None,
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
        self._delay = Histogram(
            "orva_cluster_propagation_seconds",
            "from a write's NOTIFY on any node (this one too) to this node's cache reloaded",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self._reconnects = Counter(
            "orva_cluster_listener_reconnects",
            "times the change listener's connection was opened again (every cache reloaded each time)",
            registry=registry,
        )

    # receiving
    def _heard_change(self, payload: str) -> None:
        try:
            body = json.loads(payload)
            kinds = [k for k in body["k"] if k in self._reloads]
            sent = float(body["t"])
        except (ValueError, KeyError, TypeError):
            log.warning("an unreadable change notification was ignored", extra={"payload": payload[:200]})
            return
        for kind in kinds:
            self._pending.add(kind)
            self._sent_at.setdefault(kind, sent)
        if kinds:
            self._wake.set()

    def _heard_events(self, payload: str) -> None:
        try:
            body = json.loads(payload)
            if body["o"] == self._db.origin:
                return
            node = str(body["n"])
            events = [(str(topic), dict(data)) for topic, data in body["e"]]
        except (ValueError, KeyError, TypeError):
            log.warning("an unreadable event notification was ignored", extra={"payload": payload[:200]})
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
                if kind in SELF_GATED:
                    await self._reloads[kind]()
                    continue
                async with self._db.gates.holding([kind]):  # never across a local commit of the same kind
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
            for delay in (max(0.0, now - sent[k]) for k in kinds if k in sent):
                self.delays.append(delay)
                self._delay.observe(delay)

    async def _listen(self) -> None:
        """Hold the LISTENing connection; open it again with a back-off when lost; reload every cache after
        each (re)connect (what was sent meanwhile is lost)."""
        backoff = BACKOFF_S[0]
        channels = {CHANGES_CHANNEL: self._heard_change, EVENTS_CHANNEL: self._heard_events}
        while True:
            try:
                await listen(self._db.dsn, channels, self._listening)
            except NotifyFailed as exc:
                log.warning(
                    "cannot open the change listener's connection",
                    extra={"error": str(exc), "retry_s": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_S[1])
                continue
            finally:
                self.backend_pid = None
            backoff = BACKOFF_S[0]
            await asyncio.sleep(backoff)

    async def _listening(self, backend_pid: int) -> None:
        self.backend_pid = backend_pid
        self.connects += 1
        if self.connects > 1:
            self._reconnects.inc()
            log.warning(
                "change listener reconnected: every cache is reloaded", extra={"connects": self.connects}
            )
        started = time.monotonic()
        await self.reload_all()
        log.info(
            "change listener listening, every cache reloaded",
            extra={"connects": self.connects, "reload_ms": round((time.monotonic() - started) * 1000, 1)},
        )

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
                        await notify(self._db, EVENTS_CHANNEL, payload)
                    except NotifyFailed as exc:
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
