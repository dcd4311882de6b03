"""The node registry (issue 25; orvad/cluster/nodes.py, GET /api/v1/cluster/nodes) on real orvads through HTTP:
a node lists itself alive with its heartbeat advancing, a clean stop leaves its row `left`, a row whose
heartbeat stopped is `gone` within three heartbeats and the slack, a restarted node rejoins under its id
with a new run id, and the permission rules. On PostgreSQL (the pg_dsn fixture): two registries of two node
ids see each other alive, one stops heartbeating and is seen gone in time, and two runs of one node id.

The rows a test writes itself go to the orvad's own database (Orvad.sql): its SQLite file, or its PostgreSQL
database on the suite's PostgreSQL pass (tests/databases.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from orvad import __version__
from orvad.clock import epoch_iso, parse_iso
from orvad.cluster.nodes import NodeRegistry, default_address, default_node_id, gone_after
from orvad.config import ConfigError, load_settings
from orvad.store.cluster_nodes import NodeStore
from orvad.store.postgres.driver import PgDatabase
from tests.helpers import Orvad, until, wait_for

BEAT_S = 0.2  # the tests' heartbeat: gone after 3 x 0.2 s + 1 s of slack
FAST = {"ORVA_HEARTBEAT_S": str(BEAT_S)}
NODES = "/api/v1/cluster/nodes"


def _fake_node(server: Orvad, node_id: str, last_seen: float, *, left: bool = False) -> None:
    seen = epoch_iso(last_seen)
    server.sql(
        "INSERT INTO cluster_nodes (id, run_id, address, version, started_at, last_seen_at, left_at, pools, load)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            node_id,
            f"run_{uuid.uuid4().hex}",
            "http://10.9.9.9:8443",
            "0.0.1",
            seen,
            seen,
            seen if left else None,
            '{"fn_x":{"idle":1,"name":"x","workers":1}}',
            '{"loadavg_1m":0.5}',
        ),
    )


def _nodes(c: httpx.Client, **params: str) -> dict[str, Any]:
    r = c.get(NODES, params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["id"]: n for n in body["nodes"]}


def test_a_node_lists_itself_alive_and_its_heartbeat_advances(make_orvad) -> None:  # type: ignore[no-untyped-def]
    server: Orvad = make_orvad(env=FAST)
    with server.admin() as c:
        body = _nodes(c)
        assert body["heartbeat_s"] == BEAT_S and body["gone_after_s"] == gone_after(BEAT_S) == pytest.approx(
            1.6
        )
        assert body["next_cursor"] is None and body["counts"] == {"alive": 1, "gone": 0, "left": 0}
        [me] = body["nodes"]
        # the default id: this host's name and a hash of the data dir; the address: the listen address
        assert me["id"] == body["this_node"] == default_node_id(server.data_dir) and me["this_node"] is True
        assert me["address"] == f"http://127.0.0.1:{server.port}" == default_address("127.0.0.1", server.port)
        assert me["version"] == __version__ and me["status"] == "alive" and me["left_at"] is None
        assert me["run_id"].startswith("run_") and me["pools"] == {}
        assert set(me["load"]) == {"invocations", "requests", "workers", "loadavg_1m", "cpus"}
        assert me["load"]["cpus"] >= 1 and me["load"]["invocations"] == 0  # as of the last heartbeat
        started = parse_iso(me["started_at"]).timestamp()
        assert abs(time.time() - started) < 120 and me["last_seen_at"] >= me["started_at"]
        # the heartbeat moves last_seen_at on (several beats), never started_at
        first = me["last_seen_at"]
        wait_for(
            lambda: (
                parse_iso(_by_id(_nodes(c))[me["id"]]["last_seen_at"]).timestamp()
                >= parse_iso(first).timestamp() + 3 * BEAT_S
            ),
            30,
            "three more heartbeats",
        )
        again = _by_id(_nodes(c))[me["id"]]
        assert again["started_at"] == me["started_at"] and again["run_id"] == me["run_id"]
        assert again["status"] == "alive" and again["seen_s_ago"] < gone_after(BEAT_S)


def test_settings_name_the_node_and_bad_ones_are_refused(make_orvad, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server: Orvad = make_orvad(
        env={**FAST, "ORVA_NODE_ID": "edge-1", "ORVA_NODE_ADDRESS": "https://edge-1.internal:9443"}
    )
    with server.admin() as c:
        [me] = _nodes(c)["nodes"]
    assert me["id"] == "edge-1" and me["address"] == "https://edge-1.internal:9443"
    for env in (
        {"ORVA_NODE_ID": "has space"},
        {"ORVA_NODE_ID": "-leading-dash"},
        {"ORVA_NODE_ID": "x" * 64},
        {"ORVA_NODE_ADDRESS": "edge-1:9443"},  # no scheme
        {"ORVA_NODE_ADDRESS": "http://edge-1/with/path"},
        {"ORVA_HEARTBEAT_S": "0"},
        {"ORVA_HEARTBEAT_S": "61"},
    ):
        with pytest.raises(ConfigError, match=list(env)[0].removeprefix("ORVA_").lower()):
            load_settings({"data_dir": str(tmp_path)}, environ=env)
    # the wildcard listen address is no address for other nodes: the host name stands for it
    assert default_address("0.0.0.0", 8443) != "http://0.0.0.0:8443"
    assert default_address("::1", 8443) == "http://[::1]:8443"
    # one data dir, one id; another data dir on this host, another id
    assert (
        default_node_id(tmp_path / "a") == default_node_id(tmp_path / "a") != default_node_id(tmp_path / "b")
    )


def test_a_clean_stop_leaves_the_row_left_and_a_restart_rejoins_under_its_id(make_orvad) -> None:  # type: ignore[no-untyped-def]
    server: Orvad = make_orvad(env=FAST)
    with server.admin() as c:
        [before] = _nodes(c)["nodes"]
    assert server.stop() == 0
    # the row as the other nodes read it while this one is down: left, at the time of the stop
    stopped = time.time()
    [row] = server.sql(
        "SELECT left_at, last_seen_at, run_id FROM cluster_nodes WHERE id = ?", (before["id"],)
    )
    assert isinstance(row[0], str) and row[0] == row[1] and row[2] == before["run_id"]
    assert abs(parse_iso(row[0]).timestamp() - stopped) < 30
    server.start()
    with server.admin() as c:
        [after] = _nodes(c)["nodes"]  # one row per node id, not one per start
    assert after["id"] == before["id"] and after["status"] == "alive" and after["left_at"] is None
    assert after["run_id"] != before["run_id"] and after["started_at"] > before["started_at"]


def test_left_gone_and_alive_rows_of_other_nodes(make_orvad) -> None:  # type: ignore[no-untyped-def]
    """Rows of other node ids written into the orvad's database: one that left, one silent for an hour, and
    one fresh that never heartbeats: alive at first, gone once 3 heartbeats and the slack have passed."""
    server: Orvad = make_orvad(env=FAST)
    with server.admin() as c:
        me = _nodes(c)["this_node"]
        _fake_node(server, "node-left", time.time() - 30, left=True)
        _fake_node(server, "node-silent", time.time() - 3600)
        fresh_at = time.time() + 5.0  # "seen" a little ahead: still alive when the test reads it under load
        _fake_node(server, "node-fresh", fresh_at)
        body = _nodes(c)
        nodes = _by_id(body)
        assert nodes["node-left"]["status"] == "left" and nodes["node-left"]["left_at"]
        assert nodes["node-silent"]["status"] == "gone" and nodes["node-silent"]["seen_s_ago"] > 3000
        assert nodes["node-fresh"]["status"] == "alive" and nodes[me]["status"] == "alive"
        assert nodes["node-silent"]["pools"] == {"fn_x": {"idle": 1, "name": "x", "workers": 1}}
        assert nodes["node-silent"]["this_node"] is False and nodes[me]["this_node"] is True
        assert body["counts"] == {"alive": 2, "gone": 1, "left": 1}
        # the fresh one never heartbeats: gone once 3 heartbeats and the slack have passed, not before
        wait_for(
            lambda: _by_id(_nodes(c))["node-fresh"]["status"] == "gone",
            5.0 + gone_after(BEAT_S) + 20,
            "the silent node to be gone",
        )
        assert time.time() >= fresh_at + gone_after(BEAT_S) - 0.05
        # filters and paging: ordered by id
        assert [n["id"] for n in _nodes(c, status="gone")["nodes"]] == ["node-fresh", "node-silent"]
        assert [n["id"] for n in _nodes(c, status="left")["nodes"]] == ["node-left"]
        assert [n["id"] for n in _nodes(c, status="alive")["nodes"]] == [me]
        first = _nodes(c, limit="2")
        assert len(first["nodes"]) == 2 and first["next_cursor"] == first["nodes"][-1]["id"]
        rest = _nodes(c, limit="2", cursor=first["next_cursor"])
        ids = [n["id"] for n in first["nodes"] + rest["nodes"]]
        assert ids == sorted(ids) == sorted([me, "node-left", "node-silent", "node-fresh"])
        assert rest["next_cursor"] is None
        for bad in ({"status": "dead"}, {"limit": "0"}, {"limit": "501"}, {"limit": "x"}):
            r = c.get(NODES, params=bad)
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["code"] == "VALIDATION" and err["hint"] and err["details"]["field"] in bad, err


def test_reading_the_nodes_needs_read(orvad: Orvad) -> None:
    with orvad.client() as anon:
        r = anon.get(NODES)
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED", r.text
    with orvad.client("orva_" + "x" * 40) as wrong:
        assert wrong.get(NODES).status_code == 401
    with orvad.admin() as c:
        invoke_only = c.post(
            "/api/v1/keys", json={"name": f"i-{uuid.uuid4().hex[:6]}", "permissions": ["invoke"]}
        )
        reader = c.post("/api/v1/keys", json={"name": f"r-{uuid.uuid4().hex[:6]}", "permissions": ["read"]})
    with orvad.client(invoke_only.json()["key"]) as c:
        r = c.get(NODES)
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN" and r.json()["error"]["hint"]
    with orvad.client(reader.json()["key"]) as c:
        assert c.get(NODES).status_code == 200
        assert c.post(NODES, json={}).status_code in (403, 405)  # nothing to write here


# PostgreSQL: the store and the heartbeat service, two node ids on one database


def _registry(db: PgDatabase, node_id: str, pools: dict[str, Any] | None = None) -> NodeRegistry:
    return NodeRegistry(
        NodeStore(db),
        node_id=node_id,
        address=f"http://{node_id}:8443",
        version=__version__,
        heartbeat_s=BEAT_S,
        pools=lambda: pools or {},
        load=lambda: {"invocations": 0},
    )


async def test_two_nodes_on_postgresql_see_each_other_and_a_silent_one_gone(pg_dsn: str) -> None:
    dbs = [PgDatabase(pg_dsn), PgDatabase(pg_dsn)]  # two nodes: two pools of connections
    for db in dbs:
        await db.open()
    a = _registry(dbs[0], "node-a", {"fn_1": {"name": "hello", "workers": 2, "idle": 1}})
    b = _registry(dbs[1], "node-b")
    tasks: list[asyncio.Task[None]] = []
    try:
        for registry in (a, b):
            await registry.register()
            tasks.append(asyncio.create_task(registry.run()))
        await until(lambda: a.live_ids() == b.live_ids() == {"node-a", "node-b"}, 20, "each to see the other")
        assert await a.live_runs() == await b.live_runs() == {"node-a": a.run_id, "node-b": b.run_id}
        seen_by_b = {n.id: n for n in b.view}
        assert seen_by_b["node-a"].pools == {"fn_1": {"name": "hello", "workers": 2, "idle": 1}}
        assert seen_by_b["node-a"].address == "http://node-a:8443" and a.healthy and b.healthy
        # both heartbeats advance
        first = {n.id: n.last_seen_at for n in await a.nodes()}
        await until(
            lambda: all(n.last_seen_at > first[n.id] for n in b.view), 20, "both rows' heartbeats to advance"
        )

        # b stops heartbeating (killed: no leave): a sees it gone within 3 heartbeats and the slack
        tasks.pop().cancel()
        stopped = time.monotonic()
        last_seen = {n.id: n for n in await a.nodes()}["node-b"].last_seen_at
        await until(lambda: a.live_ids() == {"node-a"}, gone_after(BEAT_S) + BEAT_S + 10, "b to be seen gone")
        took = time.monotonic() - stopped
        assert took <= gone_after(BEAT_S) + 2 * BEAT_S + 1.0, took  # the bound, and a beat of a's reading
        gone = {n.id: n for n in await a.nodes()}["node-b"]
        assert gone.status == "gone" and gone.last_seen_at == last_seen
        assert await a.live_runs() == {"node-a": a.run_id}

        # b comes back (a new run of the same node id: its old run's leases are not its own)
        b2 = _registry(dbs[1], "node-b")
        await b2.register()
        assert (await a.live_runs())["node-b"] == b2.run_id != b.run_id
        # and stops cleanly: left at once, no wait for the heartbeats
        await b2.leave()
        assert {n.id: n.status for n in await a.nodes()} == {"node-a": "alive", "node-b": "left"}
        assert await a.live_runs() == {"node-a": a.run_id}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for db in dbs:
            await db.close()


async def test_two_live_runs_of_one_node_id_on_postgresql(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A second orvad given the same node id takes the row; the first one's heartbeats then change nothing,
    it says so once, and it is no longer healthy (the others may take its leases)."""
    db = PgDatabase(pg_dsn)
    await db.open()
    first, second = _registry(db, "same"), _registry(db, "same")
    try:
        await first.register()
        with caplog.at_level(logging.WARNING, logger="orvad.cluster.nodes"):
            await second.register()
            assert any("another run moments ago" in r.getMessage() for r in caplog.records)
            for _ in range(3):
                await first.beat()
            told = [
                r for r in caplog.records if "another orvad registered with this node id" in r.getMessage()
            ]
            assert len(told) == 1, caplog.text
        assert await first.live_runs() == {"same": second.run_id}
        assert not first.healthy and second.healthy
        # once the row's holder is gone (killed), the first takes the row back at its next heartbeat
        await db.execute(
            "UPDATE cluster_nodes SET last_seen_at = ? WHERE id = ?", (epoch_iso(time.time() - 3600), "same")
        )
        await first.beat()
        assert await first.live_runs() == {"same": first.run_id} and first.healthy
    finally:
        await db.close()


