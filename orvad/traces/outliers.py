"""The ``outlier`` flag of an execution: slower than twice its function's rolling p95.

Per function, in memory: the durations of its last ``WINDOW`` warm executions that reached a handler (not
the refused ones, not cold starts: a worker's start is not the function's speed), and their p95, re-sorted
every ``REFRESH`` executions (a sort of 256 floats: about 10 µs, so under 1 µs per execution; while the
window holds fewer than 64, at each one). An execution is an outlier when its duration exceeds ``FACTOR`` x the p95
of the executions before it and the window holds at least ``MIN_SAMPLES`` of them; the flag is written
with its row, once. Nothing survives a restart: after one, a function is judged again after MIN_SAMPLES.
"""

from __future__ import annotations

from collections import deque

WINDOW = 256
REFRESH = 16
MIN_SAMPLES = 20
FACTOR = 2.0


class _Window:
    __slots__ = ("durations", "p95", "since")

    def __init__(self) -> None:
        self.durations: deque[float] = deque(maxlen=WINDOW)
        self.p95 = 0.0
        self.since = 0  # observations since p95 was computed


class Outliers:
    def __init__(self) -> None:
        self._functions: dict[str, _Window] = {}

    def observe(self, function_id: str, duration_ms: float) -> bool:
        """Record one execution's duration; whether it is an outlier against the ones before it."""
        window = self._functions.get(function_id)
        if window is None:
            window = self._functions[function_id] = _Window()
        durations = window.durations
        outlier = len(durations) >= MIN_SAMPLES and duration_ms > FACTOR * window.p95
        durations.append(duration_ms)
        window.since += 1
        if window.since >= REFRESH or len(durations) <= 64:
            ordered = sorted(durations)
            window.p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
            window.since = 0
        return outlier

    def p95(self, function_id: str) -> float | None:
        window = self._functions.get(function_id)
        return window.p95 if window is not None and len(window.durations) >= MIN_SAMPLES else None

    def forget(self, function_id: str) -> None:
        self._functions.pop(function_id, None)
