"""The driver seam prototype (orvad/store/postgres/driver.py): SQLite's placeholders translated, and the
store's own SQL (orvad/store/functions.py's FunctionStore, unchanged) run on the throwaway cluster."""

from __future__ import annotations

import secrets
import socket
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orvad.models import (
    AuthMode,
    ConcurrencyPolicy,
    Deployment,
    DeploymentSource,
    DeploymentStatus,
    Function,
    FunctionStatus,
    NetworkMode,
    Phase,
    PhaseMark,
)
from orvad.store.functions import _DEPLOYMENT_COLUMNS, FunctionStore, _encode
from orvad.store.postgres.driver import PgDatabase, translate
from orvad.store.postgres.migrate import migration_files
from orvad.store.sql import DatabaseUnusable, IntegrityError
from tests.pg import ThrowawayPostgres


@pytest.mark.parametrize(
    ("sqlite", "postgres"),
    [
        ("SELECT * FROM t WHERE a = ? AND b IN (?, ?)", "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3)"),
        ("SELECT '?', 'it''s ?', ? FROM t", "SELECT '?', 'it''s ?', $1 FROM t"),
        ('SELECT "odd?name" FROM t WHERE x = ?', 'SELECT "odd?name" FROM t WHERE x = $1'),
        ("SELECT ? -- is it?\n, ? /* or ? */", "SELECT $1 -- is it?\n, $2 /* or ? */"),
        ("DO $body$ SELECT '?' $body$; SELECT ?", "DO $body$ SELECT '?' $body$; SELECT $1"),
        ("SELECT 1", "SELECT 1"),
        # SQLite's numbered form: the same parameter where repeated; a bare ? follows the largest so far
        (
            "WHERE (?1 IS NULL OR a = ?1) AND (?2 IS NULL OR b = ?2)",
            "WHERE ($1 IS NULL OR a = $1) AND ($2 IS NULL OR b = $2)",
        ),
        ("VALUES (?2, ?, ?1, ?)", "VALUES ($2, $3, $1, $4)"),
        ("SELECT ?10", "SELECT $10"),
    ],
)
def test_translate_numbers_the_placeholders_outside_literals_names_and_comments(
    sqlite: str, postgres: str
) -> None:
    assert translate(sqlite) == postgres


def test_translate_refuses_a_statement_mixing_both_placeholder_styles() -> None:
    with pytest.raises(ValueError, match="mixes"):
        translate("SELECT $1, ?")
    assert translate("SELECT $1, '?'") == "SELECT $1, '?'"  # PostgreSQL's own, untouched


_TEXT = st.text(alphabet="ab ?$-*/", max_size=8)
# (SQLite's piece, PostgreSQL's piece or None for a placeholder); placeholders are numbered by the test
_PIECES = st.one_of(
    st.just(("?", None)),
    st.integers(1, 12).map(lambda n: (f"?{n}", n)),
    _TEXT.map(lambda t: "'" + t.replace("'", "''") + "'").map(lambda q: (q, q)),
    _TEXT.filter(lambda t: '"' not in t).map(lambda t: f'"{t}"').map(lambda q: (q, q)),
    _TEXT.filter(lambda t: "*/" not in t).map(lambda t: f"/*{t}*/").map(lambda q: (q, q)),
    st.sampled_from(["SELECT", " ", ",", "a", "=", "(", ")", "\n"]).map(lambda w: (w, w)),
)


@given(st.lists(_PIECES, max_size=20))
def test_translate_numbers_placeholders_as_sqlite_does_and_touches_nothing_else(
    pieces: list[tuple[str, Any]],
) -> None:
    sqlite, expected, largest = [], [], 0
    for piece, meaning in pieces:
        sqlite.append(piece)
        if meaning is None or isinstance(meaning, int):
            number = largest + 1 if meaning is None else meaning
            largest = max(largest, number)
            expected.append(f"${number}")
        else:
            expected.append(meaning)
    # joined by blanks: two literals side by side read as one ('a''b'), a digit after ?N as part of N
    assert translate(" ".join(sqlite)) == " ".join(expected)


def _function(fid: str, name: str) -> Function:
    return Function(
        id=fid,
        name=name,
        runtime="python",
        entrypoint="handler.handler",
        description="",
        memory_mb=128,
        cpus=0.5,
        timeout_ms=30000,
        env_vars={"A": "1"},
        network_mode=NetworkMode("none"),
        auth_mode=AuthMode("none"),
        max_concurrency=0,
        concurrency_policy=ConcurrencyPolicy("queue"),
        rate_limit_per_min=0,
        status=FunctionStatus("active"),
        active_deployment_id=None,
        created_at="2026-12-06T00:00:00.000Z",
        updated_at="2026-12-06T00:00:00.000Z",
        cors_origins=["https://a.example"],
        may_invoke=("other",),
    )


