"""Fixtures for the cron tests: an orvad whose cron clock is a file the test moves (ORVA_TEST_CLOCK_FILE)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import Orvad, free_port

START = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # the morning of New York's spring-forward day


class TestClock:
    """The time orvad's cron reads: written to its file atomically (a new file renamed over the old one)."""

    __test__ = False

    def __init__(self, path: Path, start: datetime = START) -> None:
        self.path = path
        self.now = start
        self.set(start)

    def set(self, moment: datetime) -> datetime:
        self.now = moment.astimezone(UTC)
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.write_text(self.now.isoformat().replace("+00:00", "Z") + "\n")
        tmp.chmod(0o644)
        os.replace(tmp, self.path)
        return self.now

    def advance(self, **delta: float) -> datetime:
        return self.set(self.now + timedelta(**delta))


def clocked_orvad(base: Path, env: dict[str, str] | None = None) -> tuple[Orvad, TestClock]:
    clock = TestClock(base / "clock")
    server = Orvad(base / "data", free_port(), {"ORVA_TEST_CLOCK_FILE": str(clock.path), **(env or {})})
    return server, clock


@pytest.fixture(scope="module")
def clocked() -> Iterator[tuple[Orvad, TestClock]]:
    """One orvad per module with a test clock (and at most 5 schedules per function, to reach the limit)."""
    base = Path(tempfile.mkdtemp(prefix="orva-cron-"))
    base.chmod(0o711)
    server, clock = clocked_orvad(base, {"ORVA_CRON_MAX_PER_FUNCTION": "5"})
    server.start()
    yield server, clock
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh_base() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="orva-cron-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)
