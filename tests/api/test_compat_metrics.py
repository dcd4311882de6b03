"""The Go Orva's metrics, as its Grafana dashboards and scripts read them (issue 19): Prometheus series
labelled `function_id` under the original's names, `GET /metrics` at the root (a key, unless
ORVA_METRICS_PUBLIC=true), and `metrics.json` with the original's blocks beside today's fields."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

PY = "import time\n\ndef handler(event, context):\n    time.sleep(0.002)\n    return {'ok': True}\n"
MIB = 1024 * 1024
# the Go original's per-function and global names (counters with _total)
GO_PER_FUNCTION = (
    "orva_invocations_total",
    "orva_cold_starts_total",
    "orva_warm_hits_total",
    "orva_invocation_duration_ms_count",
    "orva_pool_idle",
    "orva_pool_busy",
    "orva_pool_spawned_total",
    "orva_pool_killed_total",
    "orva_pool_scale_events_total",
    "orva_pool_rate_ewma",
    "orva_pool_latency_ewma_ms",
    "orva_pool_max_dynamic",
    "orva_pool_target_concurrency",
)
GO_GLOBAL = (
    "orva_builds_total",
    "orva_build_errors_total",
    "orva_active_requests",
    "orva_sandbox_active",
    "orva_sandbox_total",
    "orva_sandbox_spawn_duration_ms_count",
    "orva_host_mem_total_bytes",
    "orva_host_mem_available_bytes",
    "orva_host_mem_reserved_bytes",
)


def _samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert found, f"no {name} {labels}"
    return sum(found)


def _deployed(c: httpx.Client, name: str, code: str = PY) -> dict[str, Any]:
    fn = create_function(c, name)
    assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
    return fn


def _invoke(c: httpx.Client, fn: dict[str, Any], times: int) -> None:
    for _ in range(times):
        r = c.post(f"/fn/{fn['id']}", json={})
        assert r.status_code == 200 and r.json() == {"ok": True}, r.text


def test_prometheus_has_function_id_series_under_the_go_names(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _deployed(c, "compat_metrics_prom")
        _invoke(c, fn, 3)
        ids = {"function": fn["name"], "function_id": fn["id"]}
        # the autoscaler smooths arrivals once a second: its rate shows up after the next tick
        wait_for(
            lambda: _value(_samples(c.get("/metrics").text), "orva_pool_rate_ewma", **ids) > 0,
            10,
            "the pool's rate_ewma to see the invocations",
        )
        root = c.get("/metrics")
        api = c.get("/api/v1/system/metrics")
    for r in (root, api):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4"), (
            r.text
        )
    samples = _samples(root.text)
    # the same exposition at both paths (values such as host memory move between the two scrapes)
    assert {(s.name, tuple(sorted(s.labels))) for s in samples} == {
        (s.name, tuple(sorted(s.labels))) for s in _samples(api.text)
    }

    # Prometheus refuses a whole scrape that declares one name twice: ours and the Go names live side by side
    declared = [line.split()[2] for line in root.text.splitlines() if line.startswith("# TYPE ")]
    assert len(declared) == len(set(declared)), sorted(n for n in declared if declared.count(n) > 1)
    # every per-function series carries function_id beside function
    per_function = [s for s in samples if "function" in s.labels]
    assert per_function and all(s.labels.get("function_id") for s in per_function), {
        s.name for s in per_function if not s.labels.get("function_id")
    }
    for name in GO_PER_FUNCTION:
        _value(samples, name, function_id=fn["id"])
    for name in GO_GLOBAL:
        _value(samples, name)
    for name in ("orva_invocations_total", "orva_warm_hits_total", "orva_build_errors_total"):
        assert f"# TYPE {name} counter" in root.text, name
    assert "# TYPE orva_invocation_duration_ms histogram" in root.text
    assert "orva_invocation_duration_ms{quantile=" not in root.text  # no summary beside the histogram

    # real values: this function's three invocations
    assert _value(samples, "orva_invocations_total", status="success", **ids) == 3
    cold = _value(samples, "orva_cold_starts_total", **ids)
    assert cold + _value(samples, "orva_warm_hits_total", **ids) == 3
    assert _value(samples, "orva_invocation_duration_ms_count", **ids) == 3
    assert _value(samples, "orva_invocation_duration_ms_bucket", le="+Inf", **ids) == 3
    assert _value(samples, "orva_invocation_duration_ms_bucket", le="1", **ids) == 0  # each slept 2 ms
    assert _value(samples, "orva_invocation_duration_ms_sum", **ids) >= 3 * 2.0
    assert _value(samples, "orva_invocation_duration_ms_sum", **ids) == 1000 * _value(
        samples, "orva_invocation_duration_seconds_sum", **ids
    )
    assert _value(samples, "orva_pool_spawned_total", **ids) >= 1
    assert _value(samples, "orva_pool_idle", **ids) + _value(samples, "orva_pool_busy", **ids) >= 1
    assert _value(samples, "orva_pool_latency_ewma_ms", **ids) >= 2.0
    assert _value(samples, "orva_pool_target_concurrency", **ids) == 1
    assert _value(samples, "orva_pool_max_dynamic", **ids) >= 1
    assert {
        s.labels["direction"]
        for s in samples
        if s.name == "orva_pool_scale_events_total" and s.labels["function_id"] == fn["id"]
    } == {"up", "down"}
    assert _value(samples, "orva_sandbox_active") >= 1 and _value(samples, "orva_sandbox_total") >= 1
    assert _value(samples, "orva_sandbox_spawn_duration_ms_count") == _value(samples, "orva_sandbox_total")
    assert (
        _value(samples, "orva_host_mem_total_bytes") >= _value(samples, "orva_host_mem_available_bytes") > 0
    )
    assert _value(samples, "orva_host_mem_reserved_bytes") >= 128 * MIB  # this function's worker at least
    assert _value(samples, "orva_builds_total", status="succeeded") >= 1


def test_metrics_at_the_root_needs_a_read_key_by_default(orvad: Orvad) -> None:
    with orvad.client() as anonymous:
        r = anonymous.get("/metrics")
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED", r.text
        assert anonymous.get("/metrics", headers={"X-Orva-API-Key": "orva_" + "0" * 64}).status_code == 401
        assert anonymous.post("/metrics").status_code == 401
    with orvad.admin() as c:
        invoke_only = c.post("/api/v1/keys", json={"name": "metrics-invoke-only", "permissions": ["invoke"]})
        reader = c.post("/api/v1/keys", json={"name": "metrics-reader", "permissions": ["read"]})
        assert invoke_only.status_code == reader.status_code == 201, (invoke_only.text, reader.text)
    with orvad.client(invoke_only.json()["key"]) as c:
        r = c.get("/metrics")
        assert r.status_code == 403 and r.json()["error"]["details"]["required"] == "read", r.text
    with orvad.client(reader.json()["key"]) as c:
        r = c.get("/metrics")
        assert r.status_code == 200 and "# TYPE orva_invocations_total counter" in r.text
        assert c.post("/metrics").status_code == 403  # a read key writes nothing, here neither


def test_metrics_public_serves_the_root_without_a_key_and_nothing_else(
    make_orvad: Callable[..., Orvad],
) -> None:
    server = make_orvad(env={"ORVA_METRICS_PUBLIC": "true"})
    with server.client() as anonymous:
        r = anonymous.get("/metrics")
        assert r.status_code == 200, r.text
        names = {s.name for s in _samples(r.text)}
        assert {"orva_sandbox_active", "orva_host_mem_total_bytes", "orva_active_requests"} <= names
        assert anonymous.head("/metrics").status_code == 200
        # a stale or wrong key does not turn the public page into a 401 (a scraper's leftover header)
        assert anonymous.get("/metrics", headers={"X-Orva-API-Key": "orva_" + "0" * 64}).status_code == 200
        # only the root page is public: the API's metrics and everything else still need a key
        for path in ("/api/v1/system/metrics", "/api/v1/system/metrics.json", "/api/v1/functions"):
            assert anonymous.get(path).status_code == 401, path
        assert anonymous.post("/metrics").status_code == 401
        with server.admin() as c:
            spec = c.get("/api/v1/openapi.json").json()
        assert spec["paths"]["/metrics"]["get"]["x-orva-auth"] == "read"  # the default; the setting opens it


def _check_types(body: dict[str, Any]) -> None:
    assert type(body["uptime_seconds"]) is int and body["uptime_seconds"] >= 0
    assert type(body["active_requests"]) is int and body["active_requests"] >= 0
    blocks = {
        "host": ("num_cpu", "mem_total_mb", "mem_available_mb", "mem_reserved_mb"),
        "totals": ("invocations", "cold_starts", "warm_hits", "builds", "build_errors"),
        "sandbox": ("active", "total"),
        "build_queue": ("pending", "workers"),
    }
    for block, fields in blocks.items():
        assert set(fields) <= set(body[block]), block
        for field in fields:
            assert type(body[block][field]) is int and body[block][field] >= 0, (
                block,
                field,
                body[block][field],
            )
    assert isinstance(body["rates"]["cold_start_pct"], float) and 0 <= body["rates"]["cold_start_pct"] <= 100
    for row in body["pools"]:
        assert isinstance(row["function_name"], str) and isinstance(row["function_id"], str)
        assert type(row["dynamic_max"]) is int and type(row["target"]) is int
        assert isinstance(row["rate_ewma"], int | float) and isinstance(row["latency_ewma_ms"], int | float)
    # today's fields stay
    for field in (
        "invocations_total",
        "by_status",
        "rate_per_s",
        "error_rate",
        "cold_start_share",
        "latency_ms",
        "pools",
        "memory_reserved_bytes",
        "builds",
    ):
        assert field in body, field


def test_metrics_json_carries_the_go_blocks_with_measured_values(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _deployed(c, "compat_metrics_json")
        before = c.get("/api/v1/system/metrics.json").json()
        _check_types(before)
        _invoke(c, fn, 4)
        broken = create_function(c, "compat-metrics-broken")
        failed = wait_deployed(c, deploy_inline(c, broken["id"], "def handler(event:\n")["id"])
        assert failed["status"] == "failed", failed
        after = c.get("/api/v1/system/metrics.json").json()
        info = c.get("/api/v1/system/info").json()
    _check_types(after)
    totals, was = after["totals"], before["totals"]
    assert totals["invocations"] - was["invocations"] == 4
    assert totals["invocations"] == after["invocations_total"] == sum(after["by_status"].values())
    assert (
        totals["cold_starts"] + totals["warm_hits"] + after["by_status"].get("rejected", 0)
        == totals["invocations"]
    )
    assert totals["cold_starts"] + totals["warm_hits"] - was["cold_starts"] - was["warm_hits"] == 4
    assert totals["build_errors"] - was["build_errors"] == 1 and totals["builds"] - was["builds"] == 1
    assert after["rates"]["cold_start_pct"] == round(totals["cold_starts"] / totals["invocations"] * 100, 3)
    assert (
        after["uptime_seconds"] >= before["uptime_seconds"]
        and abs(after["uptime_seconds"] - info["uptime_s"]) <= 2
    )

    host = after["host"]
    assert host["num_cpu"] >= 1 and host["mem_total_mb"] >= host["mem_available_mb"] > 0
    assert host["mem_reserved_mb"] == after["memory_reserved_bytes"] // MIB >= 128
    assert after["sandbox"]["active"] == sum(row["workers"] for row in after["pools"]) >= 1
    assert after["sandbox"]["total"] >= after["sandbox"]["active"]
    # workers: ORVA_BUILD_CONCURRENCY, whose default is the number of cores
    assert after["build_queue"] == {"pending": after["builds"]["queued"], "workers": os.cpu_count() or 1}
    assert (
        after["active_requests"] == sum(row["inflight"] + row["queue_depth"] for row in after["pools"]) == 0
    )

    row = next(r for r in after["pools"] if r["function_id"] == fn["id"])
    assert row["function_name"] == row["function"] == fn["name"]
    assert row["target"] == 1 and 1 <= row["dynamic_max"] <= 16  # target_concurrency and max_warm by default
    assert row["latency_ewma_ms"] >= 2.0  # the handler sleeps 2 ms
