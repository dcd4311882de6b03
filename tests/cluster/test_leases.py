"""Leases: work that runs once on N nodes (issue 25; docs/CLUSTER.md "Leases: work that runs once").

Three real orvads on ONE PostgreSQL database (each its own data dir, port and node id; the same master key
and admin key; heartbeat 0.5 s, so a node is gone 2.5 s after its last beat; forwarding off, so an attempt
runs on the node that claimed it), one module-wide cluster:

- jobs enqueued round robin through the three nodes run on all three, each exactly once (one attempt, one
  start in the handler's own KV record, the executions counted per node sum to the jobs);
- cron: a schedule ticking every minute on the shared test clock (ORVA_TEST_CLOCK_FILE) fires each tick
  exactly once although all three schedulers see it at the same moment; a node SIGKILLed between ticks and
  started again later changes nothing;
- a node SIGKILLed mid-attempt: its lease is taken over once it misses 3 heartbeats (long before the 30 s
  lease would run out), the attempt is recorded lost, another node runs the job again (at least once), never
  two at a time; the takeover time is measured. The killed node rejoins with a new run id.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orvad.clock import iso
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, free_port, wait_for
from tests.pg import ThrowawayPostgres, run_sql
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.sandbox

BEAT_S = 0.5  # gone after 3 x 0.5 s + 1 s of slack
FN = "lease-fn"
START = datetime(2026, 3, 9, 12, 0, 30, tzinfo=UTC)

HANDLER = """
import json, time
from orva import kv

def handler(event, context):
    rc = event["requestContext"]
    body = json.loads(event["body"] or "null") or {}
    job = rc.get("jobId") or "sync"
    n = kv.incr("starts:" + job)
    kv.put(f"start:{job}:{n}", time.time())
    time.sleep(body.get("s", 0) if isinstance(body, dict) else 0)
    kv.put(f"end:{job}:{n}", time.time())
    return {"job": job, "n": n}
"""


class Clock:
    """The cron clock every node reads (ORVA_TEST_CLOCK_FILE): replaced atomically, owned by root, 0644."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.now = START
        self.set(START)

    def set(self, moment: datetime) -> None:
        self.now = moment
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.write_text(moment.isoformat().replace("+00:00", "Z") + "\n")
        tmp.chmod(0o644)
        os.replace(tmp, self.path)


@dataclass
class Cluster:
    nodes: list[Orvad]
    dsn: str
    clock: Clock

    def up(self) -> None:
        """Every node running (a test that failed half-way may have left one killed)."""
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                node.start()

    def by_run(self, run_id: str) -> Orvad:
        with self.nodes[0].admin() as c:
            nodes = c.get("/api/v1/cluster/nodes").json()["nodes"]
        node_id = next(n["id"] for n in nodes if n["run_id"] == run_id)
        return self.nodes[int(node_id.rsplit("-", 1)[1])]


@pytest.fixture(scope="module")
def cluster(pg_cluster: ThrowawayPostgres) -> Iterator[Cluster]:
    name = f"leases_{secrets.token_hex(4)}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(pg_cluster.dsn())
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    dsn = pg_cluster.dsn(name)
    root = Path(tempfile.mkdtemp(prefix="orva-leases-"))
    root.chmod(0o711)
    clock = Clock(root / "clock")
    nodes: list[Orvad] = []
    for i in range(3):
        data = root / f"node-{i}"
        data.mkdir(mode=0o711)
        env = {
            "ORVA_DATABASE_URL": dsn,
            "ORVA_NODE_ID": f"node-{i}",
            "ORVA_HEARTBEAT_S": str(BEAT_S),
            "ORVA_FORWARD_COLD": "false",
            "ORVA_TEST_CLOCK_FILE": str(clock.path),
            "ORVA_JOBS_BACKOFF_BASE_S": "0.05",
            "ORVA_JOBS_BACKOFF_MAX_S": "0.2",
            "ORVA_WEBHOOK_TIMEOUT_S": "120",  # a delivery held by the receiver stays in flight long enough
        }
        nodes.append(Orvad(data, free_port(), env))
    try:
        nodes[0].start()
        with nodes[0].admin() as c:  # deployed before the others start: they load it (and fetch its version)
            create_function(c, FN, "python", entrypoint="handler.py", max_concurrency=2)
            assert wait_deployed(c, deploy_inline(c, FN, HANDLER)["id"])["status"] == "succeeded"
        for node in nodes[1:]:
            for key in ("master.key", "admin.key"):
                shutil.copyfile(nodes[0].data_dir / key, node.data_dir / key)
                (node.data_dir / key).chmod(0o600)
            node.start()
        yield Cluster(nodes, dsn, clock)
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.stop()
            if shutil.which("nft"):  # a SIGKILLed orvad leaves its egress table
                subprocess.run(
                    ["nft", "delete", "table", "inet", f"orva_egress_{node.port}"], capture_output=True
                )
        asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))
        shutil.rmtree(root, ignore_errors=True)


