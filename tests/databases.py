"""Which database the orvads the tests start use: the switch between the suite's two driver passes.

``ORVA_TEST_DATABASE`` (environment of the test run) chooses:

- ``sqlite`` (the default, unset): every orvad uses its data dir's ``orva.db``, as it always has.
- ``postgresql``: every orvad the tests start (``tests.helpers.Orvad``, so the ``orvad`` and ``make_orvad``
  fixtures too) gets ``ORVA_DATABASE_URL`` naming a fresh database of its own in ONE throwaway PostgreSQL
  cluster per test process (tests/pg.py; under pytest-xdist one per worker, so names never collide). The
  cluster is started by the first orvad that needs it, a template database ``orva_template`` is migrated
  once (orvad's own runner, orvad/store/postgres/migrate.py), and each orvad's database is
  ``CREATE DATABASE orva_<n> TEMPLATE orva_template`` (a file copy: tens of milliseconds, where migrating
  an empty database takes about a second). Like orva.db, the database belongs to the data dir: every
  ``Orvad`` on the same data dir uses it (a restart, or ``make_orvad(data_dir=server.data_dir)``), and it
  is dropped when the last of them is stopped for good by its fixture or collected, or at the end of the
  session, when the cluster stops.

A test that sets ``ORVA_DATABASE_URL`` in the orvad's env itself (tests/cluster) keeps its own.
Tests that are about the SQLite file itself carry the marker ``sqlite_only`` and are deselected by the
PostgreSQL pass (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
DRIVERS = (SQLITE, POSTGRESQL)
URL_VARIABLE = "ORVA_DATABASE_URL"
TEMPLATE = "orva_template"
ADMIN_DEADLINE_S = 120.0


def driver() -> str:
    """The driver this test run's orvads use (ORVA_TEST_DATABASE; sqlite when unset)."""
    chosen = os.environ.get("ORVA_TEST_DATABASE", "").strip().lower() or SQLITE
    if chosen not in DRIVERS:
        raise RuntimeError(f"ORVA_TEST_DATABASE={chosen!r}: expected one of {', '.join(DRIVERS)}")
    return chosen


