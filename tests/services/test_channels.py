"""ChannelService.authenticate (issue 21), the /mcp endpoint's check of a channel token, on a real
database: a rotated or deleted token is refused on the very next call, an expired channel is refused,
last_used_at is written through the batch writer (not on the caller's path)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from orvad.clock import utcnow
from orvad.services.channels import ChannelService, hash_token
from orvad.services.functions import FunctionService
from orvad.services.runtimes import discover
from orvad.store.batch import BatchWriter
from orvad.store.channels import ChannelStore
from orvad.store.db import SqliteDatabase
from orvad.store.functions import FunctionStore


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[ChannelService, SqliteDatabase, BatchWriter]]:
    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    batch = BatchWriter(db, interval_s=0.02)
    batch.start()
    functions = FunctionService(FunctionStore(db, batch), discover(tmp_path))
    await functions.load()
    channels = ChannelService(ChannelStore(db, batch), functions)
    await channels.load()
    yield channels, db, batch
    await batch.stop()
    await db.close()


async def test_authenticate_rotate_delete_and_last_used(
    service: tuple[ChannelService, SqliteDatabase, BatchWriter],
) -> None:
    channels, db, _ = service
    channel, token = await channels.create("bot", "", [], None)
    found = channels.authenticate(token)
    assert found is not None and found.row.id == channel.row.id
    assert channels.authenticate(token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert channels.authenticate("orva_" + "0" * 64) is None
    stored = await db.fetchone(
        "SELECT token_hash, last_used_at FROM channels WHERE id = ?", (channel.row.id,)
    )
    assert stored is not None and stored[0] == hash_token(token)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while (await db.fetchone("SELECT last_used_at FROM channels WHERE id = ?", (channel.row.id,)))[0] is None:
        assert loop.time() < deadline, "last_used_at is written through the batch writer"
        await asyncio.sleep(0.01)

    _, new = await channels.rotate("bot")
    assert channels.authenticate(token) is None and channels.authenticate(new) is not None
    await channels.delete(channel.row.id)
    assert channels.authenticate(new) is None


async def test_an_expired_channel_is_refused(
    service: tuple[ChannelService, SqliteDatabase, BatchWriter],
) -> None:
    channels, _, _ = service
    _, token = await channels.create("soon", "", [], utcnow() + timedelta(hours=1))
    assert channels.authenticate(token) is not None
    await channels.patch("soon", {"expires_at": utcnow() - timedelta(seconds=1)})
    assert channels.authenticate(token) is None
    await channels.patch("soon", {"expires_at": None})
    assert channels.authenticate(token) is not None
    # a new ChannelService (orvad restarted) knows the same tokens
    again = ChannelService(channels._store, channels._functions)
    await again.load()
    assert again.authenticate(token) is not None
