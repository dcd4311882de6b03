"""Give the heap back to the system after large request bodies.

A body arrives as many chunks of up to 64 KiB, which glibc's malloc serves from its heaps (below
its mmap threshold); the handler joins them into one object. Once the request is done they are
free, but glibc only returns a heap's top to the system, so the holes stay resident: orvad's RSS
grew from 53 to 106 MB after a few 10-100 MB uploads and stayed there. ``malloc_trim(0)`` returns
every free page of every heap (arenas of other threads included). It costs a walk of the heaps,
so it runs only after a body of ``TRIM_AFTER_BYTES`` or more, in a thread, at most one at a time.
Without glibc (musl, another platform) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)
TRIM_AFTER_BYTES = 1024 * 1024
LATER_S = 2.0  # and once more after this, for what the request's follow-up work (a build's start) freed


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


class HeapTrimmer:
    def __init__(self) -> None:
        self._trim = _malloc_trim()
        self._running: asyncio.Future[int] | None = None
        self._later: asyncio.TimerHandle | None = None
        self.trims = 0

    def after_body(self, size: int) -> None:
        """Called once a request whose body had ``size`` bytes is done (cheap when it was small)."""
        if size < TRIM_AFTER_BYTES or self._trim is None:
            return
        self._start()
        loop = asyncio.get_running_loop()
        if self._later is not None:
            self._later.cancel()
        self._later = loop.call_later(LATER_S, self._start)

    def _start(self) -> None:
        if self._running is not None and not self._running.done():
            return
        assert self._trim is not None
        self._running = asyncio.get_running_loop().run_in_executor(None, self._trim, 0)
        self._running.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[int]) -> None:
        if future.cancelled():
            return
        if future.exception() is not None:
            log.warning("malloc_trim failed", extra={"error": repr(future.exception())})
            return
        self.trims += 1
