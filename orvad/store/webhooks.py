"""SQL for outbound webhooks (migration 0019, issue 24): receivers, the outbox of deliveries, their attempts.

The service (orvad/webhooks/outbound.py) keeps the receivers in memory and writes through; deliveries are
inserted by its sender task (never on an invoke path), claimed by id when due, and ended with one
transaction per attempt (the attempt row and the delivery's new state). Times: ``next_attempt_at`` and
``give_up_at`` are Unix seconds (REAL); ``*_at`` texts are RFC 3339 (orvad/clock.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orvad.clock import epoch_iso
from orvad.store.sql import Database

DELIVERY_STATUSES = ("pending", "delivered", "failed")
_HOOK_COLS = (
    "id, url, events, function_id, enabled, description, secret_nonce, secret_sealed, created_at, updated_at"
)
_DELIVERY_COLS = (
    "id, webhook_id, event_id, event_type, function_id, body, status, attempts, next_attempt_at, give_up_at,"
    " last_status_code, last_error, created_at, updated_at, finished_at"
)


@dataclass(frozen=True, slots=True)
class WebhookRow:
    id: str
    url: str
    events: str  # a JSON list
    function_id: str | None
    enabled: int
    description: str
    secret_nonce: bytes
    secret_sealed: bytes
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    function_id: str | None
    body: bytes
    status: str
    attempts: int
    next_attempt_at: float
    give_up_at: float
    last_status_code: int | None
    last_error: str | None
    created_at: str
    updated_at: str
    finished_at: str | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    delivery_id: str
    attempt: int
    started_at: str
    duration_ms: float
    status_code: int | None
    response: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    function_id: str | None
    body: bytes
    now: float
    give_up_at: float


def _hook(row: Any) -> WebhookRow:
    return WebhookRow(**dict(row))


def _delivery(row: Any) -> DeliveryRow:
    return DeliveryRow(**dict(row))


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # receivers
    async def all(self) -> list[WebhookRow]:
        return [_hook(r) for r in await self._db.fetchall(f"SELECT {_HOOK_COLS} FROM webhooks ORDER BY id")]

    async def insert(self, row: WebhookRow) -> None:
        await self._db.execute(
            f"INSERT INTO webhooks ({_HOOK_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                row.url,
                row.events,
                row.function_id,
                row.enabled,
                row.description,
                row.secret_nonce,
                row.secret_sealed,
                row.created_at,
                row.updated_at,
            ),
        )

    async def update(self, row: WebhookRow) -> None:
        await self._db.execute(
            "UPDATE webhooks SET url = ?, events = ?, function_id = ?, enabled = ?, description = ?,"
            " secret_nonce = ?, secret_sealed = ?, updated_at = ? WHERE id = ?",
            (
                row.url,
                row.events,
                row.function_id,
                row.enabled,
                row.description,
                row.secret_nonce,
                row.secret_sealed,
                row.updated_at,
                row.id,
            ),
        )

    async def delete(self, webhook_id: str) -> bool:
        """The receiver and (ON DELETE CASCADE) its deliveries and their attempts."""
        return await self._db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)) == 1

    async def replace_secrets(self, rows: list[tuple[bytes, bytes, str]]) -> None:
        """Re-sealed (secret_nonce, secret_sealed, id) rows in one transaction (master key rotation)."""
        async with self._db.transaction() as tx:
            await tx.executemany("UPDATE webhooks SET secret_nonce = ?, secret_sealed = ? WHERE id = ?", rows)

    # the outbox
    async def insert_deliveries(self, rows: Sequence[NewDelivery]) -> None:
        """Pending deliveries, due now, in one transaction (the sender's write of queued events)."""
        if not rows:
            return
        await self._db.write_all(
            [
                (
                    f"INSERT INTO webhook_deliveries ({_DELIVERY_COLS})"
                    " VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, NULL, NULL, ?, ?, NULL)",
                    (
                        d.id,
                        d.webhook_id,
                        d.event_id,
                        d.event_type,
                        d.function_id,
                        d.body,
                        d.now,
                        d.give_up_at,
                        epoch_iso(d.now),
                        epoch_iso(d.now),
                    ),
                )
                for d in rows
            ]
        )

    async def due(self, now: float, limit: int, per_webhook: int) -> list[DeliveryRow]:
        """Pending deliveries due by ``now`` of enabled receivers, the oldest first, at most ``per_webhook`` of
        each receiver (a dead receiver's backlog never hides another's)."""
        cols = ", ".join(f"d.{c.strip()}" for c in _DELIVERY_COLS.split(","))
        rows = await self._db.fetchall(
            f"SELECT {_DELIVERY_COLS} FROM (SELECT {cols}, ROW_NUMBER() OVER"
            " (PARTITION BY d.webhook_id ORDER BY d.next_attempt_at, d.id) AS rn"
            " FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id AND w.enabled = 1"
            " WHERE d.status = 'pending' AND d.next_attempt_at <= ?) AS due"
            " WHERE rn <= ? ORDER BY next_attempt_at, id LIMIT ?",
            (now, per_webhook, limit),
        )
        return [_delivery(r) for r in rows]

    async def next_due(self, now: float) -> float | None:
        """The earliest time after ``now`` a pending delivery comes due (those due already are being sent, or
        wait for a receiver's free slot: an attempt's end wakes the sender)."""
        row = await self._db.fetchone(
            "SELECT MIN(next_attempt_at) AS t FROM webhook_deliveries WHERE status = 'pending'"
            " AND next_attempt_at > ?",
            (now,),
        )
        return float(row["t"]) if row is not None and row["t"] is not None else None

    async def claim(
        self, delivery_id: str, attempts: int, now: float, lease_until: float
    ) -> DeliveryRow | None:
        """Take a due delivery for its next attempt: one conditional UPDATE that only one claimer wins. It
        holds only while the row is still pending, due by ``now`` and has ``attempts`` attempts ended (a row
        read before an attempt's end was written, or claimed already, is refused: None). The claim moves
        ``next_attempt_at`` to ``lease_until`` (due again then should the attempt's end never be written: a
        crash; ``release`` makes it due at once at the next start) and returns the row as it is now."""
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ? AND status = 'pending'"
                f" AND attempts = ? AND next_attempt_at <= ? RETURNING {_DELIVERY_COLS}",
                (lease_until, delivery_id, attempts, now),
            )
        return _delivery(row) if row is not None else None

    async def release(self, now: float, horizon: float) -> int:
        """At the sender's start: pending deliveries due by ``horizon`` are due now (among them those claimed
        when orvad stopped or died: their lease reaches at most that far)."""
        return await self._db.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE status = 'pending'"
            " AND next_attempt_at > ? AND next_attempt_at <= ?",
            (now, now, horizon),
        )

    async def end_attempt(
        self,
        delivery: DeliveryRow,
        attempt: AttemptRow,
        *,
        status: str,
        next_attempt_at: float,
        now: float,
    ) -> bool:
        """An attempt's row and the delivery's next state (pending again, delivered or failed), one
        transaction, fenced by the attempts count: written only while the delivery has ``attempt - 1``
        attempts ended (an attempt's record is never overwritten). False: nothing written."""
        stamp = epoch_iso(now)
        finished = stamp if status != "pending" else None
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?,"
                " last_status_code = ?, last_error = ?, updated_at = ?, finished_at = ?"
                " WHERE id = ? AND attempts = ?",
                (
                    status,
                    attempt.attempt,
                    next_attempt_at,
                    attempt.status_code,
                    attempt.error,
                    stamp,
                    finished,
                    delivery.id,
                    attempt.attempt - 1,
                ),
            )
            if changed != 1:
                return False
            await tx.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms,"
                " status_code, response, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    attempt.delivery_id,
                    attempt.attempt,
                    attempt.started_at,
                    attempt.duration_ms,
                    attempt.status_code,
                    attempt.response,
                    attempt.error,
                ),
            )
        return True

    async def delivery(self, delivery_id: str) -> DeliveryRow | None:
        row = await self._db.fetchone(
            f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE id = ?", (delivery_id,)
        )
        return _delivery(row) if row else None

    async def deliveries(
        self, webhook_id: str, *, status: str | None, cursor: str | None, limit: int
    ) -> list[DeliveryRow]:
        """Newest first, ``limit + 1`` rows (the caller tells whether there is a next page)."""
        sql = f"SELECT {_DELIVERY_COLS} FROM webhook_deliveries WHERE webhook_id = ?"
        params: list[Any] = [webhook_id]
        if status is not None:
            sql += " AND status = ?"
            params.append(status)
        if cursor is not None:
            sql += " AND id < ?"
            params.append(cursor)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit + 1)
        return [_delivery(r) for r in await self._db.fetchall(sql, params)]

    async def attempts(self, delivery_ids: Sequence[str]) -> dict[str, list[AttemptRow]]:
        if not delivery_ids:
            return {}
        marks = ", ".join("?" for _ in delivery_ids)
        rows = await self._db.fetchall(
            "SELECT delivery_id, attempt, started_at, duration_ms, status_code, response, error"
            f" FROM webhook_attempts WHERE delivery_id IN ({marks}) ORDER BY delivery_id, attempt",
            list(delivery_ids),
        )
        out: dict[str, list[AttemptRow]] = {d: [] for d in delivery_ids}
        for r in rows:
            out[r["delivery_id"]].append(AttemptRow(**dict(r)))
        return out

    async def counts(self, webhook_id: str) -> dict[str, int]:
        rows = await self._db.fetchall(
            "SELECT status, COUNT(*) AS n FROM webhook_deliveries WHERE webhook_id = ? GROUP BY status",
            (webhook_id,),
        )
        out = dict.fromkeys(DELIVERY_STATUSES, 0)
        for r in rows:
            out[r["status"]] = int(r["n"])
        return out

    async def retry(self, delivery_id: str, now: float, give_up_at: float) -> bool:
        """Back to pending, due now, with a fresh window (its attempts so far stay listed)."""
        return (
            await self._db.execute(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, give_up_at = ?,"
                " finished_at = NULL, updated_at = ? WHERE id = ?",
                (now, give_up_at, epoch_iso(now), delivery_id),
            )
            == 1
        )

    async def prune(self, before: str) -> int:
        """Delivered and failed deliveries that ended before ``before`` (RFC 3339), with their attempts."""
        return await self._db.execute(
            "DELETE FROM webhook_deliveries WHERE status != 'pending' AND finished_at < ?", (before,)
        )
