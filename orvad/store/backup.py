"""The database side of backup and restore (orvad/backup/): a consistent copy of a live database, the
versions it names, and the checks a restored file must pass. Synchronous: callers run these in a thread.

The copy is ``VACUUM INTO`` on a connection of its own: it reads one snapshot (a WAL read transaction, so
orvad's writer goes on committing meanwhile) and writes a compact file that is never a half-copied page.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool) -> Iterator[sqlite3.Connection]:
    if read_only:  # immutable: nothing (no -wal, no -shm, no journal) is created beside a file being checked
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, isolation_level=None)
    else:
        conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        yield conn
    finally:
        conn.close()


def snapshot_into(source: Path, dest: Path) -> None:
    """A consistent copy of the database ``source`` (live or not) written to ``dest`` (must not exist)."""
    with _connect(source, read_only=False) as conn:
        conn.execute("VACUUM INTO ?", (str(dest),))


def schema_version(path: Path) -> int:
    """The highest migration applied to the database file ``path`` (0 when it has none)."""
    with _connect(path, read_only=True) as conn:
        try:
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0]) if row else 0


def retained_versions(path: Path) -> list[tuple[str, str]]:
    """(function id, code hash) of every built deployment the database file ``path`` records."""
    with _connect(path, read_only=True) as conn:
        rows = conn.execute(
            "SELECT DISTINCT function_id, code_hash FROM deployments WHERE code_hash IS NOT NULL "
            "ORDER BY function_id, code_hash"
        ).fetchall()
    return [(str(f), str(h)) for f, h in rows]


class DatabaseRefused(ValueError):
    """A database file in a restore archive that orvad will not use; the message says why."""


def check_restorable(path: Path, newest_schema: int) -> int:
    """Raise DatabaseRefused unless ``path`` opens, passes ``PRAGMA integrity_check`` and its schema is not
    newer than ``newest_schema``; returns its schema version."""
    try:
        with _connect(path, read_only=True) as conn:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
            verdict = [str(r[0]) for r in rows]
            if verdict != ["ok"]:
                raise DatabaseRefused(f"the database fails its integrity check: {'; '.join(verdict[:3])}")
            try:
                row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
            except sqlite3.OperationalError:
                raise DatabaseRefused(
                    "the database has no schema_migrations table: not an orva database"
                ) from None
    except sqlite3.DatabaseError as exc:
        raise DatabaseRefused(f"the database cannot be read: {exc}") from None
    version = int(row[0]) if row else 0
    if version > newest_schema:
        raise DatabaseRefused(
            f"the database has schema version {version}, newer than this orvad's {newest_schema}: "
            "restore it with the orvad version that made it (or a newer one)"
        )
    return version
