"""Prometheus metrics in a per-daemon registry, and the dashboard's JSON view of them.

Counters and histograms are updated on the invoke path with label children cached per
function, so a request costs a few attribute increments. Pool gauges are read from the pools
at scrape time by a collector, never pushed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_WINDOW_S = 60.0


class _PoolCollector(Collector):
    def __init__(self, rows: Callable[[], list[dict[str, Any]]]) -> None:
        self._rows = rows

    def collect(self):  # type: ignore[no-untyped-def]
        names = ("workers", "idle", "busy", "spawning", "queue_depth", "spawned", "killed", "scale_ups",
                 "scale_downs", "cold_starts")
        families = {n: GaugeMetricFamily(f"orva_pool_{n}", f"pool {n.replace('_', ' ')} per function",
                                         labels=["function"]) for n in names}
        for row in self._rows():
            for n in names:
                families[n].add_metric([row["function"]], row.get(n, 0))
        yield from families.values()


class Metrics:
    def __init__(self, pool_rows: Callable[[], list[dict[str, Any]]] = list,
                 reserved_bytes: Callable[[], float] = lambda: 0.0,
                 builds: Callable[[], dict[str, int]] = lambda: {"running": 0, "queued": 0}) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.invocations = Counter("orva_invocations", "invocations by function and status",
                                   ["function", "status"], registry=r)
        self.cold_starts = Counter("orva_cold_starts", "invocations served by a freshly started worker",
                                   ["function"], registry=r)
        self.errors = Counter("orva_errors", "error answers by code", ["code"], registry=r)
        self.duration = Histogram("orva_invocation_duration_seconds", "end-to-end invocation time",
                                  ["function"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("orva_queue_wait_seconds", "time waiting for a worker slot",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.spawn = Histogram("orva_spawn_duration_seconds", "time from spawn to a ready worker", ["runtime"],
                               buckets=LATENCY_BUCKETS, registry=r)
        self.builds = Counter("orva_builds", "finished builds by status", ["status"], registry=r)
        self.build_duration = Histogram("orva_build_duration_seconds", "build time", buckets=LATENCY_BUCKETS,
                                        registry=r)
        reserved = Gauge("orva_host_memory_reserved_bytes", "sum of worker memory limits", registry=r)
        reserved.set_function(reserved_bytes)
        r.register(_PoolCollector(pool_rows))
        self._pool_rows = pool_rows
        self._reserved = reserved_bytes
        self._builds = builds
        self._recent: deque[tuple[float, float, bool, bool]] = deque(maxlen=100_000)  # (t, seconds, error, cold)
        self._started = time.monotonic()
        self._children: dict[tuple[str, str], tuple[Any, Any, Any]] = {}

    def observe_invocation(self, function: str, status: str, seconds: float, cold: bool) -> None:
        children = self._children.get((function, status))
        if children is None:  # .labels() takes a lock and builds a key: once per function and status
            children = self._children[(function, status)] = (
                self.invocations.labels(function, status), self.duration.labels(function),
                self.cold_starts.labels(function))
        children[0].inc()
        children[1].observe(seconds)
        if cold:
            children[2].inc()
        self._recent.append((time.monotonic(), seconds, status != "success", cold))

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """Totals, last-minute rates and latency percentiles, per-pool rows (the dashboard's view)."""
        now = time.monotonic()
        window = [r for r in self._recent if now - r[0] <= _WINDOW_S]
        span = min(_WINDOW_S, max(1e-3, now - self._started))
        durations = sorted(r[1] for r in window)

        def pct(p: float) -> float | None:
            return round(durations[min(len(durations) - 1, int(p * len(durations)))] * 1000, 3) if durations else None

        totals: dict[str, float] = {}
        for metric in self.invocations.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    status = sample.labels["status"]
                    totals[status] = totals.get(status, 0) + sample.value
        return {
            "invocations_total": int(sum(totals.values())), "by_status": {k: int(v) for k, v in totals.items()},
            "rate_per_s": round(len(window) / span, 3),
            "error_rate": round(sum(1 for r in window if r[2]) / len(window), 4) if window else 0.0,
            "cold_start_share": round(sum(1 for r in window if r[3]) / len(window), 4) if window else 0.0,
            "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99)},
            "pools": self._pool_rows(), "memory_reserved_bytes": self._reserved(),
            "builds": self._builds(),
        }
