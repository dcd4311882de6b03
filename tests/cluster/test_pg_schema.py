"""PostgreSQL's schema (orvad/store/postgres/migrations/) is SQLite's (orvad/store/migrations/), type for type.

Both runners make a fresh database: orvad's own (orvad.store.db.SqliteDatabase) a SQLite file, the PostgreSQL
runner (orvad.store.postgres.migrate) a new database in the session's throwaway cluster (tests/pg.py).
Then the two catalogs are read into one shape and compared: tables, columns (order, names, types through
the mapping below, nullability, defaults), primary keys, UNIQUE constraints, indexes (names, columns,
uniqueness, partial predicates), foreign keys with their ON DELETE, CHECK constraints (by the columns they
read), triggers (name, table, timing, event, UPDATE OF columns) and the rows a migration seeds. A migration
written for one driver and not the other fails here (docs/CLUSTER.md, Migrations).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from orvad.store.db import SqliteDatabase
from orvad.store.db import migration_files as sqlite_migration_files
from orvad.store.postgres.migrate import BASELINE, check_twins, migrate, migration_files

# SQLite's declared type -> the PostgreSQL types it may become (the baseline's header says why)
TYPES = {
    "TEXT": {"text"},
    "REAL": {"double precision"},
    "BLOB": {"bytea"},
    "INTEGER": {"bigint", "smallint"},
}
ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
# the one default that is spelled differently: a timestamp made by the database itself
SAME_DEFAULTS = {
    ("schema_migrations", "applied_at"): (
        "strftime('%Y-%m-%dT%H:%M:%fZ','now')",
        "to_char((now() AT TIME ZONE 'UTC'::text), 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'::text)",
    )
}


@dataclass
class Column:
    name: str
    type: str  # SQLite: the declared type; PostgreSQL: information_schema's data_type
    not_null: bool
    default: str | None  # normalised


@dataclass
class Schema:
    columns: dict[str, list[Column]] = field(default_factory=dict)
    primary_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    uniques: dict[str, set[tuple[str, ...]]] = field(default_factory=dict)
    # name -> (table, columns, unique, predicate)
    indexes: dict[str, tuple[str, tuple[str, ...], bool, str | None]] = field(default_factory=dict)
    # table -> {(columns, referenced table, referenced columns, on delete)}
    foreign_keys: dict[str, set[tuple[tuple[str, ...], str, tuple[str, ...], str]]] = field(
        default_factory=dict
    )
    checks: dict[str, list[frozenset[str]]] = field(default_factory=dict)
    # name -> (table, timing, event, UPDATE OF columns)
    triggers: dict[str, tuple[str, str, str, frozenset[str]]] = field(default_factory=dict)
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    migrations: list[tuple[int, str]] = field(default_factory=list)


def _expression(text: str | None) -> str | None:
    """An SQL expression in a form both catalogs agree on: no casts, no parentheses or blanks, `x IN (...)`
    for PostgreSQL's `x = ANY (ARRAY[...])`, `<>` for `!=`."""
    if text is None:
        return None
    text = re.sub(r"::[a-z ]+(\[\])?", "", text)
    text = re.sub(r"(\w+) = ANY \(ARRAY\[(.*?)\]\)", r"\1 IN (\2)", text)
    text = text.replace("!=", "<>")
    return re.sub(r"[\s()]", "", text).lower()


# --- SQLite


def _sqlite_schema(path: Path) -> Schema:
    conn = sqlite3.connect(path)
    try:
        return _read_sqlite(conn)
    finally:
        conn.close()


