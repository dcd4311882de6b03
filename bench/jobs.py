"""The jobs drain (issue 23): 1,000 queued jobs against direct invokes of the same pool, in the same run.

One Python function with the warm bench's pool (``WARM_POOL``). Rounds alternate, so a machine whose load
changes during the run moves both figures alike:

- direct: wrk loads ``/fn/<id>/`` for ``DIRECT_S`` seconds with 50 connections (the warm bench's load):
  the pool's full throughput through HTTP, invocations per second;
- drain: ``JOBS`` jobs are enqueued (16 clients) due at one moment a few seconds ahead, and the figure is
  ``JOBS`` / (the last job's ``updated_at`` - that moment): jobs per second, claim to finish, to the commit
  of the write that recorded the last job's end (its ``finished_at`` is the attempt's end, a few ms before).

The row's ratio is the median drain over the median direct figure.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness import PY_HANDLER, WARM_POOL, Orvad, raise_for_status, wait_until, wrk

JOBS = 1000
ROUNDS = 3
DIRECT_S = 3
HEAD_START_S = 6.0  # enqueueing 1,000 jobs takes ~1-2 s here; the jobs come due together after it


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _drain(orvad: Orvad, fn_id: str, n: int, done_before: int) -> dict[str, Any]:
    assert orvad.client is not None
    c = orvad.client
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=HEAD_START_S)
    stamp = at.isoformat().replace("+00:00", "Z")

    def enqueue(i: int) -> None:
        raise_for_status(
            c.post("/api/v1/jobs", json={"function": fn_id, "payload": {"i": i}, "scheduled_at": stamp})
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(enqueue, range(n)))
    if dt.datetime.now(dt.UTC) >= at:
        raise RuntimeError("enqueueing took longer than the head start")

    def drained() -> bool:
        counts = c.get("/api/v1/jobs", params={"function_id": fn_id, "limit": 1}).json()["counts"]
        if counts["dead"] or counts["failed"]:
            raise RuntimeError(f"jobs failed: {counts}")
        return bool(counts["succeeded"] == done_before + n)

    wait_until(drained, 120, "the jobs to drain", interval_s=0.25)
    last: dt.datetime | None = None
    params: dict[str, Any] = {"function_id": fn_id, "limit": 500}
    seen = 0
    while seen < n:  # newest first: this round's jobs are the first n
        page = c.get("/api/v1/jobs", params=params).json()
        for job in page["jobs"][: n - seen]:
            if job["attempts"] != 1:
                raise RuntimeError(f"job {job['id']} took {job['attempts']} attempts")
            end = _parse(
                job["updated_at"]
            )  # the write that recorded its end (finished_at: the attempt's end)
            last = end if last is None or end > last else last
        seen += len(page["jobs"])
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert last is not None
    drain_s = (last - at).total_seconds()
    return {"jobs": n, "drain_s": round(drain_s, 3), "jobs_s": round(n / drain_s, 1)}


def bench_jobs(orvad: Orvad, n: int = JOBS, rounds: int = ROUNDS) -> dict[str, Any]:
    fn = orvad.deploy("bench-jobs", "python", PY_HANDLER, WARM_POOL)
    url = f"{orvad.url}/fn/{fn['id']}/"
    wrk(url, 2)  # warm-up: the pool at max_warm
    direct: list[dict[str, Any]] = []
    drains: list[dict[str, Any]] = []
    for i in range(rounds):
        direct.append(wrk(url, DIRECT_S, server_pid=orvad.pid))
        drains.append(_drain(orvad, fn["id"], n, done_before=i * n))
        time.sleep(0.5)  # the last round's executions settle before wrk starts again
    direct_s = statistics.median(r["req_s"] for r in direct)
    drain_s = statistics.median(r["jobs_s"] for r in drains)
    return {
        "pool": WARM_POOL,
        "direct_invokes": {"rounds": direct, "median_req_s": round(direct_s, 1)},
        "jobs_drain": {"rounds": drains, "median_jobs_s": round(drain_s, 1)},
        "ratio": round(drain_s / direct_s, 3) if direct_s else None,
    }


__all__ = ["bench_jobs"]
