"""Issue 25's proof on one host: 3 orvad nodes in 3 network namespaces, one PostgreSQL, HAProxy in front
(tests/cluster3.py builds it; docs/CLUSTER.md "Trying it: make cluster-demo").

A function deployed through node 1 runs on every node. Under load through the balancer (2,000 requests, 16
at a time: invocations by GET and by POST, API keys created by POST, the node registry read by GET), node 2
is killed with SIGKILL mid-way:

- what HAProxy may send again (GET/HEAD/OPTIONS, and any request whose connection failed) is never lost:
  every GET answers 200, but for one whose answer node 2 had begun to send when it died (its status line
  and headers already forwarded: HAProxy closes the client's connection, the body cut short);
- what it may not (a POST, which orvad may have run) answers 200/201 or, only if it was running on node 2
  when it died, 502 or no answer (HAProxy closes a kept-alive client connection without one); every
  acknowledged POST ran (its KV counter, its key row) and none ran twice;
- the killed node is seen gone in the registry within its 3 heartbeats and the slack, then restarted on its
  data dir it rejoins: alive under the same id with a new run id, HAProxy sends it requests again and it
  answers them;
- a key revoked on node 1 fails on nodes 2 (the restarted one) and 3 within the propagation bound
  (docs/CLUSTER.md, Change propagation: 100 ms p99 on this machine).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from orvad.clock import iso
from orvad.cluster.nodes import gone_after
from tests.cluster3 import HEARTBEAT_S, Cluster, Node, wait_until

pytestmark = pytest.mark.sandbox

TOTAL = 2000
CONCURRENCY = 16
KILL_AFTER = TOTAL // 4  # answers received before node 2 is killed
NODES = "/api/v1/cluster/nodes"
FUNCTION = "clustered"
CODE = """
import json, time
from orva import kv

def handler(event, context):
    job = event["requestContext"].get("jobId")
    if job:  # a job (enqueued or a cron tick): count each start of its handler
        kv.incr("starts:" + job)
        body = json.loads(event["body"] or "null") or {}
        time.sleep(body.get("s", 0) if isinstance(body, dict) else 0)
        return {"job": job}
    i = event["query"].get("i", "")
    if event["method"] == "POST":
        kv.incr("post:" + i)  # one per run: a POST run twice would count 2
    return {"i": i, "method": event["method"]}
"""
JOBS = 45
TICKS = 8
START = datetime(2026, 3, 9, 12, 0, 30, tzinfo=UTC)  # the cron clock (ORVA_TEST_CLOCK_FILE) every node reads
UNANSWERED = "Server disconnected without sending a response"
CUT_SHORT = "peer closed connection without sending complete message body"
REVOCATIONS = 10
BOUND_S = 0.1  # docs/CLUSTER.md: a change holds on every node within 100 ms (p99) here


class Clock:
    """The cron clock every node reads (ORVA_TEST_CLOCK_FILE): replaced atomically, 0644 in a 0711 folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set(START)

    def set(self, moment: datetime) -> None:
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.write_text(moment.isoformat().replace("+00:00", "Z") + "\n")
        tmp.chmod(0o644)
        os.replace(tmp, self.path)


@pytest.fixture(scope="module")
def clock() -> Iterator[Clock]:
    folder = Path(tempfile.mkdtemp(prefix="orva-cluster3-clock-"))
    folder.chmod(0o711)
    try:
        yield Clock(folder / "clock")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(clock: Clock) -> Iterator[Cluster]:
    with Cluster(extra_env={"ORVA_TEST_CLOCK_FILE": str(clock.path)}) as running:
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


def _counters(node: Node, key: str) -> Counter[int]:
    """The function's KV counters post:<i> (through node 1's API): how many times each POST ran."""
    runs: Counter[int] = Counter()
    cursor = None
    with node.client(key) as c:
        while True:
            params: dict[str, str | int] = {
                "prefix": "post:",
                "limit": 500,
                **({"cursor": cursor} if cursor else {}),
            }
            page = c.get(f"/api/v1/functions/{FUNCTION}/kv", params=params)
            assert page.status_code == 200, page.text
            for entry in page.json()["keys"]:
                value = c.get(f"/api/v1/functions/{FUNCTION}/kv/{entry['key']}").json()["value"]
                runs[int(entry["key"].split(":", 1)[1])] = int(value)
            cursor = page.json()["next_cursor"]
            if not cursor:
                return runs


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


