"""SQL for functions, deployments and build logs."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from typing import Any

from orvad.models import (
    AuthMode,
    ConcurrencyPolicy,
    Deployment,
    DeploymentSource,
    DeploymentStatus,
    Function,
    FunctionStatus,
    NetworkMode,
    Phase,
    PhaseMark,
)
from orvad.store.batch import BatchWriter
from orvad.store.sql import Database

_FUNCTION_COLUMNS = [f.name for f in fields(Function)]
_DEPLOYMENT_COLUMNS = [f.name for f in fields(Deployment)]
_DEPLOYMENT_CLUSTER_COLUMNS = ("blob_hash", "build_node")  # migration 0026: not fields of Deployment


def _function(row: Any) -> Function:
    values = dict(row)
    values["env_vars"] = json.loads(values["env_vars"])
    values["csp_sandbox"] = bool(values["csp_sandbox"])
    values["capture_requests"] = bool(values["capture_requests"])
    if values["cors_origins"] is not None:
        values["cors_origins"] = json.loads(values["cors_origins"])
    if values["input_schema"] is not None:
        values["input_schema"] = json.loads(values["input_schema"])
    values["may_invoke"] = tuple(json.loads(values["may_invoke"]))
    values["egress_allow"] = tuple(json.loads(values["egress_allow"]))
    values["network_mode"] = NetworkMode(values["network_mode"])
    values["auth_mode"] = AuthMode(values["auth_mode"])
    values["concurrency_policy"] = ConcurrencyPolicy(values["concurrency_policy"])
    values["status"] = FunctionStatus(values["status"])
    return Function(**values)


def _deployment(row: Any) -> Deployment:
    values = dict(row)
    for cluster_column in _DEPLOYMENT_CLUSTER_COLUMNS:  # orvad/store/version_blobs.py reads and writes them
        values.pop(cluster_column, None)
    values["phases"] = [PhaseMark(phase=Phase(p["phase"]), ts=p["ts"]) for p in json.loads(values["phases"])]
    values["status"] = DeploymentStatus(values["status"])
    values["phase"] = Phase(values["phase"])
    values["source"] = DeploymentSource(values["source"])
    return Deployment(**values)


def _encode(record: Function | Deployment, columns: list[str]) -> dict[str, Any]:
    """Column -> SQLite value (JSON text for the list and object fields; enums are their strings)."""
    values = {c: getattr(record, c) for c in columns}
    for key in ("env_vars", "phases", "cors_origins", "input_schema"):
        if key in values and values[key] is not None:
            values[key] = json.dumps(values[key])
    for key in ("may_invoke", "egress_allow"):
        if key in values:
            values[key] = json.dumps(list(values[key]))
    return values


class FunctionStore:
    def __init__(self, db: Database, batch: BatchWriter) -> None:
        self._db = db
        self._batch = batch

    # functions
    async def all_functions(self) -> list[Function]:
        return [_function(r) for r in await self._db.fetchall("SELECT * FROM functions ORDER BY id DESC")]

    async def insert_function(self, fn: Function) -> None:
        values = _encode(fn, _FUNCTION_COLUMNS)
        cols = ", ".join(_FUNCTION_COLUMNS)
        marks = ", ".join("?" for _ in _FUNCTION_COLUMNS)
        await self._db.execute(
            f"INSERT INTO functions ({cols}) VALUES ({marks})", [values[c] for c in _FUNCTION_COLUMNS]
        )

    async def update_function(self, fn: Function) -> None:
        values = _encode(fn, _FUNCTION_COLUMNS)
        cols = [c for c in _FUNCTION_COLUMNS if c != "id"]
        await self._db.execute(
            f"UPDATE functions SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
            [values[c] for c in cols] + [fn.id],
        )

    async def delete_function(self, function_id: str) -> bool:
        return await self._db.execute("DELETE FROM functions WHERE id = ?", (function_id,)) == 1

    # deployments
    async def insert_deployment(self, dep: Deployment) -> Deployment:
        """Insert with the next version number of its function (assigned inside the transaction)."""
        async with self._db.transaction() as tx:
            row = await tx.fetchone(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM deployments WHERE function_id = ?",
                (dep.function_id,),
            )
            values = _encode(dep, _DEPLOYMENT_COLUMNS)
            values["version"] = row[0] if row else 1
            cols = ", ".join(_DEPLOYMENT_COLUMNS)
            marks = ", ".join("?" for _ in _DEPLOYMENT_COLUMNS)
            await tx.execute(
                f"INSERT INTO deployments ({cols}) VALUES ({marks})", [values[c] for c in _DEPLOYMENT_COLUMNS]
            )
        return replace(dep, version=values["version"])

    async def update_deployment(self, dep: Deployment, fn: Function | None = None) -> None:
        """Write a deployment's state, and its function's in the same transaction when given."""
        values = _encode(dep, _DEPLOYMENT_COLUMNS)
        cols = [c for c in _DEPLOYMENT_COLUMNS if c not in ("id", "function_id", "version")]
        async with self._db.transaction() as tx:
            await tx.execute(
                f"UPDATE deployments SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
                [values[c] for c in cols] + [dep.id],
            )
            if fn is not None:
                fvalues = _encode(fn, _FUNCTION_COLUMNS)
                fcols = [c for c in _FUNCTION_COLUMNS if c != "id"]
                await tx.execute(
                    f"UPDATE functions SET {', '.join(f'{c} = ?' for c in fcols)} WHERE id = ?",
                    [fvalues[c] for c in fcols] + [fn.id],
                )

    async def deployment(self, deployment_id: str) -> Deployment | None:
        row = await self._db.fetchone("SELECT * FROM deployments WHERE id = ?", (deployment_id,))
        return _deployment(row) if row else None

    async def deployments(
        self, function_id: str, limit: int, cursor: str | None, offset: int = 0
    ) -> list[Deployment]:
        rows = await self._db.fetchall(
            "SELECT * FROM deployments WHERE function_id = ? AND (CAST(? AS TEXT) IS NULL OR id < ?)"
            " ORDER BY id DESC LIMIT ? OFFSET ?",
            (function_id, cursor, cursor, limit, offset),
        )
        return [_deployment(r) for r in rows]

    async def count_deployments(self, function_id: str) -> int:
        """How many deployments the function has (the (function_id, id) index answers it)."""
        row = await self._db.fetchone(
            "SELECT COUNT(*) FROM deployments WHERE function_id = ?", (function_id,)
        )
        return int(row[0]) if row else 0

    async def latest_deployments(self, function_ids: list[str]) -> dict[str, Deployment]:
        """function id -> its newest deployment, for every listed function that has one: one query
        (the newest per function is read off the (function_id, id) index), however many functions."""
        if not function_ids:
            return {}
        marks = ", ".join("?" for _ in function_ids)
        rows = await self._db.fetchall(
            f"SELECT d.* FROM deployments d JOIN (SELECT MAX(id) AS id FROM deployments WHERE function_id IN ({marks})"
            " GROUP BY function_id) newest ON d.id = newest.id",
            function_ids,
        )
        return {row["function_id"]: _deployment(row) for row in rows}

    async def succeeded_by_hash(self, function_id: str, code_hash: str) -> Deployment | None:
        row = await self._db.fetchone(
            "SELECT * FROM deployments WHERE function_id = ? AND code_hash = ? AND status = 'succeeded'"
            " ORDER BY id DESC LIMIT 1",
            (function_id, code_hash),
        )
        return _deployment(row) if row else None

    async def deployment_ids_starting(self, function_id: str, prefix: str, limit: int) -> list[str]:
        """Ids of the function's deployments that start with ``prefix``, in order (at most ``limit``)."""
        rows = await self._db.fetchall(
            "SELECT id FROM deployments WHERE function_id = ? AND substr(id, 1, ?) = ? ORDER BY id LIMIT ?",
            (function_id, len(prefix), prefix, limit),
        )
        return [r[0] for r in rows]

    async def succeeded_hashes_starting(self, function_id: str, prefix: str, limit: int) -> list[str]:
        """Distinct code hashes of the function's succeeded deployments that start with ``prefix`` (at most ``limit``)."""
        rows = await self._db.fetchall(
            "SELECT DISTINCT code_hash FROM deployments WHERE function_id = ? AND status = 'succeeded'"
            " AND substr(code_hash, 1, ?) = ? ORDER BY code_hash LIMIT ?",
            (function_id, len(prefix), prefix, limit),
        )
        return [r[0] for r in rows]

    async def unfinished_deployments(self) -> list[Deployment]:
        rows = await self._db.fetchall(
            "SELECT * FROM deployments WHERE status IN ('queued', 'building') ORDER BY id"
        )
        return [_deployment(r) for r in rows]

    async def active_hashes(self) -> dict[str, str]:
        """deployment id -> code hash for every function's active deployment."""
        rows = await self._db.fetchall(
            "SELECT d.id, d.code_hash FROM functions f JOIN deployments d ON d.id = f.active_deployment_id"
        )
        return {r[0]: r[1] for r in rows}

    async def succeeded_hashes(self, function_id: str) -> list[str]:
        """Distinct code hashes of succeeded deployments, newest first."""
        rows = await self._db.fetchall(
            "SELECT code_hash, MAX(id) AS newest FROM deployments WHERE function_id = ? AND status = 'succeeded'"
            " GROUP BY code_hash ORDER BY newest DESC",
            (function_id,),
        )
        return [r[0] for r in rows]

    # build logs
    def append_log(self, deployment_id: str, seq: int, stream: str, line: str, ts: str) -> None:
        self._batch.submit(
            "INSERT INTO deployment_logs (deployment_id, seq, stream, line, ts) VALUES (?, ?, ?, ?, ?)",
            (deployment_id, seq, stream, line, ts),
        )

    async def flush_logs(self) -> None:
        """Write every queued log line now (they go through the batch writer)."""
        await self._batch.flush()

    async def last_log_seq(self, deployment_id: str) -> int:
        """The highest stored log seq of a deployment (0 when none): a resumed build continues after it."""
        await self._batch.flush()
        row = await self._db.fetchone(
            "SELECT COALESCE(MAX(seq), 0) FROM deployment_logs WHERE deployment_id = ?", (deployment_id,)
        )
        return int(row[0]) if row else 0

    async def logs(self, deployment_id: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT seq, stream, line, ts FROM deployment_logs WHERE deployment_id = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (deployment_id, after_seq, limit),
        )
        return [dict(r) for r in rows]
