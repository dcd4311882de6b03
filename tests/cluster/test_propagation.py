"""Change propagation between nodes (issue 25; orvad/cluster/propagation.py, docs/CLUSTER.md "Change
propagation"): two real orvads on ONE PostgreSQL database, each with its own data dir and port (and the
same master key, as every node of a cluster has), driven through HTTP.

A key made on A works on B; revoked on A, it fails on B within the bound (measured); functions, routes and
pool configs written on A are B's view; an SSE client on B sees A's activity; a change made while B's
listening connection was cut (pg_terminate_backend) is seen after it reconnects; and the delay from a
write on A to B's cache holding it, over 200 key creations (p50/p99 printed, bounded). In-process: every
cached table's write notifies its kind from inside the committing transaction, a rolled-back one says
nothing, and bookkeeping writes (last_used_at) say nothing either.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from orvad.cluster.propagation import Propagation
from orvad.services.bus import Bus
from orvad.store.postgres.driver import PgDatabase
from orvad.store.postgres.notify import CHANGES_CHANNEL, NotifyingPgDatabase, kind_of
from tests.helpers import Orvad, wait_for
from tests.pg import ThrowawayPostgres

BOUND_S = 0.1  # the documented bound: a change on one node holds on another within this (p99)
POLL_DEADLINE_S = 5.0  # how long a test waits before calling a propagation lost


async def _create_db(pg: ThrowawayPostgres, name: str) -> None:
    admin = await asyncpg.connect(pg.dsn())
    try:
        await admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
    finally:
        await admin.close()


async def _drop_db(pg: ThrowawayPostgres, name: str) -> None:
    admin = await asyncpg.connect(pg.dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _sql(dsn: str, statement: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(statement))
    finally:
        await conn.close()


@pytest.fixture
def shared_dsn(pg_cluster: ThrowawayPostgres) -> Iterator[str]:
    name = f"prop_{secrets.token_hex(5)}"
    asyncio.run(_create_db(pg_cluster, name))
    yield pg_cluster.dsn(name)
    asyncio.run(_drop_db(pg_cluster, name))


@pytest.fixture
def nodes(make_orvad, shared_dsn: str, jail_tmp: Path) -> Iterator[tuple[Orvad, Orvad]]:  # type: ignore[no-untyped-def]
    """Node A (it migrates the database and mints the admin key) and node B (its own data dir and port, A's
    master key), both on one database; stopped before the database is dropped."""
    env = {"ORVA_DATABASE_URL": shared_dsn}
    a = make_orvad(data_dir=jail_tmp / "node-a", env=env)
    b_dir = jail_tmp / "node-b"
    b_dir.mkdir(mode=0o711)
    shutil.copy2(a.data_dir / "master.key", b_dir / "master.key")
    (b_dir / "master.key").chmod(0o600)
    b = make_orvad(data_dir=b_dir, env=env)
    yield a, b
    for server in (b, a):
        if server.proc is not None and server.proc.poll() is None:
            server.stop()


def _clock(what: str, check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` holds (polled as fast as HTTP allows), failing past POLL_DEADLINE_S."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > POLL_DEADLINE_S:
            raise AssertionError(f"{what}: not seen within {POLL_DEADLINE_S} s")
    return time.monotonic() - start


def _status(client: httpx.Client, path: str, key: str) -> int:
    return client.get(path, headers={"X-Orva-API-Key": key}).status_code


def test_a_key_made_on_a_works_on_b_and_revoked_on_a_fails_on_b_within_the_bound(nodes) -> None:  # type: ignore[no-untyped-def]
    a, b = nodes
    admin = a.admin_key
    with a.client(admin) as on_a, b.client() as on_b:
        assert _status(on_b, "/api/v1/functions", admin) == 200  # the bootstrap key: loaded at B's start
        made = on_a.post("/api/v1/keys", json={"name": "roaming", "permissions": ["read"]})
        assert made.status_code == 201, made.text
        key, key_id = made.json()["key"], made.json()["id"]
        took = _clock("a new key on B", lambda: _status(on_b, "/api/v1/functions", key) == 200)
        assert took < 1.0
        assert _status(on_b, "/api/v1/keys", key) == 403  # its permissions came along: read only
        assert on_a.delete(f"/api/v1/keys/{key_id}").status_code == 200
        revoked = _clock("the revocation on B", lambda: _status(on_b, "/api/v1/functions", key) == 401)
        print(f"revocation reached B in {revoked * 1000:.1f} ms (polled through HTTP)")
        assert revoked < BOUND_S * 5  # one sample, on a loaded machine: the p99 is the measured test below
        assert _status(on_b, "/api/v1/functions", key) == 401  # and stays revoked
        assert _status(on_a, "/api/v1/functions", key) == 401


def test_functions_routes_and_pool_configs_written_on_a_are_bs_view(nodes) -> None:  # type: ignore[no-untyped-def]
    a, b = nodes
    admin = a.admin_key
    with a.client(admin) as on_a, b.client(admin) as on_b:
        fn = on_a.post("/api/v1/functions", json={"name": "travels", "runtime": "python"})
        assert fn.status_code == 201, fn.text
        fid = fn.json()["id"]
        _clock("a new function on B", lambda: on_b.get("/api/v1/functions/travels").status_code == 200)
        assert on_b.get(f"/api/v1/functions/{fid}").json()["id"] == fid
        renamed = on_a.put(f"/api/v1/functions/{fid}", json={"name": "moved", "memory_mb": 256})
        assert renamed.status_code == 200, renamed.text
        _clock("the rename on B", lambda: on_b.get("/api/v1/functions/moved").status_code == 200)
        assert on_b.get("/api/v1/functions/travels").status_code == 404  # the old name is gone there too
        assert on_b.get(f"/api/v1/functions/{fid}").json()["memory_mb"] == 256

        # pool config: B answers from its cache (PoolConfigService.get)
        put = on_a.put(
            "/api/v1/pool/config", json={"function_id": fid, "max_warm": 7, "idle_ttl_seconds": 42}
        )
        assert put.status_code == 200, put.text

        def pool_on_b() -> dict[str, object]:
            return on_b.get("/api/v1/pool/config", params={"function_id": fid}).json()  # type: ignore[no-any-return]

        _clock("the pool config on B", lambda: pool_on_b()["max_warm"] == 7)
        assert pool_on_b()["idle_ttl_seconds"] == 42

        # a route made on A: B's router sends the path to the function (not deployed: not a 404 of no route)
        assert on_b.get("/travel/here").status_code == 404
        route = on_a.post("/api/v1/routes", json={"path": "/travel/here", "function_id": fid})
        assert route.status_code == 201, route.text
        _clock(
            "the route on B",
            lambda: any(r["path"] == "/travel/here" for r in on_b.get("/api/v1/routes").json()["routes"]),
        )
        reached = on_b.get("/travel/here")
        assert reached.status_code != 404 or reached.json()["error"]["code"] != "NOT_FOUND", reached.text
        assert on_a.delete("/api/v1/routes", params={"path": "/travel/here"}).status_code == 200
        _clock("the route's removal on B", lambda: not on_b.get("/api/v1/routes").json()["routes"])

        # deleted on A: gone on B
        assert on_a.delete(f"/api/v1/functions/{fid}").status_code == 200
        _clock("the deletion on B", lambda: on_b.get(f"/api/v1/functions/{fid}").status_code == 404)
        assert on_b.get("/api/v1/pool/config", params={"function_id": fid}).status_code == 404


def _sse_events(
    url: str,
    key: str,
    types: str,
    seen: list[dict[str, object]],
    ready: threading.Event,
    stop: threading.Event,
) -> None:
    with httpx.Client(
        base_url=url, headers={"X-Orva-API-Key": key}, timeout=httpx.Timeout(10, read=30)
    ) as client:
        with client.stream("GET", "/api/v1/events", params={"types": types}) as stream:
            ready.set()
            event = ""
            for line in stream.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event:
                    seen.append({"event": event, **json.loads(line.split(":", 1)[1])})


def test_an_sse_client_on_b_sees_activity_caused_on_a(nodes) -> None:  # type: ignore[no-untyped-def]
    a, b = nodes
    admin = a.admin_key
    seen: list[dict[str, object]] = []
    ready, stop = threading.Event(), threading.Event()
    reader = threading.Thread(
        target=_sse_events, args=(b.url, admin, "activity", seen, ready, stop), daemon=True
    )
    reader.start()
    assert ready.wait(10)
    marker = f"from-a-{secrets.token_hex(3)}"
    with a.client(admin) as on_a:

        def made_on_a() -> list[dict[str, object]]:
            return [e for e in seen if e.get("from_node") and marker in str(e.get("path", ""))]

        def poke() -> bool:  # the stream's first events may race its subscription: write until one arrives
            on_a.post("/api/v1/functions", json={"name": marker, "runtime": "python"})
            on_a.get(f"/api/v1/functions/{marker}")
            return bool(made_on_a())

        wait_for(poke, 10, "B's event stream to carry an activity row made on A", interval_s=0.2)
    stop.set()
    event = made_on_a()[0]
    assert event["event"] == "activity"
    assert event["from_node"] != ""
    # B's own events carry no from_node; A's carry A's node id (the node registry lists it)
    with b.client(admin) as on_b:
        listed = {n["id"] for n in on_b.get("/api/v1/cluster/nodes").json()["nodes"]}
    assert event["from_node"] in listed


def test_a_change_made_while_bs_listener_was_cut_is_seen_after_it_reconnects(nodes, shared_dsn: str) -> None:  # type: ignore[no-untyped-def]
    a, b = nodes
    admin = a.admin_key
    listening = "SELECT pid, query FROM pg_stat_activity WHERE application_name = 'orva-listen'"
    wait_for(lambda: len(asyncio.run(_sql(shared_dsn, listening))) >= 2, 10, "both nodes' listeners")
    with a.client(admin) as on_a, b.client(admin) as on_b:
        made = on_a.post("/api/v1/keys", json={"name": "before-the-cut", "permissions": ["read"]})
        key = made.json()["key"]
        _clock("the key on B", lambda: _status(on_b, "/api/v1/functions", key) == 200)
        # cut every listener (A's too), then revoke before they are back: the NOTIFY reaches no one
        pids = [r["pid"] for r in asyncio.run(_sql(shared_dsn, listening))]
        killed = asyncio.run(
            _sql(shared_dsn, f"SELECT pg_terminate_backend(pid) FROM unnest(ARRAY{pids}::int[]) AS pid")
        )
        assert killed and all(r[0] for r in killed)
        gone = f"SELECT pid FROM pg_stat_activity WHERE pid = ANY(ARRAY{pids}::int[])"
        wait_for(lambda: not asyncio.run(_sql(shared_dsn, gone)), 10, "the listeners' backends to end")
        assert on_a.delete(f"/api/v1/keys/{made.json()['id']}").status_code == 200
        took = _clock(
            "the revocation on B after its reconnect", lambda: _status(on_b, "/api/v1/functions", key) == 401
        )
        print(f"revocation seen on B {took * 1000:.0f} ms after, across B's reconnect")
        assert _status(on_b, "/api/v1/functions", key) == 401
        # orvad's log lines are written by a thread: wait for the line rather than read stderr once
        wait_for(lambda: "change listener reconnected" in b.stderr(), 10, "B to log its listener's reconnect")
        after = asyncio.run(_sql(shared_dsn, listening))
        assert len(after) == 2 and not {r["pid"] for r in after} & set(pids)  # both back, on new backends


def test_propagation_delay_over_200_changes(nodes) -> None:  # type: ignore[no-untyped-def]
    """Each sample: a key created on A, then B polled until it authenticates (the HTTP round trips on B
    count too, so this is an upper bound of the cache's delay)."""
    a, b = nodes
    admin = a.admin_key
    delays: list[float] = []
    with a.client(admin) as on_a, b.client() as on_b:
        for i in range(200):
            made = on_a.post("/api/v1/keys", json={"name": f"timing-{i}", "permissions": ["read"]})
            assert made.status_code == 201
            key = made.json()["key"]
            delays.append(
                _clock(
                    f"key {i} on B",
                    lambda key=key: _status(on_b, "/api/v1/functions", key) == 200,
                )
            )
    delays.sort()
    p50, p99 = statistics.median(delays), delays[int(len(delays) * 0.99) - 1]
    print(
        f"propagation A->B over {len(delays)} key creations: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms"
    )
    assert p99 < BOUND_S, f"p99 {p99 * 1000:.1f} ms over the bound of {BOUND_S * 1000:.0f} ms"
    # B's own measure of the same (NOTIFY sent -> cache reloaded): a histogram in its /metrics
    with b.client(admin) as on_b:
        text = on_b.get("/metrics").text
    counted = [
        line for line in text.splitlines() if line.startswith("orva_cluster_propagation_seconds_count")
    ]
    assert counted and float(counted[0].split()[-1]) >= 1, counted
    assert "orva_cluster_listener_reconnects_total 0.0" in text


# in process: what the writing transaction sends


def test_kind_of_names_the_cache_a_statement_changes() -> None:
    assert kind_of("INSERT INTO api_keys (id) VALUES (?)") == "keys"
    assert kind_of("  delete from routes WHERE path = ?") == "routes"
    assert kind_of("UPDATE functions SET name = ? WHERE id = ?") == "functions"
    assert kind_of("UPDATE pool_config SET max_warm = ?") == "pool_configs"
    assert (
        kind_of("INSERT INTO secrets (function_id) VALUES (?) ON CONFLICT DO UPDATE SET x = 1") == "secrets"
    )
    assert kind_of("UPDATE api_keys SET last_used_at = ? WHERE id = ?") is None  # bookkeeping
    assert kind_of("UPDATE inbound_webhooks SET deliveries = deliveries + 1 WHERE id = ?") is None
    assert kind_of("SELECT * FROM api_keys") is None
    assert kind_of("INSERT INTO executions (id) VALUES (?)") is None  # not cached


async def test_a_committed_write_notifies_its_kind_and_a_rolled_back_one_nothing(pg_dsn: str) -> None:
    writer = NotifyingPgDatabase.wrapping(PgDatabase(pg_dsn, min_size=1, max_size=2))
    await writer.open()
    heard: list[dict[str, object]] = []
    listener = await asyncpg.connect(pg_dsn)
    await listener.add_listener(CHANGES_CHANNEL, lambda *args: heard.append(json.loads(args[3])))
    try:
        now = "2026-01-01T00:00:00Z"
        async with writer.transaction() as tx:
            await tx.execute(
                "INSERT INTO api_keys (id, name, prefix, key_hash, permissions, created_at, is_bootstrap)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                ("k1", "one", "orva_1", "h1", '["read"]', now, 0),
            )
            assert not heard  # nothing before the commit
        await writer.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, "k1"))  # bookkeeping
        await writer.execute("DELETE FROM routes WHERE path = ?", ("/none",))  # changed no row
        with pytest.raises(RuntimeError):
            async with writer.transaction() as tx:
                await tx.execute("DELETE FROM api_keys WHERE id = ?", ("k1",))
                raise RuntimeError("rolled back")
        await writer.execute("DELETE FROM api_keys WHERE id = ?", ("k1",))
        deadline = time.monotonic() + 5
        while len(heard) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # anything else sent would have come by now (sub-millisecond here)
        assert [h["k"] for h in heard] == [["keys"], ["keys"]]
        assert {h["o"] for h in heard} == {writer.origin}
        assert all(set(h) == {"o", "k", "t"} for h in heard)  # kind and origin only: never a row's content
    finally:
        await listener.close()
        await writer.close()


