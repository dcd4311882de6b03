"""Issue 25's proof on one host: 3 orvad nodes in 3 network namespaces, one PostgreSQL, HAProxy in front
(tests/cluster3.py builds it; docs/CLUSTER.md "Trying it: make cluster-demo").

Under load through the balancer (2,000 requests, 16 at a time), node 2 is killed with SIGKILL mid-way:

- what HAProxy may send again (GET/HEAD/OPTIONS, and any request whose connection failed) is never lost:
  every GET answers 200;
- what it may not (a POST, which orvad may have run) answers 201 or, only if it was running on node 2 when
  it died, 502; every 201 is in the database (nothing acknowledged lost), and no POST is there twice;
- the killed node is seen gone in the registry within its 3 heartbeats and the slack, then restarted on its
  data dir it rejoins: alive under the same id with a new run id, HAProxy sends it requests again and it
  answers them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from orvad.cluster.nodes import gone_after
from tests.cluster3 import HEARTBEAT_S, Cluster, Node, wait_until

pytestmark = pytest.mark.sandbox

TOTAL = 2000
CONCURRENCY = 16
KILL_AFTER = TOTAL // 4  # answers received before node 2 is killed
NODES = "/api/v1/cluster/nodes"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster() as running:
        yield running


@dataclass
class Answer:
    index: int
    method: str
    status: int  # 0: no HTTP answer at all (the client's transport failed)
    body: str
    after_kill: bool


async def _load(
    cluster: Cluster,
    request: Callable[[int], tuple[str, str, dict[str, object] | None]],
    killed: Node,
) -> tuple[list[Answer], float]:
    """TOTAL requests through the balancer, CONCURRENCY at a time; SIGKILL ``killed`` after KILL_AFTER answers."""
    answers: list[Answer] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(TOTAL):
        queue.put_nowait(i)
    killed_at: list[float] = []
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=cluster.balancer_url,
        headers={"X-Orva-API-Key": cluster.admin_key},
        timeout=60.0,
        limits=limits,
    ) as client:

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                method, path, body = request(i)
                sent_after_kill = bool(killed_at)
                try:
                    r = await client.request(method, path, json=body)
                    status, text = r.status_code, r.text
                except httpx.TransportError as exc:
                    status, text = 0, repr(exc)
                answers.append(Answer(i, method, status, text, sent_after_kill))
                if len(answers) >= KILL_AFTER and not killed_at:
                    killed_at.append(time.monotonic())
                    killed.kill()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    assert killed_at, "node 2 was never killed"
    return answers, killed_at[0]


async def _key_rows(cluster: Cluster, prefix: str) -> Counter[str]:
    conn = await asyncpg.connect(cluster.database_url)
    try:
        rows = await conn.fetch("SELECT name FROM api_keys WHERE name LIKE $1", prefix + "%")
    finally:
        await conn.close()
    return Counter(r["name"] for r in rows)


def _nodes_seen(via: Node, key: str) -> dict[str, dict[str, object]]:
    with via.client(key, timeout_s=10) as c:
        r = c.get(NODES)
    assert r.status_code == 200, r.text
    return {n["id"]: n for n in r.json()["nodes"]}


def _served(cluster: Cluster, node: Node) -> int:
    """2xx answers HAProxy has had from the node."""
    return int(cluster.stats()[node.node_id]["hrsp_2xx"] or 0)


def test_three_nodes_in_their_namespaces_on_one_database_behind_haproxy(cluster: Cluster) -> None:
    host_net = os.readlink("/proc/self/ns/net")
    nets = {os.readlink(f"/proc/{n.pid}/ns/net") for n in cluster.nodes}
    assert len(nets) == 3 and host_net not in nets, "each node in a network namespace of its own"
    for node in cluster.nodes:
        assert cluster.server_status(node) == "UP"
        with node.client() as c:
            assert c.get("/health/ready").status_code == 200
    seen = _nodes_seen(cluster.nodes[0], cluster.admin_key)
    for node in cluster.nodes:  # one registry: node 1 sees all three, by the addresses they announce
        assert seen[node.node_id]["status"] == "alive", seen
        assert seen[node.node_id]["address"] == node.url
    before = {n.node_id: _served(cluster, n) for n in cluster.nodes}
    with httpx.Client(base_url=cluster.balancer_url, headers={"X-Orva-API-Key": cluster.admin_key}) as c:
        for _ in range(30):
            r = c.get(NODES)
            assert r.status_code == 200 and r.json()["nodes"][0]["id"] in before
    assert all(_served(cluster, n) > before[n.node_id] for n in cluster.nodes), "the balancer uses every node"


def test_node_killed_under_load_loses_nothing_acknowledged_and_rejoins(cluster: Cluster) -> None:
    """Management load through the balancer (GET the registry, POST a key: 3 to 1), node 2 SIGKILLed."""
    first, second = cluster.nodes[0], cluster.nodes[1]
    prefix = f"load-{time.monotonic_ns()}-"
    stats_before = cluster.stats()["BACKEND"]

    def request(i: int) -> tuple[str, str, dict[str, object] | None]:
        if i % 4 == 3:
            return "POST", "/api/v1/keys", {"name": f"{prefix}{i}", "permissions": ["read"]}
        return "GET", NODES, None

    started = time.monotonic()
    answers, killed_at = asyncio.run(_load(cluster, request, second))
    took = time.monotonic() - started
    assert len(answers) == TOTAL
    assert second.proc is not None and second.proc.returncode == -9

    gets = [a for a in answers if a.method == "GET"]
    posts = [a for a in answers if a.method == "POST"]
    # what the balancer may retry is never lost
    assert Counter(a.status for a in gets) == Counter({200: len(gets)}), [
        (a.status, a.body[:200]) for a in gets if a.status != 200
    ][:5]
    # what it may not retry: 201, or 502 for a POST node 2 was running when it died (at most one per connection)
    failed = [a for a in posts if a.status != 201]
    assert all(a.status == 502 for a in failed), [(a.status, a.body[:200]) for a in failed][:5]
    assert len(failed) <= CONCURRENCY
    assert not any(a.after_kill for a in failed), "a POST sent after the kill is never lost (conn-failure)"
    # nothing acknowledged is lost, nothing is written twice; a 502 may or may not have committed
    rows = asyncio.run(_key_rows(cluster, prefix))
    acked = {f"{prefix}{a.index}" for a in posts if a.status == 201}
    assert acked <= set(rows), f"acknowledged keys missing: {sorted(acked - set(rows))[:5]}"
    assert set(rows) <= acked | {f"{prefix}{a.index}" for a in failed}
    assert max(rows.values()) == 1

    stats = cluster.stats()
    retried = int(stats["BACKEND"]["wretr"] or 0) - int(stats_before["wretr"] or 0)
    redispatched = int(stats["BACKEND"]["wredis"] or 0) - int(stats_before["wredis"] or 0)
    assert retried + redispatched > 0, "HAProxy retried the requests node 2 dropped"
    wait_until(lambda: cluster.server_status(second).startswith("DOWN"), 10, "HAProxy to mark node 2 down")
    print(
        f"\n{TOTAL} requests ({len(gets)} GET, {len(posts)} POST) at {CONCURRENCY} in {took:.1f} s"
        f" ({TOTAL / took:.0f}/s); node 2 killed after {KILL_AFTER}: {len(failed)} POST answered 502,"
        f" {retried} retries, {redispatched} redispatches by HAProxy"
    )

    # the registry sees it gone within 3 heartbeats and the slack
    old_run = _nodes_seen(first, cluster.admin_key)["node-2"]["run_id"]
    wait_until(
        lambda: _nodes_seen(first, cluster.admin_key)["node-2"]["status"] == "gone",
        gone_after(HEARTBEAT_S) + 5,
        "node 1 to see node 2 gone",
    )
    gone_s = time.monotonic() - killed_at
    # restarted on its data dir: it rejoins under its id with a new run, and serves through the balancer
    second.start()
    second.wait_up()
    wait_until(lambda: cluster.server_status(second) == "UP", 20, "HAProxy to mark node 2 up again")
    again = _nodes_seen(first, cluster.admin_key)["node-2"]
    assert again["status"] == "alive" and again["run_id"] != old_run and again["address"] == second.url
    before = _served(cluster, second)
    with httpx.Client(base_url=cluster.balancer_url, headers={"X-Orva-API-Key": cluster.admin_key}) as c:
        assert all(c.get(NODES).status_code == 200 for _ in range(30))
    assert _served(cluster, second) > before, "the balancer sends node 2 requests again"
    print(f"node 2 seen gone by node 1 {gone_s:.1f} s after the kill (heartbeat {HEARTBEAT_S} s); rejoined")
