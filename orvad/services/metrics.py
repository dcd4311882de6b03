"""Prometheus metrics in a per-daemon registry, and the dashboard's JSON view of them.

What every invocation updates (counts by function and status, cold starts, durations, queue
waits) is kept as plain numbers, one record per function, and turned into metric families at
scrape time: an invocation costs one dict lookup and a few additions, not the locks of
prometheus_client's own metrics. Pool gauges, host memory and the sandbox counts are read at
scrape time too, never pushed.

Every per-function series carries both ``function`` (the name) and ``function_id`` (the Go
original's label). The Go original's metric names are exposed beside ours (``orva_warm_hits_total``,
``orva_build_errors_total``, ``orva_active_requests``, ``orva_invocation_duration_ms``,
``orva_sandbox_*``, ``orva_pool_*_total``, ``orva_host_mem_*``): derived from the same numbers at
scrape time, so they cost the invoke path nothing. Those families are written as text directly
(``_Text``), not through prometheus_client's generic writer: with 200 functions a scrape costs about
5 ms of CPU instead of 30 (bench: docs/OPERATIONS.md, Metrics).
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString as _untyped_go_float

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# the Go original's millisecond buckets; each is one of LATENCY_BUCKETS, so its histograms are read off ours
GO_BUCKETS_MS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_GO_INDEX = tuple(LATENCY_BUCKETS.index(ms / 1000) for ms in GO_BUCKETS_MS)
_WINDOW_S = 60.0
_MIB = 1024 * 1024
_FN = ["function", "function_id"]
_POOL_GAUGES = (
    "workers",
    "idle",
    "busy",
    "spawning",
    "queue_depth",
    "spawned",
    "killed",
    "scale_ups",
    "scale_downs",
    "cold_starts",
)
# the Go original's per-pool gauges: (its name, the pool row's field)
_GO_POOL_GAUGES = (
    ("orva_pool_rate_ewma", "rate_ewma", "arrivals per second, smoothed"),
    ("orva_pool_latency_ewma_ms", "latency_ewma_ms", "request duration in ms, smoothed"),
    (
        "orva_pool_max_dynamic",
        "dynamic_max",
        "workers the pool may have now (max_warm, or fewer when host memory leaves room for fewer)",
    ),
    ("orva_pool_target_concurrency", "target", "requests one worker serves at once"),
)


class _Histogram:
    """Bucket counts and a sum, filled with one bisect per observation."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # first bucket whose bound is >= the value
        self.sum += seconds

    def cumulative(self) -> list[int]:
        out, running = [], 0
        for count in self.counts:
            running += count
            out.append(running)
        return out


class _FunctionStats:
    """One function's invocations: counts by status, cold starts, the duration histogram."""

    __slots__ = ("statuses", "cold", "durations")

    def __init__(self) -> None:
        self.statuses: dict[str, int] = {}
        self.cold = 0
        self.durations = _Histogram()

    def warm(self) -> int:
        """Invocations served by a worker that was already running (not cold, not rejected)."""
        return sum(self.statuses.values()) - self.cold - self.statuses.get("rejected", 0)


