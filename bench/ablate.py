"""Where orvad's time above the relay floor goes (issue 26): ABAB runs of orvad with one part of the warm
invoke path taken away at a time, against an unchanged orvad, on one server.

The parts are taken away by ``bench/ablation.patch`` (``ORVA_ABLATE=record,access,watch,timer``; each
breaks the feature it removes), so this runs in a scratch clone, never in a checkout orvad is served from::

    git clone -q . /tmp/ab && cd /tmp/ab && git apply bench/ablation.patch && make .venv/.installed-test
    .venv/bin/pip install -e '.[fast]'
    cd bench && ../.venv/bin/python ablate.py uvicorn python,node 2 /tmp/ablate-uvicorn.json
    ../.venv/bin/python ablate.py --table /tmp/ablate-uvicorn.json

Per runtime: the relay floor, then for each variant ``rounds`` pairs (unchanged orvad, then the variant),
then the floor again; ``none`` is an unchanged orvad measured as a variant (the A/A control). Each figure is
the warm section's: wrk -t2 -c50 for 5 s after 1 s of warm-up, then wrk -t1 -c1 for 4 s, server CPU per
request from /proc. ``record``: no execution row, metrics, capture or bus event; ``access``: no access
line; ``watch``: no disconnect watch; ``timer``: no deadline timer on the worker call.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import HANDLERS, ROOT, WARM_POOL, Orvad, free_port, stop_process, wait_until, wrk
from run import _reachable

VARIANTS = ["none", "record", "access", "watch", "timer", "record,access,watch,timer"]
SECONDS, C1_SECONDS = 5, 4


def measure(url: str, pid: int) -> dict[str, Any]:
    wrk(url, 1)  # warm-up
    r = wrk(url, SECONDS, server_pid=pid)
    r["c1"] = wrk(url, C1_SECONDS, connections=1, server_pid=pid)
    r["t"] = time.strftime("%H:%M:%S")
    return r


def relay(server: str, runtime: str) -> dict[str, Any]:
    port = free_port()
    argv = [
        sys.executable,
        str(ROOT / "bench" / "relay.py"),
        str(port),
        server,
        runtime,
        str(WARM_POOL["max_warm"]),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _reachable(port), 30, "relay")
        return measure(f"http://127.0.0.1:{port}/", proc.pid)
    finally:
        stop_process(proc)


def line(tag: str, r: dict[str, Any]) -> None:
    print(
        f"{r['t']} {tag:32s} {r['req_s']:9.0f} req/s p50 {r['p50_ms']:6.2f} p99 {r['p99_ms']:6.2f} "
        f"cpu {r.get('server_cpu_us_per_req')} us | c1 p50 {r['c1']['p50_ms'] * 1000:.0f} us",
        flush=True,
    )


def run(server: str, runtimes: list[str], rounds: int, out: Path) -> None:
    orvads: dict[str, Orvad] = {}
    bases: list[Path] = []
    results: dict[str, Any] = {"server": server, "runs": []}
    try:
        for variant in ["", *VARIANTS]:
            base = Path(tempfile.mkdtemp(prefix=f"orva-ablate-{server}-"))
            base.chmod(0o711)
            bases.append(base)
            orvads[variant] = Orvad(base, server, env={"ORVA_ABLATE": variant})
        urls: dict[tuple[str, str], str] = {}
        for variant, orvad in orvads.items():
            orvad.wait_ready()
            for rt in runtimes:
                fn = orvad.deploy(f"warm-{rt}", rt, HANDLERS[rt], WARM_POOL)
                urls[(variant, rt)] = f"{orvad.url}/fn/{fn['id']}/"
        for rt in runtimes:
            for rnd in range(rounds):
                if rnd == 0:
                    r = relay(server, rt)
                    line(f"{rt} relay floor", r)
                    results["runs"].append({"runtime": rt, "variant": "relay", **r})
                for variant in VARIANTS:
                    for which in ("", variant):
                        r = measure(urls[(which, rt)], orvads[which].pid)
                        line(f"{rt} r{rnd} {which or 'baseline'}", r)
                        results["runs"].append(
                            {
                                "runtime": rt,
                                "round": rnd,
                                "pair": variant,
                                "variant": which or "baseline",
                                **r,
                            }
                        )
                out.write_text(json.dumps(results, indent=1))
            r = relay(server, rt)
            line(f"{rt} relay floor", r)
            results["runs"].append({"runtime": rt, "variant": "relay", **r})
    finally:
        out.write_text(json.dumps(results, indent=1))
        for orvad in orvads.values():
            orvad.stop()
        for base in bases:
            shutil.rmtree(base, ignore_errors=True)


def table(path: Path) -> None:
    """Per runtime and variant: each pair's req/s, and the mean change per request (wall: 1/req/s; CPU)."""
    data = json.loads(path.read_text())
    runs = data["runs"]
    for rt in sorted({r["runtime"] for r in runs}):
        mine = [r for r in runs if r["runtime"] == rt]
        floor = [r for r in mine if r["variant"] == "relay"]
        print(
            f"\n{data['server']} {rt}: relay floor {[round(r['req_s']) for r in floor]} req/s, "
            f"{[r['server_cpu_us_per_req'] for r in floor]} us CPU"
        )
        print(
            "| variant | unchanged req/s | ablated req/s | change, us/req wall | change, us/req CPU | c1 p50 us |"
        )
        print("|---|---|---|---|---|---|")
        pairs: dict[str, dict[int, dict[str, Any]]] = {}
        for r in mine:
            if "pair" in r:
                side = "base" if r["variant"] == "baseline" else "var"
                pairs.setdefault(r["pair"], {}).setdefault(r["round"], {})[side] = r
        for variant, rounds in pairs.items():
            base = [rounds[k]["base"] for k in sorted(rounds)]
            var = [rounds[k]["var"] for k in sorted(rounds)]
            wall = [1e6 / b["req_s"] - 1e6 / v["req_s"] for b, v in zip(base, var, strict=True)]
            cpu = [
                b["server_cpu_us_per_req"] - v["server_cpu_us_per_req"]
                for b, v in zip(base, var, strict=True)
            ]

            def each(xs: list[float]) -> str:
                return " / ".join(f"{x:,.0f}" for x in xs)

            c1 = (
                statistics.mean(b["c1"]["p50_ms"] for b in base) * 1000,
                statistics.mean(v["c1"]["p50_ms"] for v in var) * 1000,
            )
            print(
                f"| {variant} | {each([b['req_s'] for b in base])} | {each([v['req_s'] for v in var])} | "
                f"{statistics.mean(wall):.0f} ({each(wall)}) | {statistics.mean(cpu):.0f} ({each(cpu)}) | "
                f"{c1[0]:.0f} -> {c1[1]:.0f} |"
            )


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        for name in sys.argv[2:]:
            table(Path(name))
    else:
        run(sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), Path(sys.argv[4]))