def _deployment(did: str, fid: str, code_hash: str, status: str) -> Deployment:
    return Deployment(
        id=did,
        function_id=fid,
        version=0,
        code_hash=code_hash,
        status=DeploymentStatus(status),
        phase=Phase(status),
        phases=[PhaseMark(phase=Phase("queued"), ts="t0")],
        source=DeploymentSource("inline"),
        parent_deployment_id=None,
        error_message=None,
        submitted_at="t0",
        started_at=None,
        finished_at=None,
        duration_ms=None,
    )


async def _insert_deployment(db: PgDatabase, dep: Deployment) -> None:
    """FunctionStore.insert_deployment's two statements, through the seam's transaction (the store reads a
    cursor there, which the seam does not offer yet: phase 2)."""
    async with db.transaction() as tx:
        row = await tx.fetchone(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM deployments WHERE function_id = ?", (dep.function_id,)
        )
        values = _encode(dep, _DEPLOYMENT_COLUMNS)
        values["version"] = row[0] if row else 1
        cols, marks = ", ".join(_DEPLOYMENT_COLUMNS), ", ".join("?" for _ in _DEPLOYMENT_COLUMNS)
        await tx.execute(
            f"INSERT INTO deployments ({cols}) VALUES ({marks})", [values[c] for c in _DEPLOYMENT_COLUMNS]
        )


async def test_the_function_store_runs_unchanged_through_the_seam(pg_dsn: str) -> None:
    db = PgDatabase(pg_dsn, max_size=3)
    await db.open()
    try:
        assert db.schema_version == migration_files()[-1][0]
        store = FunctionStore(db, batch=None)  # type: ignore[arg-type]  # the seam stands in for Database
        one, two = _function("f1", "one"), _function("f2", "two")
        await store.insert_function(one)
        await store.insert_function(two)
        assert await store.all_functions() == [two, one]  # bools, floats, JSON and enums round-trip
        await store.update_function(replace(one, csp_sandbox=False, description="changed"))
        assert (await store.all_functions())[1] == replace(one, csp_sandbox=False, description="changed")

        for did, h, status in (
            ("d1", "aa11", "succeeded"),
            ("d2", "bb22", "failed"),
            ("d3", "aa12", "succeeded"),
        ):
            await _insert_deployment(db, _deployment(did, "f1", h, status))
        await _insert_deployment(db, _deployment("d4", "f2", "cc33", "queued"))
        assert [d.version for d in [await store.deployment(d) for d in ("d1", "d2", "d3")] if d] == [1, 2, 3]
        assert await store.count_deployments("f1") == 3
        latest = await store.latest_deployments(["f1", "f2", "nope"])
        assert {k: v.id for k, v in latest.items()} == {"f1": "d3", "f2": "d4"}
        assert (await store.succeeded_by_hash("f1", "aa11")) == await store.deployment("d1")
        assert await store.deployment_ids_starting("f1", "d", 2) == ["d1", "d2"]
        assert await store.succeeded_hashes_starting("f1", "aa", 5) == ["aa11", "aa12"]
        assert [d.id for d in await store.unfinished_deployments()] == ["d4"]
        assert await store.succeeded_hashes("f1") == ["aa12", "aa11"]
        assert await store.delete_function("f2") is True
        assert await store.delete_function("f2") is False  # the row count, as SQLite's rowcount
        assert await store.count_deployments("f2") == 0  # gone with its function (ON DELETE CASCADE)

        # a parameter PostgreSQL cannot type is refused there: the store writes CAST(? AS TEXT) IS NULL since
        # phase 2 (the bare form is kept here as the reason)
        with pytest.raises(asyncpg.IndeterminateDatatypeError):
            await db.fetchall("SELECT id FROM deployments WHERE (? IS NULL OR id < ?)", (None, None))
        assert [d.id for d in await store.deployments("f1", limit=10, cursor=None)] == ["d3", "d2", "d1"]
        assert [d.id for d in await store.deployments("f1", limit=10, cursor="d3")] == ["d2", "d1"]
        assert [d.id for d in await store.deployments("f1", limit=1, cursor=None, offset=1)] == ["d2"]
    finally:
        await db.close()
    assert not db.is_open


