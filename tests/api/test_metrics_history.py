"""GET /api/v1/system/metrics/history (issue 18.14): orvad samples its metrics snapshot every interval
into a ring of the last hour, in memory; the points are ordered, bounded and follow real invocations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from orvad.services.metrics import Metrics
from orvad.services.metrics_history import MetricsHistory
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

SAMPLE_S = 0.2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_ring_keeps_one_hour_oldest_first_and_answers_the_last_minutes() -> None:
    clock, metrics = FakeClock(), Metrics()
    history = MetricsHistory(metrics.snapshot, 5.0, clock=clock)
    assert history.points(60) == [] and history.capacity == 720  # 60 min of 5 s samples
    for _ in range(1000):  # 83 minutes of samples
        clock.now += 5.0
        history.sample()
    every = history.points(60)
    assert len(every) == 720  # bounded: the oldest 280 samples fell out
    assert [p["t"] for p in every] == [clock.now - 5.0 * (719 - i) for i in range(720)]  # oldest first
    last10 = history.points(10)
    assert len(last10) == 121 and last10 == every[-121:]  # from now - 600 s to now, both ends included
    assert history.points(1)[0]["t"] == clock.now - 60


def test_a_point_reflects_the_invocations_of_the_minute_before_it() -> None:
    clock = FakeClock()
    pools = [{"function": "a", "workers": 2}, {"function": "b", "workers": 1}]
    metrics = Metrics(pool_rows=lambda: pools)
    history = MetricsHistory(metrics.snapshot, 5.0, clock=clock)
    history.sample()
    for i in range(10):
        metrics.observe_invocation("a", "error" if i < 2 else "success", 0.010 * (i + 1), i < 5, 0.0)
    clock.now += 5.0
    history.sample()
    quiet, busy = history.points(10)
    assert quiet["rate_per_s"] == 0 and quiet["latency_ms"]["p50"] is None
    assert busy["rate_per_s"] > 0 and busy["error_rate"] == 0.2 and busy["cold_start_share"] == 0.5
    assert busy["latency_ms"] == {"p50": 60.0, "p95": 100.0, "p99": 100.0}
    assert busy["active_workers"] == 3 and busy["t"] - quiet["t"] == 5.0


def _history(c: httpx.Client, **params: Any) -> dict[str, Any]:
    r = c.get("/api/v1/system/metrics/history", params=params)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.sandbox
def test_orvad_samples_real_invocations_in_order(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_METRICS_SAMPLE_S": str(SAMPLE_S)})
    with server.admin() as c:
        assert _history(c)["interval_s"] == SAMPLE_S
        wait_for(lambda: len(_history(c)["points"]) >= 3, 30, "three samples")
        before = _history(c)["points"]
        assert all(p["rate_per_s"] == 0 and p["active_workers"] == 0 for p in before)  # nothing invoked yet
        fn = create_function(c, "history-fn")
        assert (
            wait_deployed(c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return 1\n")["id"])["status"]
            == "succeeded"
        )
        for _ in range(5):
            assert c.post("/fn/history-fn", json={}).status_code == 200
        seen: list[dict[str, Any]] = []

        def sampled_the_calls() -> bool:
            seen[:] = _history(c, minutes=1)["points"]
            return any(
                p["rate_per_s"] > 0 and p["latency_ms"]["p50"] is not None and p["active_workers"] >= 1
                for p in seen
            )

        wait_for(sampled_the_calls, 30, "a point with the five invocations")
        times = [p["t"] for p in seen]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert all(
            later - earlier >= SAMPLE_S * 0.9 for earlier, later in zip(times, times[1:], strict=False)
        )
        assert set(seen[-1]) == {
            "t",
            "rate_per_s",
            "error_rate",
            "cold_start_share",
            "latency_ms",
            "active_workers",
        }
        for bad in ("0", "61", "ten"):
            r = c.get("/api/v1/system/metrics/history", params={"minutes": bad})
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "minutes"
        invoke_only = c.post("/api/v1/keys", json={"name": "inv", "permissions": ["invoke"]}).json()["key"]
        reader = c.post("/api/v1/keys", json={"name": "rd", "permissions": ["read"]}).json()["key"]
    with server.client() as anonymous:
        assert anonymous.get("/api/v1/system/metrics/history").status_code == 401
    with server.client(invoke_only) as c:
        assert c.get("/api/v1/system/metrics/history").status_code == 403
    with server.client(reader) as c:
        assert c.get("/api/v1/system/metrics/history").status_code == 200


def test_the_default_interval_is_five_seconds(orvad: Orvad) -> None:
    with orvad.admin() as c:
        body = _history(c, minutes=60)
    assert body["interval_s"] == 5.0 and isinstance(body["points"], list)
