"""The live frames of one running turn, for any number of listeners.

A turn (orvad/assistant/turn.py) emits frames (``event``, ``data``) into its ``Live``; every listener
(the HTTP stream that started it, a client that re-attached with GET /api/v1/ai/conversations/<id>/stream)
follows it from its first frame, so a listener that joins late still sees the whole run, then each new
frame as it comes, then the end. A listener that goes away takes nothing with it: the turn does not
know its listeners. During a silence of ``ping_s`` (a slow provider, a long tool call) a listener gets a
``PING`` marker, which the API writes as the SSE comment ``: ping``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Final

Frame = tuple[str, dict[str, Any]]
PING: Final[Frame] = ("", {})  # a silence: the API writes `: ping`


class Live:
    """One run of a turn: its frames so far, and whether it has ended."""

    def __init__(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id
        self.frames: list[Frame] = []
        self.ended = False
        self._changed = asyncio.Event()

    def emit(self, event: str, data: dict[str, Any]) -> None:
        if self.ended:
            return
        self.frames.append((event, data))
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self, ping_s: float) -> AsyncIterator[Frame]:
        """Every frame from the first, then the new ones as they come, until the run ends; ``PING``
        after each ``ping_s`` of silence."""
        seen = 0
        while True:
            changed = self._changed
            while seen < len(self.frames):
                yield self.frames[seen]
                seen += 1
            if self.ended:
                return
            try:
                await asyncio.wait_for(changed.wait(), ping_s)
            except TimeoutError:
                yield PING


async def nothing() -> AsyncIterator[Frame]:
    """The stream of a conversation with no turn running: it ends at once."""
    return
    yield  # an async generator
