"""Where one warm invoke's time goes: py-spy samples orvad under wrk load, each sample is given to a stage.

A sample belongs to the stage of its innermost frame that is in a known module (json or asyncio
called from the pool's frame writer counts as the frame round trip, h11 called to send the
response as HTTP); samples in no stage but inside asyncio are the event loop's own work.
Only samples of the thread holding the GIL count (``--gil``): orvad's Python work is serial, so
that is the time an invoke costs; threads blocked in waitpid or a queue would otherwise show up.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness import PY_HANDLER, ROOT, WARM_POOL, Orvad, stop_process, wait_until

SAMPLE_RATE_HZ = 100
TOP_FRAMES = 15  # innermost functions listed: the candidates for the next optimisation
WRK_HEAD_START_S = 2  # the load settles before sampling starts

# (stage, frame substrings), tried in order on each frame, innermost frame first
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "HTTP parse and write (server, h11/httptools)",
        # Granian parses in Rust, on its own thread: only its Python side (granian/asgi.py) shows here
        ("/hypercorn/", "/h11/", "/uvicorn/", "httptools", "/h2/", "/wsproto/", "/granian/"),
    ),
    ("auth (guard)", ("/orvad/auth/",)),
    (
        "routing and function lookup",
        ("/starlette/routing.py", "/orvad/services/routing.py", "/orvad/services/functions.py"),
    ),
    ("middleware and framework", ("/orvad/http/middleware.py", "/orvad/http/app.py", "/starlette/")),
    ("frame round trip (worker pipes, framing)", ("/orvad/pool/worker.py", "/orvad/pool/protocol.py")),
    ("pool acquire and release", ("/orvad/pool/", "/orvad/invoke/limits.py")),
    (
        "record (execution row, metrics, events)",
        (
            "/orvad/store/",
            "/orvad/services/metrics.py",
            "/orvad/services/bus.py",
            "/prometheus_client/",
            "record_execution (",
            "/aiosqlite/",
            "/sqlite3/",
        ),
    ),
    (
        "invoke path (event, headers, response)",
        (
            "/orvad/invoke/",
            "/orvad/invoke/event.py",
            "/orvad/ids.py",
            "/orvad/clock.py",
            "/orvad/services/spawner.py",
        ),
    ),
)
EVENT_LOOP = "event loop (asyncio scheduling, I/O)"
OTHER = "other orvad and libraries"
EVENT_LOOP_MARKERS = ("/asyncio/", "/selectors.py")
LOOP_ENTRY_MARKERS = ("/asyncio/runners.py", "run_forever (")
STDLIB = sysconfig.get_paths()["stdlib"] + "/"  # orvad runs on this same interpreter


def loop_frames(frames: list[str]) -> list[str]:
    """The frames the event loop runs: what started the loop (uvicorn's ``Server.run`` calls
    ``asyncio.run``) sits below every sample and belongs to no request stage."""
    entries = [i for i, frame in enumerate(frames) if any(marker in frame for marker in LOOP_ENTRY_MARKERS)]
    return frames[entries[-1] :] if entries else frames


def stage_of(frames: list[str]) -> str:
    frames = loop_frames(frames)
    for frame in reversed(frames):
        for stage, markers in STAGES:
            if any(marker in frame for marker in markers):
                return stage
    if any(marker in frame for frame in frames for marker in EVENT_LOOP_MARKERS):
        return EVENT_LOOP
    return OTHER


def parse_raw(text: str) -> list[tuple[list[str], int]]:
    """py-spy's raw (collapsed) format: ``frame;frame;...;frame count`` per line, root first."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    """``func (path:line)`` with the path cut to its package (``hypercorn/protocol/h11.py``)."""
    func, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for anchor in ("site-packages/", f"{ROOT}/", STDLIB):
        path = path.split(anchor, 1)[-1]
    return f"{func} ({path})"


# orjson is compiled: its time shows as the innermost Python frame that called it
ORJSON_CALLERS = {
    ("encode", "/orvad/pool/protocol.py"),
    ("_loads", "/orvad/pool/protocol.py"),
    ("JsonFormatter.format", "/orvad/logs.py"),
}


def _calls_orjson(frame: str) -> bool:
    function, _, where = frame.partition(" (")
    return any(function == name and path in where for name, path in ORJSON_CALLERS)


def summarise(stacks: list[tuple[list[str], int]]) -> dict[str, Any]:
    by_stage: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    json_samples = 0
    for frames, count in stacks:
        by_stage[stage_of(frames)] += count
        by_leaf[short(frames[-1])] += count
        json_samples += count if any("/json/" in f for f in frames) or _calls_orjson(frames[-1]) else 0
    total = sum(by_stage.values())

    def share(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {
        "samples": total,
        "stages_pct": {stage: share(n) for stage, n in by_stage.most_common()},
        "json_any_stage_pct": share(json_samples),
        "top_self_pct": {leaf: share(n) for leaf, n in by_leaf.most_common(TOP_FRAMES)},
    }


def record_profile(pid: int, seconds: int, out: Path) -> None:
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        py_spy = Path(shutil.which("py-spy") or "py-spy")
    subprocess.run(
        [
            str(py_spy),
            "record",
            "--format",
            "raw",
            "--full-filenames",
            "--gil",
            "-r",
            str(SAMPLE_RATE_HZ),
            "-d",
            str(seconds),
            "-p",
            str(pid),
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=seconds + 60,
    )


def bench_profile(orvad: Orvad, seconds: int) -> dict[str, Any]:
    fn = orvad.deploy("profile-python", "python", PY_HANDLER, WARM_POOL)
    wait_until(lambda: orvad.pool(fn["id"])["workers"] >= WARM_POOL["min_warm"], 30, "warm workers")
    url = f"{orvad.url}/fn/{fn['id']}/"
    tmp = Path(tempfile.mkdtemp(prefix="orva-bench-profile-"))  # the raw profile is never kept
    load = subprocess.Popen(
        ["wrk", "-t2", "-c50", f"-d{seconds + 2 * WRK_HEAD_START_S}s", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(WRK_HEAD_START_S)
        record_profile(orvad.pid, seconds, tmp / "orvad.raw")
        summary = summarise(parse_raw((tmp / "orvad.raw").read_text()))
    finally:
        stop_process(load)
        shutil.rmtree(tmp, ignore_errors=True)
    gil_held = summary["samples"] / (SAMPLE_RATE_HZ * seconds)
    return {
        "method": f"py-spy record --gil at {SAMPLE_RATE_HZ} Hz for {seconds} s on orvad ({orvad.server}), "
        "wrk -c50 on one Python function",
        "gil_held_pct": round(100 * min(1.0, gil_held), 1),
        **summary,
    }