def _kv(c: httpx.Client, key: str) -> Any:
    r = c.get(f"/api/v1/functions/{FN}/kv/{key}")
    return r.json()["value"] if r.status_code == 200 else None


def _enqueue(c: httpx.Client, payload: Any, **extra: Any) -> str:
    r = c.post("/api/v1/jobs", json={"function": FN, "payload": payload, **extra})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _job(c: httpx.Client, job_id: str) -> dict[str, Any]:
    r = c.get(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _invocations(node: Orvad) -> int:
    """The executions of FN this node ran (its own Prometheus counters: memory, per node)."""
    with node.admin() as c:
        text = c.get("/api/v1/system/metrics").text
    return int(
        sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "orva_invocations_total" and s.labels.get("function") == FN
        )
    )


def test_jobs_run_on_every_node_each_exactly_once(cluster: Cluster) -> None:
    cluster.up()
    nodes = cluster.nodes
    for node in nodes:  # a warm worker on each node first: the jobs then spread by claim, not by cold start
        with node.admin() as c:
            r = c.post(f"/fn/{FN}/", json={})
            assert r.status_code == 200, r.text
    before = [_invocations(n) for n in nodes]
    n_jobs = 45
    ids: list[str] = []
    clients = [n.admin() for n in nodes]
    try:
        for i in range(n_jobs):  # round robin: each enqueue wakes that node's runner
            ids.append(_enqueue(clients[i % 3], {"s": 0.4}))
        c = clients[0]

        def all_done() -> bool:
            jobs = c.get("/api/v1/jobs", params={"function": FN, "limit": 500}).json()["jobs"]
            ours = [j for j in jobs if j["id"] in set(ids)]
            return len(ours) == n_jobs and all(j["status"] in ("succeeded", "dead") for j in ours)

        wait_for(all_done, 180, f"{n_jobs} jobs to end", interval_s=0.2)
        for job_id in ids:
            job = _job(c, job_id)
            assert (job["status"], job["attempts"], job["tries"]) == ("succeeded", 1, 1), job
            assert [(a["attempt"], a["outcome"]) for a in job["attempts_list"]] == [(1, "succeeded")], job
            assert _kv(c, f"starts:{job_id}") == 1, job_id  # the handler itself started once
    finally:
        for client in clients:
            client.close()
    ran = [_invocations(n) - b for n, b in zip(nodes, before, strict=True)]
    assert sum(ran) == n_jobs, ran  # no attempt ran twice anywhere
    assert all(r > 0 for r in ran), ran  # and every node took some
    print(f"\njobs per node: {ran}")


