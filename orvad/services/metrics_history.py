"""The metrics history: orvad samples its metrics snapshot every interval into a bounded ring.

The ring holds the last hour (MAX_AGE_S) at most, in memory only: no disk work, nothing survives a
restart. The dashboard's charts read it so they open with their last minutes instead of empty.
Timestamps are unix seconds taken from a monotonic clock anchored to the wall clock at start, so
points stay ordered when the wall clock is stepped.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

MAX_AGE_S = 3600.0
MAX_MINUTES = int(MAX_AGE_S // 60)


def wall_anchored_clock() -> Callable[[], float]:
    """Unix seconds that never go backwards: the wall time at start plus monotonic time since."""
    wall, mono = time.time(), time.monotonic()
    return lambda: wall + (time.monotonic() - mono)


def point(t: float, snapshot: dict[str, Any]) -> dict[str, Any]:
    """One history point from a Metrics.snapshot(): the last minute's rates, percentiles and live workers."""
    return {
        "t": round(t, 3),
        "rate_per_s": snapshot["rate_per_s"],
        "error_rate": snapshot["error_rate"],
        "cold_start_share": snapshot["cold_start_share"],
        "latency_ms": dict(snapshot["latency_ms"]),
        "active_workers": sum(int(row.get("workers", 0)) for row in snapshot["pools"]),
    }


class MetricsHistory:
    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        interval_s: float,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self._snapshot = snapshot
        self._clock = clock or wall_anchored_clock()
        self._points: deque[dict[str, Any]] = deque(maxlen=max(1, math.ceil(MAX_AGE_S / interval_s)))

    @property
    def capacity(self) -> int:
        return self._points.maxlen or 0

    def sample(self) -> None:
        """Take one point now (the oldest falls out once the ring holds an hour)."""
        self._points.append(point(self._clock(), self._snapshot()))

    def points(self, minutes: int) -> list[dict[str, Any]]:
        """The points of the last ``minutes``, oldest first."""
        since = self._clock() - minutes * 60
        return [p for p in self._points if p["t"] >= since]

    async def run(self) -> None:
        """Sample every interval_s from now on, on a fixed beat; a stalled loop skips beats, never bursts."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval_s
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.sample()
            due += self.interval_s
            if due <= loop.time():
                due = loop.time() + self.interval_s
