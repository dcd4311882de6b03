"""The node registry (issue 25; docs/CLUSTER.md "Nodes and heartbeats"): every orvad writes a row about itself
to the shared database and refreshes it every ``ORVA_HEARTBEAT_S``; ``GET /api/v1/cluster/nodes`` lists them.

- **Node id**: ``ORVA_NODE_ID``, by default the host name and the first 8 hex digits of the SHA-256 of the
  data dir's absolute path (``default_node_id``): the same installation restarted keeps its row, two data
  dirs on one host are two nodes. A node that is killed and started again "rejoins" under its id.
- **Run id**: a new random ``run_<hex>`` per process start. It is the owner leases should name (jobs, cron
  and builds, phase 3): a node restarted after a kill has a new run id, so the leases of its previous run
  are recognisably not its own and expire at once, though its node id is alive again.
- **Alive, gone, left**: a row is ``left`` once its node stopped cleanly (``left_at``), ``gone`` when its
  ``last_seen_at`` is older than ``gone_after_s`` (three heartbeats missed, plus a slack of half a heartbeat
  and at least one second for a late beat and for the nodes' clocks, which must agree to well within it:
  NTP), else ``alive``. Every node should run with the same ``ORVA_HEARTBEAT_S``: a reader judges every row
  by its own.
- The heartbeat is one UPDATE of one row, in a background task (``run``), never on a request's path; it
  also reads every row back into ``view``, so code that must not wait for the database (phase 3's
  warm-aware forwarding) reads the peers' pools from memory, as of the last heartbeat.

What other code asks:
- ``await registry.live_runs()``: ``{node id: run id}`` of the live nodes, read now: a lease whose owner is
  not one of these run ids belongs to a node that is gone (or restarted) and may be taken.
- ``registry.live_ids()``: the live node ids as of the last heartbeat (no database read).
- ``registry.healthy``: whether this node's own last heartbeat is recent enough that the others still see
  it alive; a node that is not should stop starting leased work (the others may take it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orvad.clock import epoch_iso, parse_iso
from orvad.store.cluster_nodes import NodeRow, NodeStore

log = logging.getLogger(__name__)

MISSED_HEARTBEATS = 3  # a node silent for this many heartbeats (and the slack) is gone
MIN_SLACK_S = 1.0
FORGET_AFTER_S = (
    7 * 86400.0
)  # rows of nodes gone or left this long ago are deleted (old pods, replaced hosts)
FORGET_EVERY = 100  # ... checked every this many heartbeats
Status = Literal["alive", "gone", "left"]
STATUSES: tuple[Status, ...] = ("alive", "gone", "left")


def default_node_id(data_dir: Path) -> str:
    """``<host name>-<8 hex of the data dir's path hash>``: stable across restarts of one installation."""
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()).strip("-.")[:48] or "node"
    digest = hashlib.sha256(str(Path(data_dir).absolute()).encode()).hexdigest()[:8]
    return f"{host}-{digest}"


