"""One owner for background tasks: started by name, crashes logged when they happen, stopped together.

``Tasks.start(name, coro)`` runs a coroutine as a task the owner keeps a reference to (asyncio keeps
only weak ones: an unreferenced task may vanish mid-flight). A task that raises is logged at once
with its name and traceback (logger ``orvad.tasks``), not found later in a ``gather`` nobody reads.
``stop()`` cancels every task and waits for them within a deadline; one that ignores its cancel is
named in the log and left, so a stuck loop cannot hold orvad's shutdown.

The daemon owns one (its loops: housekeeping, metrics history) and hands it to what starts tasks
that outlive their caller (a worker's network namespace released after its exit). Tasks that belong
to one request (the invoke path) or to one object with its own close (a pool's spawns, a worker's
watchers, the build queue's workers) stay with that object.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0


async def every(interval_s: float, job: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``job`` every ``interval_s`` seconds, for ever (until cancelled); a failed round is logged with
    ``what`` and the next one runs on time."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await job()
        except Exception:
            log.exception("a periodic task's round failed", extra={"task": what})


class Tasks:
    """A set of named background tasks with one owner."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def names(self) -> list[str]:
        return sorted(task.get_name() for task in self._tasks)

    def start(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as the task ``name``; kept until it ends, logged if it raises."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("background task crashed", exc_info=exc, extra={"task": task.get_name()})

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S, *, cancel: bool = True) -> None:
        """Cancel every task (``cancel=False``: let them finish) and wait for them, at most ``timeout_s``;
        the ones still running then are logged and left."""
        if not self._tasks:
            return
        tasks = list(self._tasks)
        if cancel:
            for task in tasks:
                task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        if pending:
            log.error(
                "background tasks did not stop in time; left running",
                extra={"tasks": sorted(t.get_name() for t in pending), "timeout_s": timeout_s},
            )
