"""Shared fixtures: real orvad processes on free ports with temporary data dirs; the marker hooks.

Only fixtures and hooks live here; the classes and functions tests import are in tests/helpers.py.

Markers (registered in pyproject.toml; CONTRIBUTING.md says when to use which):
- ``sandbox``: the test needs nsjail, root or namespaces. Modules say so with ``pytestmark``, single tests
  with ``@pytest.mark.sandbox``. `make test-fast` deselects them and runs the rest with ORVA_NSJAIL
  pointing nowhere, so an unmarked test that deploys, invokes or builds fails there instead of
  silently needing a sandbox (the failure says to mark it).
- ``browser``: the test drives Chromium. Marked here, from the fixtures it uses (``browser``, ``page``);
  a test that launches Playwright itself carries ``@pytest.mark.browser`` (tests/repo/test_markers.py checks).
- ``sqlite_only``: the test is about the SQLite file itself (orva.db, its backup, vacuum, storage figures),
  meaningless on PostgreSQL; the module says why (``SQLITE_ONLY_REASON``). With ORVA_TEST_DATABASE=postgresql
  (tests/databases.py: every orvad gets a PostgreSQL database of its own) they are deselected here.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from tests import databases
from tests.helpers import NO_SANDBOX, Orvad, free_port

BROWSER_FIXTURES = frozenset({"browser", "page"})


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background (`make test &`, CI runners) inherits SIGINT ignored, and so would
    every process a test starts: Python then installs no KeyboardInterrupt handler, and a test's Ctrl-C
    (SIGINT) to `orva ai chat` went unheard. Children get the default disposition back."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--orvad-tests-only",
        action="store_true",
        help="keep only the tests that start an orvad (make test's PostgreSQL pass: the others do not depend"
        " on the database driver and run once, in the SQLite pass)",
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    databases.close()  # the PostgreSQL pass's throwaway cluster, if this process started one


ORVAD_FIXTURES = frozenset({"orvad", "make_orvad"})
# a module that makes one (tests/cron/conftest.py's clocked_orvad too)
_MAKES_ORVAD = re.compile(r"\b(?:Orvad|clocked_orvad)\(")
_HANDLES_ORVAD = re.compile(r"\bOrvad\b")  # a fixture that makes, starts or hands one on
_source_cache: dict[tuple[object, re.Pattern[str]], bool] = {}


def _source_says(obj: object, pattern: re.Pattern[str]) -> bool:
    if (obj, pattern) not in _source_cache:
        try:
            _source_cache[obj, pattern] = pattern.search(inspect.getsource(obj)) is not None  # type: ignore[arg-type]
        except (OSError, TypeError):
            _source_cache[obj, pattern] = False
    return _source_cache[obj, pattern]


def starts_orvad(item: pytest.Item) -> bool:
    """Whether the test starts an orvad, so depends on the database driver: it uses the orvad or make_orvad
    fixture (directly or through another fixture), a fixture whose source names ``Orvad``, or its module's
    source makes an ``Orvad(``. The SQLite pass checks this at run time (tests.helpers.Orvad.start fails a test classified
    otherwise), so the PostgreSQL pass's --orvad-tests-only never leaves out a test that starts one."""
    if ORVAD_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is not None and any(
        _source_says(d.func, _HANDLES_ORVAD) for defs in info.name2fixturedefs.values() for d in defs
    ):
        return True
    module = getattr(item, "module", None)
    return module is not None and _source_says(module, _MAKES_ORVAD)


@pytest.hookimpl(tryfirst=True)  # before the fixtures are set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    databases.starting_allowed = starts_orvad(item)


def _deselect(config: pytest.Config, items: list[pytest.Item], keep: Callable[[pytest.Item], bool]) -> None:
    kept = [item for item in items if keep(item)]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if not keep(item)])
        items[:] = kept


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)
    if databases.driver() != databases.SQLITE:  # ORVA_TEST_DATABASE=postgresql (tests/databases.py)
        _deselect(config, items, lambda item: item.get_closest_marker("sqlite_only") is None)
        # a test on its own throwaway PostgreSQL (tests/cluster/conftest.py's pg_cluster, pg_dsn) runs the
        # same on either pass: once, in the SQLite pass
        _deselect(config, items, lambda item: "pg_cluster" not in getattr(item, "fixturenames", ()))
    if config.getoption("--orvad-tests-only"):
        _deselect(config, items, starts_orvad)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, object]:
    report = yield
    if (
        isinstance(report, pytest.TestReport)
        and report.failed
        and os.environ.get("ORVA_NSJAIL") == NO_SANDBOX
        and item.get_closest_marker("sandbox") is None
    ):
        report.sections.append(
            (
                "marker",
                "This test ran without a sandbox (make test-fast: ORVA_NSJAIL="
                f"{NO_SANDBOX}). If it deploys, invokes, builds or needs root, mark it "
                "@pytest.mark.sandbox (or pytestmark = pytest.mark.sandbox for the module).",
            )
        )
    return report


# Modules that make network namespaces, veths and addresses with fixed names (tests/netns_helpers.py
# served_namespace, tests/firewall/netfixtures.py) run one at a time on the host: under pytest-xdist and when
# `make test` runs the SQLite and PostgreSQL passes side by side, another process's module would delete
# ("ip netns del" before "add") or clash with them.
HOST_NETWORK_NAMES = ("served_namespace", "netfixtures")
HOST_NETWORK_LOCK = Path("/tmp/orva-test-host-network.lock")


@pytest.fixture(scope="module", autouse=True)
def _host_network_one_module_at_a_time(request: pytest.FixtureRequest) -> Iterator[None]:
    import fcntl

    source = Path(str(request.module.__file__)).read_text()
    if not any(name in source for name in HOST_NETWORK_NAMES):
        yield
        return
    fd = os.open(HOST_NETWORK_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits for the other process's module to finish
        yield
    finally:
        os.close(fd)  # drops the lock


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

    def make(
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        start: bool = True,
    ) -> Orvad:
        server = Orvad(data_dir or jail_tmp / f"data{len(started)}", free_port(), env or {}, args or [])
        started.append(server)
        return server.start() if start else server

    yield make
    failures: list[AssertionError] = []
    for server in started:
        try:
            if server.proc is not None and server.proc.poll() is None:
                server.stop()
        except AssertionError as exc:  # every server is still stopped and cleaned before it is raised
            failures.append(exc)
        server.drop_database()
        # a server a test SIGKILLed leaves its egress table behind (the next orvad to choose a range
        # removes it: its owner is gone); tests remove it so the host stays clean
        if shutil.which("nft"):
            subprocess.run(
                ["nft", "delete", "table", "inet", f"orva_egress_{server.port}"], capture_output=True
            )
    if failures:
        raise failures[0]


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
    server.drop_database()
    shutil.rmtree(base, ignore_errors=True)
