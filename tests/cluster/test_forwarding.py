"""Warm-aware forwarding (issue 25; orvad/cluster/forward.py, docs/CLUSTER.md "Warm-aware forwarding").

Two real orvads on ONE PostgreSQL database (each its own data dir, port and node id; the same master key):
a function warm on node A and cold on node B is answered, when called through B, by A's warm worker
(``X-Orva-Forwarded-To: node-a``) and B starts no worker for it; the caller's key is checked where the call
runs; a request that says it was forwarded already runs where it lands (no loops); a peer that cannot be
reached leaves the request to run here, body and all; and with ORVA_FORWARD_COLD=false nothing is forwarded.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

ECHO = """
import os
def handler(event, context):
    return {"body": event.get("body"), "method": event["method"], "node_pid": os.getpid()}
"""


def _node(make_orvad: Callable[..., Orvad], root: Path, name: str, dsn: str, **env: str) -> Orvad:
    data = root / name
    data.mkdir(mode=0o711, exist_ok=True)
    data.chmod(0o711)
    return make_orvad(
        data_dir=data,
        env={"ORVA_DATABASE_URL": dsn, "ORVA_NODE_ID": name, "ORVA_HEARTBEAT_S": "0.5", **env},
        start=False,
    )


Cluster = Callable[..., tuple[Orvad, Orvad, str]]


@pytest.fixture
def cluster(pg_dsn: str, make_orvad: Callable[..., Orvad], jail_tmp: Path) -> Cluster:
    """Node A with a function deployed and called once through it (A holds a warm worker; min_warm 0, so
    no node starts one before a call), then node B started on the same database (the same master key):
    (a, b, the function's id)."""

    def make(name: str, env: dict[str, str] | None = None, **extra: str) -> tuple[Orvad, Orvad, str]:
        a = _node(make_orvad, jail_tmp, "node-a", pg_dsn, **(env or {})).start()
        with a.admin() as c:
            fn = create_function(c, name, **extra)
            r = c.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 0})
            assert r.status_code == 200, r.text
            assert wait_deployed(c, deploy_inline(c, fn["id"], ECHO)["id"])["status"] == "succeeded"
            r = c.post(f"/fn/{fn['id']}/", content=b"warm-up")
            assert r.status_code == 200, r.text
            assert "x-orva-forwarded-to" not in r.headers
        b = _node(make_orvad, jail_tmp, "node-b", pg_dsn, **(env or {}))
        for key in ("master.key", "admin.key"):
            shutil.copyfile(a.data_dir / key, b.data_dir / key)
            (b.data_dir / key).chmod(0o600)
        b.start()
        _warm_seen_by(b, a, fn["id"])
        return a, b, str(fn["id"])

    return make


def _warm_seen_by(b: Orvad, a: Orvad, fn_id: str) -> None:
    """B's registry view (A's heartbeat) reports A's idle worker for the function."""

    def seen() -> bool:
        with b.admin() as c:
            nodes = c.get("/api/v1/cluster/nodes").json()["nodes"]
        return any(
            n["id"] == "node-a"
            and n["status"] == "alive"
            and (n["pools"].get(fn_id) or {}).get("idle", 0) > 0
            for n in nodes
        )

    wait_for(seen, 30, "node B to see node A's warm worker", interval_s=0.1)


def _workers_on(server: Orvad, fn_id: str) -> int:
    with server.admin() as c:
        nodes = c.get("/api/v1/cluster/nodes").json()["nodes"]
    me = next(n for n in nodes if n["this_node"])
    return int((me["pools"].get(fn_id) or {}).get("workers", 0))


def test_a_call_through_a_cold_node_is_answered_by_the_warm_one(cluster: Cluster) -> None:
    a, b, fn_id = cluster("fwd-echo")
    with a.admin() as c:
        pid_on_a = c.post(f"/fn/{fn_id}/", content=b"x").json()["node_pid"]
    body = os.urandom(48).hex()
    with b.admin() as c:
        for _ in range(5):
            r = c.post(f"/fn/{fn_id}/some/path?q=1", content=body.encode())
            assert r.status_code == 200, r.text
            with b.admin() as d:
                view = d.get("/api/v1/cluster/nodes").json()["nodes"]
            assert r.headers.get("x-orva-forwarded-to") == "node-a", (view, r.text)
            answer = r.json()
            assert answer["body"] == body and answer["method"] == "POST" and answer["node_pid"] == pid_on_a
    assert _workers_on(b, fn_id) == 0  # B never started a worker for it
    # each call is one execution, recorded by the node that ran it (A) in the shared database: 7, not 12

    def recorded() -> int:
        with b.admin() as c:
            return int(c.get("/api/v1/executions", params={"function_id": fn_id}).json()["total"])

    wait_for(lambda: recorded() >= 7, 15, "the 7 executions in the shared database", interval_s=0.1)
    assert recorded() == 7


def test_the_key_is_checked_where_the_call_runs(cluster: Cluster) -> None:
    a, b, fn_id = cluster("fwd-keyed", auth_mode="api_key")
    with b.client() as anonymous:
        r = anonymous.post(f"/fn/{fn_id}/", content=b"no key")
        assert r.status_code == 401 and r.headers["x-orva-forwarded-to"] == "node-a", r.text
        r = anonymous.post(
            f"/fn/{fn_id}/", content=b"bad key", headers={"X-Orva-API-Key": "orva_" + "0" * 40}
        )
        assert r.status_code == 401 and r.headers["x-orva-forwarded-to"] == "node-a", r.text
    with b.admin() as c:
        r = c.post(f"/fn/{fn_id}/", content=b"good key")
        assert r.status_code == 200 and r.json()["body"] == "good key", r.text
        assert r.headers["x-orva-forwarded-to"] == "node-a"


def test_a_forwarded_request_is_never_forwarded_again(cluster: Cluster) -> None:
    """The header that marks a hop keeps the request where it lands: B cold-starts its own worker."""
    a, b, fn_id = cluster("fwd-loop")
    assert _workers_on(b, fn_id) == 0
    with b.admin() as c:
        r = c.post(f"/fn/{fn_id}/", content=b"here", headers={"X-Orva-Forwarded-By": "node-a"})
    assert r.status_code == 200 and r.json()["body"] == "here", r.text
    assert "x-orva-forwarded-to" not in r.headers
    wait_for(lambda: _workers_on(b, fn_id) >= 1, 15, "B's own worker in its heartbeat", interval_s=0.1)


def test_an_unreachable_peer_leaves_the_call_to_run_here_body_and_all(cluster: Cluster) -> None:
    a, b, fn_id = cluster("fwd-gone")
    assert a.proc is not None
    a.proc.send_signal(signal.SIGKILL)  # B's view still says A is alive and warm for a few heartbeats
    a.proc.wait(timeout=10)
    body = "x" * 300_000  # larger than one ASGI chunk: read whole before the hop, replayed here
    with b.admin() as c:
        r = c.post(f"/fn/{fn_id}/", content=body.encode())
    assert r.status_code == 200, r.text
    assert r.json()["body"] == body and "x-orva-forwarded-to" not in r.headers
    assert "forwarding failed; the request runs here" in b.stderr()


def test_forwarding_can_be_turned_off(cluster: Cluster) -> None:
    a, b, fn_id = cluster("fwd-off", env={"ORVA_FORWARD_COLD": "false"})
    with b.admin() as c:
        r = c.post(f"/fn/{fn_id}/", content=b"local")
    assert r.status_code == 200 and "x-orva-forwarded-to" not in r.headers, r.text
