"""The worker recipe and its pool key: built once per function version and change, and still new whenever
a worker would be started differently (code, settings, env vars, secrets)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orvad.errors import EgressUnavailable, RuntimeUnavailable, SandboxUnavailable
from orvad.host.sandbox import HostFacts
from orvad.models import Function
from orvad.services.runtimes import RuntimeCatalog
from orvad.services.spawner import Spawner


def function(**changes: Any) -> Function:
    fn = Function(
        id="f1",
        name="one",
        runtime="python",
        entrypoint="handler.handler",
        description="",
        memory_mb=128,
        cpus=1.0,
        timeout_ms=30000,
        env_vars={"B": "2", "A": "1"},
        network_mode="none",
        auth_mode="none",
        max_concurrency=0,
        concurrency_policy="queue",
        rate_limit_per_min=0,
        status="active",
        active_deployment_id="d1",
        created_at="",
        updated_at="",
    )
    return replace(fn, **changes)


def spawner() -> Spawner:
    unused: Any = None  # recipe() needs none of the collaborators (spawn() would)
    return Spawner(
        host=None,
        data=unused,
        runtimes=unused,
        secrets=unused,
        version_dir=lambda fid, h: Path("/nonexistent"),
        observe_spawn=lambda lang, s: None,
    )


def test_the_recipe_is_reused_until_something_a_worker_starts_with_changes() -> None:
    s, fn = spawner(), function()
    recipe = s.recipe(fn, "hash1")
    key = recipe.key
    assert key[7] == (("A", "1"), ("B", "2"))  # env vars sorted: the order they were given in is no change
    assert s.recipe(fn, "hash1") is recipe  # memoised: not rebuilt per request
    assert recipe.memory_mb == 128 and recipe.details == {
        "function_id": "f1",
        "function_name": "one",
        "code_hash": "hash1",
    }
    assert s.recipe(replace(fn), "hash1").key == key  # an equal copy gives an equal key
    assert s.recipe(fn, "hash2").key != key
    assert s.recipe(replace(fn, env_vars={"A": "1"}), "hash1").key != key
    assert s.recipe(replace(fn, memory_mb=256), "hash1").key != key
    before = s.recipe(fn, "hash1").key
    s.secrets_changed(fn.id)
    after = s.recipe(fn, "hash1")
    assert after.key != before and s.recipe(fn, "hash1") is after
    s.forget(fn.id)
    assert s.recipe(fn, "hash1").key == key  # a forgotten function starts from generation 0 again


async def test_a_host_that_cannot_start_the_worker_says_which_part_is_missing() -> None:
    """Each 503 names its reason (all three were SHUTTING_DOWN, which says orvad is stopping)."""
    with pytest.raises(SandboxUnavailable) as no_sandbox:
        await spawner().recipe(function(), "h").spawn()
    assert (no_sandbox.value.status, no_sandbox.value.code) == (503, "SANDBOX_UNAVAILABLE")
    assert "GET /api/v1/system/health" in str(no_sandbox.value.hint) and no_sandbox.value.retry_after_s

    unused: Any = None
    host = HostFacts(
        nsjail="/nonexistent/nsjail", cgroup="none", seccomp_policy=""
    )  # never run: refused before
    on_host = Spawner(
        host=host,
        data=unused,
        runtimes=RuntimeCatalog([]),
        secrets=unused,
        version_dir=lambda fid, h: Path("/nonexistent"),
        observe_spawn=lambda lang, s: None,
    )
    with pytest.raises(EgressUnavailable) as no_egress:
        await on_host.recipe(function(network_mode="egress"), "h").spawn()
    assert (no_egress.value.status, no_egress.value.code) == (503, "EGRESS_UNAVAILABLE")
    with pytest.raises(RuntimeUnavailable) as no_runtime:
        await on_host.recipe(function(runtime="python3.99"), "h").spawn()
    assert (no_runtime.value.status, no_runtime.value.code) == (503, "RUNTIME_UNAVAILABLE")
    assert "python3.99" in no_runtime.value.message and "GET /api/v1/runtimes" in str(no_runtime.value.hint)
