"""The throwaway PostgreSQL cluster (tests/pg.py) starts, answers, and stops leaving nothing behind."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import asyncpg
import pytest

from tests.pg import ThrowawayPostgres


def _children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (the postmaster's backends and auxiliary processes)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_the_throwaway_cluster_starts_answers_and_stops_leaving_nothing() -> None:
    pg = ThrowawayPostgres()
    pg.start()
    try:
        pid, folder, port = pg.pid, pg.folder, pg.port
        assert pid is not None and folder is not None
        conn = await asyncpg.connect(pg.dsn())
        try:
            assert await conn.fetchval("SELECT 40 + 2") == 42
            # the one process started is the postmaster itself, running as postgres when we are root
            assert await conn.fetchval("SELECT pg_postmaster_start_time() IS NOT NULL")
        finally:
            await conn.close()
        assert (folder / "data" / "postmaster.pid").read_text().split()[0] == str(pid)
        owner = os.stat(f"/proc/{pid}").st_uid
        assert owner != 0 if os.geteuid() == 0 else owner == os.geteuid()
        children = _children(pid)
        assert children, "a running postmaster has its checkpointer, walwriter...: none found"
    finally:
        pg.stop()
    assert not _alive(pid), "the postmaster outlived stop()"
    assert not [c for c in children if _alive(c)], "a postgres child process outlived stop()"
    assert not folder.exists(), "the cluster's folder was left behind"
    assert not _accepts(port)
    pg.stop()  # a second stop is harmless


async def test_a_wrong_password_is_refused(pg_cluster: ThrowawayPostgres) -> None:
    """Another local user who finds the port cannot walk in: scram-sha-256 with a random password."""
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(f"postgresql://orva:wrong@127.0.0.1:{pg_cluster.port}/postgres")
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(f"postgresql://postgres:@127.0.0.1:{pg_cluster.port}/postgres")


async def test_each_test_gets_a_fresh_database(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        tables = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables == 0
    finally:
        await conn.close()
