"""SQL for users, sessions and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orvad.store import audit
from orvad.store.batch import BatchWriter
from orvad.store.sql import Database


@dataclass(frozen=True)
class UserRow:
    id: str
    username: str
    password_hash: str
    created_at: str


@dataclass(frozen=True)
class KeyRow:
    id: str
    name: str
    prefix: str
    key_hash: str
    permissions: frozenset[str]
    created_at: str
    expires_at: str | None
    last_used_at: str | None
    is_bootstrap: bool


def _key(row: object) -> KeyRow:
    r = dict(row)  # type: ignore[call-overload]
    return KeyRow(
        id=r["id"],
        name=r["name"],
        prefix=r["prefix"],
        key_hash=r["key_hash"],
        permissions=frozenset(p for p in r["permissions"].split(",") if p),
        created_at=r["created_at"],
        expires_at=r["expires_at"],
        last_used_at=r["last_used_at"],
        is_bootstrap=bool(r["is_bootstrap"]),
    )


class AuthStore:
    def __init__(self, db: Database, batch: BatchWriter) -> None:
        self._db = db
        self._batch = batch

    # users
    async def count_users(self) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) FROM users")
        return int(row[0]) if row else 0

    async def create_first_user(self, user: UserRow) -> bool:
        """Insert the user only if none exists yet (atomic); False when one already did."""
        async with self._db.transaction() as tx:
            if await tx.fetchone("SELECT 1 FROM users LIMIT 1"):
                return False
            await tx.execute(
                "INSERT INTO users (id, username, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (user.id, user.username, user.password_hash, user.created_at, user.created_at),
            )
        return True

    async def user_by_name(self, username: str) -> UserRow | None:
        row = await self._db.fetchone(
            "SELECT id, username, password_hash, created_at FROM users WHERE username = ?", (username,)
        )
        return UserRow(**dict(row)) if row else None

    async def user_by_id(self, user_id: str) -> UserRow | None:
        row = await self._db.fetchone(
            "SELECT id, username, password_hash, created_at FROM users WHERE id = ?", (user_id,)
        )
        return UserRow(**dict(row)) if row else None

    async def set_password(self, user_id: str, password_hash: str, now: str, keep_token_hash: str) -> None:
        """Change the password and end every other session of that user."""
        async with self._db.transaction() as tx:
            await tx.execute(
                "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
                (password_hash, now, user_id),
            )
            await tx.execute(
                "DELETE FROM sessions WHERE user_id = ? AND token_hash != ?", (user_id, keep_token_hash)
            )

    async def reset_password(
        self, username: str, password_hash: str, now: str, audit_row: dict[str, Any] | None = None
    ) -> bool:
        """Set a user's password, end every session of theirs and write ``audit_row``, in one transaction
        (`orvad reset-password`, which may run beside a live orvad); False when there is no such user."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE users SET password_hash = ?, updated_at = ? WHERE username = ?",
                (password_hash, now, username),
            )
            if changed != 1:
                return False
            await tx.execute(
                "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE username = ?)", (username,)
            )
            if audit_row is not None:
                await tx.execute(*audit.insert(audit_row))
        return True

    async def usernames(self) -> list[str]:
        return [r[0] for r in await self._db.fetchall("SELECT username FROM users ORDER BY username")]

    # sessions
    async def create_session(
        self,
        token_hash: str,
        user_id: str,
        created_at: str,
        expires_at: str,
        *,
        session_id: str,
        user_agent: str | None = None,
        ip: str | None = None,
    ) -> None:
        await self._db.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, id, user_agent, ip, last_seen_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (token_hash, user_id, created_at, expires_at, session_id, user_agent, ip, created_at),
        )

    async def session_user(self, token_hash: str, now: str) -> tuple[UserRow, str, str] | None:
        """The user of a live session, the session's expiry and its public id, or None."""
        row = await self._db.fetchone(
            "SELECT u.id, u.username, u.password_hash, u.created_at, s.expires_at, s.id AS session_id"
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.expires_at > ?",
            (token_hash, now),
        )
        if row is None:
            return None
        values = dict(row)
        expires_at, session_id = values.pop("expires_at"), values.pop("session_id")
        return UserRow(**values), expires_at, session_id

    async def list_sessions(self, user_id: str | None, now: str) -> list[dict[str, Any]]:
        """Live sessions (of one user, or everyone's), newest first; never the token's hash."""
        rows = await self._db.fetchall(
            "SELECT s.id, s.user_id, u.username, s.user_agent, s.ip, s.created_at, s.last_seen_at, s.expires_at"
            " FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE (CAST(?1 AS TEXT) IS NULL OR s.user_id = ?1) AND s.expires_at > ?2"
            " ORDER BY s.created_at DESC, s.id DESC",
            (user_id, now),
        )
        return [dict(r) for r in rows]

    async def delete_session_by_id(self, session_id: str, user_id: str | None) -> bool:
        """End one session by its public id (only if it belongs to ``user_id``, when given)."""
        changed = await self._db.execute(
            "DELETE FROM sessions WHERE id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR user_id = ?2)",
            (session_id, user_id),
        )
        return changed == 1

    async def delete_sessions(self, user_id: str | None, keep_id: str | None) -> int:
        """End every session (of one user, or everyone's), but ``keep_id``'s; answers how many ended."""
        return await self._db.execute(
            # id IS NOT ?2, spelled so PostgreSQL takes it too (a session from before ids has none)
            "DELETE FROM sessions WHERE (CAST(?1 AS TEXT) IS NULL OR user_id = ?1)"
            " AND (CAST(?2 AS TEXT) IS NULL OR id IS NULL OR id <> ?2)",
            (user_id, keep_id),
        )

    def touch_session(self, session_id: str, now: str) -> None:
        """Record a session's use through the batched writer (off the request path)."""
        self._batch.submit("UPDATE sessions SET last_seen_at = ? WHERE id = ?", (now, session_id))

    async def rotate_session(self, old_hash: str, new_hash: str, created_at: str, expires_at: str) -> bool:
        """Replace a session by a new token in one transaction; False if the old one is gone."""
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE sessions SET token_hash = ?, created_at = ?, expires_at = ? WHERE token_hash = ?",
                (new_hash, created_at, expires_at, old_hash),
            )
            return changed == 1

    async def delete_session(self, token_hash: str) -> None:
        await self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    async def delete_expired_sessions(self, now: str) -> int:
        return await self._db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))

    # API keys
    async def insert_key(self, key: KeyRow) -> None:
        await self._db.execute(
            "INSERT INTO api_keys (id, name, prefix, key_hash, permissions, created_at, expires_at, is_bootstrap)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.id,
                key.name,
                key.prefix,
                key.key_hash,
                ",".join(sorted(key.permissions)),
                key.created_at,
                key.expires_at,
                int(key.is_bootstrap),
            ),
        )

    async def all_keys(self) -> list[KeyRow]:
        return [_key(r) for r in await self._db.fetchall("SELECT * FROM api_keys ORDER BY id DESC")]

    async def bootstrap_key(self) -> KeyRow | None:
        row = await self._db.fetchone("SELECT * FROM api_keys WHERE is_bootstrap = 1")
        return _key(row) if row else None

    async def delete_key(self, key_id: str) -> bool:
        return await self._db.execute("DELETE FROM api_keys WHERE id = ?", (key_id,)) == 1

    def touch_key(self, key_id: str, now: str) -> None:
        """Record a key's use through the batched writer (off the request path)."""
        self._batch.submit("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key_id))
