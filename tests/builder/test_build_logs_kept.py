"""Issue 18.7: every deployment row opens its build log, later too: succeeded, failed, superseded,
rolled back, after its version was collected, after a restart, and a build resumed across a restart
(whose live stream must still show the lines from before the restart)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.api.test_deploy_wait import slow_archive
from tests.deploy_helpers import create_function, deploy_inline, sse_events, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

JS = "exports.handler = async () => ({v: %d});\n"


def _logged(c: httpx.Client, deployment_id: str, line: str, deadline_s: float = 60) -> None:
    wait_for(
        lambda: any(
            ln["line"].strip() == line
            for ln in c.get(f"/api/v1/deployments/{deployment_id}/logs").json()["lines"]
        ),
        deadline_s,
        line,
    )


def _opens(c: httpx.Client, dep: dict[str, Any], expected: str) -> None:
    """The stored log and the SSE stream of a finished deployment both answer, and say how it ended."""
    logs = c.get(f"/api/v1/deployments/{dep['id']}/logs")
    assert logs.status_code == 200, logs.text
    body = logs.json()
    text = [line["line"] for line in body["lines"]]
    assert body["status"] == dep["status"] and any(expected in t for t in text), (dep["status"], text)
    assert [line["seq"] for line in body["lines"]] == list(range(1, len(text) + 1))
    events = sse_events(c, f"/api/v1/deployments/{dep['id']}/stream", 30)
    assert events[-1][0] == dep["status"] and events[-1][1]["id"] == dep["id"]
    assert [d["line"] for e, d in events if e == "log"] == text


def test_every_deployment_opens_its_log_later_too(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_VERSIONS_KEPT": "1"})
    with server.admin() as c:
        fn = create_function(c, "logs-kept", "node")
        v1 = wait_deployed(c, deploy_inline(c, fn["id"], JS % 1)["id"])
        v2 = wait_deployed(c, deploy_inline(c, fn["id"], JS % 2)["id"])
        failed = wait_deployed(
            c, deploy_inline(c, fn["id"], "exports.handler = async () => ({v: 3};\n")["id"]
        )
        # a slow build overtaken by a rollback (to v1) ends superseded
        slow = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            content=slow_archive(4, "echo slow-install && sleep 2"),
            headers={"content-type": "application/zip"},
        ).json()
        _logged(c, slow["id"], "slow-install")
        rolled = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": v1["id"]})
        assert rolled.status_code == 200, rolled.text
        rollback = rolled.json()
        superseded = wait_deployed(c, slow["id"])
        v5 = wait_deployed(c, deploy_inline(c, fn["id"], JS % 5)["id"])
        assert (
            v1["status"],
            v2["status"],
            failed["status"],
            superseded["status"],
            rollback["status"],
            v5["status"],
        ) == ("succeeded", "succeeded", "failed", "superseded", "succeeded", "succeeded")
        # ORVA_VERSIONS_KEPT=1: v2's version was collected
        gone = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": v2["id"]})
        assert gone.status_code == 410, gone.text
        records = {
            d["id"]: d for d in c.get(f"/api/v1/functions/{fn['id']}/deployments").json()["deployments"]
        }
        expected = {
            v1["id"]: "code hash",
            v2["id"]: "code hash",
            failed["id"]: "SyntaxError",
            slow["id"]: "a newer deployment is active already",
            rollback["id"]: "rolled back to version 1",
            v5["id"]: "imported on a fresh worker",
        }
        assert set(records) == set(expected)
        for dep_id, text in expected.items():
            _opens(c, records[dep_id], text)
    server.stop()
    again = make_orvad(data_dir=server.data_dir)
    with again.admin() as c:
        for dep_id, text in expected.items():
            _opens(c, records[dep_id], text)
        missing = c.get("/api/v1/deployments/01900000-0000-7000-8000-000000000000/logs")
        assert missing.status_code == 404 and "{id}" not in missing.json()["error"]["hint"]


def test_a_resumed_build_streams_the_lines_from_before_the_restart(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.admin() as c:
        fn = create_function(c, "logs-resumed", "node")
        archive = slow_archive(
            1,
            "test -e /cache/once || (touch /cache/once && echo before-restart && sleep 600); "
            "echo after-restart && sleep 2",
        )
        dep = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            content=archive,
            headers={"content-type": "application/zip"},
        ).json()
        _logged(c, dep["id"], "before-restart")
    server.stop()
    again = make_orvad(data_dir=server.data_dir)
    with again.admin() as c:
        _logged(c, dep["id"], "after-restart")  # the resumed build runs: its live log is followed
        events = sse_events(c, f"/api/v1/deployments/{dep['id']}/stream")
        lines = [d["line"].strip() for e, d in events if e == "log"]
        assert events[-1][0] == "succeeded"
        assert (
            "before-restart" in lines and "resumed after a restart" in lines and "after-restart" in lines
        ), lines
        assert (
            lines.index("before-restart")
            < lines.index("resumed after a restart")
            < lines.index("after-restart")
        )
        seqs = [d["seq"] for e, d in events if e == "log"]
        assert seqs == sorted(set(seqs)) and seqs[0] == 1
