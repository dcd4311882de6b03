"""A function's status and active deployment over its builds, as the API shows them: the states
FunctionService writes when the builder asks it (build_submitted, build_ended), seen from outside."""

from __future__ import annotations

from dataclasses import fields

import pytest

from orvad.models import Function
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # builds and invokes in nsjail (CONTRIBUTING.md, markers)

HANDLER = "def handler(event, context):\n    return {'version': %d}\n"
BROKEN = "def handler(event, context)\n    return 1\n"  # a syntax error: the import check fails the build


def test_a_function_moves_through_its_states(orvad: Orvad) -> None:
    """created -> building -> error (first build failed) -> active; a build of a paused function leaves it
    paused but makes the new version the one it serves when set active again."""
    with orvad.admin() as c:
        fn = create_function(c, "states")
        base = f"/api/v1/functions/{fn['id']}"
        assert (fn["status"], fn["active_deployment_id"]) == ("created", None)
        assert list(fn) == [f.name for f in fields(Function)]  # the serialiser's keys, in the record's order

        failed = deploy_inline(c, fn["id"], BROKEN)
        assert c.get(base).json()["status"] in ("building", "error")  # building until the end is recorded
        assert wait_deployed(c, failed["id"])["status"] == "failed"
        assert (c.get(base).json()["status"], c.get(base).json()["active_deployment_id"]) == ("error", None)

        first = deploy_inline(c, fn["id"], HANDLER % 1)
        assert wait_deployed(c, first["id"])["status"] == "succeeded"
        shown = c.get(base).json()
        assert (shown["status"], shown["active_deployment_id"]) == ("active", first["id"])
        assert c.post(f"/fn/{fn['id']}").json() == {"version": 1}

        paused = c.put(base, json={"status": "inactive"})
        assert paused.status_code == 200 and paused.json()["status"] == "inactive", paused.text
        second = deploy_inline(c, fn["id"], HANDLER % 2)
        end = wait_deployed(c, second["id"])
        assert (end["status"], end["phase"], end["phases"][-1]["phase"]) == ("succeeded",) * 3
        shown = c.get(base).json()
        assert (shown["status"], shown["active_deployment_id"]) == ("inactive", second["id"])
        assert c.post(f"/fn/{fn['id']}").status_code == 409  # paused: NOT_ACTIVE

        assert c.put(base, json={"status": "active"}).status_code == 200
        assert c.post(f"/fn/{fn['id']}").json() == {"version": 2}
        listed = c.get("/api/v1/functions", params={"q": "states"}).json()["functions"]
        assert [(f["id"], f["status"], f["last_deployment"]["id"]) for f in listed] == [
            (fn["id"], "active", second["id"])
        ]