def _read_sqlite(conn: sqlite3.Connection) -> Schema:
    schema = Schema()
    tables = [
        (name, sql)
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    for table, sql in tables:
        info = list(conn.execute(f"PRAGMA table_info({table})"))
        schema.columns[table] = [
            Column(name, decl.upper(), bool(notnull) or pk > 0, _expression(default))
            for _, name, decl, notnull, default, pk in info
        ]
        schema.primary_keys[table] = tuple(
            name for *_, name, _, _, _, pk in sorted(info, key=lambda r: r[5]) if pk
        )
        schema.uniques[table] = set()
        for _, index, unique, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
            columns = tuple(r[2] for r in conn.execute(f"PRAGMA index_info({index})"))
            if origin == "u":
                schema.uniques[table].add(columns)
            elif origin == "c":
                (index_sql,) = conn.execute(
                    "SELECT sql FROM sqlite_master WHERE name = ?", (index,)
                ).fetchone()
                where = re.search(r"\bWHERE\b(.*)$", index_sql, re.S | re.I) if partial else None
                schema.indexes[index] = (
                    table,
                    columns,
                    bool(unique),
                    _expression(where.group(1)) if where else None,
                )
        keys: dict[int, list[tuple[str, str, str, str]]] = {}
        for fk_id, _seq, parent, source, target, _upd, on_delete, _match in conn.execute(
            f"PRAGMA foreign_key_list({table})"
        ):
            keys.setdefault(fk_id, []).append((source, parent, target, on_delete))
        schema.foreign_keys[table] = {
            (tuple(k[0] for k in key), key[0][1], tuple(k[2] for k in key), key[0][3])
            for key in keys.values()
        }
        names = {c.name for c in schema.columns[table]}
        schema.checks[table] = sorted(
            (frozenset(w for w in re.findall(r"\w+", check) if w in names) for check in _checks(sql)),
            key=sorted,
        )
        schema.rows[table] = (
            sorted(conn.execute(f"SELECT * FROM {table}")) if table != "schema_migrations" else []
        )
    for name, table, sql in conn.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"
    ):
        found = re.search(
            r"\b(BEFORE|AFTER|INSTEAD OF)\s+(INSERT|DELETE|UPDATE)(?:\s+OF\s+([\w\s,]+?))?\s+ON\b", sql, re.I
        )
        assert found, f"trigger {name}: cannot read its timing and event from {sql!r}"
        of = frozenset(c.strip() for c in (found.group(3) or "").split(",") if c.strip())
        schema.triggers[name] = (table, found.group(1).upper(), found.group(2).upper(), of)
    schema.migrations = [
        tuple(r) for r in conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
    ]
    return schema


def _checks(create_table: str) -> list[str]:
    """The bodies of the CHECK (...) constraints of a CREATE TABLE statement (balanced parentheses)."""
    bodies = []
    for found in re.finditer(r"\bCHECK\s*\(", create_table, re.I):
        depth, start = 1, found.end()
        for i in range(start, len(create_table)):
            depth += {"(": 1, ")": -1}.get(create_table[i], 0)
            if depth == 0:
                bodies.append(create_table[start:i])
                break
    return bodies


# --- PostgreSQL


