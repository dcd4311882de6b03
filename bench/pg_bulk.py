"""The batched writer's bulk path on PostgreSQL (issue 25): what one execution row costs to write by multi-row
INSERT statements (the store's SQL as SQLite runs it), by ``executemany``, and by binary ``COPY`` (what
``PgDatabase.write_batch`` uses for a plain INSERT of ``COPY_MIN_ROWS`` rows or more), at batch sizes of 13
(a quiet node's batch), 100 and 500 (the writer's largest).

Each size runs ROUNDS rounds; inside a round the three ways alternate, on fresh rows, so a machine whose
load changes moves them alike. Prints the median microseconds per row (wall time of the transaction, the
server's work included). Run: ``.venv/bin/python bench/pg_bulk.py`` (needs Debian's postgresql: make pg-deps).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orvad.store.batch import multi_row  # noqa: E402
from orvad.store.postgres.driver import PgDatabase  # noqa: E402
from tests.pg import ThrowawayPostgres  # noqa: E402

ROUNDS = 15
SIZES = (13, 100, 500)
COLUMNS = (
    "id function_id function_name code_hash trigger method path status status_code cold_start duration_ms"
    " queue_ms request_bytes response_bytes error_code error_message started_at finished_at"
).split()
TABLE = (
    "CREATE TABLE ex (id TEXT PRIMARY KEY, function_id TEXT NOT NULL, function_name TEXT NOT NULL,"
    " code_hash TEXT, trigger TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, status TEXT NOT NULL,"
    " status_code BIGINT NOT NULL, cold_start SMALLINT NOT NULL, duration_ms DOUBLE PRECISION NOT NULL,"
    " queue_ms DOUBLE PRECISION NOT NULL, request_bytes BIGINT NOT NULL, response_bytes BIGINT NOT NULL,"
    " error_code TEXT, error_message TEXT, started_at TEXT NOT NULL, finished_at TEXT NOT NULL)"
)
INSERT = f"INSERT INTO ex ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"


def rows(count: int) -> list[tuple[Any, ...]]:
    """Execution rows as the invoke path queues them (a successful warm GET)."""
    return [
        (str(uuid.uuid4()), "fn", "hello", "c0de", "http", "GET", "/fn/hello", "success", 200, 0, 0.4, 0.01)
        + (0, 17, None, None, "2026-12-06T00:00:00.000Z", "2026-12-06T00:00:00.001Z")
        for _ in range(count)
    ]


async def write(db: PgDatabase, way: str, batch: list[tuple[Any, ...]]) -> None:
    if way == "multi-row INSERT":
        await db.write_all(multi_row(INSERT, batch))
        return
    async with db.transaction() as tx:
        if way == "executemany":
            await tx.executemany(INSERT, batch)
        else:
            await tx.copy_rows("ex", COLUMNS, batch)  # type: ignore[attr-defined]


async def main() -> None:
    ways = ("multi-row INSERT", "executemany", "COPY")
    with ThrowawayPostgres() as pg:
        db = PgDatabase(pg.dsn())
        await db.open()
        try:
            await db.execute(TABLE)
            print(f"{'rows a batch':>12}  " + "  ".join(f"{w:>17}" for w in ways) + "   (us a row, median)")
            for size in SIZES:
                took: dict[str, list[float]] = {way: [] for way in ways}
                for _ in range(ROUNDS):
                    for way in ways:
                        batch = rows(size)
                        began = time.perf_counter()
                        await write(db, way, batch)
                        took[way].append((time.perf_counter() - began) * 1e6 / size)
                print(f"{size:>12}  " + "  ".join(f"{statistics.median(took[w]):>17.1f}" for w in ways))
        finally:
            await db.close()


if __name__ == "__main__":
    asyncio.run(main())
