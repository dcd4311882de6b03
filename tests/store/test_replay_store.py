"""The replay memory of signed invocations on a real SQLite file, and the migration that added it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from orvad.invoke.signatures import SignatureChecker
from orvad.store.batch import BatchWriter
from orvad.store.db import SqliteDatabase, _split_sql, migration_files
from orvad.store.functions import FunctionStore
from orvad.store.replay import ReplayStore


async def test_functions_created_before_the_migration_keep_the_old_signed_form(tmp_path: Path) -> None:
    """Callers of a function that existed before signature_version sign "<ts>.<body>": the
    migration gives every existing row version 1, so they keep working; new rows get 2."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the schema as it was before this round's migration
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT 'x')"
        )
        for number, name, sql in migration_files():
            if "signature_version" in sql:
                break
            for statement in _split_sql(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (number, name))
        conn.execute(
            "INSERT INTO functions (id, name, runtime, entrypoint, memory_mb, cpus, timeout_ms, network_mode,"
            " auth_mode, status, created_at, updated_at) VALUES ('f1', 'old', 'python', 'handler.py', 128, 1,"
            " 1000, 'none', 'signed', 'created', 'x', 'x')"
        )
    db = SqliteDatabase(path)
    await db.open()
    try:
        (old,) = await FunctionStore(db, BatchWriter(db)).all_functions()
        assert old.signature_version == 1 and old.csp_sandbox is True
        # its replay memory lived in RAM: the first start after the upgrade trusts nothing older than itself
        _, complete = await ReplayStore(db, BatchWriter(db)).open(time.time())
        assert not complete
    finally:
        await db.close()


async def test_the_memory_survives_a_clean_stop_and_distrusts_a_crash(tmp_path: Path) -> None:
    now = time.time()
    db = SqliteDatabase(tmp_path / "r.db")
    await db.open()
    batch = BatchWriter(db)
    batch.start()
    store = ReplayStore(db, batch)
    live, complete = await store.open(now)
    assert live == [] and complete  # a new database: no function can have accepted a signature yet
    store.remember("sha256=" + "a" * 64, now + 300)
    store.remember("sha256=" + "b" * 64, now - 1)  # already out of its window
    await batch.stop()
    await store.close()
    live, complete = await store.open(now)  # after a clean stop
    assert live == [("sha256=" + "a" * 64, now + 300)] and complete
    live, complete = await store.open(now)  # without close(): the run before "crashed"
    assert not complete
    checker = SignatureChecker()
    checker.load(live, complete=complete, started=now)
    assert checker.not_before == float(int(now) + 1)  # the start's own second is distrusted too
    await db.close()
