"""Failed-login throttling per (client address, username), in memory."""

from __future__ import annotations

import math
import time
from collections import deque

from orvad.errors import RateLimited

_MAX_TRACKED = 10_000  # bound memory under a spray of usernames


class LoginThrottle:
    def __init__(self, max_failures: int, window_s: float) -> None:
        self._max = max_failures
        self._window = window_s
        self._failures: dict[tuple[str, str], deque[float]] = {}

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
