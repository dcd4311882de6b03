"""The autoscaler's pure decision: bounds, panic, Little's law, scale to zero."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orvad.pool.autoscaler import Samples, decide


def _decide(samples: Samples, **kw):  # type: ignore[no-untyped-def]
    base = dict(
        current=1,
        min_warm=1,
        max_warm=16,
        target_concurrency=1,
        mean_latency_s=0.01,
        idle_for_s=0.0,
        idle_ttl_s=300.0,
        scale_to_zero=True,
        now=1000.0,
    )
    return decide(samples, **{**base, **kw})


@given(
    st.lists(st.floats(0, 200), max_size=60),
    st.lists(st.integers(0, 10_000), max_size=60),
    st.integers(0, 16),
    st.integers(0, 8),
    st.integers(1, 32),
    st.integers(1, 10),
    st.booleans(),
    st.floats(0, 1000),
)
def test_desired_stays_within_bounds(conc, arrivals, current, min_warm, max_extra, target, stz, idle) -> None:  # type: ignore[no-untyped-def]
    samples = Samples()
    for c, a in zip(conc, arrivals, strict=False):
        samples.add(c, a)
    max_warm = min_warm + max_extra
    d = _decide(
        samples,
        current=current,
        min_warm=min_warm,
        max_warm=max_warm,
        target_concurrency=target,
        scale_to_zero=stz,
        idle_for_s=idle,
    )
    assert 0 <= d.desired <= max_warm
    if not (stz and idle >= 300):
        assert d.desired >= min_warm


def test_steady_concurrency_sizes_the_pool() -> None:
    samples = Samples()
    for _ in range(60):
        samples.add(6.0, 600)
    assert _decide(samples, current=6, target_concurrency=2).desired == 3
    assert _decide(samples, current=6, target_concurrency=1).desired == 6


def test_a_burst_panics_and_scales_at_once() -> None:
    samples = Samples()
    for _ in range(54):
        samples.add(1.0, 10)
    for _ in range(6):
        samples.add(12.0, 1200)
    d = _decide(samples, current=2)
    assert d.panic and d.desired >= 12


def test_littles_law_floor() -> None:
    samples = Samples()
    for _ in range(10):
        samples.add(0.5, 400)  # 400 req/s x 20 ms = 8 in flight on average
    assert _decide(samples, current=1, mean_latency_s=0.02).desired == 8


def test_scale_to_zero_only_after_idle_ttl() -> None:
    samples = Samples()
    samples.add(0.0, 0)
    assert _decide(samples, idle_for_s=10, idle_ttl_s=300).desired == 1
    assert _decide(samples, idle_for_s=301, idle_ttl_s=300).desired == 0
    assert _decide(samples, idle_for_s=301, idle_ttl_s=300, scale_to_zero=False).desired == 1
