"""`orvad migrate --from sqlite:///… --to postgresql://…` (issue 25): a real orvad on SQLite is populated through
HTTP, stopped, and copied by the command (a subprocess) into a fresh PostgreSQL database; every row of every
table is read back from both and compared, not only the counts the command prints. Then the refusals: a
target with rows (left unchanged), a source behind the latest schema, a value PostgreSQL's column cannot
hold (named, target left empty), bad URLs, files and servers, and a password that is never echoed.

The source orvad runs on SQLite on both of the suite's passes (its ORVA_DATABASE_URL is set empty), so
the module needs no ``sqlite_only`` marker; no function is deployed, so it needs no sandbox either."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from orvad.store.db import migration_files
from orvad.store.postgres import copy as pgcopy
from orvad.store.postgres.migrate import migrate
from tests.deploy_helpers import create_function
from tests.helpers import Orvad, free_port, wait_for
from tests.pg import ThrowawayPostgres

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ENV = {"ORVA_DATABASE_URL": ""}  # SQLite in the data dir on both passes of the suite
TABLE_LINE = re.compile(r"^(\w+)\s+(\d+)\s+([0-9a-f]{16})\s+([0-9a-f]{16})\s+(ok|MISMATCH)$")


def run_migrate(source: str, target: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(
        [sys.executable, "-m", "orvad", "migrate", "--from", source, "--to", target],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite://{path.absolute()}"


def with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    user = parts.username or "orva"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


def populate(server: Orvad) -> None:
    """One or more rows in most tables, through the API (no function is deployed: no sandbox needed)."""
    with server.client() as anon:
        r = server.onboard(anon)  # a user and a session
        assert r.status_code in (200, 201), r.text
    with server.admin() as c:
        hook = c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["*"]})
        assert hook.status_code == 201, hook.text
        fn = create_function(c, "mig-src", description="copied to PostgreSQL")
        create_function(c, "mig-other")
        deliveries = f"/api/v1/webhooks/{hook.json()['id']}/deliveries"
        wait_for(lambda: bool(c.get(deliveries).json()["deliveries"]), 20, "a webhook delivery row")
        c.post(
            f"/api/v1/functions/{fn['id']}/secrets", json={"key": "GREETING", "value": "hello-secret"}
        ).raise_for_status()
        c.post("/api/v1/routes", json={"path": "/mig/hello", "function_id": fn["id"]}).raise_for_status()
        r = c.post("/api/v1/keys", json={"name": "kept", "permissions": ["read", "invoke"]})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/functions/mig-src/cron", json={"name": "nightly", "expression": "30 2 * * *"})
        assert r.status_code in (200, 201), r.text
        for i, value in enumerate(({"hello": "kv"}, "text ünïcode", 12345, [1.5, None])):
            c.put(f"/api/v1/functions/mig-src/kv/key-{i}", json={"value": value}).raise_for_status()
        r = c.post(
            "/api/v1/jobs",
            json={"function": "mig-src", "payload": {"n": 1}, "scheduled_at": "2030-01-01T00:00:00Z"},
        )
        assert r.status_code in (200, 201, 202), r.text
        r = c.post(f"/api/v1/functions/{fn['id']}/inbound-webhooks", json={"name": "gh", "format": "github"})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/channels", json={"name": "mig-channel", "function_ids": [fn["id"]]})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/firewall/rules", json={"target": "198.18.77.0/24"})
        assert r.status_code == 201, r.text
        r = c.post("/api/v1/functions/mig-src/fixtures", json={"name": "sample"})
        assert r.status_code == 201, r.text


def add_execution_rows(db: Path, function_id: str, count: int = 50) -> None:
    """Executions, their logs and captured requests (binary bodies: NUL and non-UTF-8 bytes) and spans (the
    identity column), written as orvad's batched writer writes them: no worker is needed."""
    conn = sqlite3.connect(db)
    with conn:
        for i in range(count):
            eid = f"0190-mig-{i:04d}"
            conn.execute(
                "INSERT INTO executions (id, function_id, function_name, code_hash, trigger, method, path, status,"
                " status_code, cold_start, duration_ms, queue_ms, request_bytes, response_bytes, started_at,"
                " finished_at, trace_id, span_id, trace_root) VALUES (?, ?, 'mig-src', 'abc', 'http', 'POST',"
                " '/fn/mig-src', 'success', 200, ?, ?, 0.25, 10, 20, '2026-12-06T06:00:00.000Z',"
                " '2026-12-06T06:00:00.010Z', ?, ?, 1)",
                (eid, function_id, i % 2, 1.0 + i / 3, f"trace{i}", f"span{i}"),
            )
            conn.execute(
                "INSERT INTO execution_logs (execution_id, logs, truncated) VALUES (?, ?, 0)",
                (eid, f"line {i}\n"),
            )
            conn.execute(
                "INSERT INTO execution_requests (execution_id, method, path, query, headers, body, body_size,"
                " body_truncated) VALUES (?, 'POST', '/fn/mig-src', '', '{}', ?, 4, 0)",
                (eid, bytes([0, 255, i % 256, 10])),
            )
            conn.execute(
                "INSERT INTO spans (trace_id, span_id, parent_span_id, execution_id, function_id, name, start_ms,"
                " duration_ms, status, attributes) VALUES (?, ?, '', ?, ?, 'handler', ?, 1.5, 'ok', '{}')",
                (f"trace{i}", f"span{i}", eid, function_id, 1733464800000.125 + i),
            )
    conn.close()


