"""Signed invocations (docs/API.md): the ``X-Orva-Signature`` check and the replay memory.

In memory; the replay memory is persisted through a callback into the batched writer
(``orvad/store/replay.py``), so nothing here touches the disk on the invoke path."""

from __future__ import annotations

import hashlib
import heapq
import hmac
import re
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from orvad.errors import Unauthorized

SIGNATURE_WINDOW_S = 300  # how far into the past a signed request's timestamp may be
SIGNATURE_FUTURE_S = 30  # and into the future (clock skew)
SIGNED_FORMS = {1: '"<timestamp>.<raw body>"', 2: '"<timestamp>.<METHOD>.<path?query>.<raw body>"'}
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")


class SharedReplays(Protocol):
    """A cluster's replay memory in its shared database (orvad/store/replay.py): a key claimed by any node
    is refused on every node."""

    async def claim(self, key: str, expires_at: float) -> bool: ...

    async def forget(self, key: str) -> None: ...


class SignatureChecker:
    """Signed invocations (docs/API.md): strict parsing, the window, and each signature once.

    The replay memory is a dict (the hot check) mirrored to SQLite through ``persist`` (the
    batched writer: no disk work on the invoke path) and loaded back at start. ``not_before``
    refuses older timestamps outright: set to the process start when the memory on disk may be
    incomplete (the last run crashed, or the store could not be read), so nothing signed before
    the gap can be replayed after it.
    """

    def __init__(self, persist: Callable[[str, float], None] | None = None) -> None:
        self._seen: dict[str, float] = {}  # signature -> when its timestamp leaves the window
        self._expiry: list[tuple[float, str]] = []  # a heap of the same, to forget in order
        self._persist = persist
        self.not_before = 0.0
        # on a cluster (PostgreSQL): each key is claimed in the shared database too, one INSERT ... ON
        # CONFLICT DO NOTHING, so a request accepted by one node is a replay on every other (set by the daemon)
        self.shared: SharedReplays | None = None

    def load(self, live: Iterable[tuple[str, float]], *, complete: bool, started: float) -> None:
        for signature, expires_at in live:
            self._remember(signature, expires_at)
        if not complete:
            # timestamps have whole seconds: the start's own second is refused too, since a signature the
            # crashed process accepted may carry that very second (the replay test caught it when the
            # restart came within the same second as the crash)
            self.not_before = float(int(started) + 1)

    async def verify(
        self,
        secret: str | None,
        timestamp: str | None,
        signature: str | None,
        body: bytes,
        *,
        version: int = 2,
        method: str = "",
        target: str = "",
    ) -> None:
        """``target`` is the request's path as sent (%-escapes kept) and ``?query`` when there is one."""
        form = SIGNED_FORMS.get(version, SIGNED_FORMS[2])
        if not secret:
            raise Unauthorized(
                "this function needs signed requests but has no ORVA_SIGNING_SECRET",
                hint="set the secret ORVA_SIGNING_SECRET on the function",
            )
        if timestamp is None or signature is None:
            raise Unauthorized(
                "missing X-Orva-Timestamp or X-Orva-Signature",
                hint=f"sign {form} with HMAC-SHA256; send X-Orva-Signature: sha256=<hex>",
            )
        if not _TIMESTAMP.fullmatch(timestamp):
            raise Unauthorized(
                "X-Orva-Timestamp must be the Unix time in seconds, in ASCII digits",
                hint="send the current Unix time in seconds, e.g. $(date +%s)",
            )
        if not _SIGNATURE.fullmatch(signature):
            raise Unauthorized(
                "X-Orva-Signature must be sha256= followed by 64 lower-case hex digits",
                hint="send exactly sha256=<hex>, nothing around it",
            )
        now, stamp = time.time(), int(timestamp)
        if stamp < now - SIGNATURE_WINDOW_S or stamp > now + SIGNATURE_FUTURE_S:
            raise Unauthorized(
                f"X-Orva-Timestamp is outside the window ({SIGNATURE_WINDOW_S} s into the past, "
                f"{SIGNATURE_FUTURE_S} s into the future)",
                hint="send the current Unix time in seconds, and check the caller's clock",
            )
        if stamp < self.not_before:
            raise Unauthorized(
                "X-Orva-Timestamp is older than orvad's start, and orvad cannot tell whether it "
                "was used before (its replay memory may have lost rows in a crash)",
                hint="sign the request again with the current time",
            )
        prefix = f"{timestamp}." if version == 1 else f"{timestamp}.{method}.{target}."
        expected = (
            "sha256=" + hmac.new(secret.encode(), prefix.encode("latin-1") + body, hashlib.sha256).hexdigest()
        )
        if not hmac.compare_digest(expected, signature):
            raise Unauthorized(
                "the request signature does not match",
                hint=f"HMAC-SHA256 over {form}",
                details={"signature_version": version},
            )
        if not await self.claim_everywhere(signature, float(stamp + SIGNATURE_WINDOW_S), now):
            raise Unauthorized("this signature was used already (replay)", hint="sign every request afresh")

    async def claim_everywhere(self, key: str, expires_at: float, now: float) -> bool:
        """``claim`` here, then, on a cluster, in the shared database: False when this node or any other
        accepted ``key`` already (one database round trip on a cluster's signed path: the price of a
        replay refused on every node; none on a single node)."""
        if self.shared is None:
            return self.claim(key, expires_at, now)
        # the shared claim writes the row itself: none is queued to the batched writer too (it could land
        # after ``forget_everywhere`` deleted the row, and the sender's retry would be a replay)
        if not self.claim(key, expires_at, now, persist=False):
            return False
        return await self.shared.claim(key, expires_at)

    async def forget_everywhere(self, key: str) -> None:
        """``forget``, and on a cluster the shared row too (the sender's retry may reach another node)."""
        self.forget(key)
        if self.shared is not None:
            await self.shared.forget(key)

    def claim(self, key: str, expires_at: float, now: float, *, persist: bool = True) -> bool:
        """Remember ``key`` until ``expires_at`` (persisted through the batched writer); False when it is
        remembered already (a replay). Inbound webhooks (orvad/webhooks/inbound.py) keep their deliveries
        here too, under keys of their own (``webhook:<id>:...``), so one memory survives restarts."""
        while self._expiry and self._expiry[0][0] < now:
            when, old = heapq.heappop(self._expiry)
            if self._seen.get(old) == when:  # not claimed again since (``forget``) with a later expiry
                del self._seen[old]
        if key in self._seen:
            return False
        self._remember(key, expires_at)
        if persist and self._persist is not None:
            self._persist(key, expires_at)
        return True

    def forget(self, key: str) -> None:
        """A claimed key given back: what it named was refused before it ran (an inbound webhook delivery
        turned away busy), so the sender's retry of it is not a replay. Memory only: the row written for it
        stays, so after a restart within its window the retry is refused as a replay."""
        self._seen.pop(key, None)

    def _remember(self, signature: str, expires_at: float) -> None:
        self._seen[signature] = expires_at
        heapq.heappush(self._expiry, (expires_at, signature))
