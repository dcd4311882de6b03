"""The store's SQL on PostgreSQL, as a ratchet (issue 25, phase 2).

Every statement the store modules (orvad/store/*.py) spell out in their source is collected: string
constants, module-level names holding them, ``+`` of those and f-strings whose fields are such names (so
``f"SELECT {_COLUMNS} FROM jobs WHERE id = ?"`` counts). A collected string is a statement when SQLite
compiles it on a migrated database (``EXPLAIN``; the fragments a statement is assembled from do not).
Each statement is translated with the driver seam's ``translate()`` and PREPAREd on a migrated PostgreSQL;
one that does not prepare fails the test unless ``KNOWN_SQLITE_ONLY`` lists it with its reason. That
list is phase 2's work: it only shrinks (an entry that prepares now, or whose statement is gone, fails the
test too), and a statement added later prepares on both drivers or is listed deliberately.

A prepared SELECT whose result has a ``numeric`` column is refused too: SUM/AVG over a BIGINT, a
``Decimal`` in Python where SQLite gives an ``int``.

Statements assembled at run time from values (``IN (?, ?, ?)`` for n keys, optional filters) are not
checked here (``candidates()`` names where they are); phase 2 runs the whole suite on PostgreSQL for them.
"""

from __future__ import annotations

import ast
import importlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import pytest

from orvad.store import jobs
from orvad.store.db import SqliteDatabase
from orvad.store.postgres.driver import translate
from orvad.store.postgres.migrate import migrate

STORE = Path(__file__).resolve().parents[2] / "orvad" / "store"
# orvad/store/db.py is the SQLite driver itself (BEGIN IMMEDIATE, PRAGMAs, its migration runner); its
# PostgreSQL counterpart is orvad/store/postgres/. Everything else in orvad/store/*.py is collected.
NOT_COLLECTED = {"db.py"}
_KEYWORD = re.compile(
    r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|REPLACE|PRAGMA|VACUUM|CREATE|DROP|ALTER|ANALYZE|REINDEX|ATTACH|DETACH)\b"
)
_OTHER_HELPER = "owned by another helper this session"

# normalised statement (one space between words) -> why it does not prepare on PostgreSQL yet
_CATALOG = "SQLite's own catalog or pragma (backup/maintenance): a PostgreSQL twin per driver, not one SQL"
KNOWN_SQLITE_ONLY: dict[str, str] = {
    # backup.py: the file copy and its checks are SQLite's (a PostgreSQL backup is pg_dump or a base backup)
    "PRAGMA busy_timeout=10000": _CATALOG,
    "PRAGMA foreign_keys=ON": _CATALOG,
    "PRAGMA integrity_check": _CATALOG,
    "VACUUM INTO ?": "backup.py copies the SQLite file; PostgreSQL's backup is pg_dump (per driver)",
    "SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master WHERE NOT ((type IN ('table', 'index') AND"
    " name LIKE 'sqlite\\_%' ESCAPE '\\') OR (type = 'table' AND name = 'schema_migrations'))": _CATALOG,
    # maintenance.py: file size, free pages, vacuum and checkpoints are SQLite's (PostgreSQL: autovacuum)
    "PRAGMA busy_timeout=5000": _CATALOG,
    "PRAGMA page_size": _CATALOG,
    "PRAGMA page_count": _CATALOG,
    "PRAGMA freelist_count": _CATALOG,
    "PRAGMA auto_vacuum": _CATALOG,
    "PRAGMA auto_vacuum=INCREMENTAL": _CATALOG,
    "PRAGMA incremental_vacuum(256);": _CATALOG,
    "PRAGMA wal_checkpoint(TRUNCATE)": _CATALOG,
    "SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')": _CATALOG,
    "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name": _CATALOG,
}


@dataclass(frozen=True)
class Statement:
    where: str  # file:line of its first appearance
    sql: str

    @property
    def key(self) -> str:
        return normal(self.sql)


def normal(sql: str) -> str:
    return " ".join(sql.split())


def _module_names(tree: ast.Module) -> set[str]:
    """The names a module binds at its top level (assignments and imports)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            names |= {a.asname or a.name for a in node.names}
    return names


def _resolve(node: ast.AST, module: ModuleType, names: set[str]) -> str | None:
    """The text of a string expression made only of constants and module-level names, else None."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.Name):
        value: Any = getattr(module, node.id, None) if node.id in names else None
        return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _resolve(node.left, module, names), _resolve(node.right, module, names)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = []
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                if part.conversion != -1 or part.format_spec is not None:
                    return None
                text = _resolve(part.value, module, names)
            else:
                text = _resolve(part, module, names)
            if text is None:
                return None
            parts.append(text)
        return "".join(parts)
    return None


