"""The table: each figure beside its baseline and the target of issue 7, and whether it is met."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

GO_ORIGINAL_REQ_S = 962  # the Go original, one function, 2 CPUs (issue 7)
WARM_SHARE = 0.8  # of the bare hello's req/s
WARM_P99_FACTOR = 1.5  # of the bare hello's p99
COLD_P50_MS = {"python": 40, "node": 60}
DEPLOY_P50_MS = 300
ORVAD_IDLE_MB = 60
WORKER_PSS_MB = {"python": 8, "node": 12}
MANY_DELTA_MB = 40
MANY_P50_RATIO = 1.10
# issue 26: against the same run's relay floor (the same jailed workers behind the thinnest relay)
FLOOR_SHARE = 0.85  # of the floor's req/s
FLOOR_P99_FACTOR = 1.5  # of the floor's p99
FLOOR_C1_ADDED_US = 60  # orvad's p50 at one client (wrk -t1 -c1) above the floor's
COLD_P50_MS_ROUND_TWO = {"python": 20, "node": 40}
# key, name, times the Go original (Granian's: the fast extra's, as Uvicorn's)
SERVERS = (("warm", "Hypercorn", 2), ("warm_uvicorn", "Uvicorn", 5), ("warm_granian", "Granian", 5))


@dataclass(frozen=True)
class Row:
    what: str
    figure: str
    baseline: str = "-"
    target: str = "-"
    met: bool | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def latency(r: dict[str, Any]) -> str:
    return f"{r['req_s']:,.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"


def warm_rows(results: dict[str, Any]) -> list[Row]:
    rows = []
    for key, server, go_times in SERVERS:
        if key not in results:
            continue
        base = results[key]["baseline_starlette_hello"]
        for runtime in ("python", "node"):
            r = results[key][f"orva_{runtime}"]
            what = f"warm, {runtime.title()}, {server} (wrk -c50)"
            share = r["req_s"] / base["req_s"] if base["req_s"] else 0.0
            p99_factor = r["p99_ms"] / base["p99_ms"] if base["p99_ms"] else float("inf")
            go_target = go_times * GO_ORIGINAL_REQ_S
            rows += [
                Row(
                    f"{what}: throughput",
                    f"{latency(r)} ({share:.0%} of baseline)",
                    f"bare hello: {latency(base)}",
                    f">= {WARM_SHARE:.0%} of baseline",
                    share >= WARM_SHARE,
                ),
                Row(
                    f"{what}: p99",
                    f"{r['p99_ms']:.1f} ms ({p99_factor:.1f}x)",
                    f"{base['p99_ms']:.1f} ms",
                    f"<= {WARM_P99_FACTOR}x baseline",
                    p99_factor <= WARM_P99_FACTOR,
                ),
                Row(
                    f"{what}: vs the Go original",
                    f"{r['req_s'] / GO_ORIGINAL_REQ_S:.1f}x",
                    f"{GO_ORIGINAL_REQ_S} req/s",
                    f">= {go_times}x ({go_target:,} req/s)",
                    r["req_s"] >= go_target,
                ),
            ]
            if "server_cpu_us_per_req" in r and "server_cpu_us_per_req" in base:
                rows.append(
                    Row(
                        f"{what}: server CPU per request",
                        f"{r['server_cpu_us_per_req']:.0f} us (orvad)",
                        f"{base['server_cpu_us_per_req']:.0f} us (bare hello)",
                    )
                )
            floor = results[key].get(f"relay_floor_{runtime}")
            if floor is not None:  # the same jailed workers behind the thinnest relay: orvad's ceiling
                share = floor["req_s"] / base["req_s"] if base["req_s"] else 0.0
                cpu = (
                    f", {floor['server_cpu_us_per_req']:.0f} us CPU"
                    if "server_cpu_us_per_req" in floor
                    else ""
                )
                rows.append(
                    Row(
                        f"warm, {runtime.title()}, {server}: relay floor (the same jailed workers, the "
                        "thinnest relay, no orvad)",
                        f"{latency(floor)} ({share:.0%} of baseline{cpu})",
                        f"bare hello: {latency(base)}",
                    )
                )
                rows += floor_rows(what, r, floor)
        floor = results[key].get("http_floor_orva_shaped")
        if floor is not None:  # the server alone, answering with an Orva invoke's headers and no worker
            share = floor["req_s"] / base["req_s"] if base["req_s"] else 0.0
            cpu = f", {floor['server_cpu_us_per_req']:.0f} us CPU" if "server_cpu_us_per_req" in floor else ""
            rows.append(
                Row(
                    f"warm, {server}: HTTP floor of an Orva-shaped response (no worker, no orvad)",
                    f"{latency(floor)} ({share:.0%} of baseline{cpu})",
                    f"bare hello: {latency(base)}",
                )
            )
    return rows


def floor_rows(what: str, r: dict[str, Any], floor: dict[str, Any]) -> list[Row]:
    """Issue 26's targets: orvad against the relay floor of the same run (throughput, p99, one client)."""
    share = r["req_s"] / floor["req_s"] if floor["req_s"] else 0.0
    p99_factor = r["p99_ms"] / floor["p99_ms"] if floor["p99_ms"] else float("inf")
    rows = [
        Row(
            f"{what}: share of the relay floor",
            f"{r['req_s']:,.0f} req/s ({share:.0%})",
            f"relay floor: {floor['req_s']:,.0f} req/s",
            f">= {FLOOR_SHARE:.0%} of the floor",
            share >= FLOOR_SHARE,
        ),
        Row(
            f"{what}: p99 against the relay floor's",
            f"{r['p99_ms']:.1f} ms ({p99_factor:.1f}x)",
            f"relay floor: {floor['p99_ms']:.1f} ms",
            f"<= {FLOOR_P99_FACTOR}x the floor's",
            p99_factor <= FLOOR_P99_FACTOR,
        ),
    ]
    if "c1" in r and "c1" in floor:
        added_us = (r["c1"]["p50_ms"] - floor["c1"]["p50_ms"]) * 1000
        rows.append(
            Row(
                f"{what.replace('wrk -c50', 'wrk -t1 -c1')}: p50 at one client",
                f"{r['c1']['p50_ms'] * 1000:.0f} us ({added_us:+.0f} us)",
                f"relay floor: {floor['c1']['p50_ms'] * 1000:.0f} us",
                f"<= floor + {FLOOR_C1_ADDED_US} us",
                added_us <= FLOOR_C1_ADDED_US,
            )
        )
    return rows


