"""Per-function invoke limits, in memory: a token bucket per (function, client) for
rate_limit_per_min, a concurrency gate for max_concurrency, and the replay memory of signed
requests. Nothing here touches the disk."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import math
import time
from collections.abc import Iterable

from orvad.errors import FunctionBusy, RateLimited, Unauthorized

SIGNATURE_WINDOW_S = 300
_MAX_BUCKETS = 100_000


class RateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}  # -> (tokens, last refill)

    def take(self, function_id: str, client: str, per_minute: int) -> None:
        if per_minute <= 0:
            return
        now = time.monotonic()
        rate = per_minute / 60.0
        tokens, last = self._buckets.get((function_id, client), (float(per_minute), now))
        tokens = min(float(per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[(function_id, client)] = (tokens, now)
            retry = max(1, math.ceil((1.0 - tokens) / rate))
            raise RateLimited(f"rate limit of {per_minute} requests per minute reached", retry_after_s=retry,
                              hint=f"retry after {retry} s, or raise rate_limit_per_min",
                              details={"function_id": function_id, "limit_per_min": per_minute})
        if len(self._buckets) >= _MAX_BUCKETS:
            self._buckets.clear()  # bounded memory; a reset only ever lets requests through
        self._buckets[(function_id, client)] = (tokens - 1.0, now)


class ConcurrencyGate:
    """At most ``limit`` requests of one function at once: queue (up to a deadline) or reject."""

    def __init__(self) -> None:
        self._running: dict[str, int] = {}
        self._changed = asyncio.Condition()

    async def enter(self, function_id: str, limit: int, policy: str, timeout_s: float) -> bool:
        if limit <= 0:
            return False
        async with self._changed:
            if self._running.get(function_id, 0) >= limit:
                if policy == "reject":
                    raise FunctionBusy(f"function is running its maximum of {limit} requests", retry_after_s=1,
                                       hint="retry shortly, or raise max_concurrency",
                                       details={"function_id": function_id, "max_concurrency": limit})
                try:
                    await asyncio.wait_for(self._changed.wait_for(lambda: self._running.get(function_id, 0) < limit),
                                           timeout_s)
                except TimeoutError:
                    raise FunctionBusy(f"function stayed at its maximum of {limit} requests", retry_after_s=1,
                                       details={"function_id": function_id, "max_concurrency": limit}) from None
            self._running[function_id] = self._running.get(function_id, 0) + 1
        return True

    async def leave(self, function_id: str) -> None:
        async with self._changed:
            self._running[function_id] -= 1
            self._changed.notify_all()


class SignatureChecker:
    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def verify(self, secret: str | None, timestamp: str | None, signature: str | None, body: bytes) -> None:
        if not secret:
            raise Unauthorized("this function needs signed requests but has no ORVA_SIGNING_SECRET",
                               hint="set the secret ORVA_SIGNING_SECRET on the function")
        if not timestamp or not signature:
            raise Unauthorized("missing X-Orva-Timestamp or X-Orva-Signature",
                               hint='sign "<timestamp>.<raw body>" with HMAC-SHA256; send sha256=<hex>')
        now = time.time()
        if not timestamp.isdigit() or abs(now - int(timestamp)) > SIGNATURE_WINDOW_S:
            raise Unauthorized("X-Orva-Timestamp is missing, malformed or outside the 300 s window",
                               hint="send the current Unix time in seconds")
        expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.strip()):
            raise Unauthorized("the request signature does not match", hint="HMAC-SHA256 over \"<timestamp>.<body>\"")
        for seen, expires in list(self._seen.items()):
            if expires < now:
                del self._seen[seen]
        if signature in self._seen:
            raise Unauthorized("this signature was used already (replay)", hint="sign every request afresh")
        self._seen[signature] = now + SIGNATURE_WINDOW_S


def client_address(peer: str, forwarded_for: str | None, trusted: Iterable[ipaddress._BaseNetwork]) -> str:
    """The caller's address: X-Forwarded-For's last untrusted hop, only behind a trusted proxy."""
    if not forwarded_for or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _in(address: str, networks: Iterable[ipaddress._BaseNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
