"""The invoke path's metrics are plain numbers exposed at scrape time: what they expose must be
what prometheus_client's own Counter and Histogram would have, sample for sample."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from orvad.services.metrics import LATENCY_BUCKETS, Metrics

VALUES = [0.0, 0.001, 0.0011, 0.004, 0.25, 0.2500001, 7.0, 30.0, 61.0, 0.0009]


def samples(text: bytes, name: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text.decode())
        if family.name == name
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_invocation_metrics_match_prometheus_client_sample_for_sample() -> None:
    metrics = Metrics()
    reference = CollectorRegistry()
    # every per-function series carries function_id (the Go original's label) beside function
    invocations = Counter("orva_invocations", "x", ["function", "function_id", "status"], registry=reference)
    cold = Counter("orva_cold_starts", "x", ["function", "function_id"], registry=reference)
    duration = Histogram(
        "orva_invocation_duration_seconds",
        "x",
        ["function", "function_id"],
        buckets=LATENCY_BUCKETS,
        registry=reference,
    )
    queue = Histogram("orva_queue_wait_seconds", "x", buckets=LATENCY_BUCKETS, registry=reference)
    for i, seconds in enumerate(VALUES):
        function, status, is_cold = ("a" if i % 3 else "b"), ("success" if i % 4 else "error"), i % 5 == 0
        function_id = f"id-{function}"
        metrics.observe_invocation(function, status, seconds, is_cold, seconds / 2, function_id)
        invocations.labels(function, function_id, status).inc()
        duration.labels(function, function_id).observe(seconds)
        queue.observe(seconds / 2)
        cold.labels(
            function, function_id
        )  # a function's cold starts are exposed from its first invocation, 0 too
        if is_cold:
            cold.labels(function, function_id).inc()
    ours, theirs = metrics.prometheus_text(), generate_latest(reference)
    for name in (
        "orva_invocations",
        "orva_cold_starts",
        "orva_invocation_duration_seconds",
        "orva_queue_wait_seconds",
    ):
        assert samples(ours, name) == samples(theirs, name), name
    snapshot = metrics.snapshot()
    assert snapshot["invocations_total"] == len(VALUES)
    assert snapshot["by_status"] == {"success": 7, "error": 3}
