"""SQL for per-function pool configuration."""

from __future__ import annotations

from typing import Any

from orvad.store.sql import Database


class PoolConfigStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all_pool_configs(self) -> list[dict[str, Any]]:
        rows = await self._db.fetchall("SELECT * FROM pool_config")
        return [{**dict(r), "scale_to_zero": bool(r["scale_to_zero"])} for r in rows]

    async def upsert_pool_config(self, function_id: str, values: dict[str, Any], updated_at: str) -> None:
        await self._db.execute(
            "INSERT INTO pool_config (function_id, min_warm, max_warm, idle_ttl_seconds, target_concurrency,"
            " scale_to_zero, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(function_id) DO UPDATE SET"
            " min_warm = excluded.min_warm, max_warm = excluded.max_warm,"
            " idle_ttl_seconds = excluded.idle_ttl_seconds, target_concurrency = excluded.target_concurrency,"
            " scale_to_zero = excluded.scale_to_zero, updated_at = excluded.updated_at",
            (
                function_id,
                values["min_warm"],
                values["max_warm"],
                values["idle_ttl_seconds"],
                values["target_concurrency"],
                int(values["scale_to_zero"]),
                updated_at,
            ),
        )
