"""SQL for OAuth clients and tokens (issue 21, remote connectors at /mcp)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from orvad.store.batch import BatchWriter
from orvad.store.sql import Database

_CLIENT_COLUMNS = "client_id, client_name, metadata, secret_hash, created_at, last_used_at"
_TOKEN_COLUMNS = (
    "token_hash, kind, client_id, family, scopes, resource, subject, expires_at, rotated_at, created_at"
)


@dataclass(frozen=True)
class ClientRow:
    client_id: str
    client_name: str
    metadata: str  # JSON, without the secret
    secret_hash: str | None
    created_at: str
    last_used_at: str | None


@dataclass(frozen=True)
class TokenRow:
    token_hash: str
    kind: str  # access | refresh
    client_id: str
    family: str
    scopes: str
    resource: str
    subject: str
    expires_at: int
    rotated_at: int | None
    created_at: str

    def rotated(self, at: int) -> TokenRow:
        return replace(self, rotated_at=at)


class OAuthStore:
    def __init__(self, db: Database, batch: BatchWriter) -> None:
        self._db = db
        self._batch = batch

    async def clients(self) -> list[ClientRow]:
        rows = await self._db.fetchall(
            f"SELECT {_CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at, client_id"
        )
        return [ClientRow(**dict(r)) for r in rows]

    async def insert_client(self, row: ClientRow) -> None:
        await self._db.execute(
            f"INSERT INTO oauth_clients ({_CLIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (row.client_id, row.client_name, row.metadata, row.secret_hash, row.created_at, row.last_used_at),
        )

    async def delete_client(self, client_id: str) -> bool:
        """The client and (cascade) every token it holds."""
        return await self._db.execute("DELETE FROM oauth_clients WHERE client_id = ?", (client_id,)) == 1

    async def delete_clients(self, client_ids: list[str]) -> None:
        await self._db.executemany(
            "DELETE FROM oauth_clients WHERE client_id = ?", [(c,) for c in client_ids]
        )

    def touch_client(self, client_id: str, now: str) -> None:
        """Record a client's use through the batched writer (off the request path)."""
        self._batch.submit("UPDATE oauth_clients SET last_used_at = ? WHERE client_id = ?", (now, client_id))

    async def tokens(self) -> list[TokenRow]:
        rows = await self._db.fetchall(f"SELECT {_TOKEN_COLUMNS} FROM oauth_tokens")
        return [TokenRow(**dict(r)) for r in rows]

    async def insert_tokens(self, rows: list[TokenRow], rotated: str | None = None, at: int = 0) -> None:
        """New tokens, and (a refresh) the refresh token they replace marked rotated, in one transaction."""
        async with self._db.transaction() as tx:
            if rotated is not None:
                await tx.execute("UPDATE oauth_tokens SET rotated_at = ? WHERE token_hash = ?", (at, rotated))
                # the access tokens issued before in this family stay valid until their hour is up
            await tx.executemany(
                f"INSERT INTO oauth_tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.token_hash,
                        r.kind,
                        r.client_id,
                        r.family,
                        r.scopes,
                        r.resource,
                        r.subject,
                        r.expires_at,
                        r.rotated_at,
                        r.created_at,
                    )
                    for r in rows
                ],
            )

    async def delete_token(self, token_hash: str) -> None:
        await self._db.execute("DELETE FROM oauth_tokens WHERE token_hash = ?", (token_hash,))

    async def delete_family(self, family: str) -> None:
        await self._db.execute("DELETE FROM oauth_tokens WHERE family = ?", (family,))

    async def delete_expired(self, now: int) -> None:
        await self._db.execute("DELETE FROM oauth_tokens WHERE expires_at <= ?", (now,))