async def test_a_listener_coalesces_reloads_and_forwards_events_once(pg_dsn: str) -> None:
    """Two Propagations on one database: B reloads the kinds A's writes name (a burst coalesced), and A's
    bus events reach B's bus once, marked with A's node, and are not sent back."""
    dbs = [NotifyingPgDatabase.wrapping(PgDatabase(pg_dsn, min_size=1, max_size=3)) for _ in range(2)]
    for db in dbs:
        await db.open()
    reloads: list[list[str]] = [[], []]

    def recorder(i: int, kind: str) -> Callable[[], asyncio.Future[None]]:
        async def reload() -> None:
            reloads[i].append(kind)

        return reload  # type: ignore[return-value]

    buses = [Bus(), Bus()]
    props = [
        Propagation(dbs[i], {k: recorder(i, k) for k in ("keys", "routes")}, buses[i], f"node-{i}")  # type: ignore[misc]
        for i in range(2)
    ]
    tasks = [asyncio.create_task(p.run()) for p in props]
    try:
        deadline = time.monotonic() + 10
        while not all(p.connects for p in props) or not all(len(r) >= 2 for r in reloads):
            assert time.monotonic() < deadline, "listeners did not connect"
            await asyncio.sleep(0.01)
        assert sorted(reloads[1]) == ["keys", "routes"]  # the first connect reloads everything
        reloads[1].clear()
        async with (
            buses[1].subscribe(frozenset({"activity"})) as sub_b,
            buses[0].subscribe(frozenset({"activity"})) as sub_a,
        ):
            for n in range(20):  # a burst: fewer reloads than writes
                await dbs[0].execute("DELETE FROM routes WHERE path = ?", (f"/{n}",))
                await dbs[0].execute(
                    "INSERT INTO routes (id, path, function_id, methods, created_at) SELECT ?, ?, id, '*', ? FROM functions LIMIT 1",
                    (f"r{n}", f"/{n}", "x"),
                )
            buses[0].publish("activity", {"id": "row-1", "path": "/api/v1/keys"})
            got = await asyncio.wait_for(sub_b.get(), 5)
            assert got == ("activity", {"id": "row-1", "path": "/api/v1/keys", "from_node": "node-0"})
            assert await asyncio.wait_for(sub_a.get(), 1) == (
                "activity",
                {"id": "row-1", "path": "/api/v1/keys"},
            )
            await asyncio.sleep(0.3)
            assert sub_a.queue.empty() and sub_b.queue.empty()  # not echoed back, not doubled
        # no function exists, so the INSERT ... SELECT changed nothing, and the DELETEs nothing: no reload
        assert reloads[1] == []
        await dbs[0].execute(
            "INSERT INTO api_keys (id, name, prefix, key_hash, permissions, created_at, is_bootstrap) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("k", "k", "orva_k", "hk", '["read"]', "2026-01-01T00:00:00Z", 0),
        )
        deadline = time.monotonic() + 5
        while "keys" not in reloads[1]:
            assert time.monotonic() < deadline, "B did not reload its keys"
            await asyncio.sleep(0.005)
        assert props[1].delays and max(props[1].delays) < 1.0
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for db in dbs:
            await db.close()


