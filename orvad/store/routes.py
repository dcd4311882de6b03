"""SQL for custom routes."""

from __future__ import annotations

from typing import Any

from orvad.store.sql import Database


class RouteStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all_routes(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._db.fetchall("SELECT * FROM routes ORDER BY id DESC")]

    async def insert_route(
        self,
        route_id: str,
        path: str,
        function_id: str,
        methods: str,
        created_at: str,
        *,
        replace: bool = False,
    ) -> None:
        """Add a route; with `replace`, the route at the same path goes in the same transaction."""
        async with self._db.transaction() as tx:
            if replace:
                await tx.execute("DELETE FROM routes WHERE path = ?", (path,))
            await tx.execute(
                "INSERT INTO routes (id, path, function_id, methods, created_at) VALUES (?, ?, ?, ?, ?)",
                (route_id, path, function_id, methods, created_at),
            )

    async def delete_route(self, path: str) -> bool:
        return await self._db.execute("DELETE FROM routes WHERE path = ?", (path,)) == 1