async def _pg_schema(conn: asyncpg.Connection) -> Schema:
    schema = Schema()
    tables = [
        r["table_name"]
        for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    ]
    for table in tables:
        cols = await conn.fetch(
            "SELECT column_name, data_type, is_nullable, column_default, is_identity FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            table,
        )
        schema.columns[table] = [
            Column(
                c["column_name"], c["data_type"], c["is_nullable"] == "NO", _expression(c["column_default"])
            )
            for c in cols
        ]
        schema.rows[table] = (
            sorted(tuple(r) for r in await conn.fetch(f"SELECT * FROM {table}"))
            if table != "schema_migrations"
            else []
        )
        schema.uniques[table], schema.foreign_keys[table], schema.checks[table] = set(), set(), []
    constraints = await conn.fetch(
        """
        SELECT c.contype::text AS contype, t.relname AS table, c.conindid,
               ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS columns,
               r.relname AS target,
               ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS target_columns,
               c.confdeltype::text AS confdeltype
        FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
        LEFT JOIN pg_class r ON r.oid = c.confrelid
        WHERE c.contype IN ('p', 'u', 'f', 'c')
        """
    )
    backing = set()
    for c in constraints:
        columns = tuple(c["columns"])
        if c["contype"] == "p":
            schema.primary_keys[c["table"]] = columns
            backing.add(c["conindid"])
        elif c["contype"] == "u":
            schema.uniques[c["table"]].add(columns)
            backing.add(c["conindid"])
        elif c["contype"] == "f":
            schema.foreign_keys[c["table"]].add(
                (columns, c["target"], tuple(c["target_columns"]), ON_DELETE[str(c["confdeltype"])])
            )
        else:
            schema.checks[c["table"]].append(frozenset(columns))
    for table in schema.checks:
        schema.checks[table].sort(key=sorted)
    for ix in await conn.fetch(
        """
        SELECT i.indexrelid, x.relname AS name, t.relname AS table, i.indisunique,
               pg_get_expr(i.indpred, i.indrelid) AS predicate,
               ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) AS columns
        FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
        """
    ):
        if ix["indexrelid"] not in backing:
            schema.indexes[ix["name"]] = (
                ix["table"],
                tuple(ix["columns"]),
                ix["indisunique"],
                _expression(ix["predicate"]),
            )
    for tg in await conn.fetch(
        """
        SELECT g.tgname, t.relname AS table, g.tgtype,
               ARRAY(SELECT a.attname FROM unnest(g.tgattr::int2[]) k(n)
                     JOIN pg_attribute a ON a.attrelid = g.tgrelid AND a.attnum = k.n) AS columns
        FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
        WHERE NOT g.tgisinternal
        """
    ):
        kind = tg["tgtype"]  # bits: 2 BEFORE, 64 INSTEAD OF (else AFTER); 4 INSERT, 8 DELETE, 16 UPDATE
        timing = "BEFORE" if kind & 2 else "INSTEAD OF" if kind & 64 else "AFTER"
        events = [e for bit, e in ((4, "INSERT"), (8, "DELETE"), (16, "UPDATE")) if kind & bit]
        assert len(events) == 1, f"trigger {tg['tgname']} fires on {events}: SQLite's fire on one event each"
        schema.triggers[tg["tgname"]] = (tg["table"], timing, events[0], frozenset(tg["columns"]))
    schema.migrations = [
        tuple(r) for r in await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    ]
    return schema


# --- the two


async def _both(tmp_path: Path, dsn: str) -> tuple[Schema, Schema]:
    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    await db.close()
    lite = await asyncio.to_thread(_sqlite_schema, tmp_path / "orva.db")
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        pg = await _pg_schema(conn)
    finally:
        await conn.close()
    return lite, pg


def _differences(lite: Schema, pg: Schema) -> list[str]:
    """Every way ``pg`` differs from ``lite``, one line each (empty: the same schema)."""
    problems = []
    if sorted(pg.columns) != sorted(lite.columns):
        problems.append(f"tables: {sorted(set(pg.columns) ^ set(lite.columns))} are on one side only")
    for table in sorted(set(lite.columns) & set(pg.columns)):
        problems += _table_differences(table, lite, pg)
    for name in sorted(set(lite.indexes) | set(pg.indexes)):
        if lite.indexes.get(name) != pg.indexes.get(name):
            problems.append(f"index {name}: {pg.indexes.get(name)} here, {lite.indexes.get(name)} in SQLite")
    for name in sorted(set(lite.triggers) | set(pg.triggers)):
        if lite.triggers.get(name) != pg.triggers.get(name):
            problems.append(
                f"trigger {name}: {pg.triggers.get(name)} here, {lite.triggers.get(name)} in SQLite"
            )
    if pg.migrations != lite.migrations:
        problems.append(f"schema_migrations: {pg.migrations[-3:]} here, {lite.migrations[-3:]} in SQLite")
    return problems


