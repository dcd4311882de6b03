"""The SQLite store on a real file: pragmas, migrations, the single writer and the batched writer."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from orvad.errors import InsufficientStorage, is_disk_full
from orvad.ids import uuid7
from orvad.store.batch import MAX_VARIABLES, BatchWriter, multi_row
from orvad.store.db import SqliteDatabase, _split_sql, migration_files
from orvad.store.sql import IntegrityError
from tests.helpers import fill_disk, small_tmpfs, until


@pytest.fixture
async def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    database = SqliteDatabase(tmp_path / "t.db")
    await database.open()
    await database.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, v TEXT)")
    yield database
    await database.close()


async def test_pragmas_and_migrations(db: SqliteDatabase) -> None:
    assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
    assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1
    assert (await db.fetchone("PRAGMA busy_timeout"))[0] == 5000
    applied = await db.fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r[0], r[1]) for r in applied] == [(n, name) for n, name, _ in migration_files()]
    assert db.schema_version == len(migration_files())


async def test_migrations_apply_once(tmp_path: Path) -> None:
    for _ in range(2):
        database = SqliteDatabase(tmp_path / "m.db")
        await database.open()
        await database.close()
    with sqlite3.connect(tmp_path / "m.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(migration_files())


def test_split_sql_respects_comments_and_strings() -> None:
    sql = "CREATE TABLE a (x TEXT); -- note; with semicolons\nINSERT INTO a VALUES ('x;y');\n"
    statements = _split_sql(sql)
    assert len(statements) == 2 and statements[1].endswith("VALUES ('x;y');")


async def test_concurrent_writes_are_serialised(db: SqliteDatabase) -> None:
    async def insert(i: int) -> None:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO rows (id, v) VALUES (?, ?)", (i, str(i)))

    await asyncio.gather(*(insert(i) for i in range(200)))
    assert (await db.fetchone("SELECT COUNT(*) FROM rows"))[0] == 200


async def test_every_read_sees_the_writes_committed_before_it(db: SqliteDatabase) -> None:
    """Concurrent reads on the one reader connection must not hold its snapshot open: a row committed
    before a read starts is always seen (a deployment inserted, then looked up by its build)."""
    await db.executemany("INSERT INTO rows (id, v) VALUES (?, ?)", [(i, "old") for i in range(100)])
    done = asyncio.Event()

    async def read_while_writing() -> None:
        while not done.is_set():  # a statement over many rows, which other reads overlap
            await db.fetchone("SELECT * FROM rows")
            await db.fetchall("SELECT * FROM rows LIMIT 3")

    readers = [asyncio.create_task(read_while_writing()) for _ in range(8)]
    try:
        for i in range(1000, 1300):
            await db.execute("INSERT INTO rows (id, v) VALUES (?, 'new')", (i,))
            assert await db.fetchone("SELECT v FROM rows WHERE id = ?", (i,)) is not None, f"row {i} not seen"
    finally:
        done.set()
        await asyncio.gather(*readers)


async def test_failed_transaction_rolls_back(db: SqliteDatabase) -> None:
    with pytest.raises(IntegrityError):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO rows (id, v) VALUES (1, 'a')")
            await tx.execute("INSERT INTO rows (id, v) VALUES (1, 'b')")
    assert (await db.fetchone("SELECT COUNT(*) FROM rows"))[0] == 0


async def test_batch_writer_flushes_by_time_and_on_stop(db: SqliteDatabase) -> None:
    writer = BatchWriter(db, interval_s=0.02, max_batch=100)
    writer.start()
    writer.submit("INSERT INTO rows (v) VALUES (?)", ("first",))
    for _ in range(250):  # wait on the condition, bounded
        if (await db.fetchone("SELECT COUNT(*) FROM rows"))[0] == 1:
            break
        await asyncio.sleep(0.01)
    assert (await db.fetchone("SELECT COUNT(*) FROM rows"))[0] == 1

    for i in range(10_000):  # queued without yielding: nothing reaches the database yet
        writer.submit("INSERT INTO rows (v) VALUES (?)", (str(i),))
    assert writer.pending == 10_000
    await writer.stop()
    assert writer.pending == 0
    assert (await db.fetchone("SELECT COUNT(*) FROM rows"))[0] == 10_001
    with pytest.raises(RuntimeError):
        writer.submit("INSERT INTO rows (v) VALUES (?)", ("late",))


async def test_batch_writer_keeps_rows_when_a_flush_fails(db: SqliteDatabase) -> None:
    writer = BatchWriter(db)
    writer.submit("INSERT INTO missing_table (v) VALUES (?)", ("x",))
    with pytest.raises(sqlite3.OperationalError):
        await writer.flush()
    assert writer.pending == 1


def test_multi_row_keeps_a_clause_after_the_row_once_at_the_end() -> None:
    """ON CONFLICT DO NOTHING (the replay memory, captured requests) follows the rows, once: repeated per row
    it was a syntax error on both drivers (the reason those statements were INSERT OR IGNORE, SQLite's only)."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE seen (k TEXT PRIMARY KEY, n INTEGER)")
    conn.execute("INSERT INTO seen VALUES ('b', 0)")
    rows = [("a", 1), ("b", 2), ("c", 3), ("a", 4)]
    sql = "INSERT INTO seen (k, n) VALUES (?, (? + 0)) ON CONFLICT DO NOTHING"
    [(statement, params)] = list(multi_row(sql, rows))
    assert statement.endswith("(?, (? + 0)), (?, (? + 0)) ON CONFLICT DO NOTHING")
    assert statement.count("ON CONFLICT") == 1 and list(params) == ["a", 1, "b", 2, "c", 3, "a", 4]
    conn.execute(statement, params)
    assert conn.execute("SELECT k, n FROM seen ORDER BY k").fetchall() == [("a", 1), ("b", 0), ("c", 3)]


def test_ids_made_in_one_millisecond_sort_in_the_order_they_were_made() -> None:
    """uuid7 is monotonic in a process, so ORDER BY id is insertion order on both drivers (no rowid on
    PostgreSQL): the assistant's tool calls of one message are listed in the order the model asked."""
    made = [uuid7() for _ in range(5000)]  # thousands per millisecond
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(uid[14] == "7" and uid[19] in "89ab" for uid in made)  # still version 7, RFC 9562 variant


def test_multi_row_inserts_write_every_row_in_few_statements() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE wide (a INTEGER, b TEXT, c REAL)")
    rows = [(i, f"r{i}", i / 2) for i in range(1000)]
    statements = list(multi_row("INSERT INTO wide (a, b, c) VALUES (?, ?, ?)", rows))
    assert len(statements) == -(-1000 // (MAX_VARIABLES // 3))  # ceil: 333 rows per statement
    assert all(len(params) <= MAX_VARIABLES for _, params in statements)
    for sql, params in statements:
        conn.execute(sql, params)
    assert conn.execute("SELECT a, b, c FROM wide ORDER BY a").fetchall() == rows  # all, in order, exact
    updates = list(multi_row("UPDATE wide SET b = ? WHERE a = ?", [("x", 1), ("y", 2)]))
    assert updates == [
        ("UPDATE wide SET b = ? WHERE a = ?", ("x", 1)),
        ("UPDATE wide SET b = ? WHERE a = ?", ("y", 2)),
    ]


def test_uuid7_is_time_ordered() -> None:
    ids = [uuid7() for _ in range(1000)]
    assert all(len(i) == 36 and i[14] == "7" for i in ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)


async def test_a_cancelled_transaction_leaves_the_connection_usable(db: SqliteDatabase) -> None:
    """A writer cancelled at any await inside a transaction (BEGIN, a statement, COMMIT) must not
    leave a transaction open on the shared connection: the next writer would fail for good."""
    for step in range(6):

        async def write(n: int = step) -> None:
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO rows (id, v) VALUES (?, 'x')", (n,))
                await tx.execute("UPDATE rows SET v = 'y' WHERE id = ?", (n,))

        task = asyncio.create_task(write())
        for _ in range(step):  # cancel it after `step` hops on the event loop
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await db.execute("INSERT INTO rows (id, v) VALUES (?, 'after')", (100 + step,))  # BEGIN must work
        assert await db.fetchone("SELECT v FROM rows WHERE id = ?", (100 + step,)) is not None


async def test_write_all_is_one_transaction(db: SqliteDatabase) -> None:
    await db.write_all(
        [
            ("INSERT INTO rows (id, v) VALUES (?, ?)", (1, "a")),
            ("UPDATE rows SET v = ? WHERE id = ?", ("b", 1)),
        ]
    )
    assert [tuple(r) for r in await db.fetchall("SELECT id, v FROM rows")] == [(1, "b")]
    with pytest.raises(IntegrityError):  # the second statement fails: the first is undone too
        await db.write_all(
            [
                ("INSERT INTO rows (id, v) VALUES (2, 'c')", ()),
                ("INSERT INTO rows (id, v) VALUES (1, 'd')", ()),
            ]
        )
    assert [tuple(r) for r in await db.fetchall("SELECT id, v FROM rows")] == [(1, "b")]
    cancelled = asyncio.create_task(db.write_all([("INSERT INTO rows (id, v) VALUES (3, 'e')", ())]))
    hop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(hop.set_result, None)  # runs after the task's first step
    await hop
    assert db._write_lock.locked()  # the write holds the lock: its job is on the writer's thread
    cancelled.cancel()  # the job runs to its end on the writer's thread; the connection stays usable
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await db.execute("INSERT INTO rows (id, v) VALUES (4, 'f')")
    assert {r[0] for r in await db.fetchall("SELECT id FROM rows")} >= {1, 4}


async def test_a_silent_execution_has_no_log_row_but_reads_as_empty(tmp_path: Path) -> None:
    from orvad.store.executions import ExecutionStore

    database = SqliteDatabase(tmp_path / "orva.db")
    await database.open()
    try:
        writer = BatchWriter(database)
        store = ExecutionStore(database, writer)
        fn_id = uuid7()
        await database.execute(
            "INSERT INTO functions (id, name, runtime, entrypoint, memory_mb, cpus, timeout_ms, "
            "network_mode, auth_mode, status, created_at, updated_at) VALUES (?, 'f', 'python', "
            "'handler.py', 128, 1, 1000, 'none', 'none', 'active', 'now', 'now')",
            (fn_id,),
        )
        written: list[str] = []
        silent, loud = uuid7(), uuid7()
        for execution_id, logs in ((silent, ""), (loud, "printed\n")):
            store.record(
                {
                    "id": execution_id,
                    "function_id": fn_id,
                    "function_name": "f",
                    "code_hash": "h",
                    "trigger": "http",
                    "method": "GET",
                    "path": "/",
                    "status": "success",
                    "status_code": 200,
                    "cold_start": False,
                    "duration_ms": 1.0,
                    "queue_ms": 0.0,
                    "request_bytes": 0,
                    "response_bytes": 2,
                    "error_code": None,
                    "error_message": None,
                    "started_at": "t",
                    "finished_at": "t",
                },
                logs,
                False,
                lambda eid=execution_id: written.append(eid),
            )
        await writer.flush()
        assert {r[0] for r in await database.fetchall("SELECT id FROM executions")} == {silent, loud}
        assert written == [silent, loud]  # each announced once, when its rows are committed
        assert [r[0] for r in await database.fetchall("SELECT execution_id FROM execution_logs")] == [loud]
        assert await store.logs(silent) == ("", False)
        assert await store.logs(loud) == ("printed\n", False)
        assert await store.logs(uuid7()) is None
    finally:
        await database.close()


async def test_a_writer_pass_writes_what_was_queued_and_leaves_arrivals_for_the_next(
    db: SqliteDatabase,
) -> None:
    """Under steady load a pass that chased the arrivals made one small commit after another."""
    writer = BatchWriter(db, max_batch=4)
    for i in range(10):
        writer.submit("INSERT INTO rows (v) VALUES (?)", (f"early{i}",))
    real_write_all, calls = db.write_all, []

    async def write_all_while_rows_arrive(statements: Any) -> None:
        calls.append(statements)
        writer.submit("INSERT INTO rows (v) VALUES (?)", (f"late{len(calls)}",))
        await real_write_all(statements)

    db.write_all = write_all_while_rows_arrive  # type: ignore[method-assign]
    await writer._write_queued()
    assert len(calls) == 3  # the 10 rows queued at the start, in batches of at most 4: three commits
    written = [r[0] for r in await db.fetchall("SELECT v FROM rows")]
    assert {f"early{i}" for i in range(10)} <= set(written) and len(written) == 12  # the last batch had room
    assert writer.pending == 1  # the row that arrived during the last commit waits for the next pass
    db.write_all = real_write_all  # type: ignore[method-assign]
    await writer.flush()  # flush (and stop) drain everything, arrivals included
    assert (await db.fetchone("SELECT COUNT(*) FROM rows"))[0] == 13 and writer.pending == 0


@pytest.fixture
async def full_db(jail_tmp: Path):  # type: ignore[no-untyped-def]
    """A database alone on a 4 MiB tmpfs, with a filler file beside it (fill it with fill_disk)."""
    with small_tmpfs(jail_tmp / "disk", 4) as disk:
        database = SqliteDatabase(disk / "t.db")
        await database.open()
        await database.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, v TEXT)")
        try:
            yield database, disk / "filler"
        finally:
            await database.close()


async def write_until_refused(database: SqliteDatabase) -> InsufficientStorage:
    """With the disk full, SQLite still fills the WAL's old pages; a few writes later one finds no space."""
    for i in range(2000):
        try:
            await database.execute("INSERT INTO rows (v) VALUES (?)", ("w" * 8000 + str(i),))
        except InsufficientStorage as exc:
            return exc
    raise AssertionError("2000 writes of 8 KB each fitted on a full 4 MiB disk")


@pytest.mark.sandbox
async def test_a_full_disk_is_insufficient_storage_and_passes(full_db: tuple[SqliteDatabase, Path]) -> None:
    """SQLITE_FULL becomes the 507 error at the source; once space returns, writes work again."""
    database, filler = full_db
    fill_disk(filler)
    refused = await write_until_refused(database)
    assert refused.status == 507 and refused.code == "INSUFFICIENT_STORAGE"
    assert "data dir" in (refused.hint or "") and is_disk_full(refused.__cause__)
    assert database.storage_full_since is not None
    filler.unlink()
    await database.execute("INSERT INTO rows (v) VALUES (?)", ("after",))
    assert database.storage_full_since is None
    assert (await database.fetchone("SELECT COUNT(*) FROM rows WHERE v = 'after'"))[0] == 1


@pytest.mark.sandbox
async def test_the_batch_writer_keeps_rows_while_the_disk_is_full(
    full_db: tuple[SqliteDatabase, Path],
) -> None:
    """Rows queued while the disk is full stay in memory and are written, each once, when space returns."""
    database, filler = full_db
    fill_disk(filler)
    await write_until_refused(database)
    writer = BatchWriter(database, interval_s=0.01)
    writer.start()
    try:
        for i in range(300):
            writer.submit("INSERT INTO rows (v) VALUES (?)", ("x" * 2000 + f"-{i}",))
        await until(lambda: writer.full_since is not None, 10, "the writer to find the disk full")
        assert writer.pending == 300 and writer.rows_dropped == 0
        filler.unlink()
        await until(
            lambda: not writer.pending and writer.full_since is None, 10, "the held rows to be written"
        )
    finally:
        await writer.stop()
    assert (await database.fetchone("SELECT COUNT(*) FROM rows WHERE v LIKE 'xx%'"))[0] == 300
    assert writer.rows_dropped == 0


@pytest.mark.sandbox
async def test_past_its_bound_the_batch_writer_drops_new_rows_and_counts_them(
    full_db: tuple[SqliteDatabase, Path],
) -> None:
    database, filler = full_db
    fill_disk(filler)
    await write_until_refused(database)
    writer = BatchWriter(database, interval_s=0.01, max_pending=100)
    writer.start()
    try:
        for i in range(150):
            writer.submit("INSERT INTO rows (v) VALUES (?)", ("y" * 2000 + f"-{i}",))
        assert writer.pending == 100 and writer.rows_dropped == 50
        filler.unlink()
        await until(lambda: not writer.pending, 10, "the held rows to be written")
    finally:
        await writer.stop()
    kept = await database.fetchall("SELECT v FROM rows WHERE v LIKE 'yy%'")
    assert sorted(int(r[0].rsplit("-", 1)[1]) for r in kept) == list(range(100))  # the first 100, each once


@pytest.mark.sandbox
async def test_past_its_byte_bound_the_batch_writer_drops_new_rows_and_counts_them(
    full_db: tuple[SqliteDatabase, Path],
) -> None:
    """Red team F8: rows are bounded by their bytes too, not only their count: 200,000 execution rows of
    256 KiB of logs each would have been 50 GB of orvad's memory while the disk is full."""
    database, filler = full_db
    fill_disk(filler)
    await write_until_refused(database)
    writer = BatchWriter(database, interval_s=0.01, max_pending_bytes=64 * 1024)
    writer.start()
    try:
        for i in range(40):  # 40 rows of 4 KiB: 16 fit in 64 KiB
            writer.submit("INSERT INTO rows (v) VALUES (?)", ("z" * 4000 + f"-{i}",))
        assert writer.pending == 16 and writer.rows_dropped == 24
        assert writer.pending_bytes <= 64 * 1024
        filler.unlink()
        await until(lambda: not writer.pending, 10, "the held rows to be written")
        assert writer.pending_bytes == 0
    finally:
        await writer.stop()
    kept = await database.fetchall("SELECT v FROM rows WHERE v LIKE 'zz%'")
    assert sorted(int(r[0].rsplit("-", 1)[1]) for r in kept) == list(range(16))  # the first 16, each once
