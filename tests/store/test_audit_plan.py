"""The activity feed's actor filter reads one actor's rows newest first through its index (migration 0024),
instead of walking the whole audit log (reads are rows: it grows by every API call)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orvad.store.audit import ActivityFilter, AuditStore
from orvad.store.batch import BatchWriter
from orvad.store.db import SqliteDatabase


async def test_the_actor_filter_searches_its_index(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    try:
        asked: list[tuple[str, tuple[Any, ...]]] = []
        real = db.fetchall

        async def recording(sql: str, params: Any = ()) -> Any:
            asked.append((sql, tuple(params)))
            return await real(sql, params)

        db.fetchall = recording  # type: ignore[method-assign]
        store = AuditStore(db, BatchWriter(db))
        for cursor in (None, "01a2493f-ffff-7000-8000-000000000000"):
            await store.activity(ActivityFilter(actor_id="key-1"), cursor=cursor, limit=50)
        db.fetchall = real  # type: ignore[method-assign]
        for sql, params in asked:
            plan = " ".join(str(r[3]) for r in await db.fetchall(f"EXPLAIN QUERY PLAN {sql}", params))
            assert "USING INDEX audit_actor" in plan and "TEMP B-TREE" not in plan, plan
    finally:
        await db.close()
