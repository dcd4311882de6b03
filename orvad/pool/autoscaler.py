"""Pure autoscaling decisions, in the manner of Knative's KPA.

Each pool is sampled about once a second: the time-averaged number of requests in flight and
the number of arrivals. ``decide`` turns the sample windows into a desired worker count:

* stable window (60 s) average concurrency / target_concurrency, as the steady-state size;
* panic window (6 s): when it asks for at least twice the current size, follow it at once and
  refuse to scale down until the panic has passed;
* a Little's-law floor, arrival rate x mean latency / target_concurrency, so a burst of short
  requests is met by enough warm workers before queues build;
* bounds: at most max_warm; at least min_warm, or zero once the function was idle for
  idle_ttl_seconds with scale_to_zero on.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

STABLE_WINDOW_S = 60
PANIC_WINDOW_S = 6
PANIC_THRESHOLD = 2.0


@dataclass
class Samples:
    """Per-second samples of one pool (newest last)."""

    concurrency: deque[float] = field(default_factory=lambda: deque(maxlen=STABLE_WINDOW_S))
    arrivals: deque[int] = field(default_factory=lambda: deque(maxlen=STABLE_WINDOW_S))
    panic_until: float = 0.0

    def add(self, concurrency: float, arrivals: int) -> None:
        self.concurrency.append(concurrency)
        self.arrivals.append(arrivals)


@dataclass(frozen=True)
class Decision:
    desired: int
    panic: bool
    reason: str


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def decide(
    samples: Samples,
    *,
    current: int,
    min_warm: int,
    max_warm: int,
    target_concurrency: int,
    mean_latency_s: float,
    idle_for_s: float,
    idle_ttl_s: float,
    scale_to_zero: bool,
    now: float,
) -> Decision:
    if scale_to_zero and idle_for_s >= idle_ttl_s:
        samples.panic_until = 0.0
        return Decision(desired=0, panic=False, reason="idle past idle_ttl: scale to zero")
    conc = list(samples.concurrency)
    stable = _mean(conc)
    panic_avg = _mean(conc[-PANIC_WINDOW_S:])
    rate = _mean([float(a) for a in list(samples.arrivals)[-PANIC_WINDOW_S:]])
    target = max(1, target_concurrency)

    stable_want = math.ceil(stable / target - 1e-9)
    panic_want = math.ceil(panic_avg / target - 1e-9)
    little = math.ceil(rate * mean_latency_s / target - 1e-9)

    panic = current > 0 and panic_want >= PANIC_THRESHOLD * current
    if panic or (current == 0 and panic_want > 0):
        samples.panic_until = now + PANIC_WINDOW_S
    in_panic = now < samples.panic_until
    want = max(panic_want, stable_want, little) if in_panic else max(stable_want, little)
    if in_panic:
        want = max(want, current)  # never shrink while panicking
        reason = "panic"
    else:
        reason = "stable"

    desired = max(min_warm, min(max_warm, want))
    return Decision(desired=desired, panic=in_panic, reason=reason)
