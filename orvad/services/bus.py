"""In-process publish/subscribe for live events (deployments now; executions and metrics later).

Each subscriber has a bounded queue; a subscriber too slow to keep up loses its oldest events
and is told how many with a ``dropped`` event instead of stalling the publisher.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

Event = tuple[str, dict[str, Any]]


class Subscription:
    def __init__(self, topics: frozenset[str] | None, maxsize: int) -> None:
        self.topics = topics
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0
        self._held: Event | None = None  # the event that waits behind a "dropped" notice

    def offer(self, event: Event) -> None:
        if self.topics is not None and event[0] not in self.topics:
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        if self._held is not None:
            event, self._held = self._held, None
            return event
        event = await self.queue.get()
        if self.dropped:
            count, self.dropped = self.dropped, 0
            self._held = event
            return ("dropped", {"count": count})
        return event


class Bus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        for sub in self._subscribers:
            sub.offer((topic, data))

    @asynccontextmanager
    async def subscribe(
        self, topics: frozenset[str] | None = None, maxsize: int = 1000
    ) -> AsyncIterator[Subscription]:
        sub = Subscription(topics, maxsize)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
