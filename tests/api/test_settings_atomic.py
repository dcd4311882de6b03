"""PUT /api/v1/functions/{id} with `pool` (issue 18.6): every field, the function's and the pool's, is
validated before anything is saved; all saved or nothing; an error names details.field pool.<name>."""

from __future__ import annotations

from typing import Any

import httpx

from tests.deploy_helpers import create_function
from tests.helpers import Orvad

DEFAULT_POOL = {
    "min_warm": 1,
    "max_warm": 16,
    "idle_ttl_seconds": 300,
    "target_concurrency": 1,
    "scale_to_zero": True,
}


def _state(c: httpx.Client, fn_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    fn = c.get(f"/api/v1/functions/{fn_id}").json()
    pool = c.get("/api/v1/pool/config", params={"function_id": fn_id}).json()
    return fn, {k: pool[k] for k in DEFAULT_POOL}


def test_a_bad_pool_field_saves_nothing_of_the_request(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "atomic-settings", env_vars={"KEEP": "1"}, description="before")
        before = _state(c, fn["id"])
        for pool, field in (
            ({"min_warm": 999}, "pool.min_warm"),
            ({"max_warm": 0}, "pool.max_warm"),
            ({"min_warm": 5, "max_warm": 2}, "pool.min_warm"),
            ({"max_warm": 0.5}, "pool.max_warm"),
            ({"scale_to_zero": "no"}, "pool.scale_to_zero"),
            ({"idle_ttl_seconds": 0}, "pool.idle_ttl_seconds"),
            ({"target_concurrency": 2, "bogus": 1}, "pool.bogus"),
            ([], "pool"),
            (None, "pool"),
        ):
            r = c.put(
                f"/api/v1/functions/{fn['id']}",
                json={
                    "env_vars": {"CHANGED": "yes"},
                    "description": "after",
                    "timeout_ms": 5000,
                    "pool": pool,
                },
            )
            err = r.json()["error"]
            assert r.status_code == 400 and err["code"] == "VALIDATION", r.text
            assert err["details"]["field"] == field and err["message"].startswith(field), (pool, err)
            assert _state(c, fn["id"]) == before, pool
        # a bad function field leaves the pool settings alone too
        r = c.put(f"/api/v1/functions/{fn['id']}", json={"memory_mb": 1, "pool": {"min_warm": 3}})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "memory_mb"
        assert _state(c, fn["id"]) == before


def test_one_request_saves_function_and_pool_settings_together(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "atomic-settings-ok")
        r = c.put(
            f"/api/v1/functions/{fn['id']}",
            json={
                "env_vars": {"GREETING": "hi"},
                "timeout_ms": 4000,
                "pool": {"min_warm": 2, "max_warm": 4, "scale_to_zero": False},
            },
        )
        assert r.status_code == 200, r.text
        want_pool = {**DEFAULT_POOL, "min_warm": 2, "max_warm": 4, "scale_to_zero": False}
        assert r.json()["pool"] == want_pool
        assert (r.json()["env_vars"], r.json()["timeout_ms"]) == ({"GREETING": "hi"}, 4000)
        saved_fn, saved_pool = _state(c, fn["id"])
        assert saved_pool == want_pool and saved_fn["env_vars"] == {"GREETING": "hi"}
        # pool alone is a valid update; without pool the answer carries no pool
        alone = c.put(f"/api/v1/functions/{fn['name']}", json={"pool": {"max_warm": 8}})
        assert alone.status_code == 200 and alone.json()["pool"]["max_warm"] == 8
        assert "pool" not in c.put(f"/api/v1/functions/{fn['id']}", json={"description": "x"}).json()
