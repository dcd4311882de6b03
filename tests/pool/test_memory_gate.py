"""The memory gate's choice under pressure, with stand-in workers: which idle workers it retires for another
function (oldest idle first, other functions only, none at all when retiring every idle one would not be
enough), and that the autoscaler's own spawns never retire anyone. Over HTTP: test_pools.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from orvad.pool.manager import PoolManager
from orvad.pool.pool import Pool, Slot
from orvad.pool.tunables import PoolConfig


class StandIn:
    alive = True

    async def stop(self, grace_s: float = 0.0) -> None:
        self.alive = False


async def _spawn() -> StandIn:
    return StandIn()


class Recipe(NamedTuple):  # what orvad.services.spawner.WorkerRecipe gives the manager
    key: object
    spawn: Callable[[], Awaitable[Any]]
    memory_mb: int
    details: dict[str, str]


def _pool(manager: PoolManager, function_id: str, memory_mb: int, idle_since: list[float]) -> Pool:
    pool = manager.ensure(function_id, Recipe("key", _spawn, memory_mb, {"function_id": function_id}))
    for last_used in idle_since:
        pool.slots.append(Slot(StandIn(), 0.0, last_used=last_used))
    return pool


async def test_retires_the_oldest_idle_workers_of_other_functions_first() -> None:
    manager = PoolManager(config_of=lambda _: PoolConfig(), memory_cap_mb=800, max_requests=100)
    a = _pool(manager, "a", 200, [30.0, 10.0])  # idle since t=30 and t=10
    b = _pool(manager, "b", 300, [20.0])  # idle since t=20
    c = _pool(manager, "c", 100, [5.0])  # the requester's own worker, the oldest of all
    busy = Slot(StandIn(), 0.0, inflight=1, last_used=1.0)
    b.slots.append(busy)  # busy: never retired
    assert manager.reserved_mb == 1100
    admit = manager._admit("c", 100)
    assert admit(False) is False and manager.reserved_mb == 1100  # the autoscaler's spawns retire nobody
    assert admit(True) is True  # short 400: a@10 (200), then b@20 (300)
    assert [s.last_used for s in a.slots] == [30.0] and b.slots == [busy] and len(c.slots) == 1
    assert manager.reserved_mb == 600


async def test_retires_nobody_when_every_idle_worker_would_not_be_enough() -> None:
    manager = PoolManager(config_of=lambda _: PoolConfig(), memory_cap_mb=500, max_requests=100)
    a = _pool(manager, "a", 200, [10.0])
    a.slots.append(Slot(StandIn(), 0.0, inflight=1))
    _pool(manager, "b", 100, [])
    assert manager._admit("b", 400)(True) is False  # short 300, only 200 idle: keep A's idle worker
    assert len(a.slots) == 2


class Spares:
    """Stand-in for orvad.services.spares.SpareJails' side of the gate: waiting spares of these sizes."""

    def __init__(self, manager: PoolManager, *waiting_mb: int) -> None:
        self.manager = manager
        self.waiting = list(waiting_mb)

    def reserved_mb(self) -> int:
        return sum(self.waiting)

    def trim(self) -> None:  # as SpareJails.trim: the least recently wanted first, while past the cap
        while self.waiting and not self.manager.fits(0):
            self.waiting.pop(0)


async def test_spares_count_but_never_keep_a_worker_out() -> None:
    manager = PoolManager(config_of=lambda _: PoolConfig(), memory_cap_mb=1000, max_requests=100)
    manager.spares = spares = Spares(manager, 64, 200)
    a = _pool(manager, "a", 500, [10.0])
    assert manager.reserved_mb == 764
    assert manager.fits(236) and not manager.fits(237)  # a spare is started only into free room
    # B's worker fits beside A's, not beside the spares too: admitted, A's idle worker kept, no spare stopped
    # yet (B's start may be about to take one of them)
    b = _pool(manager, "b", 336, [])
    assert manager._admit("b", 336)(False) is True and len(a.slots) == 1
    b.slots.append(Slot(StandIn(), 0.0, inflight=1))  # B's worker started (the usual way)
    spares.trim()  # the least recently wanted (64) is not enough to be within the cap again, the next is
    assert spares.waiting == [] and manager.reserved_mb == 836


async def test_a_worker_that_needs_idle_workers_retired_does_not_count_spares() -> None:
    manager = PoolManager(config_of=lambda _: PoolConfig(), memory_cap_mb=1000, max_requests=100)
    manager.spares = spares = Spares(manager, 100)
    a = _pool(manager, "a", 400, [10.0])
    a.slots.append(Slot(StandIn(), 0.0, inflight=1))
    assert manager._admit("b", 300)(False) is False  # short 100 over A's 800: the autoscaler retires nobody
    assert manager._admit("b", 700)(True) is False  # short 500, 400 idle: nothing retired
    assert len(a.slots) == 2 and spares.waiting == [100]
    assert manager._admit("b", 500)(True) is True  # short 300: A's idle worker (400), the spare untouched
    assert len(a.slots) == 1 and spares.waiting == [100]


async def test_waiting_spares_do_not_lower_what_a_pool_may_grow_to() -> None:
    manager = PoolManager(config_of=lambda _: PoolConfig(), memory_cap_mb=1000, max_requests=100)
    manager.spares = Spares(manager, 300)
    _pool(manager, "a", 100, [10.0])
    assert manager.reserved_mb == 400
    (row,) = manager.rows()
    assert row["dynamic_max"] == 10  # 1 worker and room for 9 more: the spare's 300 MB would give way


async def test_a_replacement_pool_counts_while_it_warms() -> None:
    """A settings change warms the function's new pool beside the old one (PoolManager.replace): its workers
    hold their memory from their admission, before the swap, so the gate never counts both pools as one."""
    started = asyncio.Event()
    go = asyncio.Event()

    async def slow_spawn() -> StandIn:
        started.set()
        await go.wait()
        return StandIn()

    manager = PoolManager(config_of=lambda _: PoolConfig(min_warm=2), memory_cap_mb=1000, max_requests=100)
    _pool(manager, "a", 200, [10.0])
    task = manager.replace("a", Recipe("new", slow_spawn, 200, {"function_id": "a"}))
    assert task is not None
    await asyncio.wait_for(started.wait(), 5)
    assert manager.reserved_mb == 600  # the serving worker, and the two the replacement is starting
    assert manager._admit("b", 500)(False) is False
    go.set()
    await asyncio.wait_for(task, 5)
    assert manager.pools["a"].key == "new" and len(manager.pools["a"].slots) == 2
