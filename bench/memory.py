"""Memory: orvad idle, and the PSS of one idle warm worker (nsjail supervisor included) with N running."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from harness import (
    HANDLERS,
    Orvad,
    children_of,
    cmdline,
    descendants_of,
    mb,
    pss_kb,
    rss_kb,
    wait_until,
)

from orvad.services.spawner import ARGV, SPARE_ARGV

ADAPTER = {language: argv[-1].encode() for language, argv in ARGV.items()}  # how a worker's command line ends
SPARE = {
    language: argv[-1].encode() for language, argv in SPARE_ARGV.items()
}  # a spare's (orvad/services/spares.py)
SETTLE_S = 2.0  # let freshly started workers finish their start-up allocations


def jails_of(orvad: Orvad, runtime: str) -> list[int]:
    """The nsjail supervisors orvad started for ``runtime``'s workers (each is a direct child): those started the
    usual way, and spares handed a function (a waiting spare's /code folder is empty)."""
    return [
        pid
        for pid in children_of(orvad.pid)
        if b"nsjail" in cmdline(pid)
        and (ADAPTER[runtime] in cmdline(pid) or (SPARE[runtime] in cmdline(pid) and handed_over(pid)))
    ]


def handed_over(jail: int) -> bool:
    code = next((a[: -len(b":/code")] for a in cmdline(jail).split(b"\0") if a.endswith(b":/code")), b"")
    try:
        return any(Path(code.decode()).iterdir())
    except OSError:
        return False


def worker_memory(jail: int) -> dict[str, int]:
    """PSS of one worker: its nsjail supervisor plus everything running inside the jail."""
    inside = descendants_of(jail)
    return {
        "jail_pss_kb": pss_kb(jail),
        "inside_pss_kb": sum(pss_kb(p) for p in inside),
        "inside_rss_kb": sum(rss_kb(p) for p in inside),
        "jail_rss_kb": rss_kb(jail),
    }


def measure_workers(orvad: Orvad, runtime: str, count: int) -> dict[str, Any]:
    """Run ``count`` idle warm workers of one function, then the median per-worker memory."""
    pool = {"min_warm": count, "max_warm": count, "scale_to_zero": False}
    fn = orvad.deploy(f"mem-{runtime}", runtime, HANDLERS[runtime], pool)
    try:
        wait_until(
            lambda: len(jails_of(orvad, runtime)) >= count and orvad.pool(fn["id"])["workers"] >= count,
            120,
            f"{count} warm {runtime} workers",
            interval_s=0.2,
        )
        time.sleep(SETTLE_S)
        rows = [worker_memory(pid) for pid in jails_of(orvad, runtime)]
        orvad_rss = rss_kb(orvad.pid)
    finally:
        orvad.delete(fn["id"])  # its pool drains: the next runtime is measured alone
        wait_until(lambda: not jails_of(orvad, runtime), 60, f"{runtime} workers to stop", interval_s=0.2)

    def median(field: str) -> float:
        return mb(statistics.median(r[field] for r in rows))

    with_jail = [r["jail_pss_kb"] + r["inside_pss_kb"] for r in rows]
    return {
        "workers_running": len(rows),
        "worker_pss_with_jail_mb": mb(statistics.median(with_jail)),
        "worker_pss_mb": median("inside_pss_kb"),
        "worker_rss_mb": median("inside_rss_kb"),
        "jail_pss_mb": median("jail_pss_kb"),
        "jail_rss_mb": median("jail_rss_kb"),
        "orvad_rss_mb": mb(orvad_rss),
    }


def bench_memory(orvad: Orvad, idle_rss_kb: int, workers: int) -> dict[str, Any]:
    rows: dict[str, Any] = {"orvad_idle_rss_mb": mb(idle_rss_kb), "workers_per_runtime": workers}
    for runtime in ("python", "node"):
        figures = measure_workers(orvad, runtime, workers)
        rows[runtime] = figures
        # the keys of earlier result files
        rows[f"{runtime}_worker_rss_mb"] = figures["worker_rss_mb"]
        rows[f"{runtime}_worker_pss_mb"] = figures["worker_pss_mb"]
    rows["orvad_rss_mb"] = rows["python"]["orvad_rss_mb"]
    rows["nsjail_supervisor_rss_mb"] = rows["python"]["jail_rss_mb"]
    return rows
