"""Function secrets: AES-256-GCM at rest, bound to (function id, key name) as associated data.

The master key is ``ORVA_MASTER_KEY`` (64 hex characters) or ``<data-dir>/master.key`` (0600,
created on the first start). Plaintext values exist only in memory, on their way into a
worker's environment at spawn; they are never returned, logged or put on a command line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from orvad import sealing
from orvad.clock import now_iso
from orvad.envnames import REFUSAL, host_sensitive
from orvad.errors import NotFound, ValidationError
from orvad.sealing import Unsealable
from orvad.services.changes import Changes, SecretsChanged
from orvad.store.secrets import SecretStore

KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VALUE_BYTES = 32 * 1024
MASTER_KEY_ENV = "ORVA_MASTER_KEY"
SIGNING_SECRET = "ORVA_SIGNING_SECRET"  # the one ORVA_* key a function may set: its HMAC secret


class MasterKeyError(RuntimeError):
    pass


def load_master_key(path: Path, environ: dict[str, str] | os._Environ[str] = os.environ) -> bytes:
    raw = environ.get(MASTER_KEY_ENV)
    if raw is None:
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(os.urandom(32).hex() + "\n")
        raw = path.read_text().strip()
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise MasterKeyError(f"the master key ({MASTER_KEY_ENV} or {path}) must be 64 hex characters")
    return key


def _aad(function_id: str, key: str) -> bytes:
    return f"orva-secret\0{function_id}\0{key}".encode()


def seal(master: bytes, function_id: str, key: str, value: str) -> tuple[bytes, bytes]:
    return sealing.seal(master, value, _aad(function_id, key))


def open_sealed(master: bytes, function_id: str, key: str, nonce: bytes, ciphertext: bytes) -> str:
    return sealing.unseal(master, nonce, ciphertext, _aad(function_id, key))


class SecretService:
    def __init__(self, store: SecretStore, master: bytes, changes: Changes | None = None) -> None:
        self._store = store
        self._master = master
        self._changes = changes if changes is not None else Changes()  # SecretsChanged: new workers get them
        self._signing: dict[str, str | None] = {}  # decrypted once, dropped on any change

    async def upsert(self, function_id: str, key: Any, value: Any) -> None:
        if (
            not isinstance(key, str)
            or not KEY_RE.fullmatch(key)
            or (key.upper().startswith("ORVA_") and key != SIGNING_SECRET)
        ):
            raise ValidationError(
                "key must be an environment variable name (letters, digits, _), not ORVA_*",
                details={"field": "key"},
            )
        if host_sensitive(key):
            raise ValidationError(f"a secret may not be named {key}: it {REFUSAL}", details={"field": "key"})
        if not isinstance(value, str) or len(value.encode()) > MAX_VALUE_BYTES:
            raise ValidationError(
                f"value must be a string of at most {MAX_VALUE_BYTES} bytes", details={"field": "value"}
            )
        if "\x00" in value:
            raise ValidationError(
                f"value of {key} contains a NUL byte, which a process environment cannot carry",
                details={"field": "value", "key": key},
            )
        nonce, ciphertext = seal(self._master, function_id, key, value)
        await self._store.upsert(function_id, key, nonce, ciphertext, now_iso())
        await self._changed(function_id)

    async def delete(self, function_id: str, key: str) -> None:
        if not await self._store.delete(function_id, key):
            raise NotFound(f"no secret {key!r} on this function", details={"key": key})
        await self._changed(function_id)

    async def names(self, function_id: str) -> list[dict[str, Any]]:
        return await self._store.names(function_id)

    async def environment(self, function_id: str) -> dict[str, str]:
        """Decrypted secrets of one function, for a worker's environment at spawn."""
        rows = await self._store.encrypted_for(function_id)
        if rows:
            await sealing.ready()
        return {
            r["key"]: open_sealed(self._master, function_id, r["key"], r["nonce"], r["ciphertext"])
            for r in rows
        }

    async def rotate(self, new_master: bytes) -> int:
        """Re-encrypt every secret under ``new_master`` in one transaction; returns how many."""
        rows = []
        for r in await self._store.all_encrypted():
            try:
                value = open_sealed(self._master, r["function_id"], r["key"], r["nonce"], r["ciphertext"])
            except Unsealable:
                raise MasterKeyError(
                    f"secret {r['key']} of {r['function_id']} does not open with the current "
                    "master key; nothing was changed"
                ) from None
            nonce, ciphertext = seal(new_master, r["function_id"], r["key"], value)
            rows.append((nonce, ciphertext, r["function_id"], r["key"]))
        await self._store.replace_all(rows)
        self._master = new_master
        return len(rows)

    async def signing_secret(self, function_id: str) -> str | None:
        if function_id not in self._signing:
            self._signing[function_id] = (await self.environment(function_id)).get(SIGNING_SECRET)
        return self._signing[function_id]

    async def _changed(self, function_id: str) -> None:
        self._signing.pop(function_id, None)
        await self._changes.publish(SecretsChanged(function_id))
