"""Issue 18.10 / interface 3: calling a function that was never deployed says "deploy first" (409
NOT_DEPLOYED) and records nothing; a first build still running stays 503 BUILDING, a function whose
builds all failed stays 409 NOT_ACTIVE."""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_deploy_wait import slow_archive
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

OK = "def handler(event, context):\n    return 'ok'\n"


def _executions(c: httpx.Client, fn_id: str) -> list[dict[str, object]]:
    r = c.get("/api/v1/executions", params={"function_id": fn_id})
    assert r.status_code == 200, r.text
    return list(r.json()["executions"])


def test_a_never_deployed_function_says_deploy_first_and_records_nothing(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "never-deployed")
        assert (
            c.post("/api/v1/routes", json={"path": "/never-deployed", "function_id": fn["id"]}).status_code
            == 201
        )
        for url in (f"/fn/{fn['id']}", "/fn/never-deployed/sub/path", "/never-deployed"):
            r = c.post(url, json={"x": 1})
            assert r.status_code == 409, (url, r.text)
            error = r.json()["error"]
            assert (
                error["code"] == "NOT_DEPLOYED"
                and error["message"] == "function never-deployed has no deployed code"
            )
            assert error["hint"] == "deploy first: POST /api/v1/functions/never-deployed/deploy-inline"
            assert "x-orva-execution-id" not in r.headers
        # after a deploy, one successful call: it is the only execution the function has
        wait_deployed(c, deploy_inline(c, fn["id"], OK)["id"])
        served = c.get(f"/fn/{fn['id']}")
        assert served.text == "ok"
        wait_for(lambda: len(_executions(c, fn["id"])) >= 1, 10, "the served call's execution row")
        rows = _executions(c, fn["id"])
        assert [row["id"] for row in rows] == [served.headers["x-orva-execution-id"]], rows
        assert (
            c.get("/api/v1/executions", params={"function_id": fn["id"], "status": "rejected"}).json()[
                "executions"
            ]
            == []
        )


def test_a_first_build_in_progress_is_building_and_failed_builds_are_not_active(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "first-build", "node")
        dep = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            content=slow_archive(1, "echo installing-slowly && sleep 3"),
            headers={"content-type": "application/zip"},
        ).json()
        wait_for(
            lambda: any(
                ln["line"].strip() == "installing-slowly"
                for ln in c.get(f"/api/v1/deployments/{dep['id']}/logs").json()["lines"]
            ),
            60,
            "the slow install",
        )
        r = c.get(f"/fn/{fn['id']}")
        assert r.status_code == 503 and r.json()["error"]["code"] == "BUILDING" and r.headers["retry-after"]
        assert "{id}" not in r.json()["error"]["hint"]
        assert wait_deployed(c, dep["id"])["status"] == "succeeded"
        assert c.get(f"/fn/{fn['id']}").json() == {"v": 1}

        broken = create_function(c, "only-failed-builds")
        assert (
            wait_deployed(c, deploy_inline(c, broken["id"], "def handler(e, c)\n")["id"])["status"]
            == "failed"
        )
        r = c.get(f"/fn/{broken['id']}")
        assert r.status_code == 409 and r.json()["error"]["code"] == "NOT_ACTIVE", r.text
        assert "only-failed-builds" in r.json()["error"]["hint"] and "{id}" not in r.json()["error"]["hint"]
