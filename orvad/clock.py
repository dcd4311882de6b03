"""Time as orvad writes it: RFC 3339 UTC strings with milliseconds and a Z."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


def now_iso() -> str:
    return iso(utcnow())


def parse_iso(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; a value without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
