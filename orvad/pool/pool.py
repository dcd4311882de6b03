"""One warm pool: the workers of one function version, their slots, and the autoscaler's hands.

A worker offers ``target_concurrency`` slots. ``acquire`` takes a free slot; if none is free and
the pool is below ``max_warm`` it starts a worker in the background (the waiting request is a
cold start) and waits for whichever slot frees first, up to its deadline; past that,
503 POOL_AT_CAPACITY. A worker a waiting request needs may take memory reserved by idle workers of
other functions (``admit(reclaim=True)``: the manager retires them, oldest idle first); the autoscaler's
own spawns never do, so two functions cannot keep taking workers from each other. Workers that crash, time out or break the protocol are dropped and
stopped; workers are recycled after ``max_requests``. ``tick`` feeds the autoscaler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from orvad.errors import MemoryExhausted, OrvaError, PoolAtCapacity, ShuttingDown, WorkerCrashed
from orvad.pool.autoscaler import Samples, decide
from orvad.pool.tunables import PoolConfig

log = logging.getLogger(__name__)

_SPAWN_BACKOFF_MAX_S = 30.0


class PoolClosed(ShuttingDown):
    """The pool was replaced or removed while the request waited; ask the manager again. Past the retries
    (or when orvad stops) the caller gets SHUTTING_DOWN."""

    default_hint = (
        "the function's workers were replaced or orvad is stopping; retry after Retry-After seconds"
    )


class PoolWorker(Protocol):
    @property
    def alive(self) -> bool: ...
    async def stop(self, grace_s: float = ...) -> None: ...


@dataclass(eq=False)
class Slot:
    worker: PoolWorker
    started: float
    inflight: int = 0
    served: int = 0
    last_used: float = field(default_factory=time.monotonic)
    retiring: bool = False


class Lease(NamedTuple):  # a tuple: built on every request, cheaper than a frozen dataclass
    slot: Slot
    cold: bool
    queue_ms: float

    @property
    def worker(self) -> PoolWorker:
        return self.slot.worker


@dataclass
class Counters:
    spawned: int = 0
    killed: int = 0
    scale_ups: int = 0
    scale_downs: int = 0
    cold_starts: int = 0
    spawn_failures: int = 0


class Pool:
    def __init__(
        self,
        name: str,
        spawn: Callable[[], Awaitable[PoolWorker]],
        config: Callable[[], PoolConfig],
        *,
        max_requests: int = 10_000,
        details: dict[str, str] | None = None,
        admit: Callable[[bool], bool] = lambda reclaim: True,
        key: object = None,
        memory_mb: int = 0,
    ) -> None:
        self.name = name
        self.key = key  # what the workers were built from (version, settings, secrets)
        self.memory_mb = memory_mb  # per worker, for the host memory gate
        self._admit = admit  # admit(reclaim): False when one more worker would pass the memory gate
        self._spawn = spawn
        self._config = config
        self._max_requests = max_requests
        self.details = details or {}
        self.slots: list[Slot] = []
        self._spawning = 0
        self._waiters: deque[asyncio.Future[Slot | None]] = deque()  # queued requests, oldest first
        self._watchers: list[asyncio.Future[None]] = []  # warm() and close() waiting for a change
        self._tasks: set[asyncio.Task[None]] = set()
        self._spawns: set[asyncio.Task[None]] = set()  # workers starting (a subset of _tasks)
        self._closed = False
        self._last_error: OrvaError | None = None
        self._backoff_until = 0.0
        self._failures_in_row = 0
        self.counters = Counters()
        self.samples = Samples()
        self._waiting = 0
        self._inflight = 0  # slots taken across the pool's workers (kept, not summed per request)
        self._arrivals = 0
        self._busy_area = 0.0
        self._busy_mark = time.monotonic()
        self._last_tick = time.monotonic()
        self._last_request = time.monotonic()
        self._latency_s = 0.0
        self.rate_ewma = (
            0.0  # arrivals per second, smoothed once per tick (metrics.json, orva_pool_rate_ewma)
        )

    # numbers
    @property
    def size(self) -> int:
        return len(self.slots)

    @property
    def reserved_mb(self) -> int:
        return (self.size + self._spawning) * self.memory_mb

    def code_hash(self) -> str | None:
        return self.details.get("code_hash")

    def start_error(self) -> OrvaError | None:
        """Why no worker is up, when the last start failed and none is (None while any worker serves)."""
        return None if self.slots else self._last_error

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def latency_ewma_s(self) -> float:
        """The smoothed duration of the requests this pool served (0.8 old, 0.2 newest)."""
        return self._latency_s

    def target_concurrency(self) -> int:
        return self._config().target_concurrency

    def max_warm(self) -> int:
        return self._config().max_warm

    def recent_need(self) -> int:
        """Workers this pool needed lately: its size, spawns under way, and recent peak concurrency."""
        peak = max(list(self.samples.concurrency)[-6:], default=0.0)
        target = max(1, self._config().target_concurrency)
        return max(self.size + self._spawning, math.ceil(max(peak, self._waiting + self.inflight) / target))

    def stats(self) -> dict[str, int]:
        busy = sum(1 for s in self.slots if s.inflight)
        return {
            "workers": self.size,
            "idle": self.size - busy,
            "busy": busy,
            "spawning": self._spawning,
            "queue_depth": self._waiting,
            "inflight": self.inflight,
            **vars(self.counters),
        }

    def _account(self) -> None:
        now = time.monotonic()
        self._busy_area += self.inflight * (now - self._busy_mark)
        self._busy_mark = now

    # the request path
    async def acquire(self, timeout_s: float) -> Lease:
        started = time.monotonic()
        self._arrivals += 1
        self._last_request = started
        if not self._waiters:  # nobody queued ahead: take a free slot at once
            slot = self._free_slot()
            if slot is not None:
                self._assign(slot)
                return self._lease(slot, started)
        deadline = started + timeout_s
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise PoolClosed(f"pool {self.name} was replaced", retry_after_s=1)
            if not self._waiters and (slot := self._free_slot()) is not None:
                self._assign(slot)
                return self._lease(slot, started)
            if self._can_spawn():
                if self._admit(True):
                    self._start_spawn()
                elif not self.slots and not self._spawning:
                    raise self._memory_exhausted()
            elif not self.slots and not self._spawning and self._last_error is not None:
                raise self._last_error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if self._can_spawn() and not self._admit(False):
                    raise self._memory_exhausted()
                raise PoolAtCapacity(
                    f"function pool at capacity for {self.details.get('function_id', self.name)}",
                    retry_after_s=max(1, math.ceil(self._latency_s)),
                    hint="raise pool_config.max_warm via PUT /api/v1/pool/config",
                    details={**self.details, "current": self.size, "limit": self._config().max_warm},
                )
            slot = await self._queue(loop, remaining)
            if slot is not None:
                return self._lease(slot, started)

    async def _queue(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> Slot | None:
        """Wait in line: a freed slot is handed to the longest-waiting request (already counted as
        taken), so nobody is woken for nothing and the queue is fair. None means "look again"."""
        waiter: asyncio.Future[Slot | None] = loop.create_future()
        self._waiters.append(waiter)
        self._waiting += 1
        timer = loop.call_later(timeout_s, _settle, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and (slot := waiter.result()) is not None:
                self._give_back(slot)  # handed over just as this request was cancelled: pass it on
            raise
        finally:
            timer.cancel()
            self._waiting -= 1
            if waiter.cancelled() or waiter.result() is None:  # a handed-over slot was popped already
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def _assign(self, slot: Slot) -> None:
        self._account()
        slot.inflight += 1
        self._inflight += 1

    def _lease(self, slot: Slot, started: float) -> Lease:
        # cold: the request waited for this worker to start (its first request, born after it arrived)
        cold = slot.served == 0 and slot.started > started
        if cold:
            self.counters.cold_starts += 1
        return Lease(slot, cold, (time.monotonic() - started) * 1000)

    def _unassign(self, slot: Slot) -> None:
        self._account()
        slot.inflight -= 1
        self._inflight -= 1

    def _give_back(self, slot: Slot) -> None:
        self._unassign(slot)
        self._serve_waiters()

    def _memory_exhausted(self) -> MemoryExhausted:
        return MemoryExhausted(
            "host memory reserved for workers is exhausted",
            retry_after_s=5,
            hint="lower memory_mb or max_warm of busy functions, or raise ORVA_MEMORY_SHARE",
            details={**self.details, "worker_memory_mb": self.memory_mb},
        )

    def release(self, lease: Lease, *, healthy: bool, duration_s: float) -> None:
        """Return a slot; an unhealthy worker is dropped and stopped, a worn-out one retired."""
        slot = lease.slot
        self._unassign(slot)
        slot.served += 1
        slot.last_used = time.monotonic()
        self._latency_s = duration_s if self._latency_s == 0 else 0.8 * self._latency_s + 0.2 * duration_s
        if not healthy or not slot.worker.alive:
            self._drop(slot, "unhealthy")
        elif slot.served >= self._max_requests:
            slot.retiring = True
            if slot.inflight == 0:
                self._drop(slot, "recycled")
        if self._waiters or self._watchers:
            self._serve_waiters()

    def _free_slot(self, config: PoolConfig | None = None) -> Slot | None:
        limit = max(1, (config or self._config()).target_concurrency)
        best: Slot | None = None
        for slot in list(self.slots):
            if not slot.worker.alive:
                self._drop(slot, "exited")
                continue
            if slot.retiring or slot.inflight >= limit:
                continue
            # the most recently used free worker: keeps the rest idle so they can be retired
            if best is None or slot.last_used > best.last_used:
                best = slot
        return best

    def _can_spawn(self, config: PoolConfig | None = None) -> bool:
        return (
            self.size + self._spawning < (config or self._config()).max_warm
            and time.monotonic() >= self._backoff_until
        )

    # spawning and retiring
    def _start_spawn(self) -> None:
        self._spawning += 1
        task = asyncio.create_task(self._spawn_one(), name=f"orva-spawn-{self.name}")
        self._tasks.add(task)
        self._spawns.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._spawns.discard)

    async def _spawn_one(self) -> None:
        try:
            worker = await self._spawn()
        except OrvaError as exc:
            self._spawn_failed(exc)
        except Exception as exc:
            log.exception("worker spawn failed", extra={"pool": self.name})
            self._spawn_failed(WorkerCrashed(f"worker failed to start: {type(exc).__name__}: {exc}"))
        else:
            if self._closed:
                await asyncio.shield(
                    worker.stop()
                )  # a second close() cancelling this must not cut the stop short
            else:
                self.slots.append(Slot(worker, time.monotonic()))
                self.counters.spawned += 1
                self._failures_in_row = 0
                self._last_error = None
        finally:
            self._spawning -= 1
            self._serve_waiters(recheck=self._last_error is not None)  # a failure: queued requests look again

    def _spawn_failed(self, exc: OrvaError) -> None:
        self.counters.spawn_failures += 1
        self._failures_in_row += 1
        self._last_error = exc
        self._backoff_until = time.monotonic() + min(_SPAWN_BACKOFF_MAX_S, 0.25 * 2**self._failures_in_row)
        log.warning("worker spawn failed", extra={"pool": self.name, "error": exc.message})

    def idle_slots(self) -> list[Slot]:
        """Workers serving nothing now: what the memory gate may retire for another function."""
        return [s for s in self.slots if s.inflight == 0 and not s.retiring and s.worker.alive]

    def retire(self, slot: Slot, why: str) -> None:
        """Stop an idle worker now (its memory reservation is released at once)."""
        if slot.inflight == 0:
            self.counters.scale_downs += 1
            self._drop(slot, why)

    def _drop(self, slot: Slot, why: str) -> None:
        if slot in self.slots:
            self.slots.remove(slot)
            self.counters.killed += 1
            log.debug("worker leaves pool", extra={"pool": self.name, "why": why})
            self._background(slot.worker.stop())

    def _background(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _serve_waiters(self, *, recheck: bool = False) -> None:
        """Hand free slots to queued requests, oldest first; start workers for those no free slot or
        spawn under way will serve. ``recheck`` (or a closed pool) sends every queued request back to
        look again (a failed spawn, a closed pool). Wakes warm() and close() too."""
        waiters, config = self._waiters, self._config()
        while waiters and not self._closed and (slot := self._free_slot(config)) is not None:
            waiter = waiters.popleft()
            if not waiter.done():
                self._assign(slot)
                waiter.set_result(slot)
        if recheck or self._closed:
            while waiters:
                if not (waiter := waiters.popleft()).done():
                    waiter.set_result(None)
        while len(waiters) > self._spawning and self._can_spawn(config) and self._admit(True):
            self._start_spawn()
        if self._watchers:
            watchers, self._watchers = self._watchers, []
            for watcher in watchers:
                _settle(watcher)

    async def _until(self, done: Callable[[], bool], deadline: float) -> None:
        """Wait until done() holds or the deadline passes, looking again whenever the pool changes."""
        loop = asyncio.get_running_loop()
        while not done() and (remaining := deadline - time.monotonic()) > 0:
            change: asyncio.Future[None] = loop.create_future()
            self._watchers.append(change)
            timer = loop.call_later(remaining, _settle, change)
            try:
                await change
            finally:
                timer.cancel()

    async def warm(self, count: int, timeout_s: float) -> None:
        """Start workers until ``count`` are up (bounded by max_warm) and wait for them, up to timeout_s."""
        count = min(count, self._config().max_warm)
        for _ in range(max(0, count - self.size - self._spawning)):
            if not self._admit(False):  # the memory gate: warm what fits, never wait for the rest
                break
            self._start_spawn()
        await self._until(lambda: self.size >= count or not self._spawning, time.monotonic() + timeout_s)

    def tick(self, now: float | None = None) -> None:
        """One autoscaler step: sample, decide, then spawn ahead or retire one idle worker."""
        now = time.monotonic() if now is None else now
        self._account()
        elapsed = max(1e-3, now - self._last_tick)
        self.samples.add(self._busy_area / elapsed + self._waiting, self._arrivals)
        self.rate_ewma += 0.2 * (self._arrivals / elapsed - self.rate_ewma)
        self._busy_area, self._arrivals, self._last_tick = 0.0, 0, now
        config = self._config()
        decision = decide(
            self.samples,
            current=self.size,
            min_warm=config.min_warm,
            max_warm=config.max_warm,
            target_concurrency=config.target_concurrency,
            mean_latency_s=self._latency_s,
            idle_for_s=now - self._last_request,
            idle_ttl_s=config.idle_ttl_seconds,
            scale_to_zero=config.scale_to_zero,
            now=now,
        )
        missing = decision.desired - self.size - self._spawning
        if missing > 0 and not self._closed and now >= self._backoff_until:
            self.counters.scale_ups += 1
            for _ in range(missing):
                if not self._admit(False):
                    break
                self._start_spawn()
        elif self.size > decision.desired:
            idle = [s for s in self.slots if s.inflight == 0 and now - s.last_used >= config.idle_ttl_seconds]
            if idle:
                self.counters.scale_downs += 1
                self._drop(min(idle, key=lambda s: s.last_used), "idle")
        if self._waiters:  # a config change (more slots per worker) may free room for queued requests
            self._serve_waiters()

    async def close(self, grace_s: float = 5.0) -> None:
        """Stop taking requests, let in-flight ones finish (up to grace_s), stop every worker. Workers
        still starting are stopped at once (no request will take them; one that never gets ready
        would otherwise hold the close for its whole start timeout)."""
        self._closed = True
        for spawn in list(self._spawns):
            spawn.cancel()
        self._serve_waiters()
        await self._until(lambda: not self.inflight, time.monotonic() + grace_s)
        for slot in list(self.slots):
            self._drop(slot, "closed")
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _settle(future: asyncio.Future[Any]) -> None:
    """Resolve with None (a deadline passed, or something changed): the waiter looks again."""
    if not future.done():
        future.set_result(None)
