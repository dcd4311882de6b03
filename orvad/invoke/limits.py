"""Per-function invoke limits, in memory: a token bucket per (function, client) for
rate_limit_per_min, and a concurrency gate for max_concurrency. Nothing here touches the disk."""

from __future__ import annotations

import asyncio
import math
import time

from orvad.errors import FunctionBusy, RateLimited

_MAX_BUCKETS = 100_000


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, last refill)

    def take(self, function_id: str, client: str, per_minute: int) -> None:
        if per_minute <= 0:
            return
        now = time.monotonic()
        rate = per_minute / 60.0
        tokens, last = self._buckets.get((function_id, client), (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[(function_id, client)] = (tokens, now)
            retry = max(1, math.ceil((1.0 - tokens) / rate))
            raise RateLimited(
                f"rate limit of {per_minute} requests per minute reached",
                retry_after_s=retry,
                hint=f"retry after {retry} s, or raise rate_limit_per_min",
                details={"function_id": function_id, "limit_per_min": per_minute},
            )
        if len(self._buckets) >= _MAX_BUCKETS:
            self._buckets.clear()  # bounded memory; a reset only ever lets requests through
        self._buckets[(function_id, client)] = (tokens - 1.0, now)


class ConcurrencyGate:
    """At most ``limit`` requests of one function at once: queue (up to a deadline) or reject."""

    def __init__(self) -> None:
        self._running: dict[str, int] = {}
        self._changed = asyncio.Condition()

    async def enter(self, function_id: str, limit: int, policy: str, timeout_s: float) -> bool:
        if limit <= 0:
            return False
        async with self._changed:
            if self._running.get(function_id, 0) >= limit:
                if policy == "reject":
                    raise FunctionBusy(
                        f"function is running its maximum of {limit} requests",
                        retry_after_s=1,
                        hint="retry shortly, or raise max_concurrency",
                        details={"function_id": function_id, "max_concurrency": limit},
                    )
                try:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self._running.get(function_id, 0) < limit), timeout_s
                    )
                except TimeoutError:
                    raise FunctionBusy(
                        f"function stayed at its maximum of {limit} requests",
                        retry_after_s=1,
                        details={"function_id": function_id, "max_concurrency": limit},
                    ) from None
            self._running[function_id] = self._running.get(function_id, 0) + 1
        return True

    async def leave(self, function_id: str) -> None:
        async with self._changed:
            self._running[function_id] -= 1
            self._changed.notify_all()
