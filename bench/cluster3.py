"""The balancer's cost (issue 25's bench rows): a warm Python call through HAProxy to 1 node and to 3 nodes,
against the same call sent to node 1 directly, on the 3-node cluster of tests/cluster3.py (3 network
namespaces on this host, one PostgreSQL, HAProxy on 127.0.0.1).

- ``direct``: wrk to node 1's address (10.250.25.11:8443, across the bridge), no balancer;
- ``haproxy-1``: wrk to HAProxy with nodes 2 and 3 disabled (its admin socket): the balancer's hop alone;
- ``haproxy-3``: wrk to HAProxy with all three nodes.

Each round runs the three in turn (16 connections, ``SECONDS`` each), twice, so a change of the machine's load
moves all alike. Figures: requests/s, p50, and CPU per request of the orvad processes (their own threads,
not the workers) and of HAProxy, read from /proc: on 2 cores shared with other work, CPU per request is the
figure a busy machine disturbs least. On this host the 3 nodes share the same 2 cores, so 3 nodes cannot
serve more than 1 (CPU-bound): the point is the overhead per request.

Run (root, as `make cluster-demo`): .venv/bin/python bench/cluster3.py [seconds]
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster3 import Cluster, wait_until  # noqa: E402

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
ROUNDS = 2
CONNECTIONS = 16
CODE = "def handler(event, context):\n    return {'hello': 'world'}\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, key: str, orvads: list[int], haproxy: int | None) -> dict[str, float]:
    before = [cpu_seconds(p) for p in orvads]
    proxy_before = cpu_seconds(haproxy) if haproxy else 0.0
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-H", f"X-Orva-API-Key: {key}", url],
        capture_output=True,
        text=True,
        timeout=SECONDS + 60,
    ).stdout
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    assert p50 and done, out
    return {
        "req_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": float(p50.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)],
        "non_2xx": int(errors.group(1)) if errors else 0,
        "orvad_cpu_us_per_req": round(
            sum(cpu_seconds(p) - b for p, b in zip(orvads, before, strict=True)) / done * 1e6, 1
        ),
        "haproxy_cpu_us_per_req": round((cpu_seconds(haproxy) - proxy_before) / done * 1e6, 1)
        if haproxy
        else 0.0,
    }


def main() -> int:
    with Cluster() as cluster:
        key = cluster.admin_key
        first = cluster.nodes[0]
        with first.client(key) as c:
            assert c.post("/api/v1/functions", json={"name": "hello", "runtime": "python"}).status_code == 201
            dep = c.post("/api/v1/functions/hello/deploy-inline", json={"code": CODE}).json()["id"]
            wait_until(
                lambda: c.get(f"/api/v1/deployments/{dep}").json()["status"] == "succeeded", 180, "deploy"
            )
        for node in cluster.nodes:
            with node.client(key) as c:
                wait_until(lambda c=c: c.get("/fn/hello").status_code == 200, 60, f"{node.node_id} warm")
        pids = [n.pid for n in cluster.nodes if n.pid]
        proxy = cluster.haproxy.pid if cluster.haproxy else None

        def servers(enabled: int) -> None:
            for node in cluster.nodes[1:]:
                verb = "enable" if enabled == 3 else "disable"
                cluster.haproxy_command(f"{verb} server orvad/{node.node_id}")
            want = 3 if enabled == 3 else 1
            wait_until(
                lambda: sum(cluster.server_status(n) == "UP" for n in cluster.nodes) == want, 20, "servers"
            )

        runs: dict[str, list[dict[str, float]]] = {"direct": [], "haproxy-1": [], "haproxy-3": []}
        started = time.time()
        load = os.getloadavg()[0]
        for _ in range(ROUNDS):
            servers(1)
            runs["direct"].append(measure(f"{first.url}/fn/hello", key, pids, None))
            runs["haproxy-1"].append(measure(f"{cluster.balancer_url}/fn/hello", key, pids, proxy))
            servers(3)
            runs["haproxy-3"].append(measure(f"{cluster.balancer_url}/fn/hello", key, pids, proxy))
        rows = {
            name: {k: round(statistics.median(r[k] for r in rs), 3) for k in rs[0]}
            for name, rs in runs.items()
        }
        report = {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": SECONDS,
            "rounds": ROUNDS,
            "connections": CONNECTIONS,
            "load_average_1m": [round(load, 1), round(os.getloadavg()[0], 1)],
            "rows": rows,
            "runs": runs,
        }
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
