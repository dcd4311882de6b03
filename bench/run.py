"""Orva's benchmark harness: every figure next to its baseline, measured in the same run.

    make bench            (or: .venv/bin/python bench/run.py [--quick] [--only SECTION,...])

Prints a table and writes bench/results/<date>.json, and the chart of its warm figures beside it
(<date>.png, bench/chart.py); a partial or quick run writes to a temporary file instead, unless --out
says where. Traffic goes only to 127.0.0.1. Each section runs on its
own fresh orvad, so sections can run alone and in any order.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from breakdown import bench_profile
from chart import draw
from cluster import bench_cluster
from harness import (
    HANDLERS,
    PY_HANDLER,
    ROOT,
    WARM_POOL,
    Orvad,
    children_of,
    cmdline,
    free_port,
    handler_saying,
    ms_since,
    pct,
    rss_kb,
    running_orvad,
    stop_process,
    wait_until,
    wrk,
)
from jobs import bench_jobs
from kv import bench_kv
from many import bench_deploy_at_once, bench_many
from memory import bench_memory
from report import render_hottest, render_table, table_rows
from sdk import bench_sdk


@dataclass(frozen=True)
class Options:
    seconds: int  # wrk duration per measurement
    samples: int  # cold starts per runtime
    burst: int
    deploys: int  # sequential deploys, and functions deployed at once
    workers: int  # idle warm workers per runtime for the memory figures
    functions: int  # idle functions deployed for the many-functions figures


def _measured_server(
    script: str, args: list[str], path: str, seconds: int, one_client: bool = False
) -> dict[str, Any]:
    """Start one of the bench's own servers (hello.py, relay.py) on a free port, load it, stop it; with
    ``one_client``, also one connection's latency (wrk -t1 -c1) under ``c1``."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / script), str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _reachable(port), 30, script)
        url = f"http://127.0.0.1:{port}{path}"
        wrk(url, 2)  # warm-up
        figures = wrk(url, seconds, server_pid=proc.pid)
        if one_client:
            figures["c1"] = wrk(url, seconds, connections=1, server_pid=proc.pid)
        return figures
    finally:
        stop_process(proc)


def bench_warm(orvad: Orvad, seconds: int) -> dict[str, Any]:
    baseline = _measured_server("hello.py", [orvad.server], "/", seconds)
    rows: dict[str, Any] = {
        "baseline_starlette_hello": baseline,
        "http_floor_orva_shaped": _measured_server("hello.py", [orvad.server], "/orva-shaped", seconds),
    }
    for runtime, code in HANDLERS.items():
        # the thinnest relay to as many jailed workers as orvad's pool grows to under this load
        floor = _measured_server(
            "relay.py", [orvad.server, runtime, str(WARM_POOL["max_warm"])], "/", seconds, one_client=True
        )
        floor["ratio_to_baseline"] = (
            round(floor["req_s"] / baseline["req_s"], 3) if baseline["req_s"] else None
        )
        rows[f"relay_floor_{runtime}"] = floor
        fn = orvad.deploy(f"warm-{runtime}", runtime, code, WARM_POOL)
        wrk(f"{orvad.url}/fn/{fn['id']}/", 2)  # warm-up
        result = wrk(f"{orvad.url}/fn/{fn['id']}/", seconds, server_pid=orvad.pid)
        result["c1"] = wrk(f"{orvad.url}/fn/{fn['id']}/", seconds, connections=1, server_pid=orvad.pid)
        result["ratio_to_baseline"] = (
            round(result["req_s"] / baseline["req_s"], 3) if baseline["req_s"] else None
        )
        result["ratio_to_relay_floor"] = (
            round(result["req_s"] / floor["req_s"], 3) if floor["req_s"] else None
        )
        rows[f"orva_{runtime}"] = result
    return rows