async def test_a_notification_lost_while_the_listener_was_down_is_made_good_by_the_reload_on_reconnect(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listener's backend is terminated and its reconnect held back while a key is written: that NOTIFY
    reaches nobody; once the listener is back, every cache is reloaded (so the key is read)."""
    import orvad.store.postgres.notify as notify

    writer = NotifyingPgDatabase.wrapping(PgDatabase(pg_dsn, min_size=1, max_size=2))
    reader = NotifyingPgDatabase.wrapping(PgDatabase(pg_dsn, min_size=1, max_size=2))
    await writer.open()
    await reader.open()
    gate, asked = asyncio.Event(), asyncio.Event()
    real_connect = asyncpg.connect
    calls = 0

    async def held_connect(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls > 1:  # the reconnect waits for the test
            asked.set()
            await gate.wait()
        return await real_connect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(notify.asyncpg, "connect", held_connect)
    keys_seen: list[int] = []

    async def reload_keys() -> None:
        row = await reader.fetchone("SELECT COUNT(*) FROM api_keys")
        keys_seen.append(int(row[0]))

    prop = Propagation(reader, {"keys": reload_keys}, Bus(), "node-b")
    task = asyncio.create_task(prop.run())
    try:
        deadline = time.monotonic() + 10
        while not keys_seen:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert keys_seen == [0] and prop.backend_pid is not None
        admin = await real_connect(pg_dsn)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", prop.backend_pid)
        finally:
            await admin.close()
        await asyncio.wait_for(asked.wait(), 10)  # the listener knows it is down and tries again
        await writer.execute(
            "INSERT INTO api_keys (id, name, prefix, key_hash, permissions, created_at, is_bootstrap)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("k1", "lost", "orva_l", "hl", '["read"]', "2026-01-01T00:00:00Z", 0),
        )
        await asyncio.sleep(0.2)
        assert keys_seen == [0]  # the NOTIFY went to nobody
        gate.set()
        deadline = time.monotonic() + 10
        while keys_seen[-1] != 1:
            assert time.monotonic() < deadline, "the reconnect did not reload the keys"
            await asyncio.sleep(0.01)
        assert prop.connects == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await writer.close()
        await reader.close()


# in process: what a reload publishes (orvad/cluster/reloads.py), two nodes' services on one database


class _Runtimes:
    def language_of(self, runtime_id: str) -> str | None:
        return "python" if runtime_id == "python" else None

    def interpreter_of(self, runtime_id: str) -> str:
        return "python3"

    def ids(self) -> list[str]:
        return ["python"]

    def list(self) -> list[dict[str, object]]:
        return []


async def test_reloads_publish_each_difference_as_the_local_typed_change(tmp_path: Path) -> None:
    """Node A's services write; node B's caches reload from the same database and publish, on B's remote
    channel, exactly the changes A made: a function created, changed and deleted, a pool config, a secret
    (B's cached signing secret forgotten); a reload that finds nothing new publishes nothing."""
    from orvad.cluster.reloads import Caches
    from orvad.services.changes import (
        Change,
        Changes,
        FunctionChanged,
        FunctionCreated,
        FunctionDeleted,
        PoolConfigChanged,
        SecretsChanged,
    )
    from orvad.services.functions import FunctionService
    from orvad.services.poolconfigs import PoolConfigService
    from orvad.services.secrets import SecretService
    from orvad.store.batch import BatchWriter
    from orvad.store.db import SqliteDatabase
    from orvad.store.functions import FunctionStore
    from orvad.store.pools import PoolConfigStore
    from orvad.store.secrets import SecretStore

    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    try:
        master = secrets.token_bytes(32)
        a_fns = FunctionService(FunctionStore(db, BatchWriter(db)), _Runtimes())
        a_pools, a_secrets = PoolConfigService(PoolConfigStore(db)), SecretService(SecretStore(db), master)
        b_store = FunctionStore(db, BatchWriter(db))
        b_fns, b_pools = FunctionService(b_store, _Runtimes()), PoolConfigService(PoolConfigStore(db))
        b_secrets = SecretService(SecretStore(db), master)
        published: list[Change] = []
        remote = Changes()

        async def record(change: Change) -> None:
            published.append(change)

        remote.subscribe(record)
        caches = object.__new__(Caches)  # only the parts these reloads use
        caches.remote, caches.functions, caches.function_store = remote, b_fns, b_store
        caches.pool_configs, caches.secret_store, caches.secrets = b_pools, SecretStore(db), lambda: b_secrets
        caches.__post_init__()
        await caches.reload_secrets()  # the first read: what B holds is current
        assert published == []

        fn = await a_fns.create({"name": "shared", "runtime": "python"})
        await caches.reload_functions()
        assert published == [FunctionCreated(fn)] and b_fns.resolve("shared") == fn
        renamed = await a_fns.update(fn.id, {"name": "renamed", "memory_mb": 512})
        await caches.reload_functions()
        assert published[1:] == [FunctionChanged(fn, renamed)]
        assert b_fns.resolve("renamed") == renamed and b_fns.get(fn.id) == renamed
        await caches.reload_functions()  # nothing new: nothing published
        assert len(published) == 2

        config = await a_pools.update(fn.id, {"max_warm": 5})
        await caches.reload_pool_configs()
        assert published[2:] == [PoolConfigChanged(fn.id, config)] and b_pools.get(fn.id) == config
        await caches.reload_pool_configs()
        assert len(published) == 3

        assert await b_secrets.signing_secret(fn.id) is None  # cached on B
        await a_secrets.upsert(fn.id, "ORVA_SIGNING_SECRET", "s3cret-value-1")
        await caches.reload_secrets()
        assert published[3:] == [SecretsChanged(fn.id)]
        assert await b_secrets.signing_secret(fn.id) == "s3cret-value-1"  # read again, not the cached None
        await a_secrets.upsert(fn.id, "ORVA_SIGNING_SECRET", "s3cret-value-2")  # same name, new value
        await caches.reload_secrets()
        assert published[4:] == [SecretsChanged(fn.id)]
        await caches.reload_secrets()
        assert len(published) == 5

        await a_fns.delete(fn.id)
        await caches.reload_functions()
        await caches.reload_pool_configs()
        await caches.reload_secrets()
        assert published[5:] == [FunctionDeleted(renamed), SecretsChanged(fn.id)]  # its rows went with it
        assert b_fns.get(fn.id) is None and b_pools.get(fn.id) != config
    finally:
        await db.close()
