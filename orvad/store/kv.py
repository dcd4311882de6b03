"""SQL for KV (issue 23): each function's key-value rows, their versions, the quota counters, the sweep.

Every write is one ``BEGIN IMMEDIATE`` transaction on the single writer (``Database.transaction``):
the version counter of the function's namespace (``kv_usage.seq``) is bumped, the rows read, the
quota checked and the rows written together, so compare-and-set and increments from any number of
concurrent callers are exact. Expired rows are treated as absent by every read and write here; the
sweeper (orvad/kv/service.py) deletes them for good. Times: ``now_ms`` and ``expires_at`` are Unix ms.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orvad.store.sql import Database, IntegrityError, Transaction

UNCONDITIONAL = -1  # KvPut.expect: write whatever the key holds
KEEP_TTL = -1  # incr's expires_at: keep the key's own expiry
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# above every character a key may hold (orvad/kv/service.py refuses U+10FFFF): the end of a prefix range
PREFIX_END = "\U0010ffff"
_ENTRY = "key, kind, value, size, version, expires_at, created_at, updated_at"
_META = "key, kind, size, version, expires_at, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class KvEntry:
    key: str
    kind: str  # json | bytes
    value: bytes  # json: compact UTF-8 JSON text; bytes: the bytes
    size: int
    version: int
    expires_at: int | None
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class KvMeta:
    key: str
    kind: str
    size: int
    version: int
    expires_at: int | None
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class KvPut:
    key: str
    kind: str
    value: bytes
    expires_at: int | None
    expect: int = UNCONDITIONAL  # 0: only if absent; n > 0: only if the key's version is n


@dataclass(frozen=True, slots=True)
class Limits:
    max_keys: int
    max_bytes: int


class FunctionGone(Exception):
    """The function does not exist (deleted meanwhile): the foreign key refused the write."""


class VersionMismatch(Exception):
    def __init__(self, key: str, current: int) -> None:
        super().__init__(key)
        self.key, self.current = key, current  # current: 0 when the key is absent


class NotInteger(Exception):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(key)
        self.key, self.reason = key, reason


class QuotaExceeded(Exception):
    def __init__(self, keys: int, bytes_: int, limits: Limits) -> None:
        super().__init__("quota")
        self.keys, self.bytes, self.limits = keys, bytes_, limits  # what the write would have made


def _live(expires_at: int | None, now_ms: int) -> bool:
    return expires_at is None or expires_at > now_ms


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class KvStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # reads (the reader connection)
    async def get(self, function_id: str, key: str, now_ms: int) -> KvEntry | None:
        row = await self._db.fetchone(
            f"SELECT {_ENTRY} FROM kv WHERE function_id = ? AND key = ?", (function_id, key)
        )
        if row is None or not _live(row["expires_at"], now_ms):
            return None
        return KvEntry(*row)

    async def get_many(self, function_id: str, keys: Sequence[str], now_ms: int) -> dict[str, KvEntry]:
        if not keys:
            return {}
        rows = await self._db.fetchall(
            f"SELECT {_ENTRY} FROM kv WHERE function_id = ? AND key IN ({_marks(len(keys))})",
            (function_id, *keys),
        )
        return {r["key"]: KvEntry(*r) for r in rows if _live(r["expires_at"], now_ms)}

    async def list_keys(
        self, function_id: str, prefix: str, cursor: str | None, limit: int, now_ms: int
    ) -> list[KvMeta]:
        """Live keys starting with ``prefix``, after ``cursor`` (the last key seen), in byte order; up to limit."""
        rows = await self._db.fetchall(
            f"SELECT {_META} FROM kv WHERE function_id = ? AND key >= ? AND key < ? AND key > ?"
            " AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?",
            (function_id, prefix, prefix + PREFIX_END, cursor or "", now_ms, limit),
        )
        return [KvMeta(*r) for r in rows]

    async def usage(self, function_id: str) -> tuple[int, int]:
        """(rows, bytes) the function holds, expired rows not yet swept included."""
        row = await self._db.fetchone(
            "SELECT keys, bytes FROM kv_usage WHERE function_id = ?", (function_id,)
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)

    # writes (one transaction each, on the writer)
    async def put_many(
        self, function_id: str, puts: Sequence[KvPut], *, now_ms: int, now: str, limits: Limits
    ) -> list[int]:
        """Write every put or none (a version mismatch or the quota refuses the whole batch); their versions."""
        keys = [p.key for p in puts]
        try:
            async with self._db.transaction() as tx:
                seq, used_keys, used_bytes = await self._reserve(tx, function_id, len(puts))
                rows = await self._rows(tx, function_id, keys)
                for put in puts:
                    if put.expect == UNCONDITIONAL:
                        continue
                    row = rows.get(put.key)
                    current = row[0] if row is not None and _live(row[2], now_ms) else 0
                    if current != put.expect:
                        raise VersionMismatch(put.key, current)
                sizes = [(p.key, len(p.value)) for p in puts]
                if not self._fits(sizes, rows, used_keys, used_bytes, limits):
                    used_keys, used_bytes, rows = await self._purge(tx, function_id, keys, now_ms)
                    if not self._fits(sizes, rows, used_keys, used_bytes, limits):
                        raise QuotaExceeded(*self._after(sizes, rows, used_keys, used_bytes), limits)
                first = seq - len(puts) + 1
                versions = list(range(first, seq + 1))
                await tx.executemany(
                    "INSERT INTO kv (function_id, key, kind, value, size, version, expires_at, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (function_id, key) DO UPDATE SET"
                    " kind = excluded.kind, value = excluded.value, size = excluded.size,"
                    " version = excluded.version, expires_at = excluded.expires_at,"
                    " updated_at = excluded.updated_at, created_at = CASE WHEN kv.expires_at IS NOT NULL"
                    " AND kv.expires_at <= ? THEN excluded.created_at ELSE kv.created_at END",
                    [
                        (function_id, p.key, p.kind, p.value, len(p.value), v, p.expires_at, now, now, now_ms)
                        for p, v in zip(puts, versions, strict=True)
                    ],
                )
        except IntegrityError as exc:
            if exc.kind == "foreign_key":
                raise FunctionGone(function_id) from None
            raise
        return versions

    async def incr(
        self,
        function_id: str,
        key: str,
        by: int,
        expires_at: int | None,
        *,
        now_ms: int,
        now: str,
        limits: Limits,
    ) -> tuple[int, int]:
        """Add ``by`` to the integer at ``key`` (absent: 0); (new value, version). ``expires_at`` KEEP_TTL keeps
        the key's expiry."""
        try:
            async with self._db.transaction() as tx:
                seq, used_keys, used_bytes = await self._reserve(tx, function_id, 1)
                row = await tx.fetchone(
                    "SELECT kind, value, expires_at FROM kv WHERE function_id = ? AND key = ?",
                    (function_id, key),
                )
                start = 0
                keep: int | None = None
                if row is not None and _live(row[2], now_ms):
                    start = _integer(key, row[0], row[1])
                    keep = row[2]
                total = start + by
                if not INT64_MIN <= total <= INT64_MAX:
                    raise NotInteger(key, f"{start} + {by} is outside the 64-bit integer range")
                put = KvPut(key, "json", str(total).encode(), keep if expires_at == KEEP_TTL else expires_at)
                rows = await self._rows(tx, function_id, [key])
                sizes = [(key, len(put.value))]
                if not self._fits(sizes, rows, used_keys, used_bytes, limits):
                    used_keys, used_bytes, rows = await self._purge(tx, function_id, [key], now_ms)
                    if not self._fits(sizes, rows, used_keys, used_bytes, limits):
                        raise QuotaExceeded(*self._after(sizes, rows, used_keys, used_bytes), limits)
                await tx.execute(
                    "INSERT INTO kv (function_id, key, kind, value, size, version, expires_at, created_at,"
                    " updated_at) VALUES (?, ?, 'json', ?, ?, ?, ?, ?, ?) ON CONFLICT (function_id, key) DO UPDATE"
                    " SET kind = 'json', value = excluded.value, size = excluded.size, version = excluded.version,"
                    " expires_at = excluded.expires_at, updated_at = excluded.updated_at,"
                    " created_at = CASE WHEN kv.expires_at IS NOT NULL AND kv.expires_at <= ?"
                    " THEN excluded.created_at ELSE kv.created_at END",
                    (function_id, key, put.value, len(put.value), seq, put.expires_at, now, now, now_ms),
                )
        except IntegrityError as exc:
            if exc.kind == "foreign_key":
                raise FunctionGone(function_id) from None
            raise
        return total, seq

    async def delete_many(self, function_id: str, keys: Sequence[str], now_ms: int) -> list[str]:
        """Delete the keys; the ones that existed (and had not expired)."""
        if not keys:
            return []
        async with self._db.transaction() as tx:
            gone = await tx.fetchall(
                f"DELETE FROM kv WHERE function_id = ? AND key IN ({_marks(len(keys))}) RETURNING key, expires_at",
                (function_id, *keys),
            )
        return [r[0] for r in gone if _live(r[1], now_ms)]

    async def sweep(self, now_ms: int, batch: int) -> int:
        """Delete up to ``batch`` expired rows of any function; how many went."""
        return await self._db.execute(
            "DELETE FROM kv WHERE (function_id, key) IN (SELECT function_id, key FROM kv"
            " WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)",
            (now_ms, batch),
        )

    # inside a write transaction
    @staticmethod
    async def _reserve(tx: Transaction, function_id: str, n: int) -> tuple[int, int, int]:
        """Bump the namespace's version counter by n: (last version reserved, rows held, bytes held)."""
        row = await tx.fetchone(
            "INSERT INTO kv_usage (function_id, seq) VALUES (?, ?) ON CONFLICT (function_id)"
            " DO UPDATE SET seq = kv_usage.seq + excluded.seq RETURNING seq, keys, bytes",
            (function_id, n),
        )
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])

    @staticmethod
    async def _rows(
        tx: Transaction, function_id: str, keys: Sequence[str]
    ) -> dict[str, tuple[int, int, int | None]]:
        """key -> (version, size, expires_at) of the stored rows, expired ones included."""
        return {
            r[0]: (r[1], r[2], r[3])
            for r in await tx.fetchall(
                f"SELECT key, version, size, expires_at FROM kv WHERE function_id = ? AND key IN ({_marks(len(keys))})",
                (function_id, *keys),
            )
        }

    async def _purge(
        self, tx: Transaction, function_id: str, keys: Sequence[str], now_ms: int
    ) -> tuple[int, int, dict[str, tuple[int, int, int | None]]]:
        """The quota is reached: drop the function's expired rows now, then (rows, bytes, stored rows) again."""
        await tx.execute(
            "DELETE FROM kv WHERE function_id = ? AND expires_at IS NOT NULL AND expires_at <= ?",
            (function_id, now_ms),
        )
        row = await tx.fetchone("SELECT keys, bytes FROM kv_usage WHERE function_id = ?", (function_id,))
        assert row is not None
        return int(row[0]), int(row[1]), await self._rows(tx, function_id, keys)

    @staticmethod
    def _after(
        sizes: Sequence[tuple[str, int]],
        rows: dict[str, tuple[int, int, int | None]],
        used_keys: int,
        used_bytes: int,
    ) -> tuple[int, int]:
        for key, size in sizes:
            row = rows.get(key)
            if row is None:
                used_keys += 1
                used_bytes += size + len(key.encode())
            else:
                used_bytes += size - row[1]
        return used_keys, used_bytes

    def _fits(
        self,
        sizes: Sequence[tuple[str, int]],
        rows: dict[str, tuple[int, int, int | None]],
        used_keys: int,
        used_bytes: int,
        limits: Limits,
    ) -> bool:
        keys, bytes_ = self._after(sizes, rows, used_keys, used_bytes)
        # a write that adds nothing (an overwrite no larger than before) always fits, even over a lowered quota
        return (keys <= limits.max_keys or keys <= used_keys) and (
            bytes_ <= limits.max_bytes or bytes_ <= used_bytes
        )


def _integer(key: str, kind: str, value: Any) -> int:
    if kind != "json":
        raise NotInteger(key, "it holds bytes")
    parsed = json.loads(bytes(value))
    if isinstance(parsed, bool) or not isinstance(parsed, int):
        raise NotInteger(
            key, f"it holds {type(parsed).__name__ if parsed is not None else 'null'}, not an integer"
        )
    return parsed
