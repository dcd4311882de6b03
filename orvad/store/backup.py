"""The database side of backup and restore (orvad/backup/): a consistent copy of a live database, the
versions it names, and the checks a restored file must pass. Synchronous: callers run these in a thread.

The copy is ``VACUUM INTO`` on a connection of its own: it reads one snapshot (a WAL read transaction, so
orvad's writer goes on committing meanwhile) and writes a compact file that is never a half-copied page.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from orvad.store.db import _split_sql, migration_files

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


# objects SQLite makes itself (autoindexes, sqlite_sequence, sqlite_stat*): not the migrations'; a trigger or a
# view is compared whatever its name. schema_migrations is orvad's own table (store/db.py), checked above.
_SCHEMA = (
    "SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master WHERE NOT ("
    "(type IN ('table', 'index') AND name LIKE 'sqlite\\_%' ESCAPE '\\') "
    "OR (type = 'table' AND name = 'schema_migrations'))"
)


# quoted text (kept) | a comment or white space (a gap) | anything else, one character
_TOKENS = re.compile(
    r"""('(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])|(--[^\n]*|/\*.*?(?:\*/|$)|\s+)|(.)""", re.S
)


def _normal(sql: str) -> str:
    """``sql`` with its comments and white space gone except one space between two words (quoted text kept
    as it is): an edit of a migration's comment must not make the backups taken before it unrestorable."""
    out: list[str] = []
    gap = False
    for quoted, space, char in _TOKENS.findall(sql):
        if space:
            gap = True
            continue
        token = quoted or char
        if (
            gap
            and out
            and (out[-1][-1].isalnum() or out[-1][-1] == "_")
            and (token[0].isalnum() or token[0] == "_")
        ):
            out.append(" ")
        gap = False
        out.append(token)
    return "".join(out)


def _objects(conn: sqlite3.Connection) -> set[tuple[str, str, str, str]]:
    return {(str(t), str(n), str(tb), _normal(str(q))) for t, n, tb, q in conn.execute(_SCHEMA).fetchall()}


def _migrate(conn: sqlite3.Connection, migrations: list[tuple[int, str, str]]) -> None:
    """The migrations newer than the file's, each in a transaction, as store/db.py applies them at open."""
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0]) if row else 0
    for number, name, sql in migrations:
        if number <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (number, name))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def check_schema(path: Path, newest_schema: int) -> None:
    """Migrate the staged database file ``path`` as orvad's open would, then compare its schema with the
    one the same migrations make in an empty database. Raise DatabaseRefused when a migration fails on it
    (its schema_migrations table lies about what it holds) or when its tables, indexes, views or triggers
    are not exactly the migrations' (a trigger would run on orvad's own writes). Run after check_restorable."""
    migrations = migration_files()[:newest_schema]
    try:
        with _connect(path, read_only=False) as conn:
            conn.execute("PRAGMA foreign_keys=ON")
            try:
                _migrate(conn, migrations)
            except sqlite3.Error as exc:
                raise DatabaseRefused(
                    f"the database does not take this orvad's migrations ({exc}): its schema_migrations table "
                    "does not match its tables"
                ) from None
            found = _objects(conn)
        with contextlib.closing(sqlite3.connect(":memory:", isolation_level=None)) as ref:
            ref.execute("PRAGMA foreign_keys=ON")
            ref.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            _migrate(ref, migrations)
            expected = _objects(ref)
    except sqlite3.DatabaseError as exc:
        raise DatabaseRefused(f"the database cannot be read: {exc}") from None
    if odd := sorted(found ^ expected, key=lambda r: (str(r[0]), str(r[1]))):
        kind, name = odd[0][0], odd[0][1]
        where = "is not one orvad's migrations make" if odd[0] in found else "is missing or different"
        raise DatabaseRefused(
            f"the database's schema is not this orvad's: {kind} {name!r} {where} ({len(odd)} difference(s))"
        )


def sealed_sample(path: Path) -> tuple[str, str, bytes, bytes] | None:
    """(function id, key, nonce, ciphertext) of one sealed function secret in the database file ``path``,
    None when it holds none (a restore checks that the master key opens it)."""
    with _connect(path, read_only=True) as conn:
        row = conn.execute("SELECT function_id, key, nonce, ciphertext FROM secrets LIMIT 1").fetchone()
    return None if row is None else (str(row[0]), str(row[1]), bytes(row[2]), bytes(row[3]))
