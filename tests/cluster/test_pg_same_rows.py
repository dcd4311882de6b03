"""The statements phase 2 rewrote so PostgreSQL takes them (tests/cluster/test_pg_statements.py) give the same
rows on both drivers: each scenario runs the store's own methods (or its statement, read from the store)
on orvad's SQLite database and on the throwaway PostgreSQL, seeded alike, and the answers are compared.

What was rewritten, and how both read it: ``CAST(? AS TEXT) IS NULL`` for a parameter that may be None
(audit log, sessions, deployments' cursor, a job's last error), ``CASE`` for the scalar ``MAX(0, n - 1)``
(a job given back), ``INSERT ... ON CONFLICT DO NOTHING`` for ``INSERT OR IGNORE`` (a claimed attempt),
an alias on a subquery in FROM (the jobs' next wake), ``(function_id, key) IN`` for ``rowid IN`` (the KV
sweep), ``kv_usage.seq`` qualified in an upsert, and ``SUM(CASE ...)`` for a SUM over a comparison (trace
summaries).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from orvad.store import jobs as jobs_module
from orvad.store.audit import ActivityFilter, AuditStore
from orvad.store.auth import AuthStore
from orvad.store.db import SqliteDatabase
from orvad.store.functions import FunctionStore
from orvad.store.jobs import JobStore
from orvad.store.kv import KvStore
from orvad.store.postgres.driver import PgDatabase
from orvad.store.traces import TraceStore
from tests.cluster.test_pg_driver import _function
from tests.cluster.test_pg_statements import candidates

Scenario = Callable[[Any], Awaitable[list[Any]]]


@pytest.fixture
async def both(tmp_path: Path, pg_dsn: str) -> AsyncIterator[tuple[SqliteDatabase, PgDatabase]]:
    sqlite, pg = SqliteDatabase(tmp_path / "orva.db"), PgDatabase(pg_dsn, max_size=2)
    await sqlite.open()
    await pg.open()
    try:
        yield sqlite, pg
    finally:
        await sqlite.close()
        await pg.close()


async def _same(both: tuple[SqliteDatabase, PgDatabase], scenario: Scenario) -> list[Any]:
    sqlite, pg = both
    on_sqlite = await scenario(sqlite)
    on_pg = await scenario(pg)
    assert _typed(on_pg) == _typed(on_sqlite)  # equal values of the same types (a Decimal equals an int)
    return on_sqlite


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, *(_typed(v) for v in value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _typed(dataclasses.asdict(value))
    return (type(value).__name__, value)


def _statement(start: str) -> str:
    """The store's one statement starting with ``start`` (read from the source, so the test runs the text
    the store runs)."""
    found = [s.sql for s in candidates()[0] if " ".join(s.sql.split()).startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]


async def _write(db: Any, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """A write, in its own transaction: (rows changed, the rows it returned)."""
    async with db.transaction() as tx:
        if "RETURNING" in sql:
            return [tuple(r) for r in await tx.fetchall(sql, params)]
        return [await tx.execute(sql, params)]


async def _rows(db: Any, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in await db.fetchall(sql, params)]


async def test_audit_log_filters_with_and_without_each_parameter(
    both: tuple[SqliteDatabase, PgDatabase],
) -> None:
    async def scenario(db: Any) -> list[Any]:
        for i, (actor, method, path, ts) in enumerate(
            [
                ("k1", "GET", "/api/v1/functions", "2026-12-06T00:00:01Z"),
                ("k1", "POST", "/api/v1/functions/f1/deploy", "2026-12-06T00:00:02Z"),
                (None, "DELETE", "/api/v1/kv/a", "2026-12-06T00:00:03Z"),
                ("k2", "HEAD", "/api/v1/functions", "2026-12-06T00:00:04Z"),
            ]
        ):
            await db.execute(
                "INSERT INTO audit_log (id, ts, actor_kind, actor_id, actor_name, method, path, target_id, status,"
                " request_id, client_ip) VALUES (?, ?, 'key', ?, NULL, ?, ?, NULL, 200, ?, '127.0.0.1')",
                (f"a{i}", ts, actor, method, path, f"r{i}"),
            )
        store = AuditStore(db, batch=None)  # type: ignore[arg-type]  # list() reads only

        async def ids(**given: Any) -> list[str]:
            f = {"actor_id": None, "method": None, "path_prefix": None, "since": None, "cursor": None}
            rows = await store.list(**(f | given), limit=10)
            return [r["id"] for r in rows]

        return [
            await ids(),
            await ids(actor_id="k1"),
            await ids(method="GET"),
            await ids(path_prefix="/api/v1/functions"),
            await ids(since="2026-12-06T00:00:03Z"),
            await ids(cursor="a2"),
            await ids(actor_id="k1", cursor="a1"),
            await ids(hide_reads=True),
            await store.list(actor_id="k2", method=None, path_prefix=None, since=None, cursor=None, limit=10),
        ]

    found = await _same(both, scenario)
    assert found[:8] == [
        ["a3", "a2", "a1", "a0"],
        ["a1", "a0"],
        ["a0"],
        ["a3", "a1", "a0"],
        ["a3", "a2"],
        ["a1", "a0"],
        ["a0"],
        ["a2", "a1"],
    ]


async def test_activity_search_ignores_ascii_case_on_both(both: tuple[SqliteDatabase, PgDatabase]) -> None:
    async def scenario(db: Any) -> list[Any]:
        for i, (name, method, path, status) in enumerate(
            [
                ("Deploy-Bot", "POST", "/api/v1/functions/Hello/deploy", 201),
                ("alice", "GET", "/api/v1/kv/50%_off", 200),
                (None, "DELETE", "/api/v1/functions/x", 404),
                ("Ünïcode", "PUT", "/api/v1/secrets/Straße", 500),
            ]
        ):
            await db.execute(
                "INSERT INTO audit_log (id, ts, actor_kind, actor_id, actor_name, method, path, target_id, status,"
                " request_id, client_ip) VALUES (?, 't', 'key', 'k', ?, ?, ?, NULL, ?, ?, NULL)",
                (f"a{i}", name, method, path, status, f"r{i}"),
            )
        store = AuditStore(db, batch=None)  # type: ignore[arg-type]

        async def ids(**given: Any) -> list[str]:
            return [r["id"] for r in await store.activity(ActivityFilter(**given), cursor=None, limit=10)]

        return [
            await ids(q="FUNCTIONS"),
            await ids(q="deploy-bot"),
            await ids(q="post"),
            await ids(q="50%_"),  # % and _ taken literally
            await ids(q="0%"),
            await ids(q="ünïcode"),  # not ASCII: case matters on both (SQLite's LIKE folds ASCII only)
            await ids(q="Ünïcode"),
            await ids(q="functions", status_min=400),
        ]

    found = await _same(both, scenario)
    assert found == [["a2", "a0"], ["a0"], ["a0"], ["a1"], ["a1"], [], ["a3"], ["a2"]]


async def test_sessions_listed_and_ended_with_and_without_a_user(
    both: tuple[SqliteDatabase, PgDatabase],
) -> None:
    async def scenario(db: Any) -> list[Any]:
        for uid in ("u1", "u2"):
            await db.execute(
                "INSERT INTO users (id, username, password_hash, created_at, updated_at) VALUES (?, ?, 'x', 't', 't')",
                (uid, f"name-{uid}"),
            )
        for token, uid, sid, created in [
            ("h1", "u1", "s1", "2026-12-06T00:00:01Z"),
            ("h2", "u1", "s2", "2026-12-06T00:00:02Z"),
            ("h3", "u1", None, "2026-12-06T00:00:03Z"),  # a session from before sessions had ids
            ("h4", "u2", "s4", "2026-12-06T00:00:04Z"),
            ("h5", "u2", "s5", "2026-12-06T00:00:05Z"),
        ]:
            await db.execute(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, id) VALUES (?, ?, ?, ?, ?)",
                (token, uid, created, "2027-01-01T00:00:00Z", sid),
            )
        store = AuthStore(db, batch=None)  # type: ignore[arg-type]
        now = "2026-12-06T01:00:00Z"
        left = "SELECT token_hash FROM sessions ORDER BY token_hash"
        return [
            [s["id"] for s in await store.list_sessions(None, now)],
            [s["id"] for s in await store.list_sessions("u2", now)],
            await store.list_sessions("u1", "2027-02-01T00:00:00Z"),  # all expired by then
            await store.delete_session_by_id("s1", "u2"),  # not u2's
            await store.delete_session_by_id("s1", "u1"),
            await store.delete_session_by_id("s4", None),
            await _rows(db, left),
            await store.delete_sessions("u1", "s2"),  # the id-less one goes too, as with IS NOT
            await _rows(db, left),
            await store.delete_sessions(None, "s5"),
            await _rows(db, left),
            await store.delete_sessions(None, None),
            await _rows(db, left),
        ]

    found = await _same(both, scenario)
    assert found[:6] == [["s5", "s4", None, "s2", "s1"], ["s5", "s4"], [], False, True, True]
    assert found[6:] == [[("h2",), ("h3",), ("h5",)], 1, [("h2",), ("h5",)], 1, [("h5",)], 1, []]


async def test_deployments_page_by_cursor_and_offset(both: tuple[SqliteDatabase, PgDatabase]) -> None:
    async def scenario(db: Any) -> list[Any]:
        store = FunctionStore(db, batch=None)  # type: ignore[arg-type]
        await store.insert_function(_function("f1", "one"))
        for version, did in enumerate(("d1", "d2", "d3"), start=1):
            await db.execute(
                "INSERT INTO deployments (id, function_id, version, code_hash, status, phase, phases, source,"
                " submitted_at) VALUES (?, 'f1', ?, 'h', 'succeeded', 'succeeded', '[]', 'inline', 't')",
                (did, version),
            )

        async def ids(limit: int, cursor: str | None, offset: int = 0) -> list[str]:
            return [d.id for d in await store.deployments("f1", limit, cursor, offset)]

        pages = [await ids(10, None), await ids(10, "d3"), await ids(1, "d3", 1), await ids(10, "d1")]
        return [pages, await store.deployments("f1", 10, None)]  # whole rows: every column's type compared

    assert (await _same(both, scenario))[0] == [["d3", "d2", "d1"], ["d2", "d1"], ["d1"], []]


_JOB = (
    "INSERT INTO jobs (id, function_id, function_name, status, trigger, source, request, attempts, tries,"
    " max_attempts, run_at, lease_owner, lease_until, created_at, updated_at)"
    " VALUES (?, 'f1', 'one', ?, 'job', 'api', '{}', ?, ?, 3, ?, ?, ?, 't', 't')"
)


async def test_jobs_given_back_finished_claimed_and_woken(both: tuple[SqliteDatabase, PgDatabase]) -> None:
    def state(db: Any) -> Awaitable[list[tuple[Any, ...]]]:
        return _rows(
            db,
            "SELECT id, status, attempts, tries, run_at, lease_owner, last_error, finished_at FROM jobs ORDER BY id",
        )

    async def scenario(db: Any) -> list[Any]:
        store = JobStore(db)
        empty = await store.next_wake()
        for jid, status, attempts, tries, run_at, owner, until in [
            ("j1", "running", 1, 2, 10.0, "me", 50.0),
            ("j2", "running", 0, 0, 11.0, "me", 40.0),  # never below 0
            ("j3", "pending", 2, 3, 12.0, None, None),
            ("j4", "running", 1, 1, 13.0, "me", 60.0),
            ("j5", "failed", 1, 1, 7.5, None, None),
        ]:
            await db.execute(_JOB, (jid, status, attempts, tries, run_at, owner, until))
        woken = [await store.next_wake()]
        out: list[Any] = [empty, woken]
        for jid in ("j1", "j2", "j3"):
            out.append(await _write(db, jobs_module._UNCLAIM_JOB, ("t2", 99.0, jid)))
        recover = _statement(
            "UPDATE jobs SET lease_owner = NULL, lease_until = NULL, updated_at = ?, attempts ="
        )
        out.append(await _write(db, recover, ("t3", 98.0, "j4")))
        out.append(await state(db))
        # a finish with an error text and one without (the last error stays)
        await db.execute("UPDATE jobs SET status = 'running', lease_owner = 'me', last_error = 'old'")
        for jid, status, error in [
            ("j1", "succeeded", None),
            ("j2", "failed", '{"code":"X"}'),
            ("j3", "dead", None),
        ]:
            out.append(
                await _write(
                    db, jobs_module._FINISH_JOB, (status, 20.0, error, error, status, "t9", "t4", jid, "me")
                )
            )
        out.append(
            await _write(
                db, jobs_module._FINISH_JOB, ("dead", 1.0, None, None, "dead", "x", "x", "j4", "other")
            )
        )
        out.append(await state(db))
        # a claimed attempt's row: the first one written stands
        claim = _statement("INSERT INTO job_attempts (job_id, attempt, outcome, started_at, started)")
        out.append(await _write(db, claim, ("j1", 3, "t5")))
        out.append(await _write(db, claim, ("j1", 3, "t6")))
        out.append(await _rows(db, "SELECT job_id, attempt, outcome, started_at, started FROM job_attempts"))
        out.append(await store.next_wake())
        return out

    found = await _same(both, scenario)
    assert found[0] == (None, None) and found[1] == [(7.5, 40.0)]
    state_after_give_back = found[6]
    assert [(r[0], r[1], r[2], r[3]) for r in state_after_give_back] == [
        ("j1", "pending", 0, 1),
        ("j2", "pending", 0, 0),
        ("j3", "pending", 2, 2),  # not running: only tries goes back
        ("j4", "pending", 0, 1),
        ("j5", "failed", 1, 1),
    ]
    finished = {r[0]: (r[1], r[6], r[7]) for r in found[11]}
    assert finished["j1"] == ("succeeded", "old", "t9")
    assert finished["j2"] == ("failed", '{"code":"X"}', None)
    assert finished["j4"][0] == "running"  # another owner's finish changes nothing
    assert found[12:15] == [[1], [0], [("j1", 3, "running", "t5", 0)]]


async def test_kv_sweep_and_the_version_counter(both: tuple[SqliteDatabase, PgDatabase]) -> None:
    async def scenario(db: Any) -> list[Any]:
        await FunctionStore(db, batch=None).insert_function(_function("f1", "one"))  # type: ignore[arg-type]
        await FunctionStore(db, batch=None).insert_function(_function("f2", "two"))  # type: ignore[arg-type]
        reserve = _statement("INSERT INTO kv_usage (function_id, seq)")
        out: list[Any] = [
            await _write(db, reserve, ("f1", 3)),
            await _write(db, reserve, ("f1", 2)),
            await _write(db, reserve, ("f2", 1)),
        ]
        for fid, key, expires in [
            ("f1", "a", 100),
            ("f1", "b", 200),
            ("f1", "é", None),
            ("f2", "a", 150),
            ("f2", "z", 10_000),
        ]:
            await db.execute(
                "INSERT INTO kv (function_id, key, kind, value, size, version, expires_at, created_at, updated_at)"
                " VALUES (?, ?, 'json', ?, 1, 1, ?, 't', 't')",
                (fid, key, b"1", expires),
            )
        store = KvStore(db)
        out.append(await store.sweep(now_ms=500, batch=2))
        out.append(await store.sweep(now_ms=500, batch=2))
        out.append(await store.sweep(now_ms=500, batch=2))
        out.append(await _rows(db, "SELECT function_id, key FROM kv ORDER BY function_id, key"))
        out.append(await _rows(db, "SELECT function_id, keys, bytes, seq FROM kv_usage ORDER BY function_id"))
        return out

    found = await _same(both, scenario)
    assert found[:3] == [[(3, 0, 0)], [(5, 0, 0)], [(1, 0, 0)]]
    assert found[3:6] == [2, 1, 0]
    assert found[6] == [("f1", "é"), ("f2", "z")]
    assert found[7] == [("f1", 1, 1 + 2, 5), ("f2", 1, 1 + 1, 1)]  # the triggers kept count (é is 2 bytes)


async def test_trace_summaries_count_span_errors(both: tuple[SqliteDatabase, PgDatabase]) -> None:
    async def scenario(db: Any) -> list[Any]:
        for trace, status, start, duration in [
            ("t1", "ok", 10.0, 5.0),
            ("t1", "error", 12.0, 10.0),
            ("t1", "error", 11.0, 1.0),
            ("t2", "ok", 1.0, 1.0),
        ]:
            await db.execute(
                "INSERT INTO spans (trace_id, span_id, parent_span_id, execution_id, function_id, name, start_ms,"
                " duration_ms, status, attributes) VALUES (?, 's', 'p', 'e', 'f1', 'n', ?, ?, ?, '{}')",
                (trace, start, duration, status),
            )
        summary = await TraceStore(db, batch=None).summaries(["t1", "t2", "t3"])  # type: ignore[arg-type]
        return [
            {t: (v["spans"], v["span_errors"], v["span_start"], v["span_end"]) for t, v in summary.items()}
        ]

    found = await _same(both, scenario)
    assert found == [{"t1": (3, 2, 10.0, 22.0), "t2": (1, 0, 1.0, 2.0), "t3": (0, 0, None, None)}]
