"""SQL for channels and their bundled functions (issue 21)."""

from __future__ import annotations

from dataclasses import dataclass

from orvad.store.batch import BatchWriter
from orvad.store.sql import Database, IntegrityError

_COLUMNS = "c.id, c.name, c.description, c.token_hash, c.prefix, c.expires_at, c.last_used_at, c.created_at"


@dataclass(frozen=True)
class ChannelRow:
    id: str
    name: str
    description: str
    token_hash: str
    prefix: str
    expires_at: str | None
    last_used_at: str | None
    created_at: str
    function_count: int = 0


def _row(row: object) -> ChannelRow:
    return ChannelRow(**dict(row))  # type: ignore[call-overload]


class NameTaken(Exception):
    """The channel name is in use (the UNIQUE constraint)."""


class ChannelStore:
    def __init__(self, db: Database, batch: BatchWriter) -> None:
        self._db = db
        self._batch = batch

    async def all(self) -> list[ChannelRow]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS}, (SELECT COUNT(*) FROM channel_functions f WHERE f.channel_id = c.id)"
            " AS function_count FROM channels c ORDER BY c.id DESC"
        )
        return [_row(r) for r in rows]

    async def get(self, channel_id: str) -> ChannelRow | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS}, (SELECT COUNT(*) FROM channel_functions f WHERE f.channel_id = c.id)"
            " AS function_count FROM channels c WHERE c.id = ? OR c.name = ? ORDER BY c.id = ? DESC LIMIT 1",
            (channel_id, channel_id, channel_id),
        )
        return _row(row) if row else None

    async def functions(self, channel_id: str) -> list[tuple[str, str | None]]:
        """(function_id, description override) of a channel, in function id order."""
        rows = await self._db.fetchall(
            "SELECT function_id, description FROM channel_functions WHERE channel_id = ? ORDER BY function_id",
            (channel_id,),
        )
        return [(r[0], r[1]) for r in rows]

    async def insert(self, row: ChannelRow, functions: list[tuple[str, str | None]]) -> None:
        try:
            async with self._db.transaction() as tx:
                await tx.execute(
                    "INSERT INTO channels (id, name, description, token_hash, prefix, expires_at, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        row.id,
                        row.name,
                        row.description,
                        row.token_hash,
                        row.prefix,
                        row.expires_at,
                        row.created_at,
                    ),
                )
                await tx.executemany(
                    "INSERT INTO channel_functions (channel_id, function_id, description) VALUES (?, ?, ?)",
                    [(row.id, fid, desc) for fid, desc in functions],
                )
        except IntegrityError as exc:
            if exc.taken("channels", "name"):
                raise NameTaken(row.name) from None
            raise

    async def update(self, channel_id: str, name: str, description: str, expires_at: str | None) -> bool:
        try:
            return (
                await self._db.execute(
                    "UPDATE channels SET name = ?, description = ?, expires_at = ? WHERE id = ?",
                    (name, description, expires_at, channel_id),
                )
                == 1
            )
        except IntegrityError as exc:
            if exc.taken("channels", "name"):
                raise NameTaken(name) from None
            raise

    async def replace_functions(self, channel_id: str, functions: list[tuple[str, str | None]]) -> None:
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM channel_functions WHERE channel_id = ?", (channel_id,))
            await tx.executemany(
                "INSERT INTO channel_functions (channel_id, function_id, description) VALUES (?, ?, ?)",
                [(channel_id, fid, desc) for fid, desc in functions],
            )

    async def set_token(self, channel_id: str, token_hash: str, prefix: str) -> bool:
        return (
            await self._db.execute(
                "UPDATE channels SET token_hash = ?, prefix = ? WHERE id = ?",
                (token_hash, prefix, channel_id),
            )
            == 1
        )

    async def delete(self, channel_id: str) -> bool:
        return await self._db.execute("DELETE FROM channels WHERE id = ?", (channel_id,)) == 1

    def touch(self, channel_id: str, now: str) -> None:
        """Record a channel's use through the batched writer (off the request path)."""
        self._batch.submit("UPDATE channels SET last_used_at = ? WHERE id = ?", (now, channel_id))
