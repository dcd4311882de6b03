"""All warm pools: one current pool per function, background replacement, the autoscaler clock
and the host memory gate.

A pool is built from a *key* (the version's code hash plus every setting and secret a worker
is started with). When the key changes (deploy, rollback, env, limits, secrets), ``replace``
warms a new pool in the background and switches traffic to it only when it is ready; the old
pool then drains. Invocations never wait for that, so a change under load costs no cold start.
A write that must be seen by the very next invocation (a secret, env_vars) waits instead:
``settle`` returns once the pool for the function's current key serves (bounded; past the bound
the switch is forced, so the old workers never serve again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

from orvad.errors import OrvaError, Timeout
from orvad.pool.pool import Pool, PoolWorker
from orvad.pool.tunables import PoolConfig

log = logging.getLogger(__name__)
TICK_S = 1.0
WARM_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 20.0  # a write waits at most this long for its replacement pool (then forces the switch)


class Recipe(Protocol):
    """What a function's pool is built from: its key and how to start its workers
    (orvad.services.spawner.WorkerRecipe; the pool layer knows no functions)."""

    @property
    def key(self) -> object: ...
    @property
    def spawn(self) -> Callable[[], Awaitable[PoolWorker]]: ...
    @property
    def memory_mb(self) -> int: ...
    @property
    def details(self) -> dict[str, str]: ...


class Spares(Protocol):
    """Jails started ahead of a cold start (orvad.services.spares.SpareJails): counted in the memory gate, but
    never keeping a worker out; ``trim`` stops waiting ones while workers have taken their room."""

    def reserved_mb(self) -> int: ...
    def trim(self) -> None: ...


class _Replacement(NamedTuple):
    key: object
    task: asyncio.Task[OrvaError | None]  # the start error of a replacement whose workers all failed


class PoolManager:
    def __init__(
        self, *, config_of: Callable[[str], PoolConfig], memory_cap_mb: int, max_requests: int
    ) -> None:
        self._config_of = config_of
        self.memory_cap_mb = memory_cap_mb
        self._max_requests = max_requests
        self.pools: dict[str, Pool] = {}
        self._draining: set[Pool] = set()
        self._replacing: dict[str, _Replacement] = {}
        self._ready: dict[str, Pool] = {}  # warmed for a version that is about to be activated
        self._warming: set[Pool] = set()  # replacements warming (replace): their workers count in the gate
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self.spares: Spares | None = None  # set once the spawner has made them (ORVA_SPARE_JAILS)

    # memory gate
    @property
    def reserved_mb(self) -> int:
        return self._workers_mb + (self.spares.reserved_mb() if self.spares is not None else 0)

    @property
    def _workers_mb(self) -> int:
        return sum(p.reserved_mb for p in self._every_pool())

    def _every_pool(self) -> list[Pool]:
        """Serving, draining, pre-warmed and warming (a replacement): every pool holding workers."""
        return [*self.pools.values(), *self._draining, *self._ready.values(), *self._warming]

    def fits(self, memory_mb: int) -> bool:
        """Whether a spare jail of ``memory_mb`` may be started (or, 0, the waiting ones may stay): workers and
        spares within the cap."""
        return self.reserved_mb + memory_mb <= self.memory_cap_mb

    def _admit(self, function_id: str, memory_mb: int) -> Callable[[bool], bool]:
        def admit(reclaim: bool) -> bool:
            # workers only: a waiting spare is a guess at the next cold start and gives way to any worker (the
            # worker may be about to take it; SpareJails.trim stops the others once workers hold their room)
            short = self._workers_mb + memory_mb - self.memory_cap_mb
            return short <= 0 or (reclaim and self._reclaim(function_id, short))

        return admit

    def _reclaim(self, function_id: str, short_mb: int) -> bool:
        """Retire idle workers of other functions, oldest idle first, until ``short_mb`` is free; retire
        none when all of them would not be enough (the request then gets MEMORY_EXHAUSTED)."""
        candidates = sorted(
            (
                (slot.last_used, pool, slot)
                for pool in self._reclaimable(function_id)
                for slot in pool.idle_slots()
            ),
            key=lambda c: c[0],
        )
        chosen, freed = [], 0
        for _, pool, slot in candidates:
            if freed >= short_mb:
                break
            chosen.append((pool, slot))
            freed += pool.memory_mb
        if freed < short_mb:
            return False
        for pool, slot in chosen:
            log.info(
                "idle worker retired to free memory for another function",
                extra={"pool": pool.name, "for_function": function_id, "memory_mb": pool.memory_mb},
            )
            pool.retire(slot, "memory pressure")
        return True

    def _reclaimable(self, function_id: str) -> list[Pool]:
        """Other functions' serving pools, and any pool already draining (pre-warmed ones are left alone)."""
        return [*(p for fid, p in self.pools.items() if fid != function_id), *self._draining]

    def _new_pool(self, function_id: str, recipe: Recipe) -> Pool:
        details = recipe.details
        return Pool(
            f"{details.get('function_name', function_id)}@{str(details.get('code_hash', ''))[:12]}",
            recipe.spawn,
            lambda: self._config_of(function_id),
            max_requests=self._max_requests,
            details=details,
            admit=self._admit(function_id, recipe.memory_mb),
            key=recipe.key,
            memory_mb=recipe.memory_mb,
        )

    # the request path
    def current(self, function_id: str, key: object) -> Pool | None:
        pool = self.pools.get(function_id)
        return pool if pool is not None and pool.key == key else None

    def ensure(self, function_id: str, recipe: Recipe) -> Pool:
        """The pool to serve from: the current one, or the previous while a replacement warms, or a new one."""
        pool = self.pools.get(function_id)
        key = recipe.key
        if pool is not None and (pool.key == key or function_id in self._replacing):
            return pool
        ready = self._ready.get(function_id)
        if ready is not None and ready.key == key:
            self._swap(function_id, self._ready.pop(function_id))
            return ready
        fresh = self._new_pool(function_id, recipe)
        self._swap(function_id, fresh)
        return fresh

    # changes
    def replace(self, function_id: str, recipe: Recipe) -> asyncio.Task[OrvaError | None] | None:
        """Warm a pool for ``recipe.key`` in the background, then switch to it; returns the warming task
        (None when the key is current already, or a pre-warmed pool took over at once)."""
        key = recipe.key
        current = self.pools.get(function_id)
        if current is not None and current.key == key:
            self._cancel_replacing(function_id)  # a change undone before its replacement was ready
            return None
        ready = self._ready.get(function_id)
        if ready is not None and ready.key == key:  # pre-warmed by warm_now: switch at once
            self._swap(function_id, self._ready.pop(function_id))
            return None
        running = self._replacing.get(function_id)
        if running is not None and running.key == key:
            return running.task
        self._cancel_replacing(function_id)
        task = asyncio.create_task(self._warm_and_swap(function_id, recipe))
        replacement = _Replacement(key, task)
        self._replacing[function_id] = replacement
        task.add_done_callback(
            lambda t: (
                self._replacing.pop(function_id, None)
                if self._replacing.get(function_id) is replacement
                else None
            )
        )
        return task

    async def settle(
        self, function_id: str, target: Callable[[], Recipe | None], timeout_s: float = SETTLE_TIMEOUT_S
    ) -> OrvaError | None:
        """Return once new requests for the function are served by a pool for ``target().key`` (the
        key is looked up again after every change, so a build activated meanwhile is waited for too).
        Returns the start error when the replacement's workers all failed to start (it serves anyway:
        the old workers never take a request again), or a Timeout past ``timeout_s`` (the switch is
        then forced, and the next request starts its worker)."""
        deadline = time.monotonic() + timeout_s
        while (wanted := target()) is not None:
            current = self.pools.get(function_id)
            if current is not None and current.key == wanted.key:
                return None
            task = self.replace(function_id, wanted)
            if task is None:
                continue  # switched at once
            remaining = deadline - time.monotonic()
            if remaining > 0:
                await asyncio.wait({task}, timeout=remaining)
            if task.done():
                current = self.pools.get(function_id)
                if not task.cancelled() and current is not None and current.key == wanted.key:
                    return task.result()
                continue  # superseded by a newer change: wait for that one
            self._cancel_replacing(function_id)
            self._swap(function_id, self._new_pool(function_id, wanted))
            log.warning(
                "replacement pool not ready in time: switched to a cold one",
                extra={"function_id": function_id, "timeout_s": timeout_s},
            )
            return Timeout(f"workers with the new settings did not start within {timeout_s:g} s")
        return None  # not served (paused, never built): its next start uses the current settings

    def _cancel_replacing(self, function_id: str) -> None:
        running = self._replacing.pop(function_id, None)
        if running is not None:
            running.task.cancel()

    async def warm_now(self, function_id: str, recipe: Recipe) -> None:
        """Warm a pool for ``recipe.key`` without switching to it: the switch comes when the function's
        record names the new version (``replace`` or ``ensure`` with that key), so traffic never
        sees a version before it is active, and never a cold one."""
        current = self.pools.get(function_id)
        if current is not None and current.key == recipe.key:
            return
        stale = self._ready.pop(function_id, None)
        if stale is not None:
            self._background(stale.close(0))
        fresh = self._new_pool(function_id, recipe)
        want = max(self._config_of(function_id).min_warm, current.recent_need() if current is not None else 0)
        if want:
            await fresh.warm(want, WARM_TIMEOUT_S)
        self._ready[function_id] = fresh

    async def _warm_and_swap(self, function_id: str, recipe: Recipe) -> OrvaError | None:
        """Warm, then switch even if no worker started: the old workers were started with what
        changed (a deleted secret, an old env) and must not serve again. Returns that start error."""
        key = recipe.key
        fresh = self._new_pool(function_id, recipe)
        old = self.pools.get(function_id)
        config = self._config_of(function_id)
        want = max(config.min_warm, old.recent_need() if old is not None else 0)
        self._warming.add(fresh)
        try:
            if want:
                await fresh.warm(want, WARM_TIMEOUT_S)
        except asyncio.CancelledError:
            self._background(fresh.close(0))
            raise
        finally:
            self._warming.discard(fresh)
        current = self.pools.get(function_id)
        if current is not None and current.key == key:  # a request built this pool meanwhile: keep it
            self._background(fresh.close(0))
            return None
        self._swap(function_id, fresh)
        return fresh.start_error() if want else None

    def _swap(self, function_id: str, fresh: Pool) -> None:
        running = self._replacing.get(function_id)
        if running is not None and running.key != fresh.key:  # warming for a key that is no longer wanted
            self._cancel_replacing(function_id)
        old = self.pools.get(function_id)
        self.pools[function_id] = fresh
        if old is not None and old is not fresh:
            self._drain(old)

    def _drain(self, pool: Pool) -> None:
        self._draining.add(pool)

        async def close() -> None:
            try:
                await pool.close(grace_s=60.0)
            finally:
                self._draining.discard(pool)

        self._background(close())

    def retune(self, function_id: str) -> None:
        """Apply changed pool settings (min/max warm) to the serving pool now, not at the next tick."""
        pool = self.pools.get(function_id)
        if pool is not None:
            pool.tick()

    def remove(self, function_id: str) -> None:
        self._cancel_replacing(function_id)
        for pool in (self.pools.pop(function_id, None), self._ready.pop(function_id, None)):
            if pool is not None:
                self._drain(pool)

    def _background(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # introspection
    def hashes_in_use(self, function_id: str) -> set[str]:
        pools = [p for p in self._every_pool() if p.details.get("function_id") == function_id]
        return {h for p in pools if (h := p.code_hash())}

    def rows(self) -> list[dict[str, Any]]:
        """One row per function's current pool: its counts, and the Go original's autoscaler figures
        (rate_ewma req/s, latency_ewma_ms, target = target_concurrency, dynamic_max = the workers it may
        have now: max_warm, or fewer when the host memory gate leaves room for fewer)."""
        free_mb = max(0, self.memory_cap_mb - self._workers_mb)  # waiting spares give way to any worker
        rows = []
        for fid, p in self.pools.items():
            stats = p.stats()
            max_warm = p.max_warm()
            current = stats["workers"] + stats["spawning"]
            fits = current + free_mb // p.memory_mb if p.memory_mb > 0 else max_warm
            rows.append(
                {
                    "function": p.details.get("function_name", fid),
                    "function_id": fid,
                    **stats,
                    "function_name": p.details.get("function_name", fid),
                    "rate_ewma": round(p.rate_ewma, 3),
                    "latency_ewma_ms": round(p.latency_ewma_s * 1000, 3),
                    "target": p.target_concurrency(),
                    "dynamic_max": max(0, min(max_warm, fits)),
                }
            )
        return rows

    # lifecycle
    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_forever(), name="orva-autoscaler")

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            for pool in list(self.pools.values()):
                try:
                    pool.tick()
                except Exception:
                    log.exception("autoscaler tick failed", extra={"pool": pool.name})
            if self.spares is not None:
                self.spares.trim()  # workers admitted since took the room of waiting spares

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        tasks = [r.task for r in self._replacing.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # a replacement's pool closes as it is cancelled
        pools = self._every_pool()
        self.pools.clear()
        self._ready.clear()
        await asyncio.gather(*(p.close(grace_s=5.0) for p in pools), return_exceptions=True)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
