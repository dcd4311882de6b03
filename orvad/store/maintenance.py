"""Storage care: what the database holds (bytes and rows per table), and vacuuming it while orvad serves.

Measuring opens its own read-only connection in a thread, so a scan of a large file never holds up the
reader every request shares. Vacuuming runs on the writer connection's thread, holding the write lock only
in bounded steps where it can:

- ``incremental`` (the database has ``auto_vacuum=INCREMENTAL``: every database created since issue 24,
  and any older one after its first vacuum): ``PRAGMA incremental_vacuum(STEP_PAGES)`` steps, each one
  write transaction; between steps the lock is released, so a waiting write (the batched writer's
  execution rows, a deploy, a KV put) goes first. Then a WAL checkpoint (TRUNCATE).
- ``full``: one ``VACUUM`` (rebuilds and defragments the file; also turns an older database to
  ``auto_vacuum=INCREMENTAL``), between two checkpoints. Writes wait for all of it: docs/OPERATIONS.md
  ("Storage and vacuum") gives the measured figure.

Invocations never wait for either: the invoke path does no database work; its execution rows queue in the
batched writer's memory (orvad/store/batch.py) and are written when the lock comes free.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from orvad.clock import now_iso
from orvad.errors import VacuumRunning
from orvad.store.db import SqliteDatabase

STEP_PAGES = 256  # pages freed per incremental step (1 MiB at 4 KiB pages): each step a few ms of lock
AUTO_VACUUM_MODES = {0: "none", 1: "full", 2: "incremental"}
Mode = Literal["incremental", "full"]


def _file_bytes(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _table_stats(path: Path) -> dict[str, Any]:
    """Pages, free pages, and per table its rows and bytes (its indexes' pages included; bytes null where
    SQLite was built without the dbstat table)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as conn:
        conn.execute("PRAGMA busy_timeout=5000")
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        freelist = conn.execute("PRAGMA freelist_count").fetchone()[0]
        auto_vacuum = conn.execute("PRAGMA auto_vacuum").fetchone()[0]
        owners = dict(
            conn.execute(
                "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"
            ).fetchall()
        )
        tables = [n for n, t in owners.items() if n == t and not n.startswith("sqlite_")]
        sizes: dict[str, int] | None = None
        try:
            found: dict[str, int] = {}
            for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
                owner = owners.get(name, name)
                found[owner] = found.get(owner, 0) + int(size)
            sizes = found
        except sqlite3.OperationalError:
            pass
        rows = {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    return {
        "page_size": page_size,
        "page_count": page_count,
        "free_pages": freelist,
        "free_bytes": freelist * page_size,
        "auto_vacuum": AUTO_VACUUM_MODES.get(auto_vacuum, str(auto_vacuum)),
        "tables": sorted(
            (
                {"name": t, "rows": rows[t], "bytes": sizes.get(t, 0) if sizes is not None else None}
                for t in tables
            ),
            key=lambda r: (-(r["bytes"] or 0), r["name"]),
        ),
    }


@dataclass
class VacuumRun:
    mode: Mode
    started_at: str
    ended_at: str | None = None
    duration_ms: float | None = None
    bytes_before: int = 0  # the database file and its WAL
    bytes_after: int | None = None
    free_pages_before: int = 0
    steps: int = 0
    longest_lock_ms: float = 0.0  # the longest single hold of the write lock: how long a write waited at most
    error: str | None = None
    lock_ms: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "running": self.ended_at is None,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_ms": self.duration_ms,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "reclaimed_bytes": None
            if self.bytes_after is None
            else max(0, self.bytes_before - self.bytes_after),
            "free_pages_before": self.free_pages_before,
            "steps": self.steps,
            "longest_lock_ms": round(self.longest_lock_ms, 1),
            "error": self.error,
        }