def default_address(host: str, port: int) -> str:
    """``http://<listen host>:<port>``; a wildcard listen address (0.0.0.0, ::) is not one another node can
    reach, so the host name stands for it (resolvable in Docker Compose and Kubernetes networks)."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def gone_after(heartbeat_s: float) -> float:
    """Seconds of silence after which a node is gone: three heartbeats and the slack."""
    return MISSED_HEARTBEATS * heartbeat_s + max(MIN_SLACK_S, heartbeat_s / 2)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    run_id: str
    address: str
    version: str
    started_at: str
    last_seen_at: str
    left_at: str | None
    pools: dict[str, Any]
    load: dict[str, Any]
    status: Status
    seen_s_ago: float

    def to_json(self, this_node: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "address": self.address,
            "version": self.version,
            "status": self.status,
            "started_at": self.started_at,
            "last_seen_at": self.last_seen_at,
            "seen_s_ago": self.seen_s_ago,
            "left_at": self.left_at,
            "pools": self.pools,
            "load": self.load,
            "this_node": self.id == this_node,
        }


class NodeRegistry:
    """This node's row (register, heartbeat, leave) and everyone's as read back."""

    def __init__(
        self,
        store: NodeStore,
        *,
        node_id: str,
        address: str,
        version: str,
        heartbeat_s: float,
        pools: Callable[[], dict[str, Any]] = dict,
        load: Callable[[], dict[str, Any]] = dict,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.node_id = node_id
        self.run_id = f"run_{uuid.uuid4().hex}"
        self.address = address
        self.version = version
        self.heartbeat_s = heartbeat_s
        self.gone_after_s = gone_after(heartbeat_s)
        self._pools = pools
        self._load = load
        self._clock = clock
        self.started = clock()  # this run's start (started_at), kept when the row is written again
        self.registered = False
        self.view: list[Node] = []  # every row as of the last heartbeat
        self._last_beat: float | None = None  # monotonic time of this node's last write that landed
        self._failing = False
        self._beats = 0
        self._told_taken: str | None = None  # the run id that took our row over, once logged

    # what other code asks
    @property
    def healthy(self) -> bool:
        """This node's last heartbeat landed recently enough that the other nodes see it alive."""
        return self._last_beat is not None and time.monotonic() - self._last_beat < self.gone_after_s

    def live_ids(self) -> frozenset[str]:
        """The node ids alive as of the last heartbeat (memory only)."""
        return frozenset(n.id for n in self.view if n.status == "alive")

    def seen_since(self) -> str:
        """The time before which a node not seen since is gone (three heartbeats and the slack ago)."""
        return epoch_iso(self._clock() - self.gone_after_s)

    async def live_runs(self) -> dict[str, str]:
        """{node id: run id} of the nodes alive now (read from the database)."""
        return dict(await self._store.live(self.seen_since()))

    def status_of(self, row: NodeRow, now: float) -> tuple[Status, float]:
        seen_ago = max(0.0, now - parse_iso(row.last_seen_at).timestamp())
        if row.left_at is not None:
            return "left", seen_ago
        return ("gone" if seen_ago > self.gone_after_s else "alive"), seen_ago

    def node(self, row: NodeRow, now: float) -> Node:
        status, ago = self.status_of(row, now)
        return Node(
            id=row.id,
            run_id=row.run_id,
            address=row.address,
            version=row.version,
            started_at=row.started_at,
            last_seen_at=row.last_seen_at,
            left_at=row.left_at,
            pools=_json_object(row.pools),
            load=_json_object(row.load),
            status=status,
            seen_s_ago=round(ago, 3),
        )

    async def nodes(self) -> list[Node]:
        """Every row, read now, ordered by id."""
        now = self._clock()
        return [self.node(r, now) for r in await self._store.all()]

    async def page(self, after: str, limit: int) -> list[Node]:
        now = self._clock()
        return [self.node(r, now) for r in await self._store.page(after, limit)]

    # this node's row
    def _figures(self) -> tuple[str, str]:
        def compact(get: Callable[[], dict[str, Any]]) -> str:
            try:
                return json.dumps(get(), separators=(",", ":"), sort_keys=True)
            except Exception:  # a figure that cannot be read this time is not worth a missed heartbeat
                log.exception("node figures could not be read")
                return "{}"

        return compact(self._pools), compact(self._load)

    async def register(self) -> None:
        """Write this node's row for this run (at start, and again if it disappears)."""
        now = self._clock()
        pools, load = self._figures()
        before = await self._store.register(
            self.node_id,
            self.run_id,
            self.address,
            self.version,
            epoch_iso(self.started),
            epoch_iso(now),
            pools,
            load,
        )
        self.registered = True
        self._last_beat = time.monotonic()
        self._told_taken = None
        if before is not None and before.run_id != self.run_id:
            status, ago = self.status_of(before, now)
            if status == "alive":
                log.warning(
                    "this node id was heartbeating under another run moments ago: an orvad of this data dir "
                    "killed just now, or another orvad using the same node id (give each its own ORVA_NODE_ID)",
                    extra={"node_id": self.node_id, "other_run": before.run_id, "seen_s_ago": round(ago, 3)},
                )
        log.info(
            "node registered",
            extra={"node_id": self.node_id, "run_id": self.run_id, "address": self.address},
        )
        await self._refresh(now)

    async def beat(self) -> None:
        """One heartbeat: this node's row, then everyone's read back into ``view``."""
        now = self._clock()
        pools, load = self._figures()
        if await self._store.beat(self.node_id, self.run_id, epoch_iso(now), pools, load):
            self._last_beat = time.monotonic()
            self._told_taken = None
        else:
            await self._lost_row(now)
        self._beats += 1
        if self._beats % FORGET_EVERY == 0:
            forgotten = await self._store.forget(epoch_iso(now - FORGET_AFTER_S), self.node_id)
            if forgotten:
                log.info("forgot nodes not seen for a week", extra={"nodes": forgotten})
        await self._refresh(now)

    async def _lost_row(self, now: float) -> None:
        """The heartbeat changed nothing: the row was removed (a restore, another node's forget) or another
        run holds it. Take it (back) unless that run is alive: two live orvads must not share a node id."""
        row = await self._store.get(self.node_id)
        if row is not None and row.run_id != self.run_id and self.status_of(row, now)[0] == "alive":
            self._last_beat = None  # not this run's row: the others see the other run, not this one
            if self._told_taken != row.run_id:
                self._told_taken = row.run_id
                log.error(
                    "another orvad registered with this node id and heartbeats under it: this one is not "
                    "registered while it does (give each orvad its own ORVA_NODE_ID)",
                    extra={"node_id": self.node_id, "run_id": self.run_id, "other_run": row.run_id},
                )
            return
        await self.register()

    async def _refresh(self, now: float) -> None:
        self.view = [self.node(r, now) for r in await self._store.all()]

    async def run(self) -> None:
        """The heartbeat loop (a daemon task): one beat every ``heartbeat_s``, on a fixed cadence. A failed
        beat (the database unreachable) is logged once, retried at the next tick, and its recovery logged."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.heartbeat_s
            delay = due - loop.time()
            if delay < 0:  # the loop was stalled past a beat: beat now, keep the cadence from here
                due, delay = loop.time(), 0.0
            await asyncio.sleep(delay)
            try:
                if self.registered:
                    await self.beat()
                else:
                    await self.register()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "heartbeat failed; retried every heartbeat (the other nodes see this one gone after "
                        f"{self.gone_after_s:g} s of them)",
                        extra={"node_id": self.node_id, "error": f"{type(exc).__name__}: {exc}"},
                    )
                continue
            if self._failing:
                self._failing = False
                log.warning("heartbeat written again", extra={"node_id": self.node_id})

    async def leave(self) -> None:
        """A clean stop: the row says left (its leases may be taken at once). Never raises."""
        if not self.registered:
            return
        self.registered = False
        try:
            await self._store.leave(self.node_id, self.run_id, epoch_iso(self._clock()))
        except Exception as exc:  # a stop goes on without it: the others see the node gone a little later
            log.warning(
                "could not mark this node as left",
                extra={"node_id": self.node_id, "error": f"{type(exc).__name__}: {exc}"},
            )