class _Farm:
    """One throwaway cluster, a migrated template, and a fresh database per orvad. Its admin connection
    lives on an event loop of its own (a thread), so sync tests, async tests and finalizers all use it."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a finalizer may run (GC) while this thread holds it
        self._cluster: Any = None  # tests.pg.ThrowawayPostgres, imported only on the PostgreSQL pass
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._admin: Any = None  # asyncpg.Connection on self._loop
        self._admin_lock: asyncio.Lock | None = None
        self._numbers = itertools.count(1)
        # the database of each data dir, and how many Orvad objects use each database (its URL is a key while
        # it lives): like orva.db, the database goes with the data dir, so a second Orvad a test starts on the
        # same data dir (make_orvad(data_dir=server.data_dir)) sees the first one's rows; dropped when the
        # last of them gives it back
        self._by_dir: dict[str, str] = {}
        self._users: dict[str, int] = {}
        self.timings: list[float] = []  # seconds per CREATE DATABASE ... TEMPLATE
        self.template_s = 0.0

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(ADMIN_DEADLINE_S)

    def _ensure(self) -> None:
        if self._cluster is not None:
            return
        from tests.pg import ThrowawayPostgres

        cluster = ThrowawayPostgres()
        cluster.start()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="orva-test-databases", daemon=True)
        thread.start()
        self._cluster, self._loop, self._thread = cluster, loop, thread
        try:
            started = time.monotonic()
            self._run(self._prepare())
            self.template_s = time.monotonic() - started
        except BaseException:
            self.close()
            raise

    async def _prepare(self) -> None:
        import asyncpg

        from orvad.store.postgres.migrate import migrate

        self._admin_lock = asyncio.Lock()
        self._admin = await asyncpg.connect(self._cluster.dsn())
        await self._admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
        conn = await asyncpg.connect(self._cluster.dsn(TEMPLATE))
        try:
            await migrate(conn)
        finally:
            await conn.close()  # CREATE DATABASE ... TEMPLATE wants nobody connected to the template

    async def _admin_execute(self, sql: str) -> None:
        assert self._admin_lock is not None
        async with self._admin_lock:
            await self._admin.execute(sql)

    def create(self, data_dir: str) -> str:
        """The database of ``data_dir``: the one an Orvad on it already uses, else a fresh, migrated one; its
        URL. Each call is one more user of it (``drop`` gives one back)."""
        with self._lock:
            self._ensure()
            url = self._by_dir.get(data_dir)
            if url is not None:
                self._users[url] += 1
                return url
            name = f"orva_{next(self._numbers)}"
            url = str(self._cluster.dsn(name))
            self._by_dir[data_dir], self._users[url] = url, 1
            started = time.monotonic()
            self._run(self._admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"'))
            self.timings.append(time.monotonic() - started)
            return url

    def drop(self, url: str) -> None:
        """Drop the database of ``url`` (its orvad's connections ended with it); nothing once the cluster is gone."""
        name = url.rsplit("/", 1)[-1]
        with self._lock:
            if self._cluster is None or url not in self._users:
                return
            self._users[url] -= 1
            if self._users[url] > 0:  # another Orvad on the same data dir still uses it
                return
            del self._users[url]
            self._by_dir = {d: u for d, u in self._by_dir.items() if u != url}
            loop = self._loop
        drop = self._admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if threading.current_thread() is self._thread:  # collected on the admin loop itself: don't wait on it
            assert loop is not None
            loop.call_soon(loop.create_task, drop)
            return
        self._run(drop)

    def query(self, url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """``sql`` (SQLite's ``?`` placeholders) on the database of ``url``, committed; its rows as tuples."""
        from orvad.store.postgres.driver import translate

        async def run() -> list[tuple[Any, ...]]:
            import asyncpg

            conn = await asyncpg.connect(url)
            try:
                return [tuple(row) for row in await conn.fetch(translate(sql), *params)]
            finally:
                await conn.close()

        with self._lock:
            if self._cluster is None:
                raise RuntimeError("the throwaway PostgreSQL cluster is not running")
        return list(self._run(run()))

    def dump(self, url: str) -> bytes:
        """Everything the database of ``url`` holds, as pg_dump writes it (schema and rows, as text)."""
        import subprocess

        with self._lock:
            cluster = self._cluster
        if cluster is None:
            raise RuntimeError("the throwaway PostgreSQL cluster is not running")
        done = subprocess.run(
            [str(cluster.bindir / "pg_dump"), "--no-owner", "--dbname", url],
            capture_output=True,
            timeout=ADMIN_DEADLINE_S,
            check=True,
        )
        return bytes(done.stdout)

    def close(self) -> None:
        """Stop the cluster (every database goes with its folder) and the admin loop."""
        with self._lock:
            cluster, self._cluster = self._cluster, None
            loop, self._loop = self._loop, None
            self._by_dir.clear()
            self._users.clear()
        if loop is not None:
            if self._admin is not None:
                admin, self._admin = self._admin, None
                asyncio.run_coroutine_threadsafe(admin.close(), loop).result(ADMIN_DEADLINE_S)
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(ADMIN_DEADLINE_S)
            loop.close()
        if cluster is not None:
            cluster.stop()


_farm = _Farm()


# False while a test runs that tests/conftest.py's starts_orvad() classified as not starting an orvad: the
# PostgreSQL pass (--orvad-tests-only) leaves those out, so one that does start an orvad must be seen here
starting_allowed = True


def database_for(
    owner: object, env: dict[str, str], data_dir: object
) -> tuple[str | None, Callable[[], None]]:
    """The database URL an orvad on ``data_dir`` with ``env`` should be given (None: its data dir's SQLite
    file, or the URL its test chose), and a callable that gives it back (idempotent; also called when
    ``owner`` is collected): the database of a data dir is dropped when no Orvad on it holds it any more."""
    if not starting_allowed:
        raise AssertionError(
            "this test starts an orvad, but tests/conftest.py's starts_orvad() says it does not, so the"
            " PostgreSQL pass (--orvad-tests-only) would leave it out: have it use the orvad or make_orvad"
            " fixture, or make its Orvad(...) in the test module or a fixture (where starts_orvad looks)"
        )
    if driver() != POSTGRESQL or URL_VARIABLE in env:
        return None, lambda: None
    url = _farm.create(str(data_dir))
    return url, weakref.finalize(owner, _farm.drop, url)


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run ``sql`` on the PostgreSQL database of ``url`` (one of this session's): tests.helpers.Orvad.sql."""
    return _farm.query(url, sql, params)


def dump(url: str) -> bytes:
    """pg_dump of the PostgreSQL database of ``url``: tests.helpers.Orvad.database_bytes."""
    return _farm.dump(url)


def close() -> None:
    """End of the test session: stop the throwaway cluster, if one was started."""
    _farm.close()


def timings() -> tuple[float, list[float]]:
    """(seconds to migrate the template, seconds per database created from it) so far in this process."""
    return _farm.template_s, list(_farm.timings)
