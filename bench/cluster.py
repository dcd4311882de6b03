"""The cluster (issue 25): what PostgreSQL and the forwarding hop cost a warm call, in the same run.

One Python function, the warm bench's pool but ``min_warm: 0`` (so a node starts no worker before a call):

- ``sqlite``: one orvad on its embedded SQLite (the default), called directly;
- ``postgresql``: node A of a two-node cluster on a throwaway PostgreSQL (tests/pg.py), called directly:
  the same call with the execution rows going to PostgreSQL;
- ``forwarded``: the same function called through node B, which has no worker for it and forwards every
  call to A (orvad/cluster/forward.py): the hop's cost is this row against ``postgresql``.

Each is measured with wrk at one connection (added latency: p50) and at 50 (throughput), in rounds that
alternate, so a machine whose load changes moves all three alike.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
from harness import PY_HANDLER, WARM_POOL, Orvad, raise_for_status, wait_until, wrk

from tests.pg import ThrowawayPostgres

ROUNDS = 2
POOL = {**WARM_POOL, "min_warm": 0}


def _node(base: Path, name: str, env: dict[str, str], keys_of: Orvad | None = None) -> Orvad:
    """A started orvad; ``keys_of``: the node whose master key and admin key it shares (a cluster's)."""
    folder = base / name
    (folder / "data").mkdir(mode=0o711, parents=True)
    folder.chmod(0o711)
    if keys_of is not None:
        for key in ("master.key", "admin.key"):
            shutil.copyfile(keys_of.data / key, folder / "data" / key)
            (folder / "data" / key).chmod(0o600)
    return Orvad(folder, env={"ORVA_NODE_ID": name, "ORVA_HEARTBEAT_S": "0.5", **env})


def _create_database(dsn: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("CREATE DATABASE orva_bench")
        finally:
            await conn.close()

    asyncio.run(run())


def _measure(url: str, seconds: int, pid: int) -> dict[str, Any]:
    one = wrk(url, seconds, connections=1, server_pid=pid)
    many = wrk(url, seconds, connections=50, server_pid=pid)
    return {"c1_p50_ms": one["p50_ms"], "c1_p99_ms": one["p99_ms"], **many}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}


def bench_cluster(seconds: int) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="orva-bench-cluster-"))
    base.chmod(0o711)
    nodes: list[Orvad] = []
    try:
        with ThrowawayPostgres() as pg:
            _create_database(pg.dsn())
            dsn = pg.dsn("orva_bench")
            single = _node(base, "single", {})
            nodes.append(single)
            a = _node(base, "node-a", {"ORVA_DATABASE_URL": dsn})
            nodes.append(a)
            for node in (single, a):
                node.wait_ready()
            fn_single = single.deploy("bench-cluster", "python", PY_HANDLER, POOL)
            fn = a.deploy("bench-cluster", "python", PY_HANDLER, POOL)
            for node, f in ((single, fn_single), (a, fn)):
                wrk(f"{node.url}/fn/{f['id']}/", 2)  # warm-up: the pool grows to its load
            b = _node(base, "node-b", {"ORVA_DATABASE_URL": dsn}, keys_of=a)
            nodes.append(b)
            b.wait_ready()
            assert b.client is not None

            def b_sees_a_warm() -> bool:
                listed = raise_for_status(b.client.get("/api/v1/cluster/nodes")).json()["nodes"]  # type: ignore[union-attr]
                return any(
                    n["id"] == "node-a" and (n["pools"].get(fn["id"]) or {}).get("idle", 0) for n in listed
                )

            wait_until(b_sees_a_warm, 30, "node B to see node A's warm workers", interval_s=0.1)
            probe = raise_for_status(b.client.post(f"/fn/{fn['id']}/"))
            if probe.headers.get("x-orva-forwarded-to") != "node-a":
                raise RuntimeError(f"node B did not forward: {dict(probe.headers)}")
            runs: dict[str, list[dict[str, Any]]] = {"sqlite": [], "postgresql": [], "forwarded": []}
            for _ in range(ROUNDS):
                runs["sqlite"].append(_measure(f"{single.url}/fn/{fn_single['id']}/", seconds, single.pid))
                runs["postgresql"].append(_measure(f"{a.url}/fn/{fn['id']}/", seconds, a.pid))
                forwarded = _measure(f"{b.url}/fn/{fn['id']}/", seconds, b.pid)
                forwarded["forwarder_cpu_us_per_req"] = forwarded.pop("server_cpu_us_per_req", None)
                runs["forwarded"].append(forwarded)
            b_pool = raise_for_status(b.client.get("/api/v1/system/metrics.json")).json()["pools"]
            rows = {name: _median(r) for name, r in runs.items()}
            rows["forwarded"]["workers_on_b"] = sum(
                p["workers"] for p in b_pool if p["function_id"] == fn["id"]
            )
            rows["forwarded"]["hop_p50_ms"] = round(
                rows["forwarded"]["c1_p50_ms"] - rows["postgresql"]["c1_p50_ms"], 3
            )
            rows["postgresql"]["ratio_to_sqlite"] = (
                round(rows["postgresql"]["req_s"] / rows["sqlite"]["req_s"], 3)
                if rows["sqlite"]["req_s"]
                else None
            )
            rows["forwarded"]["ratio_to_direct"] = (
                round(rows["forwarded"]["req_s"] / rows["postgresql"]["req_s"], 3)
                if rows["postgresql"]["req_s"]
                else None
            )
            for node in reversed(nodes):  # before the database goes
                node.stop()
            nodes.clear()
            return rows
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(base, ignore_errors=True)
