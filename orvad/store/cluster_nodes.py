"""SQL for the node registry (issue 25; orvad/cluster/nodes.py, docs/CLUSTER.md "Nodes and heartbeats").

One row per node id. ``run_id`` names the process start holding the row: every write of a running node is
conditional on it (``AND run_id = ?``), so a second process started with the same node id takes the row
over at its registration and the first one's heartbeats then change nothing (and tell it so). Times are
RFC 3339 UTC text with milliseconds and a Z (orvad/clock.py), written by the node, which sort as they
compare; ``pools`` and ``load`` are compact JSON text. The statements are in the dialect SQLite and
PostgreSQL both accept (tests/cluster/test_pg_statements.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the protocol only types the collaborator: either driver's database
    from orvad.store.sql import Database

_COLUMNS = "id, run_id, address, version, started_at, last_seen_at, left_at, pools, load"

_REGISTER = (
    "INSERT INTO cluster_nodes (id, run_id, address, version, started_at, last_seen_at, left_at, pools, load)"
    " VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET run_id = excluded.run_id, address = excluded.address,"
    " version = excluded.version, started_at = excluded.started_at, last_seen_at = excluded.last_seen_at,"
    " left_at = NULL, pools = excluded.pools, load = excluded.load"
)
_BEAT = (
    "UPDATE cluster_nodes SET last_seen_at = ?, pools = ?, load = ?, left_at = NULL"
    " WHERE id = ? AND run_id = ?"
)
_LEAVE = "UPDATE cluster_nodes SET last_seen_at = ?, left_at = ?, pools = '{}' WHERE id = ? AND run_id = ?"
_GET = f"SELECT {_COLUMNS} FROM cluster_nodes WHERE id = ?"
_ALL = f"SELECT {_COLUMNS} FROM cluster_nodes ORDER BY id"
_PAGE = f"SELECT {_COLUMNS} FROM cluster_nodes WHERE id > ? ORDER BY id LIMIT ?"
_LIVE = "SELECT id, run_id FROM cluster_nodes WHERE left_at IS NULL AND last_seen_at >= ? ORDER BY id"
# rows of nodes that left, or stopped heartbeating, before the cutoff (a replaced host, an old pod)
_FORGET = "DELETE FROM cluster_nodes WHERE last_seen_at < ? AND id <> ?"


@dataclass(frozen=True, slots=True)
class NodeRow:
    id: str
    run_id: str
    address: str
    version: str
    started_at: str
    last_seen_at: str
    left_at: str | None
    pools: str  # compact JSON object text
    load: str  # compact JSON object text


def _row(r: Any) -> NodeRow:
    return NodeRow(*(r[i] for i in range(9)))


class NodeStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(
        self,
        node_id: str,
        run_id: str,
        address: str,
        version: str,
        started: str,
        now: str,
        pools: str,
        load: str,
    ) -> NodeRow | None:
        """Insert or take over the node's row for this run; the row as it was before (None: a new node)."""
        async with self._db.transaction() as tx:
            before = await tx.fetchone(_GET, (node_id,))
            await tx.execute(_REGISTER, (node_id, run_id, address, version, started, now, pools, load))
        return _row(before) if before is not None else None

    async def beat(self, node_id: str, run_id: str, now: str, pools: str, load: str) -> bool:
        """The heartbeat; False when the row is not this run's any more (taken over, or removed)."""
        return await self._db.execute(_BEAT, (now, pools, load, node_id, run_id)) > 0

    async def leave(self, node_id: str, run_id: str, now: str) -> bool:
        return await self._db.execute(_LEAVE, (now, now, node_id, run_id)) > 0

    async def get(self, node_id: str) -> NodeRow | None:
        row = await self._db.fetchone(_GET, (node_id,))
        return _row(row) if row is not None else None

    async def all(self) -> list[NodeRow]:
        return [_row(r) for r in await self._db.fetchall(_ALL)]

    async def page(self, after: str, limit: int) -> list[NodeRow]:
        """Up to ``limit`` rows ordered by id, after the id ``after`` ("" for the first page)."""
        return [_row(r) for r in await self._db.fetchall(_PAGE, (after, limit))]

    async def live(self, seen_since: str) -> list[tuple[str, str]]:
        """(node id, run id) of the nodes that have not left and were seen at ``seen_since`` or later."""
        return [(r[0], r[1]) for r in await self._db.fetchall(_LIVE, (seen_since,))]

    async def forget(self, seen_before: str, keep: str) -> int:
        """Delete the rows last seen before ``seen_before`` (never ``keep``, this node's); how many."""
        return await self._db.execute(_FORGET, (seen_before, keep))