def _table_differences(table: str, lite: Schema, pg: Schema) -> list[str]:
    columns, theirs = lite.columns[table], pg.columns[table]
    if [c.name for c in theirs] != [c.name for c in columns]:
        return [f"{table}: columns {[c.name for c in theirs]} != SQLite's {[c.name for c in columns]}"]
    problems = []
    for mine, other in zip(columns, theirs, strict=True):
        where = f"{table}.{mine.name}"
        if other.type not in TYPES.get(mine.type, set()):
            problems.append(
                f"{where}: {other.type} is not a mapping of SQLite's {mine.type} ({TYPES.get(mine.type)})"
            )
        if other.type == "smallint" and mine.default not in (None, "0", "1"):
            problems.append(f"{where}: smallint is for 0/1 flags; SQLite's default is {mine.default}")
        if other.not_null != mine.not_null:
            problems.append(f"{where}: NOT NULL {other.not_null} here, {mine.not_null} in SQLite")
        if (table, mine.name) in SAME_DEFAULTS:
            same = (mine.default, other.default) == tuple(map(_expression, SAME_DEFAULTS[table, mine.name]))
        else:
            same = mine.default == other.default
        if not same:
            problems.append(f"{where}: default {other.default!r} here, {mine.default!r} in SQLite")
    for what in ("primary_keys", "uniques", "foreign_keys", "checks", "rows"):
        here, there = getattr(pg, what).get(table), getattr(lite, what).get(table)
        if here != there:
            problems.append(f"{table}: {what} {here} here, {there} in SQLite")
    return problems


async def test_postgres_has_sqlites_schema(tmp_path: Path, pg_dsn: str) -> None:
    lite, pg = await _both(tmp_path, pg_dsn)
    assert _differences(lite, pg) == []
    # what the comparison leans on was really read (a reader that found nothing would agree too)
    assert len(lite.columns) > 30 and len(lite.indexes) > 25 and len(lite.triggers) >= 4
    assert lite.indexes["jobs_due"] == ("jobs", ("run_at",), False, "statusin'pending','failed'")
    assert lite.indexes["webhook_deliveries_ended"][3] == "status<>'pending'"
    assert lite.indexes["sessions_id"] == ("sessions", ("id",), True, None)
    assert lite.triggers["kv_usage_update"] == ("kv", "AFTER", "UPDATE", frozenset({"size"}))
    assert ("username",) in lite.uniques["users"]
    assert lite.foreign_keys["ai_settings"] == {(("provider_id",), "ai_providers", ("id",), "SET NULL")}
    assert lite.checks["oauth_tokens"] == [frozenset({"kind"})]
    assert lite.primary_keys["job_attempts"] == ("job_id", "attempt")
    assert lite.rows["replay_state"] == [(1, 1)] and len(lite.rows["ai_settings"]) == 1
    assert lite.migrations[-1][0] == len(sqlite_migration_files())


# one change each, made on PostgreSQL only, and what the comparison must say about it
DRIFT = [
    ("ALTER TABLE jobs ADD COLUMN extra TEXT", "jobs: columns"),
    ("ALTER TABLE kv ALTER COLUMN version TYPE integer", "kv.version: integer is not a mapping"),
    ("ALTER TABLE routes ALTER COLUMN methods DROP NOT NULL", "routes.methods: NOT NULL False here"),
    ("ALTER TABLE functions ALTER COLUMN description SET DEFAULT 'x'", "functions.description: default"),
    ("DROP INDEX jobs_due; CREATE INDEX jobs_due ON jobs(run_at)", "index jobs_due"),
    ("DROP INDEX audit_method; CREATE INDEX audit_method ON audit_log(id, method)", "index audit_method"),
    ("CREATE INDEX stray_index ON users(created_at)", "index stray_index"),
    ("ALTER TABLE channels DROP CONSTRAINT channels_name_key", "channels: uniques"),
    (
        "ALTER TABLE sessions DROP CONSTRAINT sessions_user_id_fkey;"
        " ALTER TABLE sessions ADD FOREIGN KEY (user_id) REFERENCES users(id)",
        "sessions: foreign_keys",
    ),
    ("ALTER TABLE oauth_tokens DROP CONSTRAINT oauth_tokens_kind_check", "oauth_tokens: checks"),
    ("DROP TRIGGER kv_usage_update ON kv", "trigger kv_usage_update"),
    ("UPDATE ai_settings SET max_tool_steps = 5", "ai_settings: rows"),
    ("CREATE TABLE stray (id TEXT)", "tables: ['stray']"),
]


