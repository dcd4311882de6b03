"""Time as orvad writes it: RFC 3339 UTC strings with milliseconds and a Z."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


def now_iso() -> str:
    """The same text as iso(utcnow()), without building a datetime: it is called twice per invoke."""
    return epoch_iso(time.time())


def epoch_iso(seconds: float) -> str:
    """A Unix time as orvad writes time (milliseconds, Z)."""
    whole = int(seconds)
    if whole != _second[0]:  # the date part changes once a second: format it once a second
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{int((seconds - whole) * 1000):03d}Z"


_second: list[Any] = [-1, ""]  # [whole second, its text]


def parse_iso(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; a value without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
