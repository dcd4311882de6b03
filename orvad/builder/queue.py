"""A bounded build queue: at most ``concurrency`` builds at once and ``backlog`` waiting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from orvad.errors import Unavailable

log = logging.getLogger(__name__)


class BuildQueue:
    def __init__(self, run: Callable[[str], Awaitable[None]], *, concurrency: int, backlog: int) -> None:
        self._run = run
        self._concurrency = concurrency
        self._queue: asyncio.Queue[str] = asyncio.Queue(backlog)
        self._workers: list[asyncio.Task[None]] = []
        self.running: set[str] = set()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, deployment_id: str) -> None:
        try:
            self._queue.put_nowait(deployment_id)
        except asyncio.QueueFull:
            raise Unavailable(
                f"the build queue is full ({self._queue.maxsize} waiting)", code="BUILD_QUEUE_FULL",
                retry_after_s=10, hint="retry after the running builds finish, or raise ORVA_BUILD_BACKLOG",
                details={"backlog": self._queue.maxsize, "concurrency": self._concurrency},
            ) from None

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work(), name=f"orva-build-{i}") for i in range(self._concurrency)]

    async def stop(self) -> None:
        """Cancel running builds (they are resumed on the next start) and stop the workers."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    async def _work(self) -> None:
        while True:
            deployment_id = await self._queue.get()
            self.running.add(deployment_id)
            try:
                await self._run(deployment_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("build crashed", extra={"deployment_id": deployment_id})
            finally:
                self.running.discard(deployment_id)
