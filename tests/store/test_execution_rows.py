"""An execution's rows as the batched writer writes them (migration 0023): its captured request has no foreign
key, so what the key did is checked here: the capture goes with its execution (retention, a function's delete),
is never written when its execution's row is refused, and stays in its execution's batch. And a database made
at 0022 with executions, captures and spans, migrated by orvad, still answers the API."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from orvad.ids import uuid7
from orvad.store.batch import BatchWriter
from orvad.store.captures import CaptureStore
from orvad.store.db import SqliteDatabase, _split_sql, migration_files
from orvad.store.executions import ExecutionStore
from orvad.store.traces import TraceStore
from tests.helpers import Orvad

_FUNCTION = (
    "INSERT INTO functions (id, name, runtime, entrypoint, memory_mb, cpus, timeout_ms, network_mode, auth_mode,"
    " status, created_at, updated_at) VALUES (?, ?, 'python', 'handler.py', 128, 1, 1000, 'none', 'none', 'created',"
    " '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z')"
)


def _execution(
    execution_id: str, function_id: str, started_at: str = "2026-12-06T00:00:00.000Z"
) -> dict[str, Any]:
    return {
        "id": execution_id,
        "function_id": function_id,
        "function_name": "f",
        "code_hash": "h",
        "trigger": "http",
        "method": "POST",
        "path": "/",
        "status": "success",
        "status_code": 200,
        "cold_start": False,
        "duration_ms": 1.0,
        "queue_ms": 0.0,
        "request_bytes": 5,
        "response_bytes": 2,
        "error_code": None,
        "error_message": None,
        "started_at": started_at,
        "finished_at": started_at,
        "channel_id": None,
        "trace_id": execution_id.replace("-", ""),
        "span_id": "ab" * 8,
        "parent_span_id": None,
        "trace_root": True,
        "outlier": False,
    }


def _capture(execution_id: str) -> tuple[Any, ...]:
    return (execution_id, "POST", "/", "a=1", '[["host","x"],["authorization","[redacted]"]]', b"hello", 5, 0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[SqliteDatabase, BatchWriter, ExecutionStore]]:
    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    writer = BatchWriter(db)
    try:
        yield db, writer, ExecutionStore(db, writer)
    finally:
        await db.close()


async def _count(db: SqliteDatabase, table: str) -> int:
    row = await db.fetchone(f"SELECT COUNT(*) FROM {table}")
    assert row is not None
    return int(row[0])


async def test_the_captured_request_is_one_btree_without_a_foreign_key(
    store: tuple[SqliteDatabase, BatchWriter, ExecutionStore],
) -> None:
    db, _, _ = store
    row = await db.fetchone("SELECT sql FROM sqlite_master WHERE name = 'execution_requests'")
    assert row is not None and "WITHOUT ROWID" in row[0] and "REFERENCES" not in row[0]
    assert await db.fetchall("PRAGMA foreign_key_list(execution_requests)") == []
    indexes = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "executions_trace_roots" not in indexes and "executions_trace" in indexes


async def test_a_capture_goes_with_its_execution_retention_and_function_delete(
    store: tuple[SqliteDatabase, BatchWriter, ExecutionStore],
) -> None:
    db, writer, executions = store
    fn_a, fn_b = uuid7(), uuid7()
    for fn, name in ((fn_a, "a"), (fn_b, "b")):
        await db.execute(_FUNCTION, (fn, name))
    old, new, other = uuid7(), uuid7(), uuid7()
    executions.record(_execution(old, fn_a, "2026-11-01T00:00:00.000Z"), "", False, request=_capture(old))
    executions.record(_execution(new, fn_a), "printed\n", False, request=_capture(new))
    executions.record(_execution(other, fn_b), "", False, request=_capture(other))
    await writer.flush()
    captures = CaptureStore(db)
    for ident in (old, new, other):
        captured = await captures.request(ident)
        assert captured is not None and captured.body == b"hello" and captured.query == "a=1"
        assert captured.headers == [["host", "x"], ["authorization", "[redacted]"]]

    assert await executions.delete_older_than("2026-12-01T00:00:00Z") == 1  # retention
    assert await captures.request(old) is None
    assert await captures.request(new) is not None
    await db.execute(
        "DELETE FROM functions WHERE id = ?", (fn_a,)
    )  # its executions cascade, their captures go
    assert await captures.request(new) is None
    assert await db.fetchall("SELECT execution_id FROM execution_logs") == []
    assert [r[0] for r in await db.fetchall("SELECT execution_id FROM execution_requests")] == [other]
    assert await _count(db, "executions") == 1


async def test_a_capture_whose_execution_row_is_refused_is_not_written(
    store: tuple[SqliteDatabase, BatchWriter, ExecutionStore],
) -> None:
    """The execution's function was deleted before its row was written: the execution's row is refused (its own
    foreign key) and its capture, which has none, is not written either; the rest of the batch is."""
    db, writer, executions = store
    fn = uuid7()
    await db.execute(_FUNCTION, (fn, "live"))
    orphan, kept = uuid7(), uuid7()
    announced: list[str] = []
    executions.record(
        _execution(orphan, uuid7()), "", False, lambda: announced.append(orphan), request=_capture(orphan)
    )
    executions.record(_execution(kept, fn), "", False, lambda: announced.append(kept), request=_capture(kept))
    await writer.flush()
    assert [r[0] for r in await db.fetchall("SELECT id FROM executions")] == [kept]
    assert [r[0] for r in await db.fetchall("SELECT execution_id FROM execution_requests")] == [kept]
    assert announced == [kept]


async def test_a_capture_stays_in_its_executions_batch(tmp_path: Path) -> None:
    """Batches are cut at max_batch rows, but never between an execution's row and its capture: a capture in
    the next batch would be written even when its execution's row was refused."""
    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    try:
        writer = BatchWriter(db, max_batch=3)
        executions = ExecutionStore(db, writer)
        fn = uuid7()
        await db.execute(_FUNCTION, (fn, "f"))
        refused, ids = uuid7(), [uuid7() for _ in range(3)]
        executions.record(_execution(ids[0], fn), "", False, request=_capture(ids[0]))
        # rows 3 and 4: a batch of 3 would cut between this execution's row and its capture
        executions.record(_execution(refused, uuid7()), "", False, request=_capture(refused))
        for ident in ids[1:]:
            executions.record(_execution(ident, fn), "", False, request=_capture(ident))
        sizes: list[int] = []
        real_write_all = db.write_all

        async def write_all(statements: Any) -> None:
            listed = list(statements)
            sizes.append(sum(len(params) for _, params in listed))
            await real_write_all(listed)

        db.write_all = write_all  # type: ignore[method-assign]
        await writer.flush()
        assert {r[0] for r in await db.fetchall("SELECT id FROM executions")} == set(ids)
        assert {r[0] for r in await db.fetchall("SELECT execution_id FROM execution_requests")} == set(ids)
        assert writer.rows_written == 6
    finally:
        await db.close()


