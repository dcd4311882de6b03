"""A worker's stderr (its output outside any request's capture): read in chunks, rate-limited, kept in a ring.

A handler's raw writes to fd 1/2, its child processes and its background threads reach this pipe, not the
request's capture. It is read from the pipe's callback, whole chunks at a time, never line by line: a flood
costs orvad one callback per pipe-full. Past ``bytes_per_s`` (a token bucket holding one second's worth) the
excess is dropped unread-into-the-ring and counted; lines are cut at ``MAX_LINE`` bytes, and a line without
a newline is flushed into the ring once it reaches that length or the pipe closes, so one endless line can
neither hang the worker (orvad always reads) nor grow orvad's memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("orvad.pool.worker")
STDERR_RING = 200  # lines of worker-level output kept for diagnosis
MAX_LINE = 4096  # bytes of one line kept in the ring


class StderrSink(asyncio.Protocol):
    def __init__(self, name: str, bytes_per_s: int, on_drop: Callable[[int], None] | None = None) -> None:
        self.name = name
        self.tail: deque[str] = deque(maxlen=STDERR_RING)
        self.dropped = 0  # bytes dropped over the rate, since the start
        self._rate = float(bytes_per_s)
        self._tokens = self._rate  # a full second's worth to begin with: start-up errors are kept whole
        self._at = time.monotonic()
        self._partial = b""
        self._dropping = False
        self.on_drop = on_drop

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
        self._at = now
        size = len(data)
        if size > tokens:
            keep = int(tokens)
            self._drop(size - keep)
            data, tokens = data[:keep], 0.0
        else:
            tokens -= size
            self._dropping = False
        self._tokens = tokens
        if data:
            self._keep(data)

    def _drop(self, size: int) -> None:
        self.dropped += size
        if not self._dropping:  # once per flood, so the ring says why it has gaps
            self._dropping = True
            self._line(f"[orva: worker output over {int(self._rate)} bytes/s dropped]".encode())
        if self.on_drop is not None:
            self.on_drop(size)

    def _keep(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        partial = lines.pop()
        if len(partial) >= MAX_LINE:  # a line without its newline yet: flush what the ring would keep of it
            lines.append(partial)
            partial = b""
        self._partial = partial
        for line in lines if log.isEnabledFor(logging.DEBUG) else lines[-STDERR_RING:]:
            self._line(line)

    def _line(self, line: bytes) -> None:
        text = line[:MAX_LINE].decode(errors="replace").rstrip()
        self.tail.append(text)
        log.debug("worker output", extra={"worker": self.name, "line": text[:500]})

    def eof_received(self) -> bool:
        return False  # close the pipe at its end (uvloop keeps a transport open when this says True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = b""