def _schedule(c: httpx.Client) -> dict[str, Any]:
    r = c.get(f"/api/v1/functions/{FN}/cron/every-minute")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_each_cron_tick_fires_once_across_the_cluster(cluster: Cluster) -> None:
    cluster.up()
    nodes, clock = cluster.nodes, cluster.clock
    clock.set(START)
    a = nodes[0].admin()
    try:
        r = a.post(
            f"/api/v1/functions/{FN}/cron",
            json={"name": "every-minute", "expression": "* * * * *", "payload": {"s": 0}, "catch_up": "skip"},
        )
        assert r.status_code in (200, 201), r.text
        schedule = r.json()

        def cron_jobs() -> list[dict[str, Any]]:
            jobs = a.get("/api/v1/jobs", params={"function": FN, "limit": 500}).json()["jobs"]
            return [j for j in jobs if j["trigger"] == "cron"]

        ticks: list[datetime] = []
        for i in range(1, 13):
            tick = (START + timedelta(minutes=i)).replace(second=0)
            clock.set(tick + timedelta(seconds=1))  # every scheduler sees the tick at the same moment
            ticks.append(tick)
            wait_for(
                lambda tick=tick: _schedule(a)["next_run_at"] > iso(tick),
                30,
                f"the tick {tick} to be taken",
                interval_s=0.05,
            )
            if i == 4:  # a node killed between ticks (its runs ended: a run cut by the kill runs again) ...
                wait_for(
                    lambda: len(cron_jobs()) == 4 and all(j["status"] == "succeeded" for j in cron_jobs()),
                    60,
                    "the first runs to end",
                    interval_s=0.1,
                )
                nodes[2].stop(signal.SIGKILL)
            if i == 8:  # ... and started again: it rejoins and schedules with the others
                nodes[2].start()
        keys = {f"cron:{schedule['id']}:{iso(t)}" for t in ticks}

        wait_for(
            lambda: len(cron_jobs()) >= len(ticks) and all(j["status"] == "succeeded" for j in cron_jobs()),
            120,
            "the ticks' jobs to run",
            interval_s=0.2,
        )
        found = cron_jobs()
        assert sorted(j["idempotency_key"] for j in found) == sorted(keys), (
            found
        )  # each tick once, none missed
        assert all(j["attempts"] == 1 for j in found), [(j["idempotency_key"], j["attempts"]) for j in found]
        for j in found:
            assert _kv(a, f"starts:{j['id']}") == 1
    finally:
        a.delete(f"/api/v1/functions/{FN}/cron/every-minute")
        a.close()


def test_a_node_killed_mid_job_loses_its_lease_to_another_after_3_missed_heartbeats(cluster: Cluster) -> None:
    cluster.up()
    nodes = cluster.nodes
    with nodes[1].admin() as c:
        job_id = _enqueue(c, {"s": 6}, max_attempts=3)
        wait_for(lambda: _kv(c, f"starts:{job_id}") == 1, 60, "the first attempt to start", interval_s=0.05)
    [(owner,)] = run_sql(cluster.dsn, "SELECT lease_owner FROM jobs WHERE id = ?", job_id)
    victim = cluster.by_run(owner)
    others = [n for n in nodes if n is not victim]
    victim.stop(signal.SIGKILL)
    killed = time.time()

    def lost() -> bool:
        rows = run_sql(
            cluster.dsn, "SELECT outcome FROM job_attempts WHERE job_id = ? AND attempt = 1", job_id
        )
        return bool(rows) and rows[0][0] == "lost"

    wait_for(lost, 30, "another node to take the dead node's lease", interval_s=0.02)
    takeover_s = time.time() - killed
    with others[0].admin() as c:
        wait_for(lambda: _kv(c, f"starts:{job_id}") == 2, 60, "the job to run again", interval_s=0.05)
        rerun_s = time.time() - killed
        wait_for(
            lambda: _job(c, job_id)["status"] in ("succeeded", "dead"), 60, "the job to end", interval_s=0.1
        )
        job = _job(c, job_id)
        assert job["status"] == "succeeded", job
        assert [(a["attempt"], a["outcome"]) for a in job["attempts_list"]] == [(1, "lost"), (2, "succeeded")]
        assert job["attempts_list"][0]["error"]["code"] == "ATTEMPT_LOST"
        # never two at a time: the cut attempt never ended (its worker died with its node), the second
        # started after the kill
        assert _kv(c, f"end:{job_id}:1") is None and _kv(c, f"end:{job_id}:2") is not None
        assert _kv(c, f"start:{job_id}:2") >= killed
        assert _kv(c, f"starts:{job_id}") == 2
    [(new_owner,)] = run_sql(cluster.dsn, "SELECT COALESCE(lease_owner, '') FROM jobs WHERE id = ?", job_id)
    assert new_owner == ""  # ended: no lease left
    # taken because the node was gone (3 heartbeats + slack = 2.5 s), not because the 30 s lease ran out
    assert takeover_s < 10, takeover_s
    print(
        f"\ntakeover after SIGKILL: lease taken in {takeover_s:.2f} s, the job running again in {rerun_s:.2f} s"
    )
    # the killed node rejoins under its id with a new run id
    victim.start()
    with victim.admin() as c:
        me = next(n for n in c.get("/api/v1/cluster/nodes").json()["nodes"] if n["this_node"])
        assert me["status"] == "alive" and me["run_id"] != owner


