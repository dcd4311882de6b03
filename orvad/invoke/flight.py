"""What one invocation holds while it runs: its record, its slot, and what settling it must know."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orvad.invoke.connection import DisconnectWatch
from orvad.invoke.record import ExecutionRecord
from orvad.pool.pool import Lease, Pool
from orvad.pool.worker import Reply
from orvad.sdk.calls import Caller
from orvad.store.batch import Params


@dataclass(slots=True)
class Flight:
    record: ExecutionRecord
    started: (
        float  # perf_counter at admission: the duration, the deadline and X-Orva-Duration-Ms count from it
    )
    pool: Pool | None = None
    lease: Lease | None = None  # the worker's slot, once acquired
    task: asyncio.Task[Any] | None = None  # the request's task, while an operator kill may cancel it
    watch: DisconnectWatch | None = None  # HTTP only: cancels the task when the client leaves
    gated: bool = False  # holds a place in the function's concurrency gate
    healthy: bool = True  # the worker may serve again
    settling: asyncio.Future[Reply] | None = (
        None  # the reply of a handler still running after its client left
    )
    unread: Reply | None = None  # a stream not relayed to its end: the worker drops the rest
    stream_headers: Sequence[tuple[bytes, bytes]] = ()  # a started stream's own headers
    request: Params | None = None  # its captured request's row (orvad/invoke/capture.py), if kept
    chain: tuple[str, ...] = ()  # F2F: the calls that led here (InvokeRequest.chain), for its SDK calls

    def caller(self, deadline: float) -> Caller:
        """Who the handler's SDK calls come from (orvad/sdk/calls.py), never what the sandbox says: made by
        the worker at the request's first call frame, with its deadline (the event loop's clock)."""
        record = self.record
        return Caller(
            record.function_id,
            record.function_name,
            record.id,
            deadline,
            trace_id=record.trace_id,
            span_id=record.span_id,
            chain=self.chain,
        )