def cold_rows(results: dict[str, Any]) -> list[Row]:
    rows = []
    for runtime, r in results.get("cold_start", {}).items():
        limit = COLD_P50_MS[runtime]
        rows.append(
            Row(
                f"cold start, {runtime.title()} ({r['samples']} samples)",
                f"p50 {r['cold_p50_ms']:.1f} ms, p90 {r['cold_p90_ms']:.1f} ms",
                f"bare jail start: p50 {r['bare_jail_p50_ms']:.1f} ms, p90 {r['bare_jail_p90_ms']:.1f} ms"
                + (
                    f"; spare jails off: p50 {r['usual_p50_ms']:.1f} ms, p90 {r['usual_p90_ms']:.1f} ms"
                    if "usual_p50_ms" in r
                    else ""
                ),
                f"p50 <= {limit} ms; round two (issue 26) <= {COLD_P50_MS_ROUND_TWO[runtime]} ms",
                r["cold_p50_ms"] <= COLD_P50_MS_ROUND_TWO[runtime],
            )
        )
    return rows


def burst_rows(results: dict[str, Any]) -> list[Row]:
    r = results.get("burst")
    if not r:
        return []
    return [
        Row(
            f"burst of {r['requests']} on an idle function (1 warm worker)",
            f"{r['failures']} failed, all answered in {r['all_answered_ms']:,.0f} ms, p50 {r['p50_ms']:.0f} ms, "
            f"p99 {r['p99_ms']:.0f} ms, {r['workers_started']} workers started",
            target="0 failures",
            met=r["failures"] == 0,
        )
    ]


def deploy_rows(results: dict[str, Any]) -> list[Row]:
    r = results.get("deploy")
    if not r:
        return []
    p50 = r["deploy_to_first_invoke_p50_ms"]
    rows = [
        Row(
            f"deploy to first invoke, no dependencies ({r['deploys']} deploys)",
            f"p50 {p50:.0f} ms, p90 {r['deploy_to_first_invoke_p90_ms']:.0f} ms",
            target=f"p50 <= {DEPLOY_P50_MS} ms",
            met=p50 <= DEPLOY_P50_MS,
        )
    ]
    at_once = r.get("at_once")
    if at_once:
        rows.append(
            Row(
                f"{at_once['functions']} functions deployed at once: all answering",
                f"{at_once['all_answered_ms']:,.0f} ms (each: p50 {at_once['first_answer_p50_ms']:.0f} ms, "
                f"p90 {at_once['first_answer_p90_ms']:.0f} ms)",
                f"one deploy alone: p50 {p50:.0f} ms",
            )
        )
    return rows


def memory_rows(results: dict[str, Any]) -> list[Row]:
    r = results.get("memory")
    if not r:
        return []
    rows = [
        Row(
            "orvad RSS, idle (nothing deployed)",
            f"{r['orvad_idle_rss_mb']:.1f} MB",
            target=f"<= {ORVAD_IDLE_MB} MB",
            met=r["orvad_idle_rss_mb"] <= ORVAD_IDLE_MB,
        )
    ]
    for runtime, limit in WORKER_PSS_MB.items():
        w = r[runtime]
        rows.append(
            Row(
                f"idle warm {runtime.title()} worker, PSS with nsjail ({w['workers_running']} running)",
                f"{w['worker_pss_with_jail_mb']:.1f} MB (worker {w['worker_pss_mb']:.1f} + nsjail "
                f"{w['jail_pss_mb']:.1f}; worker RSS {w['worker_rss_mb']:.1f})",
                target=f"<= {limit} MB",
                met=w["worker_pss_with_jail_mb"] <= limit,
            )
        )
    return rows