async def test_transactions_write_all_and_the_bulk_copy(pg_dsn: str) -> None:
    db = PgDatabase(pg_dsn, max_size=2)
    await db.open()
    try:
        store = FunctionStore(db, batch=None)  # type: ignore[arg-type]
        await store.insert_function(_function("f1", "one"))
        with pytest.raises(RuntimeError, match="undo"):
            async with db.transaction() as tx:
                await tx.execute("UPDATE functions SET description = ? WHERE id = ?", ("lost", "f1"))
                raise RuntimeError("undo")
        assert (await db.fetchone("SELECT description FROM functions WHERE id = ?", ("f1",)))[
            "description"
        ] == ""

        # write_all: the batched writer's statements, one transaction; a failing one takes the rest back
        logs = [
            ("INSERT INTO kv_usage (function_id) VALUES (?)", ("f1",)),
            ("UPDATE functions SET description = ? WHERE id = ?", ("batched", "f1")),
        ]
        await db.write_all(logs)
        with pytest.raises(IntegrityError) as refused:
            await db.write_all([logs[1], ("INSERT INTO kv_usage (function_id) VALUES (?)", ("f1",))])
        assert refused.value.kind == "unique" and refused.value.taken("kv_usage", "function_id")
        row = await db.fetchone("SELECT description FROM functions WHERE id = ?", ("f1",))
        assert row is not None and row[0] == "batched"

        # COPY: the bulk path the batched writer will take for execution rows
        columns = [
            "id",
            "function_id",
            "function_name",
            "trigger",
            "method",
            "path",
            "status",
            "status_code",
            "cold_start",
            "duration_ms",
            "queue_ms",
            "request_bytes",
            "response_bytes",
            "started_at",
            "finished_at",
        ]
        rows: list[tuple[Any, ...]] = [
            (f"e{i:04d}", "f1", "one", "http", "GET", "/", "success", 200, i % 2, 1.5, 0.0, 0, 2, "a", "b")
            for i in range(500)
        ]
        async with db.transaction() as tx:
            await tx.copy_rows("executions", columns, rows)
        total = await db.fetchone(
            "SELECT COUNT(*), SUM(cold_start) FROM executions WHERE function_id = ?", ("f1",)
        )
        assert total is not None and tuple(total) == (500, 250)  # SUM of a SMALLINT flag is an int
        await db.executemany("DELETE FROM executions WHERE id = ?", [(f"e{i:04d}",) for i in range(100)])
        assert await db.execute("DELETE FROM executions WHERE function_id = ?", ("f1",)) == 400
        await db.ping()
    finally:
        await db.close()


async def test_a_database_without_bytewise_text_order_is_refused_with_how_to_make_one(
    pg_cluster: ThrowawayPostgres,
) -> None:
    """orvad orders and compares text as SQLite does, byte by byte; a database with an ICU (or a libc
    locale's) collation would list KV keys and page cursors in another order: refused at open, migrated
    nothing, and the message names the CREATE DATABASE that works. A C database opens."""
    name = f"icu_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_cluster.dsn())
    try:
        await admin.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
        )
        db = PgDatabase(pg_cluster.dsn(name), max_size=1)
        with pytest.raises(DatabaseUnusable, match="LC_COLLATE 'C'") as refused:
            await db.open()
        assert "ICU" in str(refused.value) and not db.is_open
        probe = await asyncpg.connect(pg_cluster.dsn(name))
        try:
            assert await probe.fetchval("SELECT to_regclass('schema_migrations')") is None  # nothing migrated
        finally:
            await probe.close()
        await admin.execute(
            f"CREATE DATABASE {name}_c TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
        )
        good = PgDatabase(pg_cluster.dsn(f"{name}_c"), max_size=1)
        await good.open()
        await good.close()
    finally:
        for db_name in (name, f"{name}_c"):
            await admin.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        await admin.close()


async def test_an_unreachable_server_or_a_wrong_password_is_said_without_the_password(
    pg_cluster: ThrowawayPostgres,
) -> None:
    secret = "hunter2-" + secrets.token_hex(4)
    wrong = pg_cluster.dsn().replace(pg_cluster.dsn().split("//", 1)[1].split("@", 1)[0], f"orva:{secret}")
    with pytest.raises(DatabaseUnusable, match="refused orvad") as refused:
        await PgDatabase(wrong, max_size=1, timeout_s=5).open()
    assert secret not in str(refused.value) and ":***@" in str(refused.value)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DatabaseUnusable, match="cannot reach PostgreSQL") as unreachable:
        await PgDatabase(f"postgresql://orva:{secret}@127.0.0.1:{port}/x", max_size=1, timeout_s=5).open()
    assert secret not in str(unreachable.value)
