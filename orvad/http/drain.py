"""A graceful stop (SIGTERM/SIGINT), whichever HTTP server runs: orvad drains its requests itself.

``RequestContext`` registers every request's task here. On the signal the drain begins: the
listeners stay open and every new request is answered 503 ``SHUTTING_DOWN`` at once; requests
already running get up to ``shutdown_grace_s`` to finish (the API's event streams, which never
finish, are not waited for: they end as the drain begins). When the grace ends, those still
running are cancelled and answer the 503 envelope themselves (a stream already started ends
with an in-band error); only then is the server told to stop, so its own grace never cuts a
request into a bare 500.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from orvad.errors import Restoring, ShuttingDown

RETRY_AFTER_S = 5  # about what a restart takes; another instance behind a balancer can take it at once


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self.work: set[asyncio.Task[Any]] = set()  # the requests the grace waits for (RequestContext's)
        self._feeds: set[asyncio.Task[Any]] = set()  # API event streams: not waited for
        self._cut: set[asyncio.Task[Any]] = set()  # cancelled by cut(), not by their client
        self._idle = asyncio.Event()
        self._hurry = asyncio.Event()
        # a restore's pause (Daemon.reload_from): new requests wait for ``_resumed``; the request that
        # restores (``_keep``) is not waited for
        self.paused = False
        self._resumed = asyncio.Event()
        self._keep: asyncio.Task[Any] | None = None

    # per request (the hot path): RequestContext adds the task to ``work`` and, when it is done,
    # discards it and calls left() if the drain has begun
    def left(self, task: asyncio.Task[Any]) -> None:
        self._feeds.discard(task)
        if not self.work or (self.paused and self.work == {self._keep}):
            self._idle.set()

    @property
    def watching(self) -> bool:
        """Whether left() must be told (draining, or paused for a restore)."""
        return self.draining or self.paused

    def feed(self, task: asyncio.Task[Any]) -> None:
        """The request is an event stream of the API: not waited for (it ends as the drain begins)."""
        self.work.discard(task)
        self._feeds.add(task)
        if self.draining and not self.work:
            self._idle.set()

    def is_feed(self, task: asyncio.Task[Any]) -> bool:
        return task in self._feeds

    def was_cut(self, task: asyncio.Task[Any] | None) -> bool:
        return task in self._cut

    def claim(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether cut() (not a client) cancelled ``task``; takes the cancel back so it can answer."""
        if task is None or task not in self._cut:
            return False
        self._cut.discard(task)
        task.uncancel()
        return True

    @staticmethod
    def refusal(message: str = "orvad is shutting down and takes no new requests") -> ShuttingDown:
        return ShuttingDown(message, retry_after_s=RETRY_AFTER_S)  # RequestContext adds Connection: close

    # a restore's pause (orvad.daemon.Daemon.reload_from)
    async def pause(self, keep: asyncio.Task[Any] | None, timeout_s: float) -> bool:
        """New requests wait (``hold``) from now on; wait until none but ``keep`` (the restore's own
        request) runs, at most ``timeout_s``: True when they all finished."""
        self.paused, self._keep = True, keep
        self._resumed.clear()
        self._idle.clear()
        if not self.work - {keep}:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return not self.work - {keep}

    def resume(self) -> None:
        self.paused, self._keep = False, None
        self._resumed.set()

    async def hold(self, timeout_s: float) -> None:
        """A request that arrived during a restore waits for it to end (Restoring past ``timeout_s``)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._resumed.wait(), timeout_s)
        if self.paused:
            raise Restoring(
                "orvad is loading a restored backup",
                retry_after_s=RETRY_AFTER_S,
            )

    # the stop sequence (orvad.cli)
    def begin(self) -> None:
        """New requests are refused from now on (the caller, orvad.cli, also ends sse-starlette's streams)."""
        if self.draining:
            self._hurry.set()  # a second signal: no more grace
            return
        self.draining = True
        if not self.work:
            self._idle.set()

    async def settle(self, timeout_s: float) -> bool:
        """Wait until no request runs (True), the time is up or a second signal came (False)."""
        if not self.work:
            return True
        waits = [asyncio.ensure_future(self._idle.wait()), asyncio.ensure_future(self._hurry.wait())]
        try:
            await asyncio.wait(waits, timeout=max(0.0, timeout_s), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        return not self.work

    def cut(self) -> int:
        """Cancel every request still running: each answers 503 SHUTTING_DOWN (or ends its stream)."""
        running = [*self.work, *self._feeds]
        for task in running:
            self._cancel(task)
        return len(running)

    def _cancel(self, task: asyncio.Task[Any]) -> None:
        if task not in self._cut and not task.done():
            self._cut.add(task)
            task.cancel()
