"""SQL for captured requests (issue 23, replay) and each function's saved test requests (fixtures).

A captured request is written by the batched writer right after its execution's row, in the same batch
(``ExecutionStore.record``), and goes when its execution goes (the trigger ``executions_requests_delete``:
retention and a function's delete). Its table is one B-tree keyed by execution_id with no foreign key
checked per insert (migration 0023). Fixtures are ordinary rows, written at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orvad.store.sql import Database, IntegrityError

COLUMNS = ("execution_id", "method", "path", "query", "headers", "body", "body_size", "body_truncated")
INSERT_REQUEST = (
    f"INSERT INTO execution_requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
    " ON CONFLICT DO NOTHING"
)
_FIXTURE = "id, function_id, name, method, path, query, headers, body, description, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class CapturedRequest:
    execution_id: str
    method: str
    path: str
    query: str
    headers: list[list[str]]  # [name, value] pairs as sent, credentials' values redacted
    body: bytes
    body_size: int
    body_truncated: bool


@dataclass(frozen=True, slots=True)
class Fixture:
    id: str
    function_id: str
    name: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    description: str
    created_at: str
    updated_at: str


def _fixture(row: Any) -> Fixture:
    values = dict(row)
    values["headers"] = json.loads(values["headers"])
    values["body"] = bytes(values["body"])
    return Fixture(**values)


class CaptureStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def request(self, execution_id: str) -> CapturedRequest | None:
        row = await self._db.fetchone(
            f"SELECT {', '.join(COLUMNS)} FROM execution_requests WHERE execution_id = ?", (execution_id,)
        )
        if row is None:
            return None
        return CapturedRequest(
            row[0], row[1], row[2], row[3], json.loads(row[4]), bytes(row[5]), int(row[6]), bool(row[7])
        )

    # fixtures
    async def fixtures(self, function_id: str) -> list[Fixture]:
        rows = await self._db.fetchall(
            f"SELECT {_FIXTURE} FROM function_fixtures WHERE function_id = ? ORDER BY name", (function_id,)
        )
        return [_fixture(r) for r in rows]

    async def fixture(self, function_id: str, ident: str) -> Fixture | None:
        """By id or by name."""
        row = await self._db.fetchone(
            f"SELECT {_FIXTURE} FROM function_fixtures WHERE function_id = ? AND (id = ? OR name = ?)"
            " ORDER BY id = ? DESC LIMIT 1",
            (function_id, ident, ident, ident),
        )
        return _fixture(row) if row else None

    async def count(self, function_id: str) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) FROM function_fixtures WHERE function_id = ?", (function_id,)
        )
        return int(row[0]) if row else 0

    async def insert(self, fixture: Fixture) -> bool:
        """False when the function already has a fixture of that name."""
        try:
            await self._db.execute(
                f"INSERT INTO function_fixtures ({_FIXTURE}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _params(fixture),
            )
        except IntegrityError:
            return False
        return True

    async def update(self, fixture: Fixture) -> bool:
        """False when another fixture of the function has that name."""
        try:
            await self._db.execute(
                "UPDATE function_fixtures SET name = ?, method = ?, path = ?, query = ?, headers = ?, body = ?,"
                " description = ?, updated_at = ? WHERE id = ?",
                (
                    fixture.name,
                    fixture.method,
                    fixture.path,
                    fixture.query,
                    json.dumps(fixture.headers),
                    fixture.body,
                    fixture.description,
                    fixture.updated_at,
                    fixture.id,
                ),
            )
        except IntegrityError:
            return False
        return True

    async def delete(self, fixture_id: str) -> int:
        return await self._db.execute("DELETE FROM function_fixtures WHERE id = ?", (fixture_id,))


def _params(f: Fixture) -> tuple[Any, ...]:
    return (
        f.id,
        f.function_id,
        f.name,
        f.method,
        f.path,
        f.query,
        json.dumps(f.headers),
        f.body,
        f.description,
        f.created_at,
        f.updated_at,
    )
