"""SQL for encrypted function secrets."""

from __future__ import annotations

from typing import Any

from orvad.store.sql import Database


class SecretStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, function_id: str, key: str, nonce: bytes, ciphertext: bytes, now: str) -> None:
        await self._db.execute(
            "INSERT INTO secrets (function_id, key, nonce, ciphertext, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(function_id, key) DO UPDATE SET nonce = excluded.nonce,"
            " ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            (function_id, key, nonce, ciphertext, now, now),
        )

    async def delete(self, function_id: str, key: str) -> bool:
        return (
            await self._db.execute(
                "DELETE FROM secrets WHERE function_id = ? AND key = ?", (function_id, key)
            )
            == 1
        )

    async def names(self, function_id: str) -> list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT key, created_at, updated_at FROM secrets WHERE function_id = ? ORDER BY key",
            (function_id,),
        )
        return [dict(r) for r in rows]

    async def encrypted_for(self, function_id: str) -> list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT key, nonce, ciphertext FROM secrets WHERE function_id = ?", (function_id,)
        )
        return [dict(r) for r in rows]

    async def all_encrypted(self) -> list[dict[str, Any]]:
        rows = await self._db.fetchall("SELECT function_id, key, nonce, ciphertext FROM secrets")
        return [dict(r) for r in rows]

    async def replace_all(self, rows: list[tuple[bytes, bytes, str, str]]) -> None:
        """Re-encrypted (nonce, ciphertext, function_id, key) rows, written in one transaction."""
        async with self._db.transaction() as tx:
            await tx.executemany(
                "UPDATE secrets SET nonce = ?, ciphertext = ? WHERE function_id = ? AND key = ?", rows
            )