def many_rows(results: dict[str, Any]) -> list[Row]:
    r = results.get("many")
    if not r:
        return []
    n, alone, crowded = r["functions"], r["warm_alone"], r["warm_with_all"]
    ratio = r["warm_p50_ratio"]
    return [
        Row(
            f"orvad RSS with {n} deployed idle functions",
            f"{r['orvad_rss_after_mb']:.1f} MB "
            f"(+{r['orvad_rss_delta_mb']:.1f} MB; {n - 1} deployed in {r['deploy_s']:.0f} s)",
            f"with 1 function: {r['orvad_rss_before_mb']:.1f} MB",
            f"<= +{MANY_DELTA_MB} MB",
            r["orvad_rss_delta_mb"] <= MANY_DELTA_MB,
        ),
        Row(
            f"warm p50 with {n} functions ({r['method']})",
            f"{crowded['p50_ms']:.2f} ms, {crowded['req_s']:,.0f} req/s ({ratio:.2f}x)",
            f"with 1 function: {alone['p50_ms']:.2f} ms, {alone['req_s']:,.0f} req/s",
            f"<= {MANY_P50_RATIO:.2f}x",
            ratio is not None and ratio <= MANY_P50_RATIO,
        ),
    ]


def profiles(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (server, results[key])
        for key, server in (
            ("profile", "Hypercorn"),
            ("profile_uvicorn", "Uvicorn"),
            ("profile_granian", "Granian"),
        )
        if key in results
    ]


def profile_rows(results: dict[str, Any]) -> list[Row]:
    """One row per stage, the servers side by side."""
    found = profiles(results)
    if not found:
        return []

    def shares(pick: Callable[[dict[str, Any]], float]) -> str:
        return ", ".join(f"{server} {pick(r):.1f}%" for server, r in found)

    stages = dict.fromkeys(
        stage for _, r in found for stage in r["stages_pct"]
    )  # in order of the first server
    return [
        Row("orvad's Python busy (GIL held) under wrk -c50", shares(lambda r: r["gil_held_pct"])),
        *(
            Row(f"warm invoke time: {stage}", shares(lambda r, s=stage: r["stages_pct"].get(s, 0.0)))
            for stage in stages
        ),
        Row("warm invoke time: json (inside the stages above)", shares(lambda r: r["json_any_stage_pct"])),
    ]


def kv_rows(results: dict[str, Any]) -> list[Row]:
    """A KV get (and put) from a handler, sandbox to orvad and back (issue 23: get under 0.5 ms p50)."""
    rows = []
    for runtime, r in results.get("kv", {}).items():
        get, put = r["get"], r["put"]
        rows.append(
            Row(
                f"KV get from a {runtime} handler, p50 / p99",
                f"{get['p50_ms']} / {get['p99_ms']} ms",
                target="p50 < 0.5 ms",
                met=get["p50_ms"] < 0.5,
            )
        )
        rows.append(
            Row(f"KV put from a {runtime} handler, p50 / p99", f"{put['p50_ms']} / {put['p99_ms']} ms")
        )
    return rows


ROW_BUILDERS: tuple[Callable[[dict[str, Any]], list[Row]], ...] = (
    warm_rows,
    cold_rows,
    burst_rows,
    deploy_rows,
    memory_rows,
    many_rows,
    profile_rows,
    kv_rows,
)


def table_rows(results: dict[str, Any]) -> list[Row]:
    return [row for build in ROW_BUILDERS for row in build(results)]


def render_table(rows: list[Row]) -> str:
    """A Markdown table (readable in a terminal, ready for docs/PERFORMANCE.md)."""
    verdict = {True: "yes", False: "**no**", None: "-"}
    lines = ["| what | orvad | baseline (same run) | target | met? |", "|---|---|---|---|---|"]
    lines += [f"| {r.what} | {r.figure} | {r.baseline} | {r.target} | {verdict[r.met]} |" for r in rows]
    return "\n".join(lines)


def render_hottest(results: dict[str, Any], count: int = 8) -> str:
    """The innermost functions that took most samples: the next optimisation's candidates."""
    lines = []
    for server, r in profiles(results):
        lines.append(f"hottest functions under wrk, {server} (% of samples, self):")
        lines += [f"  {share:5.1f}%  {frame}" for frame, share in list(r["top_self_pct"].items())[:count]]
    return "\n".join(lines)
