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


class WallClock:
    """The time schedules are kept by (orvad/cron/): the system clock. ``poll_s``: how often a loop waiting
    for a moment re-reads the time (None: the time moves on its own, sleeping until the moment is enough)."""

    poll_s: float | None = None

    def now(self) -> datetime:
        return utcnow()


class FileClock(WallClock):
    """A test's clock (``ORVA_TEST_CLOCK_FILE``, docs/CONFIGURATION.md): the time is the RFC 3339 timestamp the
    file holds, standing still until the file changes; a waiting loop re-reads it every ``poll_s``.

    Only used when that setting is given. The file must belong to orvad's own user and be writable by no one
    else (checked at start and at every read): whoever could write it could make every schedule fire. A read
    that fails (a file being replaced) keeps the last time read."""

    poll_s = 0.05

    def __init__(self, path: str) -> None:
        self.path = path
        self._last = self._read()

    def _read(self) -> datetime:
        import os
        import stat

        fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
                raise PermissionError(
                    f"{self.path} must be a regular file owned by orvad's user (uid {os.geteuid()}) and "
                    "writable by no one else"
                )
            text = os.read(fd, 200).decode().strip()
        finally:
            os.close(fd)
        return parse_iso(text).astimezone(UTC)

    def now(self) -> datetime:
        try:
            self._last = self._read()
        except (OSError, ValueError, UnicodeDecodeError):
            pass
        return self._last
