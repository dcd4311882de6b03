"""AuditTrail.record_webhook (issue 24), the method the webhook work calls: a delivery is an audit row of source
`webhook` (inbound and outbound), listed by the activity feed's query, and published as the `activity` event
once committed; never a URL, header or body (the method takes none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orvad.auth.audit import AuditTrail
from orvad.services.metrics import Metrics
from orvad.store.audit import ActivityFilter, AuditStore
from orvad.store.batch import BatchWriter
from orvad.store.db import SqliteDatabase


async def test_webhook_deliveries_are_activity_rows_published_after_commit(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    batch = BatchWriter(db)
    published: list[tuple[str, dict[str, Any]]] = []
    store = AuditStore(db, batch)
    trail = AuditTrail(store, Metrics(), lambda topic, data: published.append((topic, data)))
    try:
        trail.record_webhook(
            direction="inbound", webhook_id="wh1", webhook_name="github", status=200, target_id="fn1"
        )
        trail.record_webhook(
            direction="outbound",
            webhook_id="wh2",
            webhook_name="slack-alerts",
            status=None,
            target_id="dlv1",
            event="deployment.failed",
        )
        assert published == []  # nothing before the commit
        await batch.flush()
        rows = await store.activity(ActivityFilter(source="webhook"), cursor=None, limit=10)
        # (two rows of one millisecond: their UUIDv7 order within it is random)
        assert sorted((r["path"], r["status"], r["target_id"]) for r in rows) == [
            ("/api/v1/webhooks/wh2 deliver deployment.failed", 502, "dlv1"),
            ("/webhook/wh1", 200, "fn1"),
        ]
        assert {r["method"] for r in rows} == {"WEBHOOK"} and {r["actor_kind"] for r in rows} == {"webhook"}
        assert [topic for topic, _ in published] == ["activity", "activity"]
        assert [data["source"] for _, data in published] == ["webhook", "webhook"]
        assert {data["id"] for _, data in published} == {r["id"] for r in rows}
        assert await store.activity(ActivityFilter(source="api"), cursor=None, limit=10) == []
        found = await store.activity(ActivityFilter(q="SLACK"), cursor=None, limit=10)
        assert [r["actor_name"] for r in found] == ["slack-alerts"]
    finally:
        await batch.stop()
        await db.close()
