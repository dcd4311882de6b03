"""The import check: a new version must import on a fresh worker before it is activated.

The check starts one worker of the new version exactly as the pool would (the same jail, limits,
environment, secrets and network: ``Spawner.recipe``), so a handler that reads an env var or a
secret at import passes as it will in production. The adapter imports the entry module and sends
its ``ready`` frame, with ``initError`` when the import failed (a syntax error, a missing
``handler``, an ImportError, any exception or ``sys.exit`` at import); a worker that dies before
that frame (``os._exit``, out of memory at import) fails the check too.

The verdict travels on the worker protocol's frame channel: a length-prefixed frame on a
descriptor the adapter keeps private (Python points fd 1 at stderr before the import; Node
captures ``console`` and ``process.stdout``). Whatever the handler prints at import, a marker
included, lands in the build log, never in the verdict. Forging a ``ready`` frame takes code that
writes a binary frame to that descriptor on purpose, and would only let that tenant's own broken
version go live (its requests then fail as before); it reaches nothing else.

A worker that passed is handed to the version's pool as its first worker (``CheckedWorker``), so
when the pool warms a worker anyway (``min_warm`` >= 1, the default) the check costs no spawn of
its own.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from orvad.builder.installer import BuildFailed
from orvad.errors import OrvaError, WorkerCrashed
from orvad.pool.worker import Worker

MAX_LOG_LINES = 200  # lines of a failed import's output and traceback copied into the build log
_NODE_PLACE = re.compile(r"^/code/(.+):(\d+)$")  # the first line of a Node SyntaxError's stack


class ImportFailed(BuildFailed):
    """The entry module cannot be imported; ``lines`` (output, then the traceback) go to the build log."""

    def __init__(self, message: str, lines: list[str]) -> None:
        super().__init__(message)
        self.lines = lines


class CheckSkipped(Exception):
    """No worker could be started for a reason that is not the code's (no sandbox, egress down, ...)."""


class CheckedWorker:
    """A started worker of the new version whose handler imported; the pool's first spawn takes it."""

    def __init__(self, worker: Worker, key: object, took_ms: float) -> None:
        self._worker: Worker | None = worker
        self.key = key  # what it was started with (Spawner.key): handed over only to the same key
        self.took_ms = took_ms

    def first_then(self, spawn: Callable[[], Awaitable[Worker]]) -> Callable[[], Awaitable[Worker]]:
        """``spawn``, whose first call returns this worker (when it is still alive)."""

        async def first() -> Worker:
            worker, self._worker = self._worker, None
            if worker is not None and worker.alive:
                return worker
            if worker is not None:
                await worker.stop(grace_s=0.0)
            return await spawn()

        return first

    async def discard(self) -> None:
        """Stop the worker unless a pool took it."""
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.stop(grace_s=0.5)


async def check_import(spawn: Callable[[], Awaitable[Worker]], key: object, entrypoint: str) -> CheckedWorker:
    """Start one worker; ImportFailed when its handler cannot be imported, CheckSkipped when no worker
    can start for a reason outside the code (the build then goes on as without the check)."""
    started = time.monotonic()
    try:
        worker = await spawn()
    except WorkerCrashed as exc:  # exited, was killed or sent nothing before its ready frame
        detail = exc.message.removeprefix("worker failed to start: ")
        raise ImportFailed(
            f"the new version's worker stopped while importing {entrypoint}: {detail}", _split(exc.message)
        ) from None
    except OrvaError as exc:
        raise CheckSkipped(exc.message) from None
    error = worker.init_error
    if error is None:
        return CheckedWorker(worker, key, (time.monotonic() - started) * 1000)
    with contextlib.suppress(Exception):
        await worker.stop(grace_s=0.0)
    output = list(worker.stderr_tail)  # what the module printed while it was imported
    raise ImportFailed(
        f"{entrypoint} cannot be imported: {_summary(error)}",
        (output + _split(str(error.get("stack") or _summary(error))))[-MAX_LOG_LINES:],
    )


def _summary(error: dict[str, Any]) -> str:
    name, message = str(error.get("name") or "Error"), str(error.get("message") or "")
    place = _NODE_PLACE.match(str(error.get("stack") or "").split("\n", 1)[0])
    if place is not None:  # Python's SyntaxError names its line in the message already; Node's does not
        message += f" ({place[1]}, line {place[2]})"
    return (f"{name}: {message}" if message else name)[:500]


def _split(text: str) -> list[str]:
    return [line for line in text.rstrip("\n").split("\n")]