def sqlite_rows(db: Path) -> dict[str, Counter[tuple[Any, ...]]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        out = {}
        for table in tables:
            if table == "schema_migrations":
                continue
            columns = [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]
            select = ", ".join(f'"{c}"' for c in sorted(columns))
            out[table] = Counter(tuple(r) for r in conn.execute(f'SELECT {select} FROM "{table}"'))
        return out
    finally:
        conn.close()


async def pg_rows(dsn: str) -> dict[str, Counter[tuple[Any, ...]]]:
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'"
            )
        ]
        out = {}
        for table in tables:
            columns = [
                r[0]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                    " AND table_name = $1",
                    table,
                )
            ]
            select = ", ".join(f'"{c}"' for c in sorted(columns))
            out[table] = Counter(tuple(r) for r in await conn.fetch(f'SELECT {select} FROM "{table}"'))
        return out
    finally:
        await conn.close()


def printed_tables(stdout: str) -> dict[str, tuple[int, str, str, str]]:
    found = {}
    for line in stdout.splitlines():
        m = TABLE_LINE.match(line.strip())
        if m:
            found[m.group(1)] = (int(m.group(2)), m.group(3), m.group(4), m.group(5))
    return found


@pytest.fixture(scope="module")
def populated_db() -> Iterator[Path]:
    """A populated single node's orva.db, orvad stopped (one per module: tests copy it)."""
    base = Path(tempfile.mkdtemp(prefix="orva-migrate-"))
    base.chmod(0o711)
    server = Orvad(base / "data", free_port(), dict(SOURCE_ENV)).start()
    try:
        populate(server)
        with server.admin() as c:
            fn_id = c.get("/api/v1/functions/mig-src").json()["id"]
    finally:
        server.stop()
        server.drop_database()
    db = server.data_dir / "orva.db"
    add_execution_rows(db, fn_id)
    yield db
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def stopped_source(populated_db: Path, tmp_path: Path) -> Path:
    """This test's own copy of the populated orva.db (SQLite's backup API: the -wal's pages too)."""
    copy = tmp_path / "orva.db"
    src, dst = sqlite3.connect(populated_db), sqlite3.connect(copy)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return copy


