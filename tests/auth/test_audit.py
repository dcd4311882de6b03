"""The audit log and the executions table hold their bounds against callers with no credential
(red team F11): anonymous refused management calls are counted, not stored; stored paths are cut to
512 characters; audit rows older than ORVA_AUDIT_RETENTION_DAYS are pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families

from orvad.store.paths import RECORDED_PATH_MAX
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

FLOOD = 500  # before the fix, 500 calls already grew orva.db by ~15 MiB and ~8 MiB: far past the bounds
LONG = "a" * 15000
# What the floods may add to orva.db. The audit flood writes no row: measured +16 KiB (orva.db, WAL
# and shared memory together; the keyed call's row and the metric's key last-use times), bound 1 MiB.
# The invoke flood writes one `rejected` execution per call (the function's owner sees the refusals),
# whose path is now at most 512 characters: measured ~0.9 KiB per row in orva.db with its two
# indexes; since issue 23's trace columns and their two indexes ~1.1 KiB in pages (dbstat) and ~1.8 KiB of
# file growth, bound 2.5 KiB (a 15,000-character path would need 15). Refused calls keep no captured
# request (that grew it by 17 KiB a call). The WAL is not per row: SQLite
# checkpoints it every 1000 pages (4 MiB) and reuses the file, measured 4.0 MiB, bound 5 MiB. Before the
# fix floods of 2000 calls added 62 MiB and 32 MiB.
AUDIT_FLOOD_BOUND = 1 << 20
ROW_BOUND = 2560
WAL_BOUND = 5 << 20


def _db_bytes(server: Orvad) -> int:
    """What the database takes on disk: orva.db with its WAL and shared memory on SQLite; on PostgreSQL the
    database's own files (tables, indexes, TOAST: pg_database_size; the WAL is the cluster's, not its)."""
    if server.database_url:
        [(size,)] = server.sql("SELECT pg_database_size(current_database())")
        return int(str(size))
    return sum(p.stat().st_size for p in server.data_dir.glob("orva.db*"))


def _main_bytes(server: Orvad) -> int:
    """The database's pages without a write-ahead log: orva.db alone on SQLite (its WAL is measured apart);
    on PostgreSQL the database's files, as _db_bytes."""
    if server.database_url:
        return _db_bytes(server)
    return (server.data_dir / "orva.db").stat().st_size


def _refused(c: httpx.Client, reason: str) -> float:
    for family in text_string_to_metric_families(c.get("/api/v1/system/metrics").text):
        for sample in family.samples:
            if sample.name == "orva_audit_refused_total" and sample.labels.get("reason") == reason:
                return sample.value
    return 0.0


def _assert_cut(path: str, full_length: int) -> None:
    assert len(path) <= RECORDED_PATH_MAX and path.endswith(f"...[cut: {full_length} chars]"), path[-60:]


def test_anonymous_refused_calls_are_counted_not_stored(make_orvad) -> None:
    server = make_orvad()
    before = _db_bytes(server)
    path = "/api/v1/functions/" + LONG
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        for _ in range(FLOOD):
            assert anon.post(path).status_code == 401
        assert anon.post("/api/v1/keys", headers={"X-Orva-API-Key": "orva_not_a_key"}).status_code == 401
    with server.admin() as c:
        # a keyed call after the flood: the batched writer is FIFO, so once its row can be read,
        # anything the flood queued has been written too
        assert c.post(path).status_code in (404, 405)

        def mine() -> list[dict]:
            entries = c.get("/api/v1/audit-log", params={"limit": 500}).json()["entries"]
            return [e for e in entries if e["actor_kind"] == "key" and e["path"].startswith(path[:100])]

        wait_for(lambda: bool(mine()), 10, "the keyed call's audit row")
        rows = mine()
        grown = _db_bytes(server) - before
        entries = c.get("/api/v1/audit-log", params={"limit": 500}).json()["entries"]
        assert not [e for e in entries if e["actor_kind"] == "anonymous"], (
            "anonymous refused calls were stored"
        )
        _assert_cut(rows[0]["path"], len(path))
        assert len(rows[0]["target_id"]) <= RECORDED_PATH_MAX
        assert _refused(c, "unauthenticated") == FLOOD + 1
    assert grown < AUDIT_FLOOD_BOUND, f"the audit flood grew orva.db by {grown} bytes"


def test_refused_invocations_keep_a_cut_path(make_orvad) -> None:
    server = make_orvad()
    with server.admin() as c:
        fn = create_function(c, "private", auth_mode="api_key")
        assert (
            wait_deployed(c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return 1\n")["id"])["status"]
            == "succeeded"
        )
    before_main = _main_bytes(server)
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        for _ in range(FLOOD):
            assert anon.get("/fn/private/" + LONG).status_code == 401
    with server.admin() as c:

        def recorded() -> list[dict]:
            rows: list[dict] = []
            cursor = None
            while True:
                params = {"function_id": fn["id"], "limit": 500, **({"cursor": cursor} if cursor else {})}
                page = c.get("/api/v1/executions", params=params).json()
                rows += page["executions"]
                cursor = page.get("next_cursor")
                if not cursor:
                    return rows

        wait_for(lambda: len(recorded()) >= FLOOD, 30, "the refused executions")
        rows = recorded()
        kept = c.get(f"/api/v1/executions/{rows[0]['id']}/request")
        assert kept.status_code == 404, kept.text  # a refused caller's request is not captured
    grown = _main_bytes(server) - before_main
    assert all(r["status"] == "rejected" and r["status_code"] == 401 for r in rows)
    for row in rows:
        _assert_cut(row["path"], len(LONG) + 1)
    assert grown < FLOOD * ROW_BOUND, (
        f"the invoke flood grew orva.db by {grown} bytes ({grown // FLOOD} per call)"
    )
    if not server.database_url:  # SQLite's WAL is this orvad's file; PostgreSQL's is the whole cluster's
        wal = (server.data_dir / "orva.db-wal").stat().st_size
        assert wal < WAL_BOUND, f"the write-ahead log holds {wal} bytes"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def test_audit_rows_older_than_the_retention_are_pruned(make_orvad) -> None:
    server = make_orvad(env={"ORVA_AUDIT_RETENTION_DAYS": "30"})
    with server.admin() as c:
        fn = create_function(c, "audited")
        assert c.put(f"/api/v1/functions/{fn['id']}", json={"description": "audited"}).status_code == 200
        wait_for(
            lambda: any(
                e["target_id"] == fn["id"]
                for e in c.get("/api/v1/audit-log", params={"limit": 500}).json()["entries"]
            ),
            10,
            "the audit row",
        )
    server.stop()
    now = datetime.now(UTC)
    for row_id, age in (("00000000-old", 31), ("00000000-kept", 29)):
        server.sql(
            "INSERT INTO audit_log (id, ts, actor_kind, method, path, status, request_id)"
            " VALUES (?, ?, 'key', 'POST', '/api/v1/functions', 201, '-')",
            (row_id, _iso(now - timedelta(days=age))),
        )
    server.start()  # housekeeping runs at start, then hourly
    with server.admin() as c:

        def ids() -> set[str]:
            return {e["id"] for e in c.get("/api/v1/audit-log", params={"limit": 500}).json()["entries"]}

        wait_for(lambda: "00000000-old" not in ids(), 10, "the 31-day-old audit row to be pruned")
        assert "00000000-kept" in ids()
        assert any(
            e["target_id"] == fn["id"]
            for e in c.get("/api/v1/audit-log", params={"limit": 500}).json()["entries"]
        )
