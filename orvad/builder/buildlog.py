"""The live event log of one running build, followed by SSE clients from its first event.

A build keeps its events in memory while it runs and for a while after, so a client that
connects at any moment sees every line once and in order; older builds are read back from
the database instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from orvad.models import FINAL_STATUSES

MAX_LINES = 20_000  # per deployment; past it one notice line says how many were left out
FINAL_EVENTS = tuple(status.value for status in FINAL_STATUSES)  # the last event of every build stream


class BuildLog:
    def __init__(self, deployment_id: str) -> None:
        self.deployment_id = deployment_id
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.finished = False
        self.lines = 0
        self.omitted = 0
        self._changed = asyncio.Condition()

    async def emit(self, event: str, data: dict[str, Any]) -> None:
        async with self._changed:
            self.events.append((event, data))
            if event in FINAL_EVENTS:
                self.finished = True
            self._changed.notify_all()

    async def follow(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        index = 0
        while True:
            async with self._changed:
                while index >= len(self.events):
                    await self._changed.wait()
                pending = self.events[index:]
            for event in pending:
                yield event
                index += 1
                if event[0] in FINAL_EVENTS:
                    return