async def test_a_populated_node_is_copied_and_every_row_of_every_table_reads_back(
    stopped_source: Path, pg_dsn: str
) -> None:
    done = run_migrate(sqlite_url(stopped_source), pg_dsn)
    assert done.returncode == 0, done.stderr + done.stdout
    before = sqlite_rows(stopped_source)
    after = await pg_rows(pg_dsn)

    # the printed verification: every table, its count, the same checksum on both sides, ok
    printed = printed_tables(done.stdout)
    assert set(printed) == set(before), (sorted(printed), sorted(before))
    for table, (rows, ours, theirs, verdict) in printed.items():
        assert rows == sum(before[table].values()), table
        assert ours == theirs and verdict == "ok", table
    assert "every table matches" in done.stdout and "orvad is running" not in done.stdout
    populated = {t for t, rows in before.items() if rows}
    assert {
        "users",
        "sessions",
        "api_keys",
        "functions",
        "routes",
        "secrets",
        "kv",
        "kv_usage",
        "jobs",
        "cron_schedules",
        "webhooks",
        "webhook_deliveries",
        "inbound_webhooks",
        "channels",
        "channel_functions",
        "firewall_rules",
        "function_fixtures",
        "audit_log",
        "executions",
        "execution_logs",
        "execution_requests",
        "spans",
        "ai_settings",
        "replay_state",
    } <= populated, sorted(set(before) - populated)

    # every row of every table, value for value (ints, doubles, text, bytes: the sealed secrets as bytes)
    assert set(after) == set(before)
    for table in before:
        assert after[table] == before[table], table

    conn = await asyncpg.connect(pg_dsn)
    try:
        # spans.id: the identity sequence continues past the copied ids
        top = await conn.fetchval("SELECT MAX(id) FROM spans")
        new_id = await conn.fetchval(
            "INSERT INTO spans (trace_id, span_id, parent_span_id, execution_id, function_id, name, start_ms,"
            " duration_ms, status, attributes) VALUES ('t', 's', '', 'e', 'f', 'n', 1, 1, 'ok', '{}') RETURNING id"
        )
        assert new_id == top + 1
        # the KV usage counters were copied, not counted again by kv's triggers; the triggers are back on
        usage = await conn.fetchrow(
            "SELECT keys, bytes FROM kv_usage WHERE function_id = (SELECT id FROM functions WHERE name = 'mig-src')"
        )
        assert usage["keys"] == 4
        fid = await conn.fetchval("SELECT id FROM functions WHERE name = 'mig-src'")
        await conn.execute(
            "INSERT INTO kv (function_id, key, kind, value, size, version, created_at, updated_at)"
            " VALUES ($1, 'more', 'json', '\\x3130'::bytea, 2, 1, 't', 't')",
            fid,
        )
        assert await conn.fetchval("SELECT keys FROM kv_usage WHERE function_id = $1", fid) == 5
        # the schema's versions are the source's
        versions = [
            tuple(r) for r in await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
        ]
        assert versions == [(n, name) for n, name, _ in migration_files()]
    finally:
        await conn.close()


async def test_an_orvad_started_on_the_copy_serves_the_same_state_with_the_same_master_key(
    populated_db: Path, stopped_source: Path, pg_dsn: str, make_orvad: Callable[..., Orvad], jail_tmp: Path
) -> None:
    """The point of the copy: a node on PostgreSQL, given the source's master key (and here its admin key
    file), finds every function, route, KV value and sealed secret where the single node left them."""
    done = run_migrate(sqlite_url(stopped_source), pg_dsn)
    assert done.returncode == 0, done.stderr
    data = jail_tmp / "node"
    data.mkdir()
    for name in ("master.key", "admin.key"):
        shutil.copy2(populated_db.parent / name, data / name)
    node = make_orvad(data_dir=data, env={"ORVA_DATABASE_URL": pg_dsn})
    assert not (data / "orva.db").exists()
    with node.admin() as c:
        names = {f["name"] for f in c.get("/api/v1/functions").json()["functions"]}
        assert {"mig-src", "mig-other"} <= names
        assert c.get("/api/v1/functions/mig-src/kv/key-0").json()["value"] == {"hello": "kv"}
        assert c.get("/api/v1/functions/mig-src/kv/key-1").json()["value"] == "text ünïcode"
        assert "GREETING" in c.get("/api/v1/functions/mig-src/secrets").text
        assert "/mig/hello" in c.get("/api/v1/routes").text
        hooks = c.get("/api/v1/webhooks").json()["webhooks"]
        assert hooks and all(h["secret_usable"] for h in hooks), hooks  # sealed bytes open under the same key
        # and it keeps working: a new function, a new KV key
        create_function(c, "mig-after")
        c.put("/api/v1/functions/mig-src/kv/key-9", json={"value": 9}).raise_for_status()
        assert len(c.get("/api/v1/functions/mig-src/kv").json()["keys"]) == 5


async def test_a_running_node_is_copied_as_one_snapshot_with_a_note_to_stop_it(
    make_orvad: Callable[..., Orvad], pg_dsn: str
) -> None:
    server = make_orvad(env=SOURCE_ENV)
    with server.admin() as c:
        for i in range(3):
            create_function(c, f"live-{i}")
    done = run_migrate(sqlite_url(server.data_dir / "orva.db"), pg_dsn)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "note: an orvad is running on this data dir" in done.stdout and "stop it" in done.stdout
    printed = printed_tables(done.stdout)
    assert printed["functions"][0] == 3 and all(v[3] == "ok" for v in printed.values()), done.stdout
    with server.admin() as c:  # the running node was not disturbed
        assert len(c.get("/api/v1/functions").json()["functions"]) == 3


