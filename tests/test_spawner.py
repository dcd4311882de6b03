"""The pool key: built once per function version and change, and still new whenever a worker would
be started differently (code, settings, env vars, secrets)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from orvad.models import Function
from orvad.spawner import Spawner


def function(**changes: Any) -> Function:
    fn = Function(id="f1", name="one", runtime="python", entrypoint="handler.handler", description="",
                  memory_mb=128, cpus=1.0, timeout_ms=30000, env_vars={"B": "2", "A": "1"}, network_mode="none",
                  auth_mode="none", max_concurrency=0, concurrency_policy="queue", rate_limit_per_min=0,
                  status="active", active_deployment_id="d1", created_at="", updated_at="")
    return replace(fn, **changes)


def spawner() -> Spawner:
    unused: Any = None  # key() needs none of the collaborators
    return Spawner(host=None, data=unused, runtimes=unused, secrets=unused,
                   version_dir=lambda fid, h: Path("/nonexistent"), observe_spawn=lambda lang, s: None)


def test_the_key_is_reused_until_something_a_worker_starts_with_changes() -> None:
    s, fn = spawner(), function()
    key = s.key(fn, "hash1")
    assert key[7] == (("A", "1"), ("B", "2"))  # env vars sorted: the order they were given in is no change
    assert s.key(fn, "hash1") is key  # memoised: not rebuilt per request
    assert s.key(replace(fn), "hash1") == key  # an equal copy gives an equal key
    assert s.key(fn, "hash2") != key
    assert s.key(replace(fn, env_vars={"A": "1"}), "hash1") != key
    assert s.key(replace(fn, memory_mb=256), "hash1") != key
    before = s.key(fn, "hash1")
    s.secrets_changed(fn.id)
    after = s.key(fn, "hash1")
    assert after != before and s.key(fn, "hash1") is after
    s.forget(fn.id)
    assert s.key(fn, "hash1") == key  # a forgotten function starts from generation 0 again
