"""Orva's benchmark harness: every figure next to its baseline, measured in the same run.

    make bench            (or: .venv/bin/python bench/run.py [--quick])

Prints a table and writes bench/results/<date>.json. Traffic goes only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PY_HANDLER = "def handler(event, context):\n    return {'hello': 'world'}\n"
JS_HANDLER = "exports.handler = async () => ({ hello: 'world' });\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred, deadline_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wrk(url: str, seconds: int, connections: int = 50) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"req_s": float(rps.group(1)) if rps else 0.0, "p50_ms": ms("50"), "p90_ms": ms("90"),
            "p99_ms": ms("99"), "non_2xx": int(errors.group(1)) if errors else 0}


class Orvad:
    def __init__(self, base: Path, server: str = "hypercorn") -> None:
        self.port = free_port()
        self.data = base / "data"
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ORVA_DATA_DIR": str(self.data), "ORVA_PORT": str(self.port), "ORVA_LOG_LEVEL": "warning",
               "ORVA_SERVER": server}
        self.proc = subprocess.Popen([sys.executable, "-m", "orvad", "serve"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(base / "orvad.err", "w"))
        wait_until(self._up, 30, "orvad")
        self.client = httpx.Client(base_url=self.url, timeout=60,
                                   headers={"X-Orva-API-Key": (self.data / "admin.key").read_text().strip()})

    def _up(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health/startup", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def deploy(self, name: str, runtime: str, code: str, **fields: Any) -> dict[str, Any]:
        fn = self.client.post("/api/v1/functions", json={"name": name, "runtime": runtime, **fields}).json()
        dep = self.client.post(f"/api/v1/functions/{fn['id']}/deploy-inline", json={"code": code}).json()
        wait_until(lambda: self.client.get(f"/api/v1/deployments/{dep['id']}").json()["status"] == "succeeded",
                   60, "deploy")
        return fn

    def pool(self, fn_id: str) -> dict[str, Any]:
        rows = self.client.get("/api/v1/system/metrics.json").json()["pools"]
        return next((r for r in rows if r["function_id"] == fn_id), {"workers": 0, "spawned": 0})

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def bench_warm(orvad: Orvad, base: Path, seconds: int, server: str = "hypercorn") -> dict[str, Any]:
    hello_port = free_port()
    hello = subprocess.Popen([sys.executable, str(ROOT / "bench" / "hello.py"), str(hello_port), server],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _reachable(hello_port), 20, "baseline server")
        baseline = (wrk(f"http://127.0.0.1:{hello_port}/", 2), wrk(f"http://127.0.0.1:{hello_port}/", seconds))[1]
    finally:
        hello.terminate()
        hello.wait(10)
    rows: dict[str, Any] = {"baseline_starlette_hello": baseline}
    for runtime, code in (("python", PY_HANDLER), ("node", JS_HANDLER)):
        fn = orvad.deploy(f"warm-{runtime}", runtime, code)
        orvad.client.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 2, "max_warm": 4,
                                                      "scale_to_zero": False})
        wrk(f"{orvad.url}/fn/{fn['id']}/", 2)  # warm-up
        result = wrk(f"{orvad.url}/fn/{fn['id']}/", seconds)
        result["ratio_to_baseline"] = round(result["req_s"] / baseline["req_s"], 3) if baseline["req_s"] else None
        rows[f"orva_{runtime}"] = result
    return rows


def _reachable(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def bench_cold(orvad: Orvad, samples: int) -> dict[str, Any]:
    from orvad.hostcheck import check_host, load_sandbox_data
    from orvad.sandbox import SandboxSpec, build_invocation

    host, data = check_host().facts, load_sandbox_data()
    assert host is not None
    rows: dict[str, Any] = {}
    for runtime, code, argv in (("python", PY_HANDLER, ("/usr/bin/python3.11", "-c", "pass")),
                                ("node", JS_HANDLER, ("/usr/bin/node", "-e", "0"))):
        bare = []
        for _ in range(samples):
            spec = SandboxSpec(argv=argv, code_dir="/usr/share", binds=data.binds_for(runtime), memory_mb=128, cpus=1)
            inv = build_invocation(spec, host)
            t = time.perf_counter()
            subprocess.run(inv.argv, env=inv.env, check=True, timeout=30)
            bare.append((time.perf_counter() - t) * 1000)
        fn = orvad.deploy(f"cold-{runtime}", runtime, code)
        orvad.client.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 0, "idle_ttl_seconds": 1,
                                                      "scale_to_zero": True})
        cold = []
        for _ in range(samples):
            wait_until(lambda fid=fn["id"]: orvad.pool(fid)["workers"] == 0, 30, "scale to zero")
            t = time.perf_counter()
            r = orvad.client.get(f"/fn/{fn['id']}/")
            elapsed = (time.perf_counter() - t) * 1000
            if r.headers.get("x-orva-cold-start") == "true":
                cold.append(elapsed)
        rows[runtime] = {"samples": len(cold), "cold_p50_ms": pct(cold, 0.5), "cold_p90_ms": pct(cold, 0.9),
                         "bare_jail_p50_ms": pct(bare, 0.5), "bare_jail_p90_ms": pct(bare, 0.9),
                         "ratio_p50": round(pct(cold, 0.5) / pct(bare, 0.5), 2)}
    return rows


def bench_burst(orvad: Orvad, burst: int) -> dict[str, Any]:
    code = "import time\n\ndef handler(event, context):\n    time.sleep(0.05)\n    return 'ok'\n"
    fn = orvad.deploy("burst-python", "python", code)
    orvad.client.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 1, "max_warm": 16})
    wait_until(lambda: orvad.pool(fn["id"])["workers"] >= 1, 30, "one warm worker")
    before = orvad.pool(fn["id"])["spawned"]

    async def run() -> list[tuple[int, float]]:
        async with httpx.AsyncClient(base_url=orvad.url, timeout=120,
                                     limits=httpx.Limits(max_connections=burst)) as c:
            async def one() -> tuple[int, float]:
                t = time.perf_counter()
                r = await c.get(f"/fn/{fn['id']}/")
                return r.status_code, (time.perf_counter() - t) * 1000
            return await asyncio.gather(*(one() for _ in range(burst)))

    t = time.perf_counter()
    results = asyncio.run(run())
    total = (time.perf_counter() - t) * 1000
    latencies = [ms for _, ms in results]
    return {"requests": burst, "failures": sum(1 for code, _ in results if code != 200),
            "all_answered_ms": round(total, 1), "p50_ms": pct(latencies, 0.5), "p99_ms": pct(latencies, 0.99),
            "workers_started": orvad.pool(fn["id"])["spawned"] - before}


def bench_deploy(orvad: Orvad, count: int) -> dict[str, Any]:
    fn = orvad.client.post("/api/v1/functions", json={"name": "deploy-speed", "runtime": "python"}).json()
    times = []
    for i in range(count):
        code = PY_HANDLER.replace("world", f"world-{i}")
        t = time.perf_counter()
        orvad.client.post(f"/api/v1/functions/{fn['id']}/deploy-inline", json={"code": code})
        wait_until(lambda i=i: f"world-{i}" in orvad.client.get(f"/fn/{fn['id']}/").text, 60, "new version")
        times.append((time.perf_counter() - t) * 1000)
    return {"deploys": count, "deploy_to_first_invoke_p50_ms": pct(times, 0.5),
            "deploy_to_first_invoke_p90_ms": pct(times, 0.9)}


def bench_memory(orvad: Orvad) -> dict[str, Any]:
    rows: dict[str, Any] = {"orvad_rss_mb": round(rss_kb(orvad.proc.pid) / 1024, 1)}
    for runtime in ("python", "node"):
        jails = []
        for status in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                cmd = status.read_bytes()
            except OSError:
                continue
            if b"nsjail" in cmd and f"/runtime/adapter.{'py' if runtime == 'python' else 'js'}".encode() in cmd:
                jails.append(int(status.parent.name))
        children = []
        for pid in jails:
            try:
                children += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except OSError:
                pass
        if jails and children:
            rows[f"{runtime}_worker_rss_mb"] = round(statistics.median(rss_kb(p) for p in children) / 1024, 1)
            rows[f"{runtime}_worker_pss_mb"] = round(statistics.median(pss_kb(p) for p in children) / 1024, 1)
            rows["nsjail_supervisor_rss_mb"] = round(statistics.median(rss_kb(p) for p in jails) / 1024, 1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs (5 s wrk, 10 cold samples)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run `make bench` (it installs Debian's wrk) or apt-get install wrk")
    seconds, samples = (5, 10) if args.quick else (10, 30)
    base = Path(tempfile.mkdtemp(prefix="orva-bench-"))
    base.chmod(0o711)
    orvad = Orvad(base)
    results: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "host": {
        "cores": os.cpu_count(), "kernel": os.uname().release}}
    try:
        results["warm"] = bench_warm(orvad, base, seconds)
        results["memory"] = bench_memory(orvad)
        results["cold_start"] = bench_cold(orvad, samples)
        results["burst"] = bench_burst(orvad, 200)
        results["deploy"] = bench_deploy(orvad, 20)
    finally:
        orvad.stop()
        shutil.rmtree(base, ignore_errors=True)
    base = Path(tempfile.mkdtemp(prefix="orva-bench-uv-"))
    base.chmod(0o711)
    fast = Orvad(base, "uvicorn")
    try:
        results["warm_uvicorn"] = bench_warm(fast, base, seconds, "uvicorn")
    finally:
        fast.stop()
        shutil.rmtree(base, ignore_errors=True)
    out = ROOT / "bench" / "results" / f"{dt.date.today().isoformat()}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
