"""The domain records (orvad/models.py), their JSON shapes (orvad/services/serialisers.py), their rows (the store),
and the one writer of function state (FunctionService)."""

from __future__ import annotations

import ast
import json
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import pytest

from orvad.models import (
    FINAL_STATUSES,
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
from orvad.pool.tunables import PoolConfig
from orvad.services.functions import CHOICES, FunctionService, _after_build
from orvad.services.serialisers import deployment_json, function_json, last_deployment_json, pool_config_json
from orvad.store.batch import BatchWriter
from orvad.store.db import SqliteDatabase
from orvad.store.functions import FunctionStore

ROOT = Path(__file__).resolve().parent.parent / "orvad"


def function(**changes: Any) -> Function:
    fn = Function(
        id="0190a0b0-0000-7000-8000-000000000001",
        name="one",
        runtime="python3.12",
        entrypoint="handler.py",
        description="d",
        memory_mb=128,
        cpus=0.5,
        timeout_ms=30000,
        env_vars={"B": "2", "A": "1"},
        network_mode=NetworkMode.EGRESS,
        auth_mode=AuthMode.SIGNED,
        max_concurrency=3,
        concurrency_policy=ConcurrencyPolicy.REJECT,
        rate_limit_per_min=60,
        status=FunctionStatus.ACTIVE,
        active_deployment_id="0190a0b0-0000-7000-8000-00000000000d",
        created_at="2026-01-01T00:00:00Z",
        updated_at="2026-01-02T00:00:00Z",
        signature_version=1,
        csp_sandbox=False,
        cors_origins=["https://a.example"],
    )
    return replace(fn, **changes)


def deployment(**changes: Any) -> Deployment:
    dep = Deployment(
        id="0190a0b0-0000-7000-8000-00000000000d",
        function_id=function().id,
        version=2,
        code_hash="ab" * 32,
        status=DeploymentStatus.SUCCEEDED,
        phase=Phase.SUCCEEDED,
        phases=[PhaseMark(phase=Phase.QUEUED, ts="t0"), PhaseMark(phase=Phase.SUCCEEDED, ts="t1")],
        source=DeploymentSource.ARCHIVE,
        parent_deployment_id=None,
        error_message=None,
        submitted_at="t0",
        started_at="t0",
        finished_at="t1",
        duration_ms=12,
    )
    return replace(dep, **changes)


def test_enum_values_are_the_strings_stored_and_sent() -> None:
    """The enums changed no stored or answered value: the same strings as before they existed."""
    assert [s.value for s in FunctionStatus] == ["created", "building", "active", "inactive", "error"]
    assert [s.value for s in DeploymentStatus] == ["queued", "building", "succeeded", "failed", "superseded"]
    assert [p.value for p in Phase] == [
        "queued",
        "extracting",
        "installing",
        "activating",
        "succeeded",
        "failed",
        "superseded",
    ]
    assert [s.value for s in DeploymentSource] == ["inline", "archive", "rollback"]
    assert CHOICES == {
        "network_mode": ("none", "egress"),
        "auth_mode": ("none", "api_key", "signed"),
        "concurrency_policy": ("queue", "reject"),
    }
    assert all(Phase(s.value) for s in DeploymentStatus if s in FINAL_STATUSES)  # a build ends in its status
    assert FunctionStatus.ACTIVE == "active" and f"{AuthMode.API_KEY}" == "api_key"
    assert json.dumps({"s": DeploymentStatus.SUPERSEDED}) == '{"s": "superseded"}'


@pytest.mark.parametrize(
    "record",
    [function(), function(cors_origins=None, env_vars={}), function(network_mode="none", status="created")],
)
def test_function_json_is_what_asdict_gave(record: Function) -> None:
    """Byte for byte the answer clients got when the API sent dataclasses.asdict(fn): same keys, same order."""
    assert json.dumps(function_json(record)) == json.dumps(asdict(record))
    assert list(function_json(record)) == [f.name for f in fields(Function)]


@pytest.mark.parametrize(
    "record",
    [
        deployment(),
        deployment(
            code_hash=None, phases=[], finished_at=None, duration_ms=None, status=DeploymentStatus.QUEUED
        ),
    ],
)
def test_deployment_json_is_what_asdict_gave(record: Deployment) -> None:
    assert json.dumps(deployment_json(record)) == json.dumps(asdict(record))
    assert list(deployment_json(record)) == [f.name for f in fields(Deployment)]
    brief = last_deployment_json(record)
    assert brief is not None and list(brief) == [
        "id",
        "version",
        "status",
        "code_hash",
        "submitted_at",
        "finished_at",
        "duration_ms",
    ]
    assert last_deployment_json(None) is None
    assert json.dumps(pool_config_json(PoolConfig(min_warm=0))) == json.dumps(asdict(PoolConfig(min_warm=0)))


def test_answers_are_plain_json_and_copies() -> None:
    """No enum object leaves through an answer, and a caller that edits an answer edits no cached record."""
    fn, dep = function(), deployment()
    answer, dep_answer = function_json(fn), deployment_json(dep)
    assert all(type(answer[k]) is str for k in ("status", "auth_mode", "network_mode", "concurrency_policy"))
    assert all(type(dep_answer[k]) is str for k in ("status", "phase", "source"))
    assert all(type(mark["phase"]) is str for mark in dep_answer["phases"])
    answer["env_vars"]["C"] = "3"
    answer["cors_origins"].append("https://b.example")
    dep_answer["phases"][0]["phase"] = "changed"
    assert fn.env_vars == {"B": "2", "A": "1"} and fn.cors_origins == ["https://a.example"]
    assert dep.phases[0]["phase"] == Phase.QUEUED


async def test_records_round_trip_through_the_store_as_enums(tmp_path: Path) -> None:
    """Rows hold the plain strings; records read back hold the enum members, equal to what was written."""
    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    batch = BatchWriter(db, interval_s=0.01)
    batch.start()
    try:
        store = FunctionStore(db, batch)
        fn = function(active_deployment_id=None)
        await store.insert_function(fn)
        dep = await store.insert_deployment(deployment(version=0))
        assert dep.version == 1
        row = await db.fetchone("SELECT status, auth_mode, network_mode, concurrency_policy FROM functions")
        assert tuple(row) == ("active", "signed", "egress", "reject")
        row = await db.fetchone("SELECT status, phase, source, phases FROM deployments")
        assert tuple(row)[:3] == ("succeeded", "succeeded", "archive")
        assert json.loads(row[3]) == [{"phase": "queued", "ts": "t0"}, {"phase": "succeeded", "ts": "t1"}]
        (loaded,) = await store.all_functions()
        assert loaded == fn and type(loaded.status) is FunctionStatus and type(loaded.auth_mode) is AuthMode
        back = await store.deployment(dep.id)
        assert back == dep and type(back.status) is DeploymentStatus and type(back.source) is DeploymentSource
        assert type(back.phases[-1]["phase"]) is Phase
    finally:
        await batch.stop()
        await db.close()


def test_how_a_build_ends_for_its_function() -> None:
    """FunctionService decides what a build's end does to the function (the builder only asks)."""
    now, new_id = "t9", "0190a0b0-0000-7000-8000-0000000000ff"
    building = function(status=FunctionStatus.BUILDING, active_deployment_id=None)
    status, after = _after_build(building, new_id, None, now)
    assert status == DeploymentStatus.SUCCEEDED and after is not None
    assert (after.status, after.active_deployment_id, after.updated_at) == (
        FunctionStatus.ACTIVE,
        new_id,
        now,
    )

    paused = function(status=FunctionStatus.INACTIVE)
    status, after = _after_build(paused, new_id, None, now)
    assert after is not None and (after.status, after.active_deployment_id) == (
        FunctionStatus.INACTIVE,
        new_id,
    )

    newer = function(active_deployment_id="0190a0b0-0000-7000-8000-fffffffffff0")
    assert _after_build(newer, new_id, None, now) == (DeploymentStatus.SUPERSEDED, None)

    status, after = _after_build(building, new_id, "pip failed", now)
    assert status == DeploymentStatus.FAILED and after is not None and after.status == FunctionStatus.ERROR
    assert _after_build(function(), new_id, "pip failed", now) == (
        DeploymentStatus.FAILED,
        None,
    )  # old one serves
    assert _after_build(None, new_id, None, now) == (DeploymentStatus.SUCCEEDED, None)  # deleted meanwhile


def test_a_deployment_ends_in_its_status() -> None:
    dep = deployment(
        status=DeploymentStatus.BUILDING, phase=Phase.ACTIVATING, finished_at=None, duration_ms=None
    )
    end = dep.ended(DeploymentStatus.SUPERSEDED, at="t5", error=None, duration_ms=40)
    assert (end.status, end.phase, end.finished_at, end.duration_ms) == ("superseded", "superseded", "t5", 40)
    assert end.phases[-1] == {"phase": "superseded", "ts": "t5"} and len(dep.phases) == 2
    assert dep.entering(Phase.INSTALLING, "t3").phases[-1] == {"phase": "installing", "ts": "t3"}


def _function_writes(path: Path) -> list[str]:
    """Calls in ``path`` that write a function row: the store's function writes, and update_deployment with
    a function (its second argument)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name in ("insert_function", "update_function", "delete_function") or (
                name == "update_deployment" and len(node.args) + len(node.keywords) > 1
            ):
                found.append(name)
    return found


def test_function_rows_have_one_writer() -> None:
    """Only FunctionService (orvad/services/functions.py) writes function rows: the builder asks it
    (build_submitted, build_ended) instead of writing them under another service's lock."""
    writers = {
        str(p.relative_to(ROOT.parent))
        for p in ROOT.rglob("*.py")
        if "store" not in p.parts and _function_writes(p)
    }
    assert writers == {"orvad/services/functions.py"}
    # a build's end and its activation: one transaction, written by the service
    assert "update_deployment" in _function_writes(ROOT / "services" / "functions.py")
    assert not hasattr(FunctionService, "lock") and not hasattr(FunctionService, "set_state")


def _orvad_imports(path: Path) -> set[str]:
    return {
        node.module
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("orvad")
    } | {
        alias.name
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import)
        for alias in node.names
        if alias.name.startswith("orvad")
    }


def test_models_are_a_leaf_and_serialisers_sit_just_above() -> None:
    """The records import nothing from orvad (the store depends on them, never the reverse); the
    serialisers import only the records they shape (and those only for their annotations)."""
    assert _orvad_imports(ROOT / "models.py") == set()
    records = {
        "orvad.models",
        "orvad.pool.tunables",  # PoolConfig
        "orvad.store.auth",  # KeyRow
        "orvad.store.channels",  # ChannelRow
        "orvad.services.channels",  # Channel
        "orvad.services.routing",  # RouteEntry
    }
    assert _orvad_imports(ROOT / "services" / "serialisers.py") <= records
