"""The HTTP connection under an invocation: reading its body, and noticing its client leave."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive

# A request still running after this long gets a task that watches for its client going away.
# Most invocations end sooner, and a watcher task for every request would cost each one ~5% of
# orvad's CPU; a client that leaves earlier is noticed at this mark.
DISCONNECT_WATCH_AFTER_S = 0.05


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("client disconnected")
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class DisconnectWatch:
    """Cancels the request's task when its client goes away (the body was read already)."""

    def __init__(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        self._receive, self._task = receive, task
        self._watcher: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(DISCONNECT_WATCH_AFTER_S, self._start)

    def _start(self) -> None:
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._task.cancel()

    def stop(self) -> None:
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
