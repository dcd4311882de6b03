"""Per-function pool configuration: defaults, validation, and the in-memory copy the pools read live."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from typing import Any

from orvad.clock import now_iso
from orvad.errors import ValidationError
from orvad.jsonvalues import json_int
from orvad.pool.config import DEFAULT_CONFIG, PoolConfig
from orvad.store.pools import PoolConfigStore

LIMITS = {"min_warm": (0, 256), "max_warm": (1, 256), "idle_ttl_seconds": (1, 86_400),
          "target_concurrency": (1, 1000)}
FIELDS = (*LIMITS, "scale_to_zero")


def merge(current: PoolConfig, changes: dict[str, Any]) -> PoolConfig:
    """Apply a partial update, validating each field and min_warm <= max_warm."""
    clean: dict[str, Any] = {}
    for field, value in changes.items():
        if field == "scale_to_zero":
            if not isinstance(value, bool):
                raise ValidationError("scale_to_zero must be true or false", details={"field": field})
            clean[field] = value
            continue
        lo, hi = LIMITS[field]
        number = json_int(value)
        if number is None or not lo <= number <= hi:
            raise ValidationError(f"{field} must be an integer in {lo}..{hi}",
                                  details={"field": field, "min": lo, "max": hi})
        clean[field] = number
    merged = replace(current, **clean)
    if merged.min_warm > merged.max_warm:
        raise ValidationError(f"min_warm ({merged.min_warm}) may not exceed max_warm ({merged.max_warm})",
                              details={"field": "min_warm"})
    return merged


class PoolConfigService:
    def __init__(self, store: PoolConfigStore) -> None:
        self._store = store
        self._configs: dict[str, PoolConfig] = {}
        self.on_change: list[Callable[[str, PoolConfig], Awaitable[None]]] = []

    async def load(self) -> None:
        for row in await self._store.all_pool_configs():
            self._configs[row["function_id"]] = PoolConfig(**{f: row[f] for f in FIELDS})

    def get(self, function_id: str) -> PoolConfig:
        return self._configs.get(function_id) or DEFAULT_CONFIG  # no dataclass built per request

    async def update(self, function_id: str, changes: dict[str, Any]) -> PoolConfig:
        config = merge(self.get(function_id), changes)
        await self._store.upsert_pool_config(function_id, asdict(config), now_iso())
        self._configs[function_id] = config
        for hook in self.on_change:
            await hook(function_id, config)
        return config

    def forget(self, function_id: str) -> None:
        self._configs.pop(function_id, None)
