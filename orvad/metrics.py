"""Prometheus metrics in a per-daemon registry, and the dashboard's JSON view of them.

What every invocation updates (counts by function and status, cold starts, durations, queue
waits) is kept as plain numbers and turned into metric families at scrape time: an invocation
costs a few additions, not the locks of prometheus_client's own metrics. Pool gauges are read
from the pools at scrape time too, never pushed.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
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


class _Histogram:
    """Bucket counts and a sum, filled with one bisect per observation."""

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # first bucket whose bound is >= the value
        self.sum += seconds

    def buckets(self) -> list[tuple[str, float]]:  # cumulative, as Prometheus exposes them
        cumulative, out = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.counts, strict=True):
            cumulative += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(cumulative)))
        return out


class _InvocationCollector(Collector):
    """The invoke path's metrics: updated with plain additions, exposed at scrape time."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}  # (function, status) -> invocations
        self.cold: dict[str, int] = {}
        self.durations: dict[str, _Histogram] = {}
        self.queue_wait = _Histogram()

    def collect(self):  # type: ignore[no-untyped-def]
        invocations = CounterMetricFamily("orva_invocations", "invocations by function and status",
                                          labels=["function", "status"])
        for (function, status), count in list(self.counts.items()):
            invocations.add_metric([function, status], count)
        cold = CounterMetricFamily("orva_cold_starts", "invocations served by a freshly started worker",
                                   labels=["function"])
        for function, count in list(self.cold.items()):
            cold.add_metric([function], count)
        duration = HistogramMetricFamily("orva_invocation_duration_seconds", "end-to-end invocation time",
                                         labels=["function"])
        for function, histogram in list(self.durations.items()):
            duration.add_metric([function], histogram.buckets(), histogram.sum)
        queue = HistogramMetricFamily("orva_queue_wait_seconds", "time waiting for a worker slot")
        queue.add_metric([], self.queue_wait.buckets(), self.queue_wait.sum)
        yield from (invocations, cold, duration, queue)


class _StoreCollector(Collector):
    def __init__(self, pending: Callable[[], int], dropped: Callable[[], int]) -> None:
        self._pending = pending
        self._dropped = dropped

    def collect(self):  # type: ignore[no-untyped-def]
        pending = GaugeMetricFamily("orva_store_rows_pending", "rows (executions, logs, audit) queued for the "
                                    "database; they grow while the disk is full")
        pending.add_metric([], self._pending())
        dropped = CounterMetricFamily("orva_store_rows_dropped", "rows dropped because the queue held its bound "
                                      "of unwritten rows (the disk was full for long)")
        dropped.add_metric([], self._dropped())
        yield from (pending, dropped)


class Metrics:
    def __init__(self, pool_rows: Callable[[], list[dict[str, Any]]] = list,
                 reserved_bytes: Callable[[], float] = lambda: 0.0,
                 builds: Callable[[], dict[str, int]] = lambda: {"running": 0, "queued": 0}) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._invocations = _InvocationCollector()
        r.register(self._invocations)
        self.errors = Counter("orva_errors", "error answers by code", ["code"], registry=r)
        self.spawn = Histogram("orva_spawn_duration_seconds", "time from spawn to a ready worker", ["runtime"],
                               buckets=LATENCY_BUCKETS, registry=r)
        self.log_dropped = Counter("orva_worker_log_bytes_dropped", "worker output bytes dropped over "
                                   "worker_log_bytes_per_s, by function", ["function"], registry=r)
        self.audit_refused = Counter("orva_audit_refused", "anonymous refused management calls, counted instead of "
                                     "written to the audit log, by reason", ["reason"], registry=r)
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

    def watch_store(self, pending: Callable[[], int], dropped: Callable[[], int]) -> None:
        """The batched writer's rows: held in memory now, and dropped since start (past its bound)."""
        self.registry.register(_StoreCollector(pending, dropped))

    def observe_invocation(self, function: str, status: str, seconds: float, cold: bool, queue_s: float) -> None:
        stats = self._invocations
        key = (function, status)
        stats.counts[key] = stats.counts.get(key, 0) + 1
        histogram = stats.durations.get(function)
        if histogram is None:
            histogram = stats.durations[function] = _Histogram()
        histogram.observe(seconds)
        stats.queue_wait.observe(queue_s)
        if cold:
            stats.cold[function] = stats.cold.get(function, 0) + 1
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

        totals: dict[str, int] = {}
        for (_, status), count in list(self._invocations.counts.items()):
            totals[status] = totals.get(status, 0) + count
        return {
            "invocations_total": int(sum(totals.values())), "by_status": {k: int(v) for k, v in totals.items()},
            "rate_per_s": round(len(window) / span, 3),
            "error_rate": round(sum(1 for r in window if r[2]) / len(window), 4) if window else 0.0,
            "cold_start_share": round(sum(1 for r in window if r[3]) / len(window), 4) if window else 0.0,
            "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99)},
            "pools": self._pool_rows(), "memory_reserved_bytes": self._reserved(),
            "builds": self._builds(),
        }
