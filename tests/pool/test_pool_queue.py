"""The pool's queue, with stand-in workers: freed slots go to the longest-waiting request, a request
cancelled as a slot reaches it passes the slot on, and the capacity error comes at the deadline.

Everything else about pools runs against real jailed workers (test_pools.py, test_invoke*.py);
these orderings cannot be forced through HTTP.
"""

from __future__ import annotations

import asyncio

import pytest

from orvad.errors import Unavailable
from orvad.pool.pool import Pool
from orvad.pool.tunables import PoolConfig
from tests.worker_fixtures import wait_until

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)


class StandIn:
    alive = True

    async def stop(self, grace_s: float = 0.0) -> None:
        self.alive = False


def one_worker_pool(spawned: list[StandIn]) -> Pool:
    async def spawn() -> StandIn:
        spawned.append(StandIn())
        return spawned[-1]

    return Pool("queue-test", spawn, lambda: PoolConfig(min_warm=0, max_warm=1))


async def queued(pool: Pool, depth: int) -> None:
    await wait_until(lambda: pool.stats()["queue_depth"] == depth, 5, f"{depth} requests queued")


async def test_freed_slots_go_to_the_longest_waiting_request_in_order() -> None:
    spawned: list[StandIn] = []
    pool = one_worker_pool(spawned)
    first = await pool.acquire(5)
    assert first.cold and len(spawned) == 1
    served: list[int] = []

    async def request(n: int) -> None:
        lease = await pool.acquire(5)
        served.append(n)
        assert not lease.cold  # the worker was up before these requests arrived... or had served
        pool.release(lease, healthy=True, duration_s=0.001)

    tasks = []
    for n in range(6):
        tasks.append(asyncio.create_task(request(n)))
        await queued(pool, n + 1)  # arrive in order
    assert pool.stats()["queue_depth"] == 6
    pool.release(first, healthy=True, duration_s=0.001)
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert served == list(range(6))
    assert pool.stats()["inflight"] == 0 and pool.stats()["queue_depth"] == 0
    await pool.close(0)


async def test_a_request_cancelled_as_its_slot_arrives_passes_it_on() -> None:
    pool = one_worker_pool([])
    held = await pool.acquire(5)
    doomed = asyncio.create_task(pool.acquire(5))
    await queued(pool, 1)
    patient = asyncio.create_task(pool.acquire(5))
    await queued(pool, 2)
    pool.release(held, healthy=True, duration_s=0.001)  # handed to `doomed`...
    doomed.cancel()  # ...which is cancelled before it runs
    lease = await asyncio.wait_for(patient, 5)
    assert doomed.cancelled()
    assert pool.stats()["inflight"] == 1 and pool.stats()["queue_depth"] == 0
    pool.release(lease, healthy=True, duration_s=0.001)
    await pool.close(0)


async def test_a_queued_request_gets_pool_at_capacity_at_its_deadline_and_leaves_no_trace() -> None:
    pool = one_worker_pool([])
    held = await pool.acquire(5)
    with pytest.raises(Unavailable) as refused:
        await pool.acquire(0.05)
    assert refused.value.code == "POOL_AT_CAPACITY" and refused.value.details["limit"] == 1
    assert pool.stats()["queue_depth"] == 0
    pool.release(held, healthy=True, duration_s=0.001)
    again = await asyncio.wait_for(pool.acquire(5), 5)  # nobody stale ahead of it in the queue
    pool.release(again, healthy=True, duration_s=0.001)
    await pool.close(0)


async def test_an_unhealthy_release_starts_a_replacement_for_the_queued_request() -> None:
    spawned: list[StandIn] = []
    pool = one_worker_pool(spawned)
    held = await pool.acquire(5)
    waiting = asyncio.create_task(pool.acquire(5))
    await queued(pool, 1)
    held.worker.alive = False  # type: ignore[misc]  # the worker crashed under its request
    pool.release(held, healthy=False, duration_s=0.001)
    lease = await asyncio.wait_for(waiting, 5)
    assert len(spawned) == 2 and lease.worker is spawned[1] and lease.cold
    pool.release(lease, healthy=True, duration_s=0.001)
    await pool.close(0)