async def test_a_change_made_on_one_driver_only_is_seen(tmp_path: Path, pg_dsn: str) -> None:
    lite, _ = await _both(tmp_path, pg_dsn)
    conn = await asyncpg.connect(pg_dsn)
    try:
        for statement, _ in DRIFT:
            await conn.execute(statement)
        problems = _differences(lite, await _pg_schema(conn))
    finally:
        await conn.close()
    unseen = [said for _, said in DRIFT if not any(p.startswith(said) for p in problems)]
    assert not unseen, f"not seen: {unseen}; the comparison said: {problems}"


# SQL run unchanged on both drivers (no parameters: the placeholders differ), then the same rows read back
SCENARIO = [
    "INSERT INTO functions (id, name, runtime, entrypoint, memory_mb, cpus, timeout_ms, network_mode, auth_mode,"
    " status, created_at, updated_at) VALUES ('f1', 'one', 'python', 'h.main', 128, 0.5, 1000, 'none', 'none',"
    " 'active', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')",
    "INSERT INTO kv_usage (function_id) VALUES ('f1')",
    "INSERT INTO kv (function_id, key, kind, value, size, version, created_at, updated_at)"
    " VALUES ('f1', 'clé', 'json', X'7B7D', 2, 1, 'a', 'a')",
    "INSERT INTO kv (function_id, key, kind, value, size, version, created_at, updated_at)"
    " VALUES ('f1', 'b', 'bytes', X'000102', 3, 2, 'a', 'a')",
    "UPDATE kv SET size = 10 WHERE key = 'b'",
    "DELETE FROM kv WHERE key = 'clé'",
    "INSERT INTO executions (id, function_id, function_name, trigger, method, path, status, status_code, cold_start,"
    " duration_ms, queue_ms, request_bytes, response_bytes, started_at, finished_at) VALUES"
    " ('e1', 'f1', 'one', 'http', 'GET', '/', 'success', 200, 1, 1.5, 0, 0, 2, 'a', 'b'),"
    " ('e2', 'f1', 'one', 'http', 'GET', '/', 'success', 200, 0, 1.5, 0, 0, 2, 'a', 'b')",
    "INSERT INTO spans (trace_id, span_id, parent_span_id, execution_id, function_id, name, start_ms, duration_ms,"
    " status, attributes) VALUES ('t', 's1', 'p', 'e1', 'f1', 'x', 1, 1, 'ok', '{}'),"
    " ('t', 's2', 'p', 'e2', 'f1', 'y', 1, 1, 'ok', '{}')",
    "INSERT INTO execution_requests (execution_id, method, path, query, headers, body, body_size, body_truncated)"
    " VALUES ('e1', 'GET', '/', '', '[]', X'', 0, 0), ('e2', 'GET', '/', '', '[]', X'', 0, 0)",
    "DELETE FROM executions WHERE id = 'e1'",
]
READS = [
    "SELECT keys, bytes FROM kv_usage",
    "SELECT execution_id FROM spans ORDER BY execution_id",
    "SELECT execution_id FROM execution_requests ORDER BY execution_id",
    "SELECT SUM(cold_start), COUNT(*) FROM executions",
]


