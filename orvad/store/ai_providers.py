"""SQL for the AI assistant's provider configs (table ai_providers, migration 0011; issue 22).

The API key is stored only sealed (key_nonce, key_sealed: AES-256-GCM under the master key, see
orvad/assistant/provider_service.py); key_hint is its last 4 characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from orvad.store.sql import Database, IntegrityError

_COLUMNS = "id, kind, label, base_url, key_nonce, key_sealed, key_hint, created_at, updated_at"


@dataclass(frozen=True)
class AiProviderRow:
    id: str
    kind: str
    label: str
    base_url: str | None
    key_nonce: bytes | None
    key_sealed: bytes | None
    key_hint: str | None
    created_at: str
    updated_at: str


def _row(row: object) -> AiProviderRow:
    return AiProviderRow(**dict(row))  # type: ignore[call-overload]


class LabelTaken(Exception):
    """Another provider config has this label (the UNIQUE constraint)."""


class AiProviderStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[AiProviderRow]:
        return [
            _row(r) for r in await self._db.fetchall(f"SELECT {_COLUMNS} FROM ai_providers ORDER BY label")
        ]

    async def get(self, id_or_label: str) -> AiProviderRow | None:
        """By id, else by label."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM ai_providers WHERE id = ? OR label = ? ORDER BY id = ? DESC LIMIT 1",
            (id_or_label, id_or_label, id_or_label),
        )
        return _row(row) if row else None

    async def save(self, row: AiProviderRow) -> None:
        """Insert or replace the row of this id."""
        try:
            await self._db.execute(
                f"INSERT INTO ai_providers ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, label = excluded.label,"
                " base_url = excluded.base_url, key_nonce = excluded.key_nonce, key_sealed = excluded.key_sealed,"
                " key_hint = excluded.key_hint, updated_at = excluded.updated_at",
                (
                    row.id,
                    row.kind,
                    row.label,
                    row.base_url,
                    row.key_nonce,
                    row.key_sealed,
                    row.key_hint,
                    row.created_at,
                    row.updated_at,
                ),
            )
        except IntegrityError as exc:
            if exc.taken("ai_providers", "label"):
                raise LabelTaken(row.label) from None
            raise

    async def delete(self, provider_id: str) -> bool:
        return await self._db.execute("DELETE FROM ai_providers WHERE id = ?", (provider_id,)) == 1

    async def replace_keys(self, rows: list[tuple[bytes, bytes, str]]) -> None:
        """Re-sealed (key_nonce, key_sealed, id) rows, written in one transaction (master key rotation)."""
        async with self._db.transaction() as tx:
            await tx.executemany("UPDATE ai_providers SET key_nonce = ?, key_sealed = ? WHERE id = ?", rows)
