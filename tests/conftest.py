"""Shared fixtures: real orvad processes on free ports with temporary data dirs.

Only fixtures and hooks live here; the classes and functions tests import are in tests/helpers.py.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import Orvad, free_port


@pytest.fixture
def jail_tmp() -> Iterator[Path]:
    """A temporary folder the jail (uid 65534) can traverse: pytest's own base is 0700."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="orva-test-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def make_orvad(jail_tmp: Path) -> Iterator[Callable[..., Orvad]]:
    """Factory for orvad processes (each stopped at the end of the test)."""
    started: list[Orvad] = []

    def make(data_dir: Path | None = None, env: dict[str, str] | None = None, args: list[str] | None = None,
             start: bool = True) -> Orvad:
        server = Orvad(data_dir or jail_tmp / f"data{len(started)}", free_port(), env or {}, args or [])
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        if server.proc is not None and server.proc.poll() is None:
            server.stop()
        # a server a test SIGKILLed leaves its egress table behind (by design: the next start on
        # that port removes it); tests remove it so the host stays clean
        if shutil.which("nft"):
            subprocess.run(["nft", "delete", "table", "inet", f"orva_egress_{server.port}"], capture_output=True)


@pytest.fixture(scope="session")
def orvad() -> Iterator[Orvad]:
    """One orvad shared by the tests that don't restart or reconfigure it."""
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="orva-shared-"))
    base.chmod(0o711)
    server = Orvad(base / "data", free_port()).start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)