def _run_sqlite(path: Path) -> list[list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    try:
        seen = []
        for statement in SCENARIO:
            conn.execute(statement)
            seen.append([tuple(r) for read in READS for r in conn.execute(read)])
        conn.execute("DELETE FROM functions WHERE id = 'f1'")  # the cascade, and the triggers it fires
        seen.append([tuple(r) for read in READS for r in conn.execute(read)])
        return seen
    finally:
        conn.close()


async def test_the_triggers_and_cascades_do_the_same_on_both(tmp_path: Path, pg_dsn: str) -> None:
    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    await db.close()
    expected = await asyncio.to_thread(_run_sqlite, tmp_path / "orva.db")
    conn = await asyncpg.connect(pg_dsn)
    try:
        await migrate(conn)
        seen = []
        for statement in [*SCENARIO, "DELETE FROM functions WHERE id = 'f1'"]:
            await conn.execute(statement.replace("X'", "'\\x"))
            seen.append([tuple(r) for read in READS for r in await conn.fetch(read)])
    finally:
        await conn.close()
    assert seen == expected
    # what the scenario shows: bytes count the key's UTF-8 bytes; a deleted execution takes its spans and
    # captured request along; the function's delete takes everything
    assert expected[5][0] == (1, 10 + 1)
    assert expected[-2][1:3] == [("e2",), ("e2",)]
    assert expected[-1] == [(None, 0)]


async def test_n_nodes_migrating_at_once_apply_each_migration_once(pg_dsn: str) -> None:
    conns = [await asyncpg.connect(pg_dsn) for _ in range(3)]
    try:
        versions = await asyncio.gather(*(migrate(c) for c in conns))
        assert versions == [len(sqlite_migration_files())] * 3
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(sqlite_migration_files())
    finally:
        for c in conns:
            await c.close()


def test_a_sqlite_migration_without_its_postgres_twin_is_refused() -> None:
    sqlite = [name for _, name, _ in sqlite_migration_files()]
    postgres = [name for _, name, _ in migration_files()]
    check_twins(postgres, sqlite)  # the shipped ones agree
    assert postgres[0] == f"{BASELINE:04d}_baseline.sql"
    with pytest.raises(RuntimeError, match="needs a twin"):
        check_twins(postgres, [*sqlite, f"{len(sqlite) + 1:04d}_new.sql"])
    with pytest.raises(RuntimeError, match="needs a twin"):
        check_twins([*postgres, f"{len(sqlite) + 1:04d}_only_here.sql"], sqlite)
    with pytest.raises(RuntimeError, match="must start with"):
        check_twins(postgres[1:], sqlite)


@pytest.mark.parametrize("start", range(BASELINE, len(sqlite_migration_files())))
async def test_a_database_at_an_older_version_migrates_to_sqlites_schema(
    tmp_path: Path, pg_dsn: str, start: int
) -> None:
    """Each twin applied to a database made by the earlier ones (with rows in it), not only to a fresh one."""
    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    await db.close()
    lite = await asyncio.to_thread(_sqlite_schema, tmp_path / "orva.db")
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await migrate(conn, upto=start) == start
        for statement in SCENARIO[:1] + SCENARIO[6:9]:  # a function, two executions, spans, captured requests
            await conn.execute(statement.replace("X'", "'\\x"))
        assert await migrate(conn) == len(sqlite_migration_files())
        migrated = await _pg_schema(conn)
        migrated.rows = lite.rows  # this one holds the scenario's rows: compare the schema
        assert _differences(lite, migrated) == []
        # the rows survived the migrations, and the triggers and cascades hold on the migrated database
        assert await conn.fetchval("SELECT count(*) FROM execution_requests") == 2
        await conn.execute("DELETE FROM executions WHERE id = 'e1'")
        assert [r[0] for r in await conn.fetch("SELECT execution_id FROM execution_requests")] == ["e2"]
        assert [r[0] for r in await conn.fetch("SELECT execution_id FROM spans")] == ["e2"]
        await conn.execute("DELETE FROM functions WHERE id = 'f1'")
        assert await conn.fetchval("SELECT count(*) FROM execution_requests") == 0
    finally:
        await conn.close()