def _reachable(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


# Cold starts come at least this far apart (the wait for scale-to-zero); the bare jails are spaced
# alike, since a jail started right after another skips the kernel's wait in the cgroup attach.
BARE_JAIL_GAP_S = 0.2


def time_run(inv: Any, limit_s: float = 30) -> float:
    """Milliseconds from start to exit. A blocking wait: ``subprocess.run(timeout=)`` polls with
    growing sleeps (0.5, 1, 2 ... 32 ms), which rounded every bare start up to ~64 ms."""
    t = time.perf_counter()
    proc = subprocess.Popen(inv.argv, env=inv.env)
    killer = threading.Timer(limit_s, proc.kill)
    killer.start()
    try:
        code = proc.wait()
    finally:
        killer.cancel()
    elapsed = ms_since(t)
    if code != 0:
        raise RuntimeError(f"{inv.argv[-3:]} exited with {code}")
    return elapsed


def bench_cold(orvad: Orvad, usual: Orvad, samples: int) -> dict[str, Any]:
    """Scale-from-zero starts over HTTP: ``orvad`` with its spare jails (issue 26: the runtime's spare,
    started ahead, is handed the function), ``usual`` with them off (ORVA_SPARE_JAILS=false: a jail started at
    the request), and the bare jail, interleaved sample by sample."""
    from orvad.host.hostcheck import check_host, load_sandbox_data
    from orvad.host.sandbox import SandboxSpec, build_invocation

    host, data = check_host().facts, load_sandbox_data()
    assert host is not None
    rows: dict[str, Any] = {}
    # the interpreters with the workers' own flags (the Python worker runs with -S)
    for runtime, code, argv, boot in (
        ("python", PY_HANDLER, ("/usr/bin/python3.11", "-S", "-c", "pass"), b"import spare"),
        ("node", HANDLERS["node"], ("/usr/bin/node", "-e", "0"), b"/runtime/spare.js"),
    ):
        spec = SandboxSpec(
            argv=argv, code_dir="/usr/share", binds=data.binds_for(runtime), memory_mb=128, cpus=1
        )
        functions = [
            (server, server.deploy(f"cold-{runtime}", runtime, code, COLD_POOL)) for server in (orvad, usual)
        ]
        times: dict[str, list[float]] = {"spare": [], "usual": [], "bare": []}
        for _ in range(samples):
            for (server, fn), kind in zip(functions, ("spare", "usual"), strict=True):
                _scaled_to_zero(server, fn["id"], boot if kind == "spare" else None)
                t = time.perf_counter()
                r = server.client.get(f"/fn/{fn['id']}/")  # type: ignore[union-attr]
                elapsed = ms_since(t)
                if r.headers.get("x-orva-cold-start") == "true":
                    times[kind].append(elapsed)
            time.sleep(BARE_JAIL_GAP_S)
            times["bare"].append(time_run(build_invocation(spec, host)))
        spare, usual_ms, bare = times["spare"], times["usual"], times["bare"]
        rows[runtime] = {
            "samples": len(spare),
            "cold_p50_ms": pct(spare, 0.5),
            "cold_p90_ms": pct(spare, 0.9),
            "usual_samples": len(usual_ms),
            "usual_p50_ms": pct(usual_ms, 0.5),
            "usual_p90_ms": pct(usual_ms, 0.9),
            "bare_jail_p50_ms": pct(bare, 0.5),
            "bare_jail_p90_ms": pct(bare, 0.9),
            "ratio_p50": round(pct(spare, 0.5) / pct(bare, 0.5), 2),
        }
    return rows


COLD_POOL = {"min_warm": 0, "idle_ttl_seconds": 1, "scale_to_zero": True}


def _scaled_to_zero(server: Orvad, fn_id: str, spare_boot: bytes | None) -> None:
    """The function's pool at zero and its last worker's process gone (its teardown is not the next start's);
    with spare jails, the runtime's spare started and waiting (a nsjail whose command line is the spare boot)."""

    def ready() -> bool:
        jails = [cmdline(p) for p in children_of(server.pid)]
        jails = [c for c in jails if b"nsjail" in c]
        workers = [c for c in jails if b"/spares/" not in c]
        waiting = spare_boot is None or any(spare_boot in c for c in jails if b"/spares/" in c)
        return server.pool(fn_id)["workers"] == 0 and not workers and waiting

    wait_until(ready, 30, "scale to zero")


def cold_section(opts: Options) -> dict[str, Any]:
    with running_orvad() as orvad, running_orvad(env={"ORVA_SPARE_JAILS": "false"}) as usual:
        return {"cold_start": bench_cold(orvad, usual, opts.samples)}


def bench_burst(orvad: Orvad, burst: int) -> dict[str, Any]:
    code = "import time\n\ndef handler(event, context):\n    time.sleep(0.05)\n    return 'ok'\n"
    fn = orvad.deploy("burst-python", "python", code, {"min_warm": 1, "max_warm": 16})
    wait_until(lambda: orvad.pool(fn["id"])["workers"] >= 1, 30, "one warm worker")
    before = orvad.pool(fn["id"])["spawned"]

    async def run() -> list[tuple[int, float]]:
        async with orvad.api(max_connections=burst) as c:

            async def one() -> tuple[int, float]:
                t = time.perf_counter()
                r = await c.get(f"/fn/{fn['id']}/")
                return r.status_code, ms_since(t)

            return await asyncio.gather(*(one() for _ in range(burst)))

    t = time.perf_counter()
    results = asyncio.run(run())
    total = ms_since(t)
    latencies = [ms for _, ms in results]
    return {
        "requests": burst,
        "failures": sum(1 for code, _ in results if code != 200),
        "all_answered_ms": round(total, 1),
        "p50_ms": pct(latencies, 0.5),
        "p99_ms": pct(latencies, 0.99),
        "workers_started": orvad.pool(fn["id"])["spawned"] - before,
    }


def bench_deploy(orvad: Orvad, count: int) -> dict[str, Any]:
    assert orvad.client is not None
    fn = orvad.client.post("/api/v1/functions", json={"name": "deploy-speed", "runtime": "python"}).json()
    times = []
    for i in range(count):
        code = handler_saying(f"world-{i}")
        t = time.perf_counter()
        orvad.client.post(f"/api/v1/functions/{fn['id']}/deploy-inline", json={"code": code})
        wait_until(lambda i=i: f"world-{i}" in orvad.client.get(f"/fn/{fn['id']}/").text, 60, "new version")
        times.append(ms_since(t))
    return {
        "deploys": count,
        "deploy_to_first_invoke_p50_ms": pct(times, 0.5),
        "deploy_to_first_invoke_p90_ms": pct(times, 0.9),
        "at_once": bench_deploy_at_once(orvad, count),
    }


FUNCTIONS, WORKERS = 500, 20  # issue 7's counts


# sections: each starts its own orvad per server and answers {result key: figures}
EVERY_SERVER = ("hypercorn", "uvicorn", "granian")


def on_orvad(
    key: str, bench: Callable[[Orvad, Options], dict[str, Any]], servers: tuple[str, ...] = ("hypercorn",)
) -> Callable[[Options], dict[str, Any]]:
    """A section that runs ``bench`` on a fresh orvad per server; figures go under ``key``
    for Hypercorn (the default server) and ``key_<server>`` for the others."""

    def section(opts: Options) -> dict[str, Any]:
        results = {}
        for server in servers:
            with running_orvad(server) as orvad:
                results[key if server == "hypercorn" else f"{key}_{server}"] = bench(orvad, opts)
        return results

    return section


SECTIONS: dict[str, Callable[[Options], dict[str, Any]]] = {
    "warm": on_orvad("warm", lambda o, opts: bench_warm(o, opts.seconds), EVERY_SERVER),
    "cold": cold_section,  # spare jails on, and off in a second orvad (the usual start), same run
    "burst": on_orvad("burst", lambda o, opts: bench_burst(o, opts.burst)),
    "deploy": on_orvad("deploy", lambda o, opts: bench_deploy(o, opts.deploys)),
    # rss_kb first: orvad idle, before anything is deployed
    "memory": on_orvad("memory", lambda o, opts: bench_memory(o, rss_kb(o.pid), opts.workers)),
    "many": on_orvad("many", lambda o, opts: bench_many(o, opts.functions, opts.seconds)),
    "profile": on_orvad("profile", lambda o, opts: bench_profile(o, opts.seconds), EVERY_SERVER),
    "kv": on_orvad("kv", lambda o, opts: bench_kv(o)),  # issue 23: a KV get from a handler
    "sdk": on_orvad("sdk", lambda o, opts: bench_sdk(o)),  # issue 23: one SDK call round trip (the channel)
    "jobs": on_orvad("jobs", lambda o, opts: bench_jobs(o)),  # issue 23: 1,000 jobs drain vs direct invokes
    # issue 25: PostgreSQL vs SQLite, and the forwarding hop (its own orvads and throwaway PostgreSQL)
    "cluster": lambda opts: {"cluster": bench_cluster(opts.seconds)},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs (5 s wrk, 10 cold samples)")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        metavar="SECTION[,SECTION]",
        help=f"sections to run, of: {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--functions", type=int, default=FUNCTIONS, help=f"idle functions deployed by 'many' ({FUNCTIONS})"
    )
    parser.add_argument(
        "--workers", type=int, default=WORKERS, help=f"warm workers per runtime for 'memory' ({WORKERS})"
    )
    parser.add_argument("--out", type=Path, help="where the JSON goes (default: see above)")
    args = parser.parse_args()
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    return args


def run_sections(names: list[str], opts: Options, results: dict[str, Any]) -> dict[str, str]:
    """Run each section into ``results``; one that fails is reported and the others still run."""
    errors: dict[str, str] = {}
    for name in names:
        print(f"-- {name} ({dt.datetime.now():%H:%M:%S})", file=sys.stderr, flush=True)
        try:
            results.update(SECTIONS[name](opts))
        except Exception as exc:
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"
    if errors:
        results["errors"] = errors
    return errors


def output_path(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    today = dt.date.today().isoformat()
    full = (
        not args.quick
        and set(args.sections) == set(SECTIONS)
        and (args.functions, args.workers) == (FUNCTIONS, WORKERS)
    )
    if not full:  # only a full run at issue 7's counts is a published result
        return Path(tempfile.gettempdir()) / f"orva-bench-{today}-{'-'.join(args.sections)}.json"
    return ROOT / "bench" / "results" / f"{today}.json"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: run `make bench` (it installs Debian's wrk) or apt-get install wrk")
    opts = Options(
        seconds=5 if args.quick else 10,
        samples=10 if args.quick else 30,
        burst=200,
        deploys=20,
        workers=args.workers,
        functions=args.functions,
    )
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": {
            "cores": os.cpu_count(),
            "kernel": os.uname().release,
            "python": platform.python_version(),
            "load_average_at_start": load_average(),
        },
        "quick": args.quick,
        "sections": args.sections,
    }
    errors = run_sections(args.sections, opts, results)
    results["host"]["load_average_at_end"] = load_average()  # others' load on a shared machine skews figures
    rows = table_rows(results)
    results["table"] = [row.as_json() for row in rows]
    out = output_path(args)
    out.write_text(json.dumps(results, indent=2) + "\n")
    chart = draw(results, out.with_suffix(".png"))
    print(json.dumps(results, indent=2))
    print(render_table(rows))
    hottest = render_hottest(results)
    if hottest:
        print(hottest)
    host = results["host"]
    print(
        f"load average (1, 5, 15 min) at start {host['load_average_at_start']}, at end {host['load_average_at_end']}"
    )
    print(f"written to {out}" + (f" and {chart}" if chart else ""))
    if errors:
        sys.exit(f'sections that failed: {", ".join(errors)} (see "errors" in the JSON)')


if __name__ == "__main__":
    main()
