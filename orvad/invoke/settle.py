"""Settling an invocation: its slot goes back to the pool (now, or when a handler whose client left
ends), its row to the batched writer, its figures to the metrics."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from orvad.invoke.flight import Flight
from orvad.invoke.record import ExecutionRecord
from orvad.pool.pool import Lease, Pool
from orvad.pool.worker import Reply
from orvad.services.bus import Bus
from orvad.services.metrics import Metrics
from orvad.store.batch import Params
from orvad.store.executions import ExecutionStore
from orvad.traces.outliers import Outliers


class Settler:
    def __init__(self, executions: ExecutionStore, bus: Bus, metrics: Metrics) -> None:
        self._executions, self._bus, self._metrics = executions, bus, metrics
        self._stopping: set[asyncio.Future[None]] = set()  # workers of requests the shutdown cut
        self._orphans: dict[int, Lease] = {}  # slots held by handlers whose client left, by id(lease)
        self.outliers = Outliers()  # each function's rolling p95: the executions' outlier flag
        # who else sees each settled execution's row (the OTLP export, outbound webhooks), added by the daemon
        # with on_execution: each runs on the invoke path, so it only hands the row on (no I/O)
        self._execution_hooks: tuple[Callable[[dict[str, Any]], None], ...] = ()

    def on_execution(self, hook: Callable[[dict[str, Any]], None]) -> None:
        """Call ``hook`` with every settled execution's row (in the order hooks were added)."""
        self._execution_hooks = (*self._execution_hooks, hook)

    def settle(self, flight: Flight) -> None:
        duration = time.perf_counter() - flight.started
        lease, pool = flight.lease, flight.pool
        if lease is not None and pool is not None:
            self._release(flight, pool, lease, duration)
        flight.record.finish(duration)
        self.record_execution(flight.record, flight.request)

    def _release(self, flight: Flight, pool: Pool, lease: Lease, duration: float) -> None:
        if flight.unread is not None and lease.worker.alive:
            # the client left mid-stream but the handler streams on: its slot is free once it ends
            # (or is killed at its deadline), so the worker is never given more than it can take
            self._orphans[id(lease)] = lease
            self._release_after_stream(pool, lease, flight.started, flight.unread)
        elif flight.settling is not None:
            # the same for a handler still running when its client left
            self._orphans[id(lease)] = lease
            flight.settling.add_done_callback(
                functools.partial(self._release_settled, pool, lease, flight.started)
            )
        else:
            pool.release(lease, healthy=flight.healthy and lease.worker.alive, duration_s=duration)

    def record_execution(self, record: ExecutionRecord, request: Params | None = None) -> None:
        # a refused call ran no handler, a cold start's time is its worker's start: neither is judged
        if record.status != "rejected" and not record.cold_start:
            record.outlier = self.outliers.observe(record.function_id, record.duration_ms)
        row = record.as_row()
        for hook in self._execution_hooks:
            hook(row)
        # the event goes out once the row and its logs can be read (a client may fetch them at once)
        self._executions.record(
            row, record.logs, record.logs_truncated, lambda: self._bus.publish("execution", row), request
        )
        self._metrics.observe_invocation(
            record.function_name,
            record.status,
            record.duration_ms / 1000,
            record.cold_start,
            record.queue_ms / 1000,
            record.function_id,
        )
        if record.error_code:
            self._metrics.errors.labels(record.error_code).inc()

    def _release_settled(
        self, pool: Pool, lease: Lease, started: float, reply: asyncio.Future[Reply]
    ) -> None:
        """The handler of a request whose client left has answered or died: free its slot (a stream's
        once the stream ends)."""
        healthy = not reply.cancelled() and reply.exception() is None and lease.worker.alive
        if healthy and reply.result().kind == "stream":
            self._release_after_stream(pool, lease, started, reply.result())
            return
        self._orphans.pop(id(lease), None)
        pool.release(lease, healthy=healthy, duration_s=time.perf_counter() - started)

    def _release_after_stream(self, pool: Pool, lease: Lease, started: float, stream: Reply) -> None:
        """Nobody reads this stream: drop its chunks, and free the slot when its handler ends."""
        lease.worker.forget_stream(stream)  # type: ignore[attr-defined]
        assert stream.ended is not None

        def ended(_: object) -> None:
            self._orphans.pop(id(lease), None)
            pool.release(lease, healthy=lease.worker.alive, duration_s=time.perf_counter() - started)

        stream.ended.add_done_callback(ended)

    def stop_now(self, lease: Lease) -> None:
        """A handler cut by the shutdown: its worker stops at once (no quit grace: orvad is exiting)."""
        stopping = asyncio.ensure_future(lease.worker.stop(grace_s=0.0))
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)

    def stop_orphans(self) -> int:
        """At the end of the shutdown drain: handlers still running for clients that left are stopped
        now (their slots would otherwise hold the pools' close for its grace)."""
        orphans = list(self._orphans.values())
        for lease in orphans:
            self.stop_now(lease)
        return len(orphans)