def test_orva_cluster_nodes(make_orvad, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.cli.test_cli import Cli

    server: Orvad = make_orvad(env=FAST)
    _fake_node(server, "node-silent", time.time() - 3600)
    cli = Cli(tmp_path / "home")
    cli.ok("login", "--endpoint", server.url, "--api-key", server.admin_key)
    listed = cli.json("cluster", "nodes")
    assert {n["id"]: n["status"] for n in listed} == {
        default_node_id(server.data_dir): "alive",
        "node-silent": "gone",
    }
    table = cli.ok("cluster", "nodes").stdout
    for text in (
        "STATUS",
        "ADDRESS",
        "SEEN",
        "alive",
        "gone",
        " *",
        f"127.0.0.1:{server.port}",
        __version__,
    ):
        assert text in table, table
    assert [n["id"] for n in cli.json("cluster", "nodes", "--status", "gone")] == ["node-silent"]
    assert cli.json("cluster", "nodes", "--status", "left") == []
    assert "Invalid value for '--status'" in cli.fails(2, "cluster", "nodes", "--status", "dead")


def test_two_real_orvads_on_postgresql(pg_dsn: str, make_orvad, jail_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    """Two orvads on one PostgreSQL database list each other alive; B killed (-9) is gone on A within 3
    heartbeats and the slack; B started again rejoins under its id with a new run; B stopped cleanly: left."""
    import shutil
    import signal

    servers: dict[str, Orvad] = {}
    for name in ("node-a", "node-b"):
        data = jail_tmp / name
        data.mkdir(mode=0o711)
        data.chmod(0o711)
        env = {**FAST, "ORVA_DATABASE_URL": pg_dsn, "ORVA_NODE_ID": name}
        servers[name] = make_orvad(data_dir=data, env=env, start=False)
    a, b = servers["node-a"], servers["node-b"]
    a.start()
    for key in ("master.key", "admin.key"):  # one deployment: the same keys on every node
        shutil.copyfile(a.data_dir / key, b.data_dir / key)
        (b.data_dir / key).chmod(0o600)
    b.start()
    with a.admin() as ca, b.admin() as cb:
        wait_for(
            lambda: (
                {n["id"]: n["status"] for n in _nodes(ca)["nodes"]} == {"node-a": "alive", "node-b": "alive"}
            ),
            30,
            "A to list both alive",
        )
        seen_by_b = _by_id(_nodes(cb))
        assert seen_by_b["node-b"]["this_node"] and not seen_by_b["node-a"]["this_node"]
        assert seen_by_b["node-a"]["address"] == f"http://127.0.0.1:{a.port}"
        first_run = _by_id(_nodes(ca))["node-b"]["run_id"]

        b.stop(signal.SIGKILL)  # no leave: only the missing heartbeats tell
        killed = time.monotonic()
        wait_for(lambda: _by_id(_nodes(ca))["node-b"]["status"] == "gone", 30, "A to see B gone")
        took = time.monotonic() - killed
        assert took <= gone_after(BEAT_S) + 3.0, took  # the bound, and a little for a loaded machine
        assert _nodes(ca)["counts"] == {"alive": 1, "gone": 1, "left": 0}

        b.start()
        again = _by_id(_nodes(ca))["node-b"]
        assert again["status"] == "alive" and again["run_id"] != first_run

        assert b.stop() == 0
        gone = _by_id(_nodes(ca))["node-b"]
        assert gone["status"] == "left" and gone["left_at"]