def meminfo() -> dict[str, int]:
    """MemTotal and MemAvailable of /proc/meminfo, in bytes (0 where it cannot be read)."""
    out = {"MemTotal": 0, "MemAvailable": 0}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in out:
                    out[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return out


def _num_cpu() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _StoreCollector(Collector):
    def __init__(
        self, pending: Callable[[], int], dropped: Callable[[], int], refused: Callable[[], int]
    ) -> None:
        self._pending = pending
        self._dropped = dropped
        self._refused = refused

    def collect(self):  # type: ignore[no-untyped-def]
        pending = GaugeMetricFamily(
            "orva_store_rows_pending",
            "rows (executions, logs, audit) queued for the database; they grow while the disk is full",
        )
        pending.add_metric([], self._pending())
        dropped = CounterMetricFamily(
            "orva_store_rows_dropped",
            "rows dropped because the queue held its bound of unwritten rows (the disk was full for long)",
        )
        dropped.add_metric([], self._dropped())
        refused = CounterMetricFamily(
            "orva_store_rows_refused",
            "batched rows the database refused (a value it cannot store, or a parent deleted meanwhile);"
            " each is logged, and the rows queued after it are written",
        )
        refused.add_metric([], self._refused())
        yield from (pending, dropped, refused)


# prometheus_client's sample number format (Go's, +Inf/NaN included); the function has no annotations
_go_float: Callable[[float], str] = _untyped_go_float


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    return f"{value}.0" if type(value) is int else _go_float(value)


_SECONDS_LE = [repr(float(b)) for b in LATENCY_BUCKETS] + ["+Inf"]
_GO_LE = [f"{ms:g}" for ms in GO_BUCKETS_MS] + ["+Inf"]


class _Text:
    """The Prometheus text (format 0.0.4) of the families read at scrape time, written directly.

    prometheus_client's generic writer validates and escapes every label of every sample (about
    14 us a line); here each function's label string is escaped once per scrape and reused by its
    few dozen lines, which keeps a scrape of a few hundred functions within a few milliseconds.
    """

    def __init__(self) -> None:
        self.out: list[str] = []

    def family(self, name: str, kind: str, text: str) -> None:
        shown = f"{name}_total" if kind == "counter" else name
        text = text.replace("\\", "\\\\").replace("\n", "\\n")
        self.out.append(f"# HELP {shown} {text}\n# TYPE {shown} {kind}\n")

    def line(self, name: str, labels: str, value: float) -> None:
        self.out.append(f"{name}{{{labels}}} {_num(value)}\n" if labels else f"{name} {_num(value)}\n")

    def histogram(self, name: str, labels: str, les: list[str], cumulative: list[int], total: float) -> None:
        sep = "," if labels else ""
        out = self.out
        for le, count in zip(les, cumulative, strict=True):
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {count}.0\n')
        self.line(f"{name}_count", labels, cumulative[-1])
        self.line(f"{name}_sum", labels, total)


def _scrape_text(m: Metrics) -> str:
    """Everything read at scrape time: invocations, pools, host memory, sandboxes, the Go names."""
    rows = m._pool_rows()
    t = _Text()
    functions = []
    for (function_id, function), stats in list(m._functions.items()):
        labels = f'function="{_esc(function)}",function_id="{_esc(function_id)}"'
        functions.append((labels, stats, stats.durations.cumulative()))
    _invocations_text(t, m, functions)
    _pools_text(t, rows)
    _daemon_text(t, m, rows)
    return "".join(t.out)


def _invocations_text(t: _Text, m: Metrics, functions: list[tuple[str, _FunctionStats, list[int]]]) -> None:
    t.family("orva_invocations", "counter", "invocations by function and status")
    for labels, stats, _ in functions:
        for status, count in list(stats.statuses.items()):
            t.line("orva_invocations_total", f'{labels},status="{_esc(status)}"', count)
    t.family("orva_cold_starts", "counter", "invocations served by a freshly started worker")
    for labels, stats, _ in functions:
        t.line("orva_cold_starts_total", labels, stats.cold)
    t.family(
        "orva_warm_hits",
        "counter",
        "invocations served by a worker already running (neither cold starts nor rejected)",
    )
    for labels, stats, _ in functions:
        t.line("orva_warm_hits_total", labels, stats.warm())
    t.family("orva_invocation_duration_seconds", "histogram", "end-to-end invocation time")
    for labels, stats, cumulative in functions:
        t.histogram("orva_invocation_duration_seconds", labels, _SECONDS_LE, cumulative, stats.durations.sum)
    t.family(
        "orva_invocation_duration_ms",
        "histogram",
        "end-to-end invocation time in ms (the Go original's buckets)",
    )
    for labels, stats, cumulative in functions:
        t.histogram(
            "orva_invocation_duration_ms",
            labels,
            _GO_LE,
            [*(cumulative[i] for i in _GO_INDEX), cumulative[-1]],
            stats.durations.sum * 1000,
        )
    t.family("orva_queue_wait_seconds", "histogram", "time waiting for a worker slot")
    t.histogram("orva_queue_wait_seconds", "", _SECONDS_LE, m._queue_wait.cumulative(), m._queue_wait.sum)


def _pools_text(t: _Text, rows: list[dict[str, Any]]) -> None:
    labelled = [(f'function="{_esc(r["function"])}",function_id="{_esc(r["function_id"])}"', r) for r in rows]
    for n in _POOL_GAUGES:
        t.family(f"orva_pool_{n}", "gauge", f"pool {n.replace('_', ' ')} per function")
        for labels, row in labelled:
            t.line(f"orva_pool_{n}", labels, row.get(n, 0))
    for name, field, text in (
        ("orva_pool_spawned", "spawned", "workers started by the function's current pool"),
        ("orva_pool_killed", "killed", "workers stopped by the function's current pool"),
    ):
        t.family(name, "counter", text)
        for labels, row in labelled:
            t.line(f"{name}_total", labels, row.get(field, 0))
    t.family("orva_pool_scale_events", "counter", "autoscaler steps of the function's current pool")
    for labels, row in labelled:
        t.line("orva_pool_scale_events_total", f'{labels},direction="up"', row.get("scale_ups", 0))
        t.line("orva_pool_scale_events_total", f'{labels},direction="down"', row.get("scale_downs", 0))
    for name, field, text in _GO_POOL_GAUGES:
        t.family(name, "gauge", text)
        for labels, row in labelled:
            t.line(name, labels, row.get(field, 0))


def _daemon_text(t: _Text, m: Metrics, rows: list[dict[str, Any]]) -> None:
    t.family("orva_active_requests", "gauge", "invocations holding or waiting for a worker slot")
    t.line(
        "orva_active_requests",
        "",
        sum(int(r.get("inflight", 0)) + int(r.get("queue_depth", 0)) for r in rows),
    )
    t.family("orva_sandbox_active", "gauge", "jailed workers alive in the functions' pools")
    t.line("orva_sandbox_active", "", sum(int(r.get("workers", 0)) for r in rows))
    spawns = m._spawns()
    t.family("orva_sandbox", "counter", "jailed workers started since orvad started")
    t.line("orva_sandbox_total", "", sum(cumulative[-1] for cumulative, _ in spawns.values()))
    t.family(
        "orva_sandbox_spawn_duration_ms",
        "histogram",
        "time from spawn to a ready worker in ms (the Go original's buckets)",
    )
    for runtime, (cumulative, total_s) in spawns.items():
        t.histogram(
            "orva_sandbox_spawn_duration_ms",
            f'runtime="{_esc(runtime)}"',
            _GO_LE,
            [*(cumulative[i] for i in _GO_INDEX), cumulative[-1]],
            total_s * 1000,
        )
    t.family("orva_build_errors", "counter", "finished builds that failed")
    t.line("orva_build_errors_total", "", m._build_counts().get("failed", 0))
    memory = meminfo()
    for name, value, text in (
        ("total", memory["MemTotal"], "host memory (MemTotal)"),
        ("available", memory["MemAvailable"], "host memory available (MemAvailable)"),
        ("reserved", m._reserved(), "sum of the memory limits of workers and waiting spare jails"),
    ):
        t.family(f"orva_host_mem_{name}_bytes", "gauge", text)
        t.line(f"orva_host_mem_{name}_bytes", "", value)
    t.family(
        "orva_worker_log_bytes_dropped",
        "counter",
        "worker output bytes dropped over worker_log_bytes_per_s, by function",
    )
    ids = {function: function_id for function_id, function in list(m._functions)}
    ids.update((r["function"], r["function_id"]) for r in rows)
    for function, size in list(m._log_dropped.items()):
        t.line(
            "orva_worker_log_bytes_dropped_total",
            f'function="{_esc(function)}",function_id="{_esc(ids.get(function, ""))}"',
            size,
        )


class Metrics:
    def __init__(
        self,
        pool_rows: Callable[[], list[dict[str, Any]]] = list,
        reserved_bytes: Callable[[], float] = lambda: 0.0,
        builds: Callable[[], dict[str, int]] = lambda: {"running": 0, "queued": 0},
    ) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._functions: dict[tuple[str, str], _FunctionStats] = {}  # (function_id, name) -> its invocations
        self._queue_wait = _Histogram()
        self._log_dropped: dict[str, int] = {}  # function name -> bytes
        self.errors = Counter("orva_errors", "error answers by code", ["code"], registry=r)
        self.spawn = Histogram(
            "orva_spawn_duration_seconds",
            "time from spawn to a ready worker",
            ["runtime"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.spares_used = Counter(
            "orva_spare_jails_used",
            "cold starts served by a spare jail started ahead (ORVA_SPARE_JAILS), by runtime",
            ["runtime"],
            registry=r,
        )
        self.spares_waiting = Gauge(
            "orva_spare_jails_waiting", "spare jails started and waiting for a function", registry=r
        )
        self._spares_enabled = False
        self._spares_waiting: Callable[[], int] = lambda: 0
        self.audit_refused = Counter(
            "orva_audit_refused",
            "anonymous refused management calls, counted instead of written to the audit log, by reason",
            ["reason"],
            registry=r,
        )
        self.builds = Counter("orva_builds", "finished builds by status", ["status"], registry=r)
        self.build_duration = Histogram(
            "orva_build_duration_seconds", "build time", buckets=LATENCY_BUCKETS, registry=r
        )
        reserved = Gauge(
            "orva_host_memory_reserved_bytes",
            "sum of the memory limits of workers and waiting spare jails",
            registry=r,
        )
        reserved.set_function(reserved_bytes)
        self._pool_rows = pool_rows
        self._reserved = reserved_bytes
        self._builds = builds
        self._recent: deque[tuple[float, float, bool, bool]] = deque(
            maxlen=100_000
        )  # (t, seconds, error, cold)
        self._started = time.monotonic()

    def watch_store(
        self, pending: Callable[[], int], dropped: Callable[[], int], refused: Callable[[], int]
    ) -> None:
        """The batched writer's rows: held in memory now, dropped since start (past its bound), and refused by the
        database since start."""
        self.registry.register(_StoreCollector(pending, dropped, refused))

    def watch_spares(self, enabled: bool, waiting: Callable[[], int]) -> None:
        """Spare jails (orvad/services/spares.py): on or off here, and how many wait now."""
        self._spares_enabled, self._spares_waiting = enabled, waiting
        self.spares_waiting.set_function(waiting)

    def observe_invocation(
        self, function: str, status: str, seconds: float, cold: bool, queue_s: float, function_id: str = ""
    ) -> None:
        key = (function_id, function)
        stats = self._functions.get(key)
        if stats is None:
            stats = self._functions[key] = _FunctionStats()
        statuses = stats.statuses
        statuses[status] = statuses.get(status, 0) + 1
        stats.durations.observe(seconds)
        self._queue_wait.observe(queue_s)
        if cold:
            stats.cold += 1
        self._recent.append((time.monotonic(), seconds, status != "success", cold))

    def observe_log_drop(self, function: str, size: int) -> None:
        """Worker output bytes dropped over worker_log_bytes_per_s (function_id is added at scrape time)."""
        self._log_dropped[function] = self._log_dropped.get(function, 0) + size

    def observe_build(self, status: str, seconds: float | None) -> None:
        """A finished build: its status, and how long it took (None for a rollback, which builds nothing)."""
        self.builds.labels(status).inc()
        if seconds is not None:
            self.build_duration.observe(seconds)

    def prometheus_text(self) -> bytes:
        return generate_latest(self.registry) + _scrape_text(self).encode()

    # read at scrape time
    def _spawns(self) -> dict[str, tuple[list[int], float]]:
        """Per runtime: cumulative spawn-time bucket counts (LATENCY_BUCKETS, then +Inf) and the sum in s."""
        out: dict[str, tuple[list[int], float]] = {}
        for family in self.spawn.collect():
            for sample in family.samples:
                runtime = sample.labels.get("runtime", "")
                counts, total = out.get(runtime, ([], 0.0))
                if sample.name.endswith("_bucket"):
                    counts.append(int(sample.value))
                elif sample.name.endswith("_sum"):
                    total = sample.value
                out[runtime] = (counts, total)
        return out

    def _build_counts(self) -> dict[str, int]:
        return {
            s.labels["status"]: int(s.value)
            for family in self.builds.collect()
            for s in family.samples
            if s.name == "orva_builds_total"
        }

    def snapshot(self) -> dict[str, Any]:
        """Totals, last-minute rates and latency percentiles, per-pool rows (the dashboard's view), and the
        Go original's metrics.json blocks (uptime_seconds, host, totals, rates, active_requests, sandbox,
        build_queue) beside them."""
        now = time.monotonic()
        window = [r for r in self._recent if now - r[0] <= _WINDOW_S]
        span = min(_WINDOW_S, max(1e-3, now - self._started))
        durations = sorted(r[1] for r in window)

        def pct(p: float) -> float | None:
            return (
                round(durations[min(len(durations) - 1, int(p * len(durations)))] * 1000, 3)
                if durations
                else None
            )

        by_status: dict[str, int] = {}
        cold = warm = 0
        for stats in list(self._functions.values()):
            for status, count in list(stats.statuses.items()):
                by_status[status] = by_status.get(status, 0) + count
            cold += stats.cold
            warm += stats.warm()
        invocations = sum(by_status.values())
        rows = self._pool_rows()
        builds = self._builds()
        built = self._build_counts()
        memory = meminfo()
        reserved = self._reserved()
        return {
            "invocations_total": invocations,
            "by_status": by_status,
            "rate_per_s": round(len(window) / span, 3),
            "error_rate": round(sum(1 for r in window if r[2]) / len(window), 4) if window else 0.0,
            "cold_start_share": round(sum(1 for r in window if r[3]) / len(window), 4) if window else 0.0,
            "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99)},
            "pools": rows,
            "memory_reserved_bytes": reserved,
            "builds": {"running": builds.get("running", 0), "queued": builds.get("queued", 0)},
            # the Go original's blocks
            "uptime_seconds": int(now - self._started),
            "host": {
                "num_cpu": _num_cpu(),
                "mem_total_mb": memory["MemTotal"] // _MIB,
                "mem_available_mb": memory["MemAvailable"] // _MIB,
                "mem_reserved_mb": int(reserved // _MIB),
            },
            "totals": {
                "invocations": invocations,
                "cold_starts": cold,
                "warm_hits": warm,
                "builds": sum(built.values()),
                "build_errors": built.get("failed", 0),
            },
            "rates": {"cold_start_pct": round(cold / invocations * 100, 3) if invocations else 0.0},
            "active_requests": sum(int(r.get("inflight", 0)) + int(r.get("queue_depth", 0)) for r in rows),
            "sandbox": {
                "active": sum(int(r.get("workers", 0)) for r in rows),
                "total": sum(counts[-1] for counts, _ in self._spawns().values() if counts),
            },
            "build_queue": {"pending": builds.get("queued", 0), "workers": builds.get("workers", 0)},
            "spare_jails": {
                "enabled": self._spares_enabled,
                "waiting": self._spares_waiting(),
                "used": {
                    s.labels["runtime"]: int(s.value)
                    for family in self.spares_used.collect()
                    for s in family.samples
                    if s.name.endswith("_total")
                },
            },
        }
