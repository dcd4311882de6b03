"""Failed-login throttling per (client address, username), in memory.

An attempt is counted *before* its password is checked and attempts on one username take turns,
so a burst of parallel guesses gets exactly as many checks as the limit allows and the rest are
refused (a concurrent burst used to pass the check together and all reach scrypt). A success
clears the count it had taken.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from orvad.errors import RateLimited

_MAX_TRACKED = 10_000  # bound memory under a spray of usernames


@dataclass
class _Turn:
    """The lock attempts on one username queue on, and how many hold or wait for it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class LoginThrottle:
    def __init__(self, max_failures: int, window_s: float) -> None:
        self._max = max_failures
        self._window = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._turns: dict[str, _Turn] = {}

    @asynccontextmanager
    async def attempt(self, client: str, username: str) -> AsyncIterator[None]:
        """One login attempt: waits for the username's turn, raises RateLimited while throttled,
        and counts a failure before the body runs; call ``succeeded`` inside it on success."""
        name = username.lower()
        turn = self._turns.setdefault(name, _Turn())
        turn.users += 1
        try:
            async with turn.lock:
                self.check(client, name)
                self.failed(client, name)
                yield
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[name]

    def check(self, client: str, username: str) -> None:
        """Raise RateLimited while this client has too many recent failures for this username."""
        recent = self._recent((client, username.lower()))
        if len(recent) >= self._max:
            retry = max(1, math.ceil(recent[0] + self._window - time.monotonic()))
            raise RateLimited(
                "too many failed logins; try again later",
                hint=f"wait {retry} s before the next attempt",
                retry_after_s=retry,
            )

    def failed(self, client: str, username: str) -> None:
        if len(self._failures) >= _MAX_TRACKED:
            self._prune()
        self._failures.setdefault((client, username.lower()), deque()).append(time.monotonic())

    def succeeded(self, client: str, username: str) -> None:
        self._failures.pop((client, username.lower()), None)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        stamps = self._failures.get(key, deque())
        cutoff = time.monotonic() - self._window
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        return stamps

    def _prune(self) -> None:
        for key in list(self._failures):
            if not self._recent(key):
                del self._failures[key]
