"""The reconciler's ordering under races, over HTTP against a real orvad: a function deleted while its
build is being activated, or while a call waits for its turn, leaves no worker and no pool behind; a
secret written while a new version is being swapped in is seen by the very next call, on the new
version. (Deploys racing each other: test_deploy; env and secret writes racing a build and under
load: test_next_invocation.)"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from orvad.services.spares import SPARE_MEMORY_MB
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, function_jails, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

# the import check runs this module on a fresh worker: its import takes the given seconds
SLOW_IMPORT = (
    "import os\nimport time\n\ntime.sleep(%s)\n\n"
    "def handler(event, context):\n"
    "    return {'version': %d, 'token': os.environ.get('TOKEN')}\n"
)
SLOW_CALL = "import time\n\ndef handler(event, context):\n    time.sleep(1.5)\n    return {'ok': True}\n"


def _jails_of(function_id: str) -> int:
    """The function's workers' nsjail supervisors (started the usual way or from a spare jail)."""
    return len(function_jails(function_id))


def _metrics(c: httpx.Client) -> dict[str, Any]:
    r = c.get("/api/v1/system/metrics.json")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _phase(c: httpx.Client, deployment_id: str) -> str:
    return str(c.get(f"/api/v1/deployments/{deployment_id}").json().get("phase"))


def test_a_function_deleted_while_its_build_activates_keeps_no_worker(
    make_orvad: Callable[..., Orvad],
) -> None:
    """The delete lands during the import check (the checked worker is running); the build goes on to its
    end, and nothing is warmed for the deleted function: no worker, no reserved memory."""
    server = make_orvad(env={"ORVA_BUILD_CONCURRENCY": "1"})
    with server.admin() as c:
        doomed = create_function(c, "doomed")
        dep = deploy_inline(c, doomed["id"], SLOW_IMPORT % (3, 1))
        wait_for(
            lambda: _phase(c, dep["id"]) == "activating" and _jails_of(doomed["id"]) > 0,
            60,
            "the import check's worker of the doomed build",
        )
        assert c.delete(f"/api/v1/functions/{doomed['id']}").status_code == 200
        # builds run one at a time: once the next one has finished, the doomed one has ended
        other = create_function(c, "other")
        assert (
            wait_deployed(c, deploy_inline(c, other["id"], SLOW_IMPORT % (0, 2))["id"])["status"]
            == "succeeded"
        )
        # what is reserved is the other function's pool alone (nothing pre-warmed for the doomed one), and
        # Python's waiting spare jail, if one waits (the memory gate counts them at their limit)
        metrics = _metrics(c)
        assert [p["function_id"] for p in metrics["pools"]] == [other["id"]]
        assert (
            metrics["memory_reserved_bytes"]
            == (
                sum((p["workers"] + p["spawning"]) * 128 for p in metrics["pools"])
                + metrics["spare_jails"]["waiting"] * SPARE_MEMORY_MB
            )
            * 1024
            * 1024
        )
        wait_for(lambda: _jails_of(doomed["id"]) == 0, 30, "the doomed function's workers to stop")
        assert not (server.data_dir / "functions" / doomed["id"]).exists()
        assert c.get(f"/fn/{doomed['id']}").status_code == 404
        assert c.get(f"/fn/{other['id']}").json() == {"version": 2, "token": None}


def test_a_call_waiting_when_its_function_is_deleted_gets_404_and_no_pool_is_left(orvad: Orvad) -> None:
    """A call queued for the function's only worker when the function is deleted: its pool closes, and the
    call's next look for a pool must not start one for a function that no longer exists."""
    with orvad.admin() as c:
        fn = create_function(c, "gone-soon")
        assert wait_deployed(c, deploy_inline(c, fn["id"], SLOW_CALL)["id"])["status"] == "succeeded"
        r = c.put(f"/api/v1/functions/{fn['id']}", json={"pool": {"max_warm": 1, "target_concurrency": 1}})
        assert r.status_code == 200, r.text
        results: dict[str, httpx.Response] = {}

        def call(name: str) -> None:
            with orvad.admin() as caller:
                results[name] = caller.get(f"/fn/{fn['id']}", timeout=30)

        def pool() -> dict[str, Any]:
            return next((p for p in _metrics(c)["pools"] if p["function_id"] == fn["id"]), {})

        first = threading.Thread(target=call, args=("first",))
        first.start()
        wait_for(lambda: pool().get("busy", 0) > 0, 30, "the first call to run")
        second = threading.Thread(target=call, args=("second",))
        second.start()
        wait_for(lambda: pool().get("queue_depth", 0) > 0, 30, "the second call to queue for the worker")
        assert c.delete(f"/api/v1/functions/{fn['id']}").status_code == 200
        first.join(30)
        second.join(30)
        assert results["first"].status_code == 200, results["first"].text  # it ran on the draining pool
        assert results["second"].status_code == 404, results["second"].text
        assert results["second"].json()["error"]["code"] == "NOT_FOUND"
        assert pool() == {}
        wait_for(lambda: _jails_of(fn["id"]) == 0, 30, "the deleted function's workers to stop")


def test_a_secret_written_while_a_new_version_is_swapped_in_is_seen_on_the_new_version(orvad: Orvad) -> None:
    """The secret write lands while the new version's import check runs (before the record names it): the
    write answers once calls run with it, and from the end of the deploy on every call runs the new
    version with the secret."""
    with orvad.admin() as c:
        fn = create_function(c, "swap")
        assert (
            wait_deployed(c, deploy_inline(c, fn["id"], SLOW_IMPORT % (0, 1))["id"])["status"] == "succeeded"
        )
        assert c.get(f"/fn/{fn['id']}").json() == {"version": 1, "token": None}
        dep = deploy_inline(c, fn["id"], SLOW_IMPORT % (2, 2))
        wait_for(lambda: _phase(c, dep["id"]) == "activating", 60, "the new version's import check")
        r = c.post(f"/api/v1/functions/{fn['id']}/secrets", json={"key": "TOKEN", "value": "s1"})
        assert r.status_code in (200, 201), r.text
        assert c.get(f"/fn/{fn['id']}").json()["token"] == "s1"  # the very next call, whichever version
        assert wait_deployed(c, dep["id"])["status"] == "succeeded"
        for _ in range(5):
            assert c.get(f"/fn/{fn['id']}").json() == {"version": 2, "token": "s1"}
