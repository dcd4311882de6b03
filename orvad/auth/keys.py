"""API keys: ``orva_`` + 64 hex, stored only as a SHA-256 hash, cached in memory for lookups.

The cache is the single source for authentication; create and revoke update it in the same
call that writes the database, so a revoked key fails on the very next request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from datetime import datetime
from pathlib import Path

from orvad.clock import iso, now_iso, parse_iso, utcnow
from orvad.errors import Forbidden, NotFound, Unauthorized
from orvad.ids import uuid7
from orvad.models import PERMISSIONS
from orvad.store.auth import AuthStore, KeyRow

log = logging.getLogger(__name__)

KEY_PREFIX = "orva_"
KEY_FILE = "admin.key"  # in the data dir, mode 0600: the bootstrap admin key
_WHERE = (
    f"the bootstrap admin key is in <data-dir>/{KEY_FILE} on the orvad host (data/{KEY_FILE} under "
    f"make run, /var/lib/orva/{KEY_FILE} in Docker; orvad names the file when it starts)"
)
_TOUCH_EVERY_S = 60  # last_used_at granularity: at most one queued write per key per minute


def looks_like_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and len(value) == len(KEY_PREFIX) + 64


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


class KeyService:
    def __init__(self, store: AuthStore) -> None:
        self._store = store
        self._by_hash: dict[str, KeyRow] = {}
        self._last_touch: dict[str, float] = {}

    async def load(self) -> None:
        self._by_hash = {k.key_hash: k for k in await self._store.all_keys()}

    async def create(
        self, name: str, permissions: frozenset[str], expires_at: datetime | None, *, bootstrap: bool = False
    ) -> tuple[KeyRow, str]:
        plaintext = KEY_PREFIX + secrets.token_hex(32)
        row = KeyRow(
            id=uuid7(),
            name=name,
            prefix=plaintext[:12],
            key_hash=hash_key(plaintext),
            permissions=permissions,
            created_at=now_iso(),
            expires_at=iso(expires_at) if expires_at else None,
            last_used_at=None,
            is_bootstrap=bootstrap,
        )
        await self._store.insert_key(row)
        self._by_hash[row.key_hash] = row
        return row, plaintext

    async def revoke(self, key_id: str) -> None:
        if not await self._store.delete_key(key_id):
            raise NotFound(f"no API key with id {key_id}", hint="list keys with GET /api/v1/keys")
        self._by_hash = {h: k for h, k in self._by_hash.items() if k.id != key_id}

    async def list(self) -> list[KeyRow]:
        return await self._store.all_keys()

    def authenticate(self, plaintext: str) -> KeyRow | None:
        """The live key for this plaintext, or None (unknown, revoked or expired)."""
        digest = hash_key(plaintext)
        row = self._by_hash.get(digest)
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        now = utcnow()
        if row.expires_at and parse_iso(row.expires_at) <= now:
            return None
        stamp = now.timestamp()
        if stamp - self._last_touch.get(row.id, 0.0) >= _TOUCH_EVERY_S:
            self._last_touch[row.id] = stamp
            self._store.touch_key(row.id, iso(now))
        return row

    def prove_ownership(self, token: str | None) -> KeyRow:
        """The admin key that proves the caller owns this orvad (onboarding), else 401/403 saying where it is."""
        if not token:
            raise Unauthorized(
                "creating the first admin user needs the bootstrap admin key as proof of ownership",
                hint=f"send it as setup_token (or X-Orva-API-Key); {_WHERE}",
            )
        row = self.authenticate(token) if looks_like_key(token) else None
        if row is None:
            raise Unauthorized(
                "the setup token is not a live API key of this orvad", hint=f"copy it again: {_WHERE}"
            )
        if "admin" not in row.permissions:
            raise Forbidden(
                "the setup token lacks the 'admin' permission",
                hint=f"use the bootstrap admin key or another admin key; {_WHERE}",
                details={"required": "admin", "granted": sorted(row.permissions)},
            )
        return row

    async def ensure_bootstrap(self, key_file: Path) -> str | None:
        """Mint the all-permission admin key on first start; returns its plaintext only then."""
        if key_file.exists() or await self._store.bootstrap_key() is not None:
            if not key_file.exists():
                log.warning(
                    "bootstrap admin key exists but its file is gone; create another key to regain access",
                    extra={"path": str(key_file)},
                )
            elif self.authenticate(key_file.read_text().strip()) is None:
                log.warning(
                    "the key in the bootstrap file is revoked or expired", extra={"path": str(key_file)}
                )
            return None
        row, plaintext = await self.create("bootstrap-admin", frozenset(PERMISSIONS), None, bootstrap=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(plaintext + "\n")
        log.info("minted the bootstrap admin key", extra={"key_id": row.id, "path": str(key_file)})
        return plaintext
