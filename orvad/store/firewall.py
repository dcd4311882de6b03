"""SQL for egress rules: the global deny list and the firewall settings (the DNS servers)."""

from __future__ import annotations

import json
from typing import Any

from orvad.store.sql import Database


class FirewallStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all_rules(self) -> list[dict[str, Any]]:
        rows = await self._db.fetchall("SELECT * FROM firewall_rules ORDER BY created_at, id")
        return [{**dict(r), "ports": json.loads(r["ports"])} for r in rows]

    async def upsert_rule(self, rule: dict[str, Any]) -> None:
        await self._db.execute(
            "INSERT INTO firewall_rules (id, target, kind, ports, description, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET target = excluded.target,"
            " kind = excluded.kind, ports = excluded.ports, description = excluded.description,"
            " updated_at = excluded.updated_at",
            (
                rule["id"],
                rule["target"],
                rule["kind"],
                json.dumps(list(rule["ports"])),
                rule["description"],
                rule["created_at"],
                rule["updated_at"],
            ),
        )

    async def delete_rule(self, rule_id: str) -> bool:
        return await self._db.execute("DELETE FROM firewall_rules WHERE id = ?", (rule_id,)) == 1

    async def setting(self, key: str) -> Any:
        row = await self._db.fetchone("SELECT value FROM firewall_settings WHERE key = ?", (key,))
        return None if row is None else json.loads(row["value"])

    async def put_setting(self, key: str, value: Any) -> None:
        await self._db.execute(
            "INSERT INTO firewall_settings (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )
