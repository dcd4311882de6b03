"""SQL for the replay memory of signed invocations (orvad/invoke/signatures.py SignatureChecker).

The invoke path never waits on this: an accepted signature is queued to the batched writer, and
the live ones are read back once at start. ``replay_state.clean`` tells the next start whether
every queued row reached the database (a clean stop) or some may be missing (a crash).
"""

from __future__ import annotations

import logging

from orvad.store.batch import BatchWriter
from orvad.store.sql import Database

log = logging.getLogger(__name__)


class ReplayStore:
    def __init__(self, db: Database, batch: BatchWriter) -> None:
        self._db = db
        self._batch = batch

    async def open(self, now: float) -> tuple[list[tuple[str, float]], bool]:
        """(live signatures with their expiry, whether that list is complete: the previous run
        stopped cleanly); marks this run unclean until ``close``. An unreadable store answers
        ([], False): the caller then refuses what it cannot check."""
        try:
            return await self._open(now)
        except Exception as exc:  # either driver's error: refuse what cannot be checked
            log.error("signature replay memory unreadable", extra={"error": str(exc)})
            return [], False

    async def _open(self, now: float) -> tuple[list[tuple[str, float]], bool]:
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM signature_replays WHERE expires_at < ?", (now,))
            live = [
                (str(r[0]), float(r[1]))
                for r in await tx.fetchall("SELECT signature, expires_at FROM signature_replays")
            ]
            row = await tx.fetchone("SELECT clean FROM replay_state WHERE id = 1")
            await tx.execute(
                "INSERT INTO replay_state (id, clean) VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET clean = 0"
            )
        return live, row is not None and row[0] == 1

    def remember(self, signature: str, expires_at: float) -> None:
        self._batch.submit(
            "INSERT INTO signature_replays (signature, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (signature, expires_at),
        )

    async def claim(self, signature: str, expires_at: float) -> bool:
        """A cluster's claim: True when this call wrote the row, False when any node had (a replay)."""
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "INSERT INTO signature_replays (signature, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING"
                " RETURNING signature",
                (signature, expires_at),
            )
        return row is not None

    async def forget(self, signature: str) -> None:
        await self._db.execute("DELETE FROM signature_replays WHERE signature = ?", (signature,))

    async def close(self) -> None:
        """Call after the batched writer has written everything: the memory on disk is complete."""
        await self._db.execute("UPDATE replay_state SET clean = 1 WHERE id = 1")

    async def purge(self, now: float) -> int:
        return await self._db.execute("DELETE FROM signature_replays WHERE expires_at < ?", (now,))
