"""Read-your-writes on the writing node (orvad/store/postgres/notify.py ``ReloadGates``): a reload of a
cache that read the rows just before this node's own write committed never puts that older copy over the
writer's memory update, and a reload that hangs holds a writer up for ``ReloadGates.WAIT_S`` at most.

In-process, on a throwaway PostgreSQL: one ``Propagation`` whose ``keys`` reload reads the key names and
assigns them to a cache, and a writer that inserts a key and then puts it in the cache, as a service does.
The first reload is held between its read and its assignment while the writer runs.
"""

from __future__ import annotations

import asyncio
import time

from orvad.cluster.propagation import Propagation
from orvad.services.bus import Bus
from orvad.store.postgres.driver import PgDatabase
from orvad.store.postgres.notify import NotifyingPgDatabase, ReloadGates
from tests.helpers import until

DEADLINE_S = 10.0
INSERT_KEY = (
    "INSERT INTO api_keys (id, name, prefix, key_hash, permissions, created_at, is_bootstrap)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _key(name: str) -> tuple[object, ...]:
    return (name, name, f"orva_{name}", f"h_{name}", '["read"]', "2026-01-01T00:00:00Z", 0)


class _Cache:
    """The key names a node holds, and every assignment made to it, in order."""

    def __init__(self, db: NotifyingPgDatabase) -> None:
        self.db = db
        self.names: set[str] = set()
        self.history: list[tuple[str, frozenset[str]]] = []
        self.hold: asyncio.Event | None = None  # set: the next reload waits on it between read and assign
        self.held = asyncio.Event()

    async def reload(self) -> None:
        rows = await self.db.fetchall("SELECT id FROM api_keys")
        if self.hold is not None:
            hold, self.hold = self.hold, None
            self.held.set()
            await hold.wait()
        self.names = {str(r[0]) for r in rows}
        self.history.append(("reload", frozenset(self.names)))

    async def write(self, name: str) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(INSERT_KEY, _key(name))
        self.names.add(name)
        self.history.append(("write", frozenset(self.names)))


async def _running(pg_dsn: str) -> tuple[NotifyingPgDatabase, _Cache, Propagation, asyncio.Task[None]]:
    db = NotifyingPgDatabase.wrapping(PgDatabase(pg_dsn, min_size=1, max_size=4))
    await db.open()
    cache = _Cache(db)
    prop = Propagation(db, {"keys": cache.reload}, Bus(), "node-1")
    task = asyncio.create_task(prop.run())
    await until(lambda: bool(prop.connects and cache.history), DEADLINE_S, "the listener's first reload")
    return db, cache, prop, task


async def _stop(db: NotifyingPgDatabase, task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await db.close()


async def test_a_reload_that_read_before_a_local_commit_never_overwrites_it(pg_dsn: str) -> None:
    db, cache, _prop, task = await _running(pg_dsn)
    try:
        release = asyncio.Event()
        cache.hold = release
        await cache.write("k1")  # its notification starts a reload: it reads {k1} and is held there
        await asyncio.wait_for(cache.held.wait(), DEADLINE_S)
        writer = asyncio.create_task(cache.write("k2"))
        gate = db.gates._locks["keys"]
        # the writer either finished (no gate) or waits at its commit for the held reload
        await until(lambda: writer.done() or bool(getattr(gate, "_waiters", None)), DEADLINE_S, "the writer")
        release.set()
        await asyncio.wait_for(writer, DEADLINE_S)
        assert "k2" in cache.names  # the writer reads its own write at once
        wrote = next(i for i, (what, names) in enumerate(cache.history) if what == "write" and "k2" in names)
        await until(
            lambda: any(w == "reload" for w, _n in cache.history[wrote:]), DEADLINE_S, "a reload after k2"
        )
        # the first reload after the writer's update is the one k2's own notification started, never the
        # held one (it read {k1} before k2 committed): no older copy was put over the write
        assert all("k2" in names for _what, names in cache.history[wrote:]), cache.history
    finally:
        await _stop(db, task)


async def test_a_hung_reload_holds_a_writer_up_for_the_bound_only(pg_dsn: str) -> None:
    db, cache, _prop, task = await _running(pg_dsn)
    try:
        release = asyncio.Event()
        cache.hold = release
        await cache.write("k1")
        await asyncio.wait_for(cache.held.wait(), DEADLINE_S)
        started = time.monotonic()
        await asyncio.wait_for(cache.write("k2"), DEADLINE_S)  # commits without the gate, logged
        took = time.monotonic() - started
        assert ReloadGates.WAIT_S - 0.05 <= took < ReloadGates.WAIT_S + 2.0, took
        assert [r[0] for r in await db.fetchall("SELECT id FROM api_keys ORDER BY id")] == ["k1", "k2"]
        release.set()
        await until(lambda: cache.names == {"k1", "k2"}, DEADLINE_S, "the reloads after k2's notification")
        again = time.monotonic()
        await cache.write("k3")  # the gate was given back: no wait now
        assert time.monotonic() - again < ReloadGates.WAIT_S / 2
    finally:
        await _stop(db, task)