def test_a_function_deployed_through_node_1_runs_on_every_node(cluster: Cluster) -> None:
    first = cluster.nodes[0]
    with first.client(cluster.admin_key) as c:
        assert c.post("/api/v1/functions", json={"name": FUNCTION, "runtime": "python"}).status_code == 201
        r = c.post(f"/api/v1/functions/{FUNCTION}/deploy-inline", json={"code": CODE})
        assert r.status_code == 202, r.text
        deployment = r.json()["id"]
        wait_until(
            lambda: c.get(f"/api/v1/deployments/{deployment}").json()["status"] == "succeeded",
            180,
            "the deployment on node 1",
        )
    for node in cluster.nodes:
        with node.client(cluster.admin_key) as c:
            answers: list[httpx.Response] = []

            def answered(
                c: httpx.Client = c, answers: list[httpx.Response] = answers, name: str = node.node_id
            ) -> bool:
                answers.append(c.get(f"/fn/{FUNCTION}", params={"i": name}))
                return answers[-1].status_code == 200

            wait_until(answered, 60, f"{node.node_id} to run the function", interval_s=0.2)
            assert answers[-1].json() == {"i": node.node_id, "method": "GET"}


def test_node_killed_under_load_loses_nothing_acknowledged_and_rejoins(cluster: Cluster) -> None:
    """2,000 requests through the balancer (GET and POST invocations, POST a key, GET the registry), node 2
    SIGKILLed after 500 answers."""
    first, second = cluster.nodes[0], cluster.nodes[1]
    prefix = f"load-{time.monotonic_ns()}-"
    stats_before = cluster.stats()["BACKEND"]

    def request(i: int) -> tuple[str, str, dict[str, object] | None]:
        kind = i % 8
        if kind in (0, 1):
            return "POST", f"/fn/{FUNCTION}?i={i}", {"i": i}
        if kind == 2:
            return "POST", "/api/v1/keys", {"name": f"{prefix}{i}", "permissions": ["read"]}
        if kind == 3:
            return "GET", NODES, None
        return "GET", f"/fn/{FUNCTION}?i={i}", None

    started = time.monotonic()
    answers, killed_at = asyncio.run(_load(cluster, request, second))
    took = time.monotonic() - started
    assert len(answers) == TOTAL
    assert second.proc is not None and second.proc.returncode == -9

    gets = [a for a in answers if a.method == "GET"]
    invokes = [a for a in answers if a.method == "POST" and a.index % 8 in (0, 1)]
    keys = [a for a in answers if a.method == "POST" and a.index % 8 == 2]
    # what the balancer may retry is never lost, but for a GET whose answer had begun (its status line and
    # headers forwarded) when node 2 died: HAProxy cannot take back what the client has, so it closes it
    cut = [a for a in gets if a.status == 0 and CUT_SHORT in a.body and not a.after_kill]
    assert len(cut) <= CONCURRENCY
    lost = [a for a in gets if a.status != 200 and a not in cut]
    assert not lost, (
        Counter(a.status for a in gets),
        [(a.status, a.body[:200]) for a in lost][:5],
        cluster.balancer_log("is DOWN", "is UP", " 503 ", " 502 ", "Health check"),
    )
    # what it may not retry: 200/201, or 502 for a POST node 2 was running when it died (one per connection)
    failed = [a for a in invokes if a.status != 200] + [a for a in keys if a.status != 201]
    # HAProxy answers 502, or, on a kept-alive client connection, closes it without an answer (as a node
    # closing an idle connection would): either way the client does not know whether the POST ran
    assert all(
        a.status == 502 or (a.status == 0 and (UNANSWERED in a.body or CUT_SHORT in a.body)) for a in failed
    ), [(a.status, a.body[:200]) for a in failed][:5]
    assert len(failed) <= CONCURRENCY
    assert not any(a.after_kill for a in failed), "a POST sent after the kill is never lost (conn-failure)"
    failed_ids = {a.index for a in failed}

    # nothing acknowledged is lost, nothing is run or written twice; a 502 may or may not have run
    runs = _counters(first, cluster.admin_key)
    acked = {a.index for a in invokes if a.status == 200}
    assert acked <= set(runs), f"acknowledged invocations that did not run: {sorted(acked - set(runs))[:5]}"
    assert set(runs) <= acked | failed_ids
    assert max(runs.values()) == 1, "an invocation ran twice"
    rows = asyncio.run(_key_rows(cluster, prefix))
    acked_keys = {f"{prefix}{a.index}" for a in keys if a.status == 201}
    assert acked_keys <= set(rows), f"acknowledged keys missing: {sorted(acked_keys - set(rows))[:5]}"
    assert set(rows) <= acked_keys | {f"{prefix}{i}" for i in failed_ids}
    assert max(rows.values()) == 1

    stats = cluster.stats()
    retried = int(stats["BACKEND"]["wretr"] or 0) - int(stats_before["wretr"] or 0)
    redispatched = int(stats["BACKEND"]["wredis"] or 0) - int(stats_before["wredis"] or 0)
    assert retried + redispatched > 0, "HAProxy retried the requests node 2 dropped"
    wait_until(lambda: cluster.server_status(second).startswith("DOWN"), 10, "HAProxy to mark node 2 down")
    print(
        f"\n{TOTAL} requests ({len(gets)} GET, {len(invokes)} POST /fn, {len(keys)} POST /api/v1/keys) at"
        f" {CONCURRENCY} in {took:.1f} s ({TOTAL / took:.0f}/s); node 2 killed after {KILL_AFTER}: {len(failed)}"
        f" POST unanswered or 502 ({Counter(a.status for a in failed)}), {retried} retries and {redispatched} redispatches by HAProxy"
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
        assert all(c.get(f"/fn/{FUNCTION}", params={"i": "again"}).status_code == 200 for _ in range(30))
    assert _served(cluster, second) > before, "the balancer sends node 2 requests again"
    with second.client(cluster.admin_key) as c:
        assert c.get(f"/fn/{FUNCTION}", params={"i": "direct"}).json() == {"i": "direct", "method": "GET"}
    print(
        f"node 2 gone in node 1's registry at the first look after the load ({gone_s:.1f} s after the kill); rejoined"
    )


def test_a_key_revoked_on_node_1_fails_on_every_node_within_the_bound(cluster: Cluster) -> None:
    """Node 2 is the one restarted above: its listener is as current as the others'."""
    first, others = cluster.nodes[0], cluster.nodes[1:]
    for node in others:  # the test above failed before restarting node 2: start it here, not fail twice
        if node.proc is None or node.proc.poll() is not None:
            node.start()
            node.wait_up()
    delays: list[float] = []
    with first.client(cluster.admin_key) as admin:
        for n in range(REVOCATIONS):
            made = admin.post("/api/v1/keys", json={"name": f"revoked-{n}", "permissions": ["read"]})
            assert made.status_code == 201, made.text
            key, key_id = made.json()["key"], made.json()["id"]
            clients = [node.client(key, timeout_s=5) for node in others]
            try:
                for c in clients:  # usable everywhere first
                    wait_until(lambda c=c: c.get(NODES).status_code == 200, 5, "the new key on every node")
                assert admin.delete(f"/api/v1/keys/{key_id}").status_code == 200
                revoked = time.monotonic()
                for c in clients:
                    wait_until(
                        lambda c=c: c.get(NODES).status_code == 401, 5, "the revocation on every node", 0.002
                    )
                    delays.append(time.monotonic() - revoked)
                with cluster.nodes[0].client(key) as c:
                    assert c.get(NODES).status_code == 401
            finally:
                for c in clients:
                    c.close()
    delays.sort()
    print(
        f"\nrevocation on node 1 -> refused on nodes 2 and 3 ({len(delays)} samples): median"
        f" {delays[len(delays) // 2] * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms"
    )
    assert delays[len(delays) // 2] < BOUND_S
    assert delays[-1] < 5 * BOUND_S, delays


def _sql(cluster: Cluster, statement: str, *params: object) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(cluster.database_url)
        try:
            return list(await conn.fetch(statement, *params))
        finally:
            await conn.close()

    return asyncio.run(run())


def test_jobs_and_cron_ticks_run_once_with_a_node_killed_holding_leases(
    cluster: Cluster, clock: Clock
) -> None:
    """45 jobs enqueued and a schedule ticking every minute, all through the balancer; node 3 SIGKILLed while
    it runs some of the jobs, restarted 3 ticks later. Every job ends succeeded, each attempt started its
    handler once (a job runs again only after its attempt on node 3 was lost with it), each tick fires once."""
    third = cluster.nodes[2]
    api = httpx.Client(
        base_url=cluster.balancer_url, headers={"X-Orva-API-Key": cluster.admin_key}, timeout=30
    )
    try:
        clock.set(START)
        r = api.post(
            f"/api/v1/functions/{FUNCTION}/cron",
            json={"name": "every-minute", "expression": "* * * * *", "payload": {"s": 0}, "catch_up": "skip"},
        )
        assert r.status_code in (200, 201), r.text
        schedule = r.json()
        ids = []
        for _ in range(JOBS):
            r = api.post(
                "/api/v1/jobs", json={"function": FUNCTION, "payload": {"s": 0.5}, "max_attempts": 3}
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        run3 = _nodes_seen(cluster.nodes[0], cluster.admin_key)["node-3"]["run_id"]
        held: list[str] = []

        def third_runs_some() -> bool:
            held[:] = [
                row["id"]
                for row in _sql(
                    cluster, "SELECT id FROM jobs WHERE lease_owner = $1 AND status = 'running'", run3
                )
            ]
            return bool(held)

        wait_until(third_runs_some, 60, "node 3 to run some of the jobs", interval_s=0.02)
        third.kill()
        held_before = set(held)
        third_runs_some()  # and what it took between that read and its death (its leases outlive it)
        held[:] = sorted(held_before | set(held))
        ticks: list[datetime] = []
        for i in range(1, TICKS + 1):
            tick = (START + timedelta(minutes=i)).replace(second=0)
            clock.set(tick + timedelta(seconds=1))  # every scheduler sees the tick at the same moment
            ticks.append(tick)
            wait_until(
                lambda tick=tick: (
                    api.get(f"/api/v1/functions/{FUNCTION}/cron/every-minute").json()["next_run_at"]
                    > iso(tick)
                ),
                30,
                f"the tick {tick} to be taken",
            )
            if i == 3:
                third.start()
                third.wait_up()

        def ended(wanted: set[str]) -> bool:
            return all(api.get(f"/api/v1/jobs/{j}").json()["status"] in ("succeeded", "dead") for j in wanted)

        wait_until(lambda: ended(set(ids)), 120, "the jobs to end", interval_s=0.5)
        cron = [
            j
            for j in api.get("/api/v1/jobs", params={"function": FUNCTION, "limit": 500}).json()["jobs"]
            if j["trigger"] == "cron"
        ]
        wait_until(lambda: ended({j["id"] for j in cron}), 60, "the ticks' jobs to end", interval_s=0.5)

        again = []
        for job_id in ids + [j["id"] for j in cron]:
            job = api.get(f"/api/v1/jobs/{job_id}").json()
            assert job["status"] == "succeeded", job
            outcomes = [a["outcome"] for a in job["attempts_list"]]
            starts = api.get(f"/api/v1/functions/{FUNCTION}/kv/starts:{job_id}").json()["value"]
            # each attempt started the handler once at most: no attempt ran twice, none ran beside another
            # (a lost attempt may have died on node 3 before its handler counted its start). One start more is
            # an attempt node 3 held that had started in the milliseconds before its death, its start not yet
            # written (starts are written in the runner's batches): given back uncounted, as one claimed ahead
            # and never started (docs/SDK.md, Jobs: durability)
            cut_unrecorded = 1 if job_id in held else 0
            assert len(outcomes) == job["attempts"], (job_id, outcomes)
            assert outcomes.count("succeeded") <= starts <= len(outcomes) + cut_unrecorded, (
                job_id,
                starts,
                outcomes,
                job_id in held,
            )
            assert outcomes[-1] == "succeeded" and all(o == "lost" for o in outcomes[:-1]), (job_id, outcomes)
            if len(outcomes) > 1:
                again.append(job_id)
        assert set(again) <= set(held) | {j["id"] for j in cron}, (
            "only an attempt node 3 was running is run again"
        )
        keys = sorted(j["idempotency_key"] for j in cron)
        assert keys == sorted(f"cron:{schedule['id']}:{iso(t)}" for t in ticks), (
            keys
        )  # each tick once, none missed
        print(
            f"\n{JOBS} jobs and {TICKS} cron ticks through the balancer, node 3 killed holding {len(held)} running"
            f" jobs: {len(again)} ran again after their attempt was lost, none twice at once; every tick once"
        )
    finally:
        api.delete(f"/api/v1/functions/{FUNCTION}/cron/every-minute")
        api.close()