def _database_at_0022(path: Path, rows: Callable[[sqlite3.Connection], None]) -> None:
    """orva.db as orvad left it at migration 0022, with rows written by ``rows``."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
        )
        for number, name, sql in migration_files():
            if number > 22:
                break
            for statement in _split_sql(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (number, name))
        rows(conn)


def _insert_execution(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    names = ", ".join(values)
    conn.execute(
        f"INSERT INTO executions ({names}) VALUES ({', '.join('?' for _ in values)})", tuple(values.values())
    )


async def test_a_database_at_0022_migrates_and_keeps_its_captures_and_traces(tmp_path: Path) -> None:
    fn, root, child = uuid7(), uuid7(), uuid7()
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"

    def rows(conn: sqlite3.Connection) -> None:
        conn.execute(_FUNCTION, (fn, "f"))
        _insert_execution(conn, _execution(root, fn) | {"trace_id": trace, "span_id": "1" * 16})
        _insert_execution(
            conn,
            _execution(child, fn)
            | {"trace_id": trace, "span_id": "2" * 16, "parent_span_id": "1" * 16, "trace_root": False},
        )
        conn.execute(
            "INSERT INTO execution_requests (execution_id, method, path, query, headers, body, body_size,"
            " body_truncated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            _capture(root),
        )

    path = tmp_path / "orva.db"
    _database_at_0022(path, rows)
    db = SqliteDatabase(path)
    await db.open()
    try:
        assert db.schema_version == len(migration_files())
        captured = await CaptureStore(db).request(root)
        assert captured is not None and captured.body == b"hello" and captured.method == "POST"
        assert await CaptureStore(db).request(child) is None
        traces = TraceStore(db, BatchWriter(db))
        entries = await traces.entries(
            function_id=None, status=None, since=None, until=None, cursor=None, limit=10
        )
        assert [e["id"] for e in entries] == [root]
        assert sorted(e["id"] for e in await traces.executions(trace, 10)) == sorted([root, child])
        # the migrated schema is what a new database gets (a restore compares them the same way)
        fresh = SqliteDatabase(tmp_path / "fresh.db")
        await fresh.open()
        try:
            query = "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
            assert [tuple(r) for r in await db.fetchall(query)] == [
                tuple(r) for r in await fresh.fetchall(query)
            ]
        finally:
            await fresh.close()
        await db.execute("DELETE FROM executions WHERE id = ?", (root,))
        assert await CaptureStore(db).request(root) is None
    finally:
        await db.close()


# sqlite_only: this test writes an orva.db at schema 0022 with sqlite3 and checks that orvad upgrades that
# file in place; on PostgreSQL orvad never opens orva.db (the PostgreSQL upgrade is its migration runner's,
# tests/cluster/test_pg_schema.py), so it has no meaning there.
SQLITE_ONLY_REASON = "upgrading an orva.db file written at schema 0022"


@pytest.mark.sqlite_only
def test_orvad_upgrades_a_0022_data_dir_and_serves_its_captures_and_traces(
    jail_tmp: Path, make_orvad: Callable[..., Orvad]
) -> None:
    """The same through HTTP: a data dir whose orva.db is at 0022 (executions, a captured request, a two-span
    trace), started by orvad, answers GET /api/v1/executions/{id}/request and GET /api/v1/traces[/{id}]; deleting
    the function removes the capture."""
    data = jail_tmp / "upgraded"  # a folder workers can reach (tests/conftest.py)
    data.mkdir(mode=0o711)
    fn, root, child = uuid7(), uuid7(), uuid7()
    trace = "0af7651916cd43dd8448eb211c80319c"

    def rows(conn: sqlite3.Connection) -> None:
        conn.execute(_FUNCTION, (fn, "upgraded"))
        _insert_execution(conn, _execution(root, fn) | {"trace_id": trace, "span_id": "3" * 16})
        _insert_execution(
            conn,
            _execution(child, fn)
            | {"trace_id": trace, "span_id": "4" * 16, "parent_span_id": "3" * 16, "trace_root": False},
        )
        conn.execute(
            "INSERT INTO execution_requests (execution_id, method, path, query, headers, body, body_size,"
            " body_truncated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            _capture(root),
        )

    _database_at_0022(data / "orva.db", rows)
    server = make_orvad(data_dir=data)
    with server.admin() as api:
        got = api.get(f"/api/v1/executions/{root}/request")
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["method"] == "POST" and body["query"] == "a=1" and body["body_size"] == 5
        assert body["headers"] == [["host", "x"], ["authorization", "[redacted]"]]
        assert api.get(f"/api/v1/executions/{child}/request").status_code == 404
        listed = api.get("/api/v1/traces")
        assert listed.status_code == 200, listed.text
        assert [t["trace_id"] for t in listed.json()["traces"]] == [trace]
        tree = api.get(f"/api/v1/traces/{trace}")
        assert tree.status_code == 200, tree.text
        assert tree.json()["executions"] == 2
        spans = {span["span_id"]: span for span in tree.json()["spans"]}
        assert set(spans) == {"3" * 16, "4" * 16} and spans["4" * 16]["parent_span_id"] == "3" * 16
        assert api.delete("/api/v1/functions/upgraded").status_code in (200, 204)
        assert api.get(f"/api/v1/executions/{root}/request").status_code == 404
    server.stop()
    with sqlite3.connect(data / "orva.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM execution_requests").fetchone()[0] == 0
        assert conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] == len(
            migration_files()
        )