class Storage:
    """The database's figures and its vacuum (one at a time per orvad: a second is VACUUM_RUNNING)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self.current: VacuumRun | None = None  # the running one, else the last one (since start)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _files(self) -> dict[str, int]:
        path = self._db.path
        return {
            "bytes": _file_bytes(path),
            "wal_bytes": _file_bytes(Path(f"{path}-wal")),
            "shm_bytes": _file_bytes(Path(f"{path}-shm")),
        }

    async def stats(self) -> dict[str, Any]:
        figures = await asyncio.to_thread(_table_stats, self._db.path)
        return {"driver": "sqlite", "path": str(self._db.path), **self._files(), **figures}

    def start_vacuum(self, mode: Mode | None) -> asyncio.Task[None]:
        """Start a vacuum (None: incremental where the file allows it, else full); VACUUM_RUNNING while one runs."""
        if self.running:
            assert self.current is not None
            raise VacuumRunning(
                f"a {self.current.mode} vacuum is running since {self.current.started_at}",
                hint="wait for it to end: GET /api/v1/system/storage shows it under vacuum",
                details={"started_at": self.current.started_at, "mode": self.current.mode},
            )
        run = VacuumRun(mode=mode or "incremental", started_at=now_iso())
        self.current = run
        self._task = asyncio.create_task(self._vacuum(run, mode is None), name="orva-vacuum")
        return self._task

    async def _vacuum(self, run: VacuumRun, choose: bool) -> None:
        began = time.perf_counter()
        files = self._files()
        run.bytes_before = files["bytes"] + files["wal_bytes"]
        try:
            auto, free = await self._locked(run, _pragmas)
            run.free_pages_before = free
            if choose:
                run.mode = "incremental" if auto == 2 else "full"
            await self._locked(run, _checkpoint)
            if run.mode == "full":
                await self._locked(run, _full_vacuum)
            else:
                left = free
                while left:
                    now_left = await self._locked(run, _incremental_step)
                    if now_left >= left:  # nothing more to free (pages in use meanwhile): stop
                        break
                    left = now_left
                    await asyncio.sleep(0)  # a waiting write takes the lock between steps
            await self._locked(run, _checkpoint)
        except Exception as exc:  # the error is the run's result: GET /api/v1/system/storage shows it
            run.error = f"{type(exc).__name__}: {exc}"
        finally:
            files = self._files()
            run.bytes_after = files["bytes"] + files["wal_bytes"]
            run.duration_ms = round((time.perf_counter() - began) * 1000, 1)
            run.ended_at = now_iso()

    async def _locked(self, run: VacuumRun, job: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``job`` on the writer's thread holding the write lock; its hold time goes into the run."""
        started = 0.0

        def timed(raw: sqlite3.Connection) -> Any:
            nonlocal started
            started = time.perf_counter()
            return job(raw)

        result = await self._db.run_on_writer(timed)
        held = (time.perf_counter() - started) * 1000
        run.steps += 1
        run.longest_lock_ms = max(run.longest_lock_ms, held)
        return result

    async def close(self) -> None:
        """Wait for a running vacuum to end (it cannot be stopped half way on the writer's thread)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _pragmas(raw: sqlite3.Connection) -> tuple[int, int]:
    return raw.execute("PRAGMA auto_vacuum").fetchone()[0], raw.execute("PRAGMA freelist_count").fetchone()[0]


def _checkpoint(raw: sqlite3.Connection) -> None:
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _full_vacuum(raw: sqlite3.Connection) -> None:
    raw.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect with this VACUUM; later runs are incremental
    raw.execute("VACUUM")


def _incremental_step(raw: sqlite3.Connection) -> int:
    """Free up to STEP_PAGES pages; answers the free pages left. executescript steps the pragma to its end:
    execute() steps it once, and each step frees one page."""
    raw.executescript(f"PRAGMA incremental_vacuum({STEP_PAGES});")
    return int(raw.execute("PRAGMA freelist_count").fetchone()[0])
