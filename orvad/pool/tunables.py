"""A pool's tunables (CONTRACT.md defaults): pure, read by the pool and its autoscaler; the per-function
settings service that stores and validates them is orvad/services/poolconfigs.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PoolConfig:
    min_warm: int = 1
    max_warm: int = 16
    idle_ttl_seconds: int = 300
    target_concurrency: int = 1
    scale_to_zero: bool = True


DEFAULT_CONFIG = PoolConfig()