async def test_a_target_with_rows_is_refused_and_left_unchanged(stopped_source: Path, pg_dsn: str) -> None:
    assert run_migrate(sqlite_url(stopped_source), pg_dsn).returncode == 0
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("DELETE FROM audit_log")  # only one table left with rows still counts
        await conn.execute("DELETE FROM executions")
    finally:
        await conn.close()
    before = await pg_rows(pg_dsn)
    again = run_migrate(sqlite_url(stopped_source), pg_dsn)
    assert again.returncode == 2, again.stdout + again.stderr
    assert "is not empty" in again.stderr and "never merges" in again.stderr, again.stderr
    assert "create a new database" in again.stderr and "--to" in again.stderr
    assert await pg_rows(pg_dsn) == before


async def test_a_database_that_is_not_orvads_is_refused_before_anything_is_created(
    stopped_source: Path, pg_dsn: str
) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE invoices (id BIGINT PRIMARY KEY)")
        done = run_migrate(sqlite_url(stopped_source), pg_dsn)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "not empty and not orvad's" in done.stderr and "invoices" in done.stderr, done.stderr
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert [r[0] for r in tables] == ["invoices"]
    finally:
        await conn.close()


async def test_a_database_whose_text_order_is_not_bytewise_is_refused_as_orvad_would(
    stopped_source: Path, pg_cluster: ThrowawayPostgres
) -> None:
    name = f"icu_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_cluster.dsn())
    try:
        await admin.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
        )
        done = run_migrate(sqlite_url(stopped_source), pg_cluster.dsn(name))
        assert done.returncode == 2, done.stdout + done.stderr
        assert "collation is 'an ICU locale'" in done.stderr and "LC_COLLATE 'C'" in done.stderr, done.stderr
        conn = await asyncpg.connect(pg_cluster.dsn(name))
        try:
            assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        finally:
            await conn.close()
    finally:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.close()


def behind_by_one(folder: Path) -> Path:
    """A SQLite database made by every migration but the last (as an older orvad left it)."""
    db = folder / "old.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL"
        " DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
    )
    for number, name, sql in migration_files()[:-1]:
        conn.executescript(sql)
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (number, name))
        conn.commit()
    conn.close()
    return db