def test_a_restarted_node_takes_back_nothing_that_a_live_node_holds(cluster: Cluster) -> None:
    """A node that starts while another runs a job leaves that lease alone (its start recovers only the
    leases of runs that are not live): the job runs once."""
    cluster.up()
    nodes = cluster.nodes
    with nodes[0].admin() as c:
        job_id = _enqueue(c, {"s": 4})
        wait_for(lambda: _kv(c, f"starts:{job_id}") == 1, 60, "the attempt to start", interval_s=0.05)
    [(owner,)] = run_sql(cluster.dsn, "SELECT lease_owner FROM jobs WHERE id = ?", job_id)
    holder = cluster.by_run(owner)
    other = next(n for n in nodes if n is not holder)
    other.stop()  # a clean stop and a start while the holder runs the attempt
    other.start()
    with holder.admin() as c:
        wait_for(
            lambda: _job(c, job_id)["status"] in ("succeeded", "dead"), 60, "the job to end", interval_s=0.1
        )
        job = _job(c, job_id)
        assert [(a["attempt"], a["outcome"]) for a in job["attempts_list"]] == [(1, "succeeded")], job
        assert _kv(c, f"starts:{job_id}") == 1


def test_the_lease_owner_is_the_node_run_id(cluster: Cluster) -> None:
    cluster.up()
    with cluster.nodes[2].admin() as c:
        job_id = _enqueue(c, {"s": 2})
        wait_for(lambda: _kv(c, f"starts:{job_id}") == 1, 60, "the attempt to start", interval_s=0.05)
        runs = {n["run_id"] for n in c.get("/api/v1/cluster/nodes").json()["nodes"] if n["status"] == "alive"}
    [(owner,)] = run_sql(cluster.dsn, "SELECT lease_owner FROM jobs WHERE id = ?", job_id)
    assert owner in runs
    with cluster.nodes[2].admin() as c:
        wait_for(lambda: _job(c, job_id)["status"] == "succeeded", 60, "the job to end", interval_s=0.1)


def test_a_webhook_delivery_in_flight_is_not_sent_again_when_another_node_starts(cluster: Cluster) -> None:
    """A claimed delivery names no node: a node's start gives back the outbox's claims only when it is alone
    (one orvad's crash), so on a cluster another node's attempt in flight is never sent a second time."""
    cluster.up()
    a, b = cluster.nodes[0], cluster.nodes[1]
    held = threading.Event()  # the receiver holds every request until it is set
    receiver = Receiver(hang=held).start()
    try:
        with a.admin() as c:
            r = c.post("/api/v1/webhooks", json={"url": receiver.url, "events": ["function.created"]})
            assert r.status_code == 201, r.text
            hook = r.json()
            ping = c.post(f"/api/v1/webhooks/{hook['id']}/test").json()["id"]
            receiver.wait("ping", 1)
        b.stop()  # a node's stop and start while the attempt is in flight
        b.start()

        def lease_left() -> float:
            [(until,)] = run_sql(
                cluster.dsn, "SELECT next_attempt_at FROM webhook_deliveries WHERE id = ?", ping
            )
            return float(until) - time.time()

        deadline = time.monotonic() + 3.0  # watched for a while after the start: nothing is sent again
        while time.monotonic() < deadline:
            assert len(receiver.of_type("ping")) == 1
            assert lease_left() > 0, lease_left()  # still claimed (the claim lasts the 120 s timeout + 5 s)
            time.sleep(0.1)
        held.set()
        with a.admin() as c:

            def delivered() -> bool:
                r = c.get(f"/api/v1/webhooks/{hook['id']}/deliveries")
                return any(d["id"] == ping and d["status"] == "delivered" for d in r.json()["deliveries"])

            wait_for(delivered, 60, "the ping to be delivered", interval_s=0.1)
            [d] = [
                d
                for d in c.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()["deliveries"]
                if d["id"] == ping
            ]
            assert d["attempts"] == 1, d
            c.delete(f"/api/v1/webhooks/{hook['id']}")
        assert [x.headers["webhook-id"] for x in receiver.of_type("ping")] == [ping]
    finally:
        held.set()
        receiver.stop()