def candidates() -> tuple[list[Statement], list[str]]:
    """Every string expression in the store that resolves and starts with an SQL keyword (docstrings and
    bare string expressions left out), and where the unresolvable ones (assembled at run time) are."""
    found: dict[str, Statement] = {}
    dynamic: list[str] = []
    for path in sorted(STORE.glob("*.py")):
        if path.name in NOT_COLLECTED:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        module = importlib.import_module(f"orvad.store.{path.stem}")
        names = _module_names(tree)
        docstrings = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, (ast.Constant, ast.JoinedStr))
        }
        # a module-level name's value, read from the imported module below (assembled at import: not dynamic)
        at_import = {id(node.value) for node in tree.body if isinstance(node, (ast.Assign, ast.AnnAssign))}
        for node in ast.walk(tree):
            if (
                not isinstance(node, (ast.Constant, ast.Name, ast.BinOp, ast.JoinedStr))
                or id(node) in docstrings
            ):
                continue
            text = _resolve(node, module, names)
            where = f"{path.name}:{node.lineno}"
            if text is None:
                head = node.values[0] if isinstance(node, ast.JoinedStr) and node.values else None
                if (
                    id(node) not in at_import
                    and isinstance(head, ast.Constant)
                    and isinstance(head.value, str)
                    and _KEYWORD.match(head.value)
                ):
                    dynamic.append(where)  # assembled at run time (IN (?, ?, ...), optional filters)
                continue
            if _KEYWORD.match(text):
                found.setdefault(normal(text), Statement(where, text))
        for name in sorted(names):  # module-level statements assembled at import (column lists joined)
            value = getattr(module, name, None)
            if isinstance(value, str) and _KEYWORD.match(value):
                found.setdefault(normal(value), Statement(f"{path.name}:{name}", value))
    return list(found.values()), dynamic


def _parameters(sql: str) -> int:
    return max((int(n) for n in re.findall(r"\$(\d+)", translate(sql))), default=0)


def statements_sqlite_compiles(db_path: Path) -> tuple[list[Statement], list[Statement], list[str]]:
    """(statements, fragments, dynamic): SQLite is the reference, every real statement runs there."""
    found, dynamic = candidates()
    statements, fragments = [], []
    conn = sqlite3.connect(db_path)
    try:
        for candidate in found:
            try:
                conn.execute("EXPLAIN " + candidate.sql, (None,) * _parameters(candidate.sql)).fetchall()
            except sqlite3.Error:
                fragments.append(candidate)
            else:
                statements.append(candidate)
    finally:
        conn.close()
    return statements, fragments, dynamic


@pytest.fixture
async def sqlite_path(tmp_path: Path) -> Path:
    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    await db.close()
    return tmp_path / "orva.db"


async def _refused_on_postgres(dsn: str, statements: list[Statement]) -> dict[str, str]:
    """key -> why PostgreSQL does not take it as SQLite does: its error when preparing, or a result column
    of type numeric (SUM/AVG over a BIGINT: a Decimal in Python where SQLite gives an int)."""
    conn = await asyncpg.connect(dsn)
    refused = {}
    try:
        await migrate(conn)
        for statement in statements:
            try:
                prepared = await conn.prepare(translate(statement.sql))
            except asyncpg.PostgresError as exc:
                first = str(exc).splitlines()[0]
                refused[statement.key] = f"{statement.where}: {type(exc).__name__}: {first}"
                continue
            numeric = [a.name for a in prepared.get_attributes() if a.type.name == "numeric"]
            if numeric:
                refused[statement.key] = f"{statement.where}: numeric result columns {numeric}"
    finally:
        await conn.close()
    return refused


def test_the_collector_resolves_names_and_leaves_fragments_and_docstrings_out() -> None:
    """What the ratchet stands on: statements spelled through module-level names are seen whole."""
    found, dynamic = candidates()
    keys = {s.key for s in found}
    assert normal(f"SELECT {jobs._COLS} FROM jobs WHERE id = ?") in keys  # an f-string over a module name
    assert normal(jobs._UNCLAIM_JOB) in keys  # a module-level statement used by its name
    assert normal(jobs._LEASED + "j.lease_owner = ?") in keys  # a name + a constant
    assert normal(jobs._LEASED) in keys  # the fragment alone is a candidate; SQLite's EXPLAIN drops it
    assert not any(k.startswith(("Insert ", "Delete ", "Replace ")) for k in keys)  # docstrings are not SQL
    assert any(w.startswith("jobs.py:") for w in dynamic)  # IN (?, ?, ...) built per call


async def test_every_store_statement_prepares_on_postgres_or_is_listed(
    sqlite_path: Path, pg_dsn: str
) -> None:
    assert all(r.strip() and "\n" not in r for r in KNOWN_SQLITE_ONLY.values())  # one line of reason each
    statements, fragments, _dynamic = statements_sqlite_compiles(sqlite_path)
    # the collector sees the store: a broken walk would pass with nothing to check
    assert len(statements) >= 200, (len(statements), [s.where for s in fragments])
    assert normal(jobs._LEASED) in {f.key for f in fragments}
    refused = await _refused_on_postgres(pg_dsn, statements)
    unlisted = {k: v for k, v in refused.items() if k not in KNOWN_SQLITE_ONLY}
    assert not unlisted, "statements PostgreSQL refuses, not in KNOWN_SQLITE_ONLY:\n" + "\n".join(
        f"{v}\n    {k!r}" for k, v in unlisted.items()
    )
    keys = {s.key for s in statements}
    stale = [k for k in KNOWN_SQLITE_ONLY if k not in keys or k not in refused]
    assert not stale, "KNOWN_SQLITE_ONLY entries that prepare now or are gone (remove them):\n" + "\n".join(
        stale
    )
