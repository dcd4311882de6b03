"""Per-function pool configurations: defaults, validation, and the in-memory copy the pools read live
(the service; the pure tunables record it holds is orvad/pool/tunables.py PoolConfig)."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from orvad.clock import now_iso
from orvad.errors import ValidationError
from orvad.jsonvalues import json_int
from orvad.pool.tunables import DEFAULT_CONFIG, PoolConfig
from orvad.services.changes import Changes, PoolConfigChanged
from orvad.store.pools import PoolConfigStore

LIMITS = {
    "min_warm": (0, 256),
    "max_warm": (1, 256),
    "idle_ttl_seconds": (1, 86_400),
    "target_concurrency": (1, 1000),
}
FIELDS = (*LIMITS, "scale_to_zero")


def merge(current: PoolConfig, changes: dict[str, Any], prefix: str = "") -> PoolConfig:
    """Apply a partial update, validating each field and min_warm <= max_warm; ``prefix`` goes
    before the field names in messages and details.field ("pool." inside a function update)."""
    clean: dict[str, Any] = {}
    for field, value in changes.items():
        name = prefix + field
        if field == "scale_to_zero":
            if not isinstance(value, bool):
                raise ValidationError(f"{name} must be true or false", details={"field": name})
            clean[field] = value
            continue
        lo, hi = LIMITS[field]
        number = json_int(value)
        if number is None or not lo <= number <= hi:
            raise ValidationError(
                f"{name} must be an integer in {lo}..{hi}", details={"field": name, "min": lo, "max": hi}
            )
        clean[field] = number
    merged = replace(current, **clean)
    if merged.min_warm > merged.max_warm:
        raise ValidationError(
            f"{prefix}min_warm ({merged.min_warm}) may not exceed {prefix}max_warm ({merged.max_warm})",
            details={"field": prefix + ("min_warm" if "min_warm" in clean else "max_warm")},
        )
    return merged


class PoolConfigService:
    def __init__(self, store: PoolConfigStore, changes: Changes | None = None) -> None:
        self._store = store
        self._configs: dict[str, PoolConfig] = {}
        self._changes = changes if changes is not None else Changes()  # PoolConfigChanged

    async def load(self) -> None:
        for row in await self._store.all_pool_configs():
            self._configs[row["function_id"]] = PoolConfig(**{f: row[f] for f in FIELDS})

    def get(self, function_id: str) -> PoolConfig:
        return self._configs.get(function_id) or DEFAULT_CONFIG  # no dataclass built per request

    def check(self, function_id: str, changes: Any) -> PoolConfig:
        """Validate the ``pool`` object of a function update without saving anything."""
        if not isinstance(changes, dict):
            raise ValidationError(f"pool must be an object of {', '.join(FIELDS)}", details={"field": "pool"})
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise ValidationError(
                f"{', '.join('pool.' + u for u in unknown)}: not a pool setting",
                hint=f"pool fields: {', '.join(FIELDS)}",
                details={"field": f"pool.{unknown[0]}", "fields": unknown},
            )
        return merge(self.get(function_id), changes, prefix="pool.")

    async def update(self, function_id: str, changes: dict[str, Any]) -> PoolConfig:
        return await self.save(function_id, merge(self.get(function_id), changes))

    async def save(self, function_id: str, config: PoolConfig) -> PoolConfig:
        """Store a validated configuration and apply it to the live pool."""
        await self._store.upsert_pool_config(function_id, asdict(config), now_iso())
        self._configs[function_id] = config
        await self._changes.publish(PoolConfigChanged(function_id, config))
        return config

    def forget(self, function_id: str) -> None:
        self._configs.pop(function_id, None)
