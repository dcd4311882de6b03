"""Fixtures for the PostgreSQL tests: one throwaway cluster per test session (per xdist worker), and a
fresh database in it per test (tests/pg.py; Debian's postgresql, installed by `make test-system-deps`)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.pg import ThrowawayPostgres


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[ThrowawayPostgres]:
    with ThrowawayPostgres() as pg:
        yield pg


@pytest.fixture
async def pg_dsn(pg_cluster: ThrowawayPostgres) -> AsyncIterator[str]:
    """The DSN of a new, empty database, dropped after the test."""
    name = f"t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(pg_cluster.dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield pg_cluster.dsn(name)
    admin = await asyncpg.connect(pg_cluster.dsn())
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
