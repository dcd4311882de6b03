"""SQL for inbound webhooks (table inbound_webhooks, migration 0018; orvad/webhooks/inbound.py).

The secret is stored only sealed (secret_nonce, secret_sealed). Delivery figures are written through
the batched writer: the public trigger never waits on the disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from orvad.store.batch import BatchWriter
from orvad.store.sql import Database, IntegrityError

_COLUMNS = (
    "id, function_id, name, format, header, prefix, tolerance_s, mode, enabled, secret_nonce, secret_sealed, "
    "deliveries, last_delivery_at, last_status, last_execution_id, last_job_id, created_at, updated_at, rotated_at"
)


@dataclass(frozen=True)
class InboundWebhookRow:
    id: str
    function_id: str
    name: str
    format: str
    header: str | None
    prefix: str
    tolerance_s: int
    mode: str
    enabled: bool
    secret_nonce: bytes
    secret_sealed: bytes
    deliveries: int
    last_delivery_at: str | None
    last_status: int | None
    last_execution_id: str | None
    last_job_id: str | None
    created_at: str
    updated_at: str
    rotated_at: str | None


def _row(row: object) -> InboundWebhookRow:
    values = dict(row)  # type: ignore[call-overload]
    values["enabled"] = bool(values["enabled"])
    return InboundWebhookRow(**values)


class NameTaken(Exception):
    """The function has another inbound webhook of this name (the UNIQUE constraint)."""


class InboundWebhookStore:
    def __init__(
        self, db: Database, batch: BatchWriter | None = None
    ) -> None:  # None: offline (no deliveries)
        self._db = db
        self._batch = batch

    async def all(self) -> list[InboundWebhookRow]:
        return [_row(r) for r in await self._db.fetchall(f"SELECT {_COLUMNS} FROM inbound_webhooks")]

    async def get(self, webhook_id: str) -> InboundWebhookRow | None:
        row = await self._db.fetchone(f"SELECT {_COLUMNS} FROM inbound_webhooks WHERE id = ?", (webhook_id,))
        return _row(row) if row else None

    async def save(self, row: InboundWebhookRow) -> None:
        """Insert or replace the row of this id (the delivery figures stay as they are)."""
        try:
            await self._db.execute(
                "INSERT INTO inbound_webhooks (id, function_id, name, format, header, prefix, tolerance_s, mode,"
                " enabled, secret_nonce, secret_sealed, created_at, updated_at, rotated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET name = excluded.name, format = excluded.format, header = excluded.header,"
                " prefix = excluded.prefix, tolerance_s = excluded.tolerance_s, mode = excluded.mode,"
                " enabled = excluded.enabled, secret_nonce = excluded.secret_nonce,"
                " secret_sealed = excluded.secret_sealed, updated_at = excluded.updated_at,"
                " rotated_at = excluded.rotated_at",
                (
                    row.id,
                    row.function_id,
                    row.name,
                    row.format,
                    row.header,
                    row.prefix,
                    row.tolerance_s,
                    row.mode,
                    int(row.enabled),
                    row.secret_nonce,
                    row.secret_sealed,
                    row.created_at,
                    row.updated_at,
                    row.rotated_at,
                ),
            )
        except IntegrityError as exc:
            if exc.taken("inbound_webhooks", "name") or exc.taken("inbound_webhooks", "function_id"):
                raise NameTaken(row.name) from None
            raise

    async def delete(self, webhook_id: str) -> bool:
        return await self._db.execute("DELETE FROM inbound_webhooks WHERE id = ?", (webhook_id,)) > 0

    async def delete_function(self, function_id: str) -> None:
        await self._db.execute("DELETE FROM inbound_webhooks WHERE function_id = ?", (function_id,))

    async def replace_secrets(self, rows: list[tuple[bytes, bytes, str]]) -> None:
        """(nonce, sealed, id) for each webhook, in one transaction (the master key's rotation)."""
        async with self._db.transaction() as tx:
            await tx.executemany(
                "UPDATE inbound_webhooks SET secret_nonce = ?, secret_sealed = ? WHERE id = ?", rows
            )

    def delivered(
        self, webhook_id: str, at: str, status: int, execution_id: str | None, job_id: str | None
    ) -> None:
        """A verified delivery ran (or was queued): queued to the batched writer."""
        assert self._batch is not None, "deliveries are recorded by a running orvad"
        self._batch.submit(
            "UPDATE inbound_webhooks SET deliveries = deliveries + 1, last_delivery_at = ?, last_status = ?,"
            " last_execution_id = ?, last_job_id = ? WHERE id = ?",
            (at, status, execution_id, job_id, webhook_id),
        )