async def test_a_source_behind_the_latest_schema_is_refused_and_the_target_untouched(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = behind_by_one(tmp_path)
    latest = migration_files()[-1][0]
    done = run_migrate(sqlite_url(db), pg_dsn)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"schema version {latest - 1}; this orvad ships version {latest}" in done.stderr, done.stderr
    assert "orvad serve --data-dir" in done.stderr and "run orvad migrate again" in done.stderr
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    finally:
        await conn.close()


CORRUPTIONS = [
    # text in an INTEGER column (SQLite's affinity keeps what it cannot convert)
    (
        "UPDATE functions SET memory_mb = 'lots' WHERE name = 'mig-other'",
        "functions.memory_mb",
        "is not an integer",
    ),
    # a fraction in an INTEGER column
    (
        "UPDATE functions SET timeout_ms = 2.5 WHERE name = 'mig-other'",
        "functions.timeout_ms",
        "is not an integer",
    ),
    # bytes that are not UTF-8 in a TEXT column
    (
        "UPDATE functions SET description = CAST(x'ff00fe' AS TEXT) WHERE name = 'mig-other'",
        "functions.description",
        "UTF-8",
    ),
    # a flag outside SMALLINT's range
    (
        "UPDATE functions SET csp_sandbox = 70000 WHERE name = 'mig-other'",
        "functions.csp_sandbox",
        "outside smallint",
    ),
    # a deep row: text in a REAL column of the spans (the identity table)
    ("UPDATE spans SET duration_ms = 'slow' WHERE id = 7", "spans.duration_ms", "is not a number"),
]


@pytest.mark.parametrize(
    ("statement", "where", "why"), CORRUPTIONS, ids=[c[1] + ":" + c[2] for c in CORRUPTIONS]
)
async def test_a_value_postgresql_cannot_hold_is_refused_by_name_and_the_target_left_empty(
    stopped_source: Path, pg_dsn: str, statement: str, where: str, why: str
) -> None:
    conn = sqlite3.connect(stopped_source)
    with conn:
        assert conn.execute(statement).rowcount == 1
        table = where.split(".")[0]
        key = "name = 'mig-other'" if table == "functions" else "id = 7"
        rowid = conn.execute(f"SELECT rowid FROM {table} WHERE {key}").fetchone()[0]
    conn.close()
    done = run_migrate(sqlite_url(stopped_source), pg_dsn)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{where}, rowid {rowid}:" in done.stderr and why in done.stderr, done.stderr
    assert "nothing was committed" in done.stderr
    after = await pg_rows(pg_dsn)
    left = {t: sum(rows.values()) for t, rows in after.items() if rows and t not in pgcopy.SEEDED}
    assert after and not left, left  # only the settings rows the migrations seed, as on a new database
    # fixed, the same (still empty) database takes the copy
    conn = sqlite3.connect(stopped_source)
    with conn:
        conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
    conn.close()
    assert run_migrate(sqlite_url(stopped_source), pg_dsn).returncode == 0


async def test_a_nul_character_in_text_is_copied_as_the_replacement_character_and_counted(
    stopped_source: Path, pg_dsn: str
) -> None:
    """PostgreSQL's text cannot hold NUL: as a running orvad on PostgreSQL does (tests/cluster/test_nul_values.py),
    the copy stores U+FFFD, verifies the table against that, and says how many values it changed. A NUL in a
    BYTEA column (a captured request's body) is kept as it is."""
    conn = sqlite3.connect(stopped_source)
    with conn:
        conn.execute("UPDATE functions SET description = 'a' || char(0) || 'b' WHERE name = 'mig-other'")
        # a UTF-8 BLOB in a TEXT column (converted to text) with two NULs
        conn.execute("UPDATE functions SET description = x'6300640065' WHERE name <> 'mig-other'")
        functions = conn.execute("SELECT COUNT(*) FROM functions").fetchone()[0]
        bodies = conn.execute("SELECT COUNT(*) FROM execution_requests WHERE instr(body, x'00')").fetchone()[
            0
        ]
    conn.close()
    assert functions >= 2 and bodies > 0  # the populated node's binary bodies: NUL bytes kept as they are
    done = run_migrate(sqlite_url(stopped_source), pg_dsn)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"\n{functions} text values held a NUL character" in done.stdout, done.stdout
    assert "MISMATCH" not in done.stdout and "every table matches" in done.stdout
    target = await asyncpg.connect(pg_dsn)
    try:
        descriptions = {r[0]: r[1] for r in await target.fetch("SELECT name, description FROM functions")}
        kept = await target.fetchval(
            "SELECT COUNT(*) FROM execution_requests WHERE position('\\x00'::bytea IN body) > 0"
        )
    finally:
        await target.close()
    assert descriptions.pop("mig-other") == "a\ufffdb"
    assert set(descriptions.values()) == {"c\ufffdd\ufffde"}
    assert kept == bodies


async def test_bad_input_gets_a_clear_error_with_a_hint_and_never_the_password(
    tmp_path: Path, stopped_source: Path, pg_dsn: str, pg_cluster: ThrowawayPostgres
) -> None:
    assert pg_cluster.password and len(pg_cluster.password) >= 12
    secret = "Sup3rS3cretPassw0rd"
    good_target = pg_dsn
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_bytes(b"this is not a database, just bytes" * 200)
    cases: list[tuple[str, str, str, str]] = [
        (sqlite_url(tmp_path / "missing.db"), good_target, "no database at", "--from names the orva.db"),
        (sqlite_url(not_sqlite), good_target, "is not a SQLite database", "orvad restore"),
        (str(stopped_source), good_target, "--from must be a sqlite: URL", "sqlite:///"),
        ("sqlite://somehost/orva.db", good_target, "names no host", "three slashes"),
        (
            sqlite_url(stopped_source),
            f"mysql://root:{secret}@127.0.0.1/orva",
            "--to must be a postgresql:// URL",
            "PGPASSWORD",
        ),
        (
            sqlite_url(stopped_source),
            f"postgresql://orva:{secret}@127.0.0.1:1/orva",
            "cannot connect to",
            "check the host and port",
        ),
        (
            sqlite_url(stopped_source),
            with_password(good_target, secret),
            "password authentication failed",
            "check the user and password",
        ),
        (
            sqlite_url(stopped_source),
            good_target.rsplit("/", 1)[0] + "/no_such_db",
            "does not exist",
            "create the database first",
        ),
    ]
    real_password = pg_cluster.password
    # the wrong password case needs the right user and host: only the password differs
    assert urlsplit(with_password(good_target, secret)).password == secret
    for source, target, error, hint in cases:
        done = run_migrate(source, target, timeout=60)
        told = done.stdout + done.stderr
        assert done.returncode == 2, (source, target.replace(secret, "***"), told)
        assert error in done.stderr and "hint: " in done.stderr and hint in done.stderr, told
        assert secret not in told and real_password not in told, told
        assert "Traceback" not in told, told
    # a password given as a query parameter is hidden too
    done = run_migrate(
        sqlite_url(stopped_source), f"postgresql://orva@127.0.0.1:1/orva?password={secret}", timeout=60
    )
    assert done.returncode == 2 and secret not in done.stdout + done.stderr
    assert "password=***" in done.stdout + done.stderr
    # and nothing was written into the good target by any of them
    conn = await asyncpg.connect(good_target)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    finally:
        await conn.close()


async def test_the_seeded_tables_are_exactly_the_ones_migrations_fill(pg_dsn: str) -> None:
    """SEEDED (single-row settings tables an empty target already has) is what a fresh database holds: a
    migration that seeds another table must add it there, or every copy would be refused as not empty."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        await migrate(conn)
        tables = [
            r[0]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ]
        filled = {
            t
            for t in tables
            if t != "schema_migrations" and await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{t}")')
        }
    finally:
        await conn.close()
    assert filled == pgcopy.SEEDED


def test_values_are_converted_deliberately_and_refused_when_they_would_change() -> None:
    convert, Unconvertible = pgcopy.convert, pgcopy.Unconvertible
    assert convert("double precision", 3) == 3.0 and isinstance(convert("double precision", 3), float)
    assert convert("bigint", 4.0) == 4 and isinstance(convert("bigint", 4.0), int)
    assert convert("bytea", "abc") == b"abc" and convert("text", b"caf\xc3\xa9") == "café"
    assert convert("smallint", None) is None
    assert (
        convert("text", "a\x00b") == convert("text", b"a\x00b") == "a\ufffdb"
    )  # as a PostgreSQL orvad stores it
    for pg_type, value in [
        ("double precision", 2**53 + 1),  # no exact double
        ("bigint", 2.5),
        ("bigint", "12"),  # text SQLite itself could not read as a number stays text: refused, not parsed
        ("smallint", 40000),
        ("text", 7),
        ("text", b"\xff"),
        ("bytea", 1.5),
        ("jsonb", "{}"),  # a type the copy does not know
    ]:
        with pytest.raises(Unconvertible):
            convert(pg_type, value)


def test_the_checksum_is_by_value_and_independent_of_row_order() -> None:
    def digest(rows: list[tuple[Any, ...]]) -> str:
        d = pgcopy.RowDigest("t")
        for row in rows:
            d.add(row)
        return d.hexdigest()

    rows = [(1, "a", b"\x00", None, 1.5), (2, "b", b"", 0.0, -3.25)]
    assert digest(rows) == digest(rows[::-1])
    assert digest([(3, "x")]) == digest([(3.0, b"x")])  # an integer copied into a double; text into bytea
    for changed in (
        [rows[0]],  # a row lost
        [*rows, rows[0]],  # a row duplicated
        [(1, "a", b"\x00", None, 1.5), (2, "b", b"", 0.0, -3.5)],  # a value changed
        [(1, "a", b"\x00", 0, 1.5), rows[1]],  # NULL is not zero
        [(1, "a\x00", b"", None, 1.5), rows[1]],  # values do not run into each other
    ):
        assert digest(changed) != digest(rows)


def test_the_redacted_url_keeps_everything_but_the_password() -> None:
    assert pgcopy.redact("postgresql://orva:pw@db.local:5432/orva?sslmode=require&password=x") == (
        "postgresql://orva:***@db.local:5432/orva?sslmode=require&password=***"
    )
    assert pgcopy.redact("postgresql://orva@db/orva") == "postgresql://orva@db/orva"


def test_the_source_url_forms() -> None:
    assert pgcopy.source_path("sqlite:///var/lib/orva/data/orva.db") == Path("/var/lib/orva/data/orva.db")
    assert pgcopy.source_path("sqlite:data/orva.db") == Path("data/orva.db")
    assert pgcopy.source_path("SQLITE:///a%20b/orva.db?mode=rw") == Path(
        "/a b/orva.db"
    )  # our own mode=ro wins
    for bad in ("/var/lib/orva/data/orva.db", "postgresql:///x", "sqlite://host/orva.db", "sqlite:"):
        with pytest.raises(pgcopy.MigrateError):
            pgcopy.source_path(bad)
