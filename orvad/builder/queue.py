"""A bounded, fair build queue: at most ``concurrency`` builds at once and ``backlog`` waiting.

Fair between functions: one function runs at most one build at a time (its builds activate one
after the other anyway), and waiting functions are served round-robin, so a slow or hostile
build of one function never holds the slots other functions' builds need.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from orvad.errors import BuildQueueFull

log = logging.getLogger(__name__)


class BuildQueue:
    def __init__(self, run: Callable[[str], Awaitable[None]], *, concurrency: int, backlog: int) -> None:
        self._run = run
        self._concurrency = concurrency
        self._backlog = backlog
        self._waiting: dict[
            str, deque[str]
        ] = {}  # function id -> its deployment ids; dict order = turn order
        self._size = 0
        self._busy: set[str] = set()  # functions with a build running
        self._wakeup = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self.running: set[str] = set()

    @property
    def depth(self) -> int:
        return self._size

    def submit(self, deployment_id: str, function_id: str = "") -> None:
        if self._size >= self._backlog:
            raise BuildQueueFull(
                f"the build queue is full ({self._backlog} waiting)",
                retry_after_s=10,
                hint="retry after the running builds finish, or raise ORVA_BUILD_BACKLOG",
                details={"backlog": self._backlog, "concurrency": self._concurrency},
            )
        self._waiting.setdefault(function_id, deque()).append(deployment_id)
        self._size += 1
        self._wakeup.set()

    def _take(self) -> tuple[str, str] | None:
        """The next build of the first waiting function without a running build; it goes to the back."""
        for function_id, pending in self._waiting.items():
            if function_id in self._busy:
                continue
            deployment_id = pending.popleft()
            del self._waiting[function_id]
            if pending:
                self._waiting[function_id] = pending  # re-inserted last: the next turn is another function's
            self._size -= 1
            return function_id, deployment_id
        return None

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"orva-build-{i}") for i in range(self._concurrency)
        ]

    async def stop(self) -> None:
        """Cancel running builds (they are resumed on the next start) and stop the workers."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    async def _work(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            function_id, deployment_id = taken
            self._busy.add(function_id)
            self.running.add(deployment_id)
            try:
                await self._run(deployment_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("build crashed", extra={"deployment_id": deployment_id})
            finally:
                self.running.discard(deployment_id)
                self._busy.discard(function_id)
                self._wakeup.set()  # another worker may take this function's next build
