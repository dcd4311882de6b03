"""Many functions: deploys at once, and what hundreds of deployed idle functions cost orvad."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from harness import (
    PY_HANDLER,
    Orvad,
    bounded,
    cpu_seconds,
    create_function,
    deploy_function,
    deploy_inline,
    first_answer,
    handler_saying,
    mb,
    ms_since,
    pct,
    rss_kb,
    wait_until,
    wrk,
)

DEPLOY_CONCURRENCY = 8  # API calls in flight: well under the build backlog, and kind to 2 shared cores
IDLE_POOL = {"min_warm": 0, "scale_to_zero": True}  # deployed, but no worker until invoked
PROBE_ROUNDS = 3
PROBE_POOL = {"min_warm": 1, "max_warm": 2, "scale_to_zero": False}


def bench_deploy_at_once(orvad: Orvad, count: int) -> dict[str, Any]:
    """``count`` functions deployed in one go: time until every one has answered its first invoke."""

    async def run() -> tuple[float, list[float]]:
        async with orvad.api(max_connections=2 * count) as api:
            fns = await asyncio.gather(
                *(create_function(api, f"at-once-{i}", "python") for i in range(count))
            )
            start = time.perf_counter()

            async def deploy_and_answer(i: int, fn: dict[str, Any]) -> float:
                await deploy_inline(api, fn["id"], handler_saying(f"at-once-{i}"))
                await first_answer(api, fn["id"], f"at-once-{i}")
                return ms_since(start)

            each = await asyncio.gather(*(deploy_and_answer(i, fn) for i, fn in enumerate(fns)))
            return ms_since(start), list(each)

    total, each = asyncio.run(run())
    return {
        "functions": count,
        "all_answered_ms": round(total, 1),
        "first_answer_p50_ms": pct(each, 0.5),
        "first_answer_p90_ms": pct(each, 0.9),
    }


def deploy_idle_functions(orvad: Orvad, count: int) -> float:
    """Deploy ``count`` dependency-free functions with no warm worker; seconds it took."""

    async def run() -> None:
        async with orvad.api(max_connections=DEPLOY_CONCURRENCY) as api:
            await bounded(
                DEPLOY_CONCURRENCY,
                [
                    deploy_function(api, f"many-{i:04d}", "python", handler_saying(f"fn-{i}"), IDLE_POOL)
                    for i in range(count)
                ],
            )

    start = time.perf_counter()
    asyncio.run(run())
    return round(time.perf_counter() - start, 1)


SETTLED_CPU_SHARE = 0.05  # orvad's CPU over half a second, below which the deploys' after-work is done


def wait_settled(orvad: Orvad) -> None:
    """Until the deploys' aftermath (builds, their log rows, old versions' clean-up) is over: no
    build running or queued, and orvad nearly idle, so the crowded figure is about the functions
    being deployed, not about deploys still finishing."""

    def quiet() -> bool:
        builds = (
            orvad.client.get("/api/v1/system/metrics.json").json().get("builds", {}) if orvad.client else {}
        )
        if builds.get("running") or builds.get("queued"):
            return False
        before = cpu_seconds(orvad.pid)
        time.sleep(0.5)
        return cpu_seconds(orvad.pid) - before < 0.5 * SETTLED_CPU_SHARE

    wait_until(quiet, 60, "orvad to settle after the deploys", interval_s=0.1)


def probe_latency(url: str, seconds: int) -> dict[str, Any]:
    """Unloaded warm latency on one connection: the median of a few rounds (these machines are noisy)."""
    wrk(url, 1, connections=1)  # warm-up
    rounds = sorted(
        (wrk(url, max(3, seconds // 2), connections=1) for _ in range(PROBE_ROUNDS)),
        key=lambda r: r["p50_ms"],
    )
    return {**rounds[len(rounds) // 2], "rounds_p50_ms": [r["p50_ms"] for r in rounds]}


def bench_many(orvad: Orvad, count: int, seconds: int) -> dict[str, Any]:
    probe = orvad.deploy("many-probe", "python", PY_HANDLER, PROBE_POOL)
    wait_until(lambda: orvad.pool(probe["id"])["workers"] >= 1, 30, "the probe's warm worker")
    url = f"{orvad.url}/fn/{probe['id']}/"
    alone = probe_latency(url, seconds)
    rss_before = rss_kb(orvad.pid)
    deploy_s = deploy_idle_functions(orvad, count)
    wait_settled(orvad)
    rss_after = rss_kb(orvad.pid)
    crowded = probe_latency(url, seconds)
    return {
        "functions": 1 + count,
        "deploy_s": deploy_s,
        "method": "wrk -t1 -c1, one warm worker",
        "orvad_rss_before_mb": mb(rss_before),
        "orvad_rss_after_mb": mb(rss_after),
        "orvad_rss_delta_mb": mb(rss_after - rss_before),
        "warm_alone": alone,
        "warm_with_all": crowded,
        "warm_p50_ratio": round(crowded["p50_ms"] / alone["p50_ms"], 3) if alone["p50_ms"] else None,
        "workers_running": sum(row["workers"] for row in orvad.pools()),
    }
