"""Issue 18.2 / interface 1: POST .../deploy-inline?wait=true and .../deploy?wait=true answer when the
build has ended: 200 and the very next /fn call runs the new version, 422 BUILD_FAILED, or 202 past
timeout_s."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.builder.test_deploy import _zip
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

PY = "def handler(event, context):\n    return {'v': %d}\n"
JS = "exports.handler = async () => ({v: %d});\n"


def slow_archive(v: int, postinstall: str) -> bytes:
    """A Node function whose dependency install runs ``postinstall`` (a local dependency: no network)."""
    package = {
        "name": "slow",
        "version": "1.0.0",
        "dependencies": {"localdep": "file:./localdep"},
        "scripts": {"postinstall": postinstall},
    }
    return _zip(
        {
            "package.json": json.dumps(package).encode(),
            "handler.js": (JS % v).encode(),
            "localdep/package.json": b'{"name": "localdep", "version": "1.0.0"}',
        }
    )


def _deploy_waiting(c: httpx.Client, fn: str, code: str, **params: str) -> httpx.Response:
    return c.post(
        f"/api/v1/functions/{fn}/deploy-inline",
        params={"wait": "true", **params},
        json={"code": code},
        timeout=120,
    )


@pytest.mark.parametrize(("runtime", "code"), [("python", PY), ("node", JS)])
def test_after_the_200_the_next_call_runs_the_new_version(orvad: Orvad, runtime: str, code: str) -> None:
    with orvad.admin() as c:
        fn = create_function(c, f"wait-{runtime}", runtime)
        for v in range(1, 9):  # the first deploy (no version yet: BUILDING before) and seven redeploys
            r = _deploy_waiting(c, fn["id"], code % v)
            assert r.status_code == 200, r.text
            dep = r.json()
            assert (
                dep["status"] == "succeeded"
                and dep["finished_at"]
                and r.headers["location"].endswith(dep["id"])
            )
            call = c.get(f"/fn/{fn['id']}")
            assert call.status_code == 200 and call.json() == {"v": v}, (v, call.status_code, call.text)
            assert c.get(f"/api/v1/functions/{fn['id']}").json()["active_deployment_id"] == dep["id"]


def test_archive_deploy_waits_too_and_scale_to_zero_pools_serve_at_once(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "wait-archive", "node")
        assert c.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 0}).status_code == 200
        for v in range(1, 6):
            r = c.post(
                f"/api/v1/functions/{fn['id']}/deploy",
                params={"wait": "true"},
                content=_zip({"handler.js": (JS % v).encode()}),
                headers={"content-type": "application/zip"},
                timeout=120,
            )
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
            call = c.get(f"/fn/{fn['id']}")
            assert call.status_code == 200 and call.json() == {"v": v}, (v, call.text)


def test_a_failed_build_answers_422_build_failed_and_the_old_version_serves(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "wait-broken")
        assert _deploy_waiting(c, fn["id"], PY % 1).status_code == 200
        r = _deploy_waiting(c, fn["id"], "def handler(event, context)\n    return 2\n")
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        dep_id = error["details"]["deployment_id"]
        assert error["code"] == "BUILD_FAILED" and error["details"]["function_id"] == fn["id"]
        assert any("SyntaxError" in line for line in error["details"]["log_tail"]), error
        assert f"GET /api/v1/deployments/{dep_id}/logs" in error["hint"] and "{id}" not in error["hint"]
        assert c.get(f"/api/v1/deployments/{dep_id}").json()["status"] == "failed"
        assert c.get(f"/fn/{fn['id']}").json() == {"v": 1}
        # an archive that is refused fails the same way
        bad = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            params={"wait": "true"},
            content=_zip({"other.py": b"x = 1\n"}),
            headers={"content-type": "application/zip"},
            timeout=120,
        )
        assert bad.status_code == 422 and "handler.py not found" in bad.json()["error"]["message"], bad.text


def test_past_timeout_s_the_answer_is_202_and_the_build_goes_on(orvad: Orvad) -> None:
    archive = slow_archive(7, "sleep 4")
    with orvad.admin() as c:
        fn = create_function(c, "wait-slow", "node")
        r = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            params={"wait": "true", "timeout_s": "1"},
            content=archive,
            headers={"content-type": "application/zip"},
            timeout=60,
        )
        assert r.status_code == 202 and r.json()["status"] in ("queued", "building"), r.text
        assert r.elapsed.total_seconds() >= 1
        assert wait_deployed(c, r.json()["id"])["status"] == "succeeded"
        assert c.get(f"/fn/{fn['id']}").json() == {"v": 7}


def test_wait_parameters_are_checked_before_anything_is_deployed(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "wait-params")
        for params, field in (
            ({"wait": "maybe"}, "wait"),
            ({"wait": "true", "timeout_s": "0"}, "timeout_s"),
            ({"wait": "true", "timeout_s": "601"}, "timeout_s"),
        ):
            r = c.post(f"/api/v1/functions/{fn['id']}/deploy-inline", params=params, json={"code": PY % 1})
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == field, r.text
        assert c.get(f"/api/v1/functions/{fn['id']}/deployments").json()["deployments"] == []
        # without wait nothing changes: 202 at once
        assert deploy_inline(c, fn["id"], PY % 1)["status"] == "queued"
