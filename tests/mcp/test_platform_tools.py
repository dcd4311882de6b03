"""The platform's tools at /mcp (issue 23's state, jobs, schedules and traces, for agents): a key an agent
writes with kv_put is the key the function reads with orva.kv; a conditional write that loses is an error
result with the version to read again; kv_delete needs confirm; a job queued with enqueue_job runs in a
real sandbox and get_job shows its attempt; enqueue_job needs write as well as invoke, as on the API;
list_schedules and get_trace show what cron and the trace store hold."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from mcp.client.session import ClientSession

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad
from tests.mcp.test_mcp import _key, _session
from tests.mcp.test_operator_tools import _ok, _pause, _refused

pytestmark = pytest.mark.sandbox  # deploys and invokes: needs nsjail, root or namespaces

READER = """
from orva import kv

def handler(event, context):
    entry = kv.get("greeting")
    kv.incr("runs")
    return {"greeting": entry, "body": event.get("body")}
"""


async def _eventually(s: ClientSession, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """A read of rows the batched writer stores a few milliseconds after the fact: NOT_FOUND until then."""
    end = time.monotonic() + 10
    while (result := await s.call_tool(tool, args)).is_error:
        assert "NOT_FOUND" in result.content[0].text, result.content  # type: ignore[union-attr]
        assert time.monotonic() < end, result.content
        await _pause()
    assert result.structured_content is not None
    return result.structured_content


def _deployed(orvad: Orvad) -> str:
    name = f"mcp-platform-{uuid.uuid4().hex[:6]}"
    with orvad.admin() as api:
        create_function(api, name)
        dep = deploy_inline(api, name, READER)
        assert wait_deployed(api, dep["id"])["status"] == "succeeded"
    return name


async def test_kv_tools_share_the_functions_own_keys(orvad: Orvad) -> None:
    name = _deployed(orvad)
    async with _session(orvad, orvad.admin_key) as s:
        put = await _ok(s, "kv_put", {"function": name, "key": "greeting", "value": {"hello": "agent"}})
        assert put["version"] == 1 and put["type"] == "json"
        with orvad.admin() as api:
            ran = api.post(f"/fn/{name}", json={"x": 1})
        assert ran.status_code == 200, ran.text
        assert ran.json()["greeting"] == {"hello": "agent"}  # what the agent wrote is what the handler read

        got = await _ok(s, "kv_get", {"function": name, "key": "runs"})
        assert got["value"] == 1 and got["key"] == "runs"  # and what the handler wrote, the agent reads
        listed = await _ok(s, "kv_list", {"function": name})
        assert [k["key"] for k in listed["keys"]] == ["greeting", "runs"] and listed["usage"]["keys"] == 2
        assert "value" not in listed["keys"][0]  # metadata only
        assert [k["key"] for k in (await _ok(s, "kv_list", {"function": name, "prefix": "gr"}))["keys"]] == [
            "greeting"
        ]

        lost = await _refused(
            s,
            "kv_put",
            {"function": name, "key": "greeting", "value": "x", "if_version": 7},
            "KV_VERSION_CONFLICT",
        )
        assert lost["details"]["version"] == 1 and "kv_get" in lost["hint"]
        binary = await _ok(s, "kv_put", {"function": name, "key": "raw", "value": {"$bytes": "AAEC"}})
        assert binary["type"] == "bytes" and binary["size"] == 3

        await _refused(s, "kv_delete", {"function": name, "key": "greeting"}, "VALIDATION")  # no confirm
        assert (await _ok(s, "kv_delete", {"function": name, "key": "greeting", "confirm": True}))["deleted"]
        gone = await _refused(s, "kv_get", {"function": name, "key": "greeting"}, "NOT_FOUND")
        assert "kv_list" in gone["hint"]
        await _refused(s, "kv_get", {"function": name, "key": ""}, "VALIDATION")
        await _refused(s, "kv_get", {"function": "no-such-fn", "key": "a"}, "NOT_FOUND")


async def test_a_job_queued_by_an_agent_runs_and_its_trace_is_a_tool(orvad: Orvad) -> None:
    name = _deployed(orvad)
    async with _session(orvad, _key(orvad, "read", "invoke")) as s:
        refused = await _refused(s, "enqueue_job", {"function": name, "payload": {}}, "FORBIDDEN")
        assert refused["details"]["required"] == "write"  # as on POST /api/v1/jobs
    async with _session(orvad, _key(orvad, "read")) as s:
        await _refused(s, "enqueue_job", {"function": name, "payload": {}}, "FORBIDDEN")
    async with _session(orvad, _key(orvad, "read", "write", "invoke")) as s:
        job = await _ok(s, "enqueue_job", {"function": name, "payload": {"n": 42}, "idempotency_key": "k1"})
        assert job["created"] is True and job["function_id"]
        again = await _ok(s, "enqueue_job", {"function": name, "payload": {"n": 42}, "idempotency_key": "k1"})
        assert again["id"] == job["id"] and again["created"] is False
        end = time.monotonic() + 60
        while (done := await _ok(s, "get_job", {"job_id": job["id"]}))["status"] != "succeeded":
            assert done["status"] in ("pending", "running"), done
            assert time.monotonic() < end, f"job still {done['status']}"
            await _pause()
        assert len(done["attempts"]) == 1 and done["attempts"][0]["execution_id"]
        listed = await _ok(s, "list_jobs", {"function": name, "status": "succeeded"})
        assert [j["id"] for j in listed["jobs"]] == [job["id"]]
        await _refused(s, "list_jobs", {"status": "sleeping"}, "VALIDATION")
        await _refused(s, "get_job", {"job_id": "job_nope"}, "NOT_FOUND")

        execution = await _eventually(
            s, "get_execution", {"execution_id": done["attempts"][0]["execution_id"]}
        )
        assert execution["trigger"] == "job"
        tree = await _eventually(s, "get_trace", {"trace_id": execution["trace_id"]})
        assert tree["trace_id"] == execution["trace_id"]
        assert execution["id"] in str(tree)

        with orvad.admin() as api:
            made = api.post(
                f"/api/v1/functions/{name}/cron",
                json={"name": "nightly", "expression": "0 3 * * *", "timezone": "UTC"},
            )
        assert made.status_code == 201, made.text
        schedules = await _ok(s, "list_schedules", {"function": name})
        assert [(c["name"], c["expression"]) for c in schedules["schedules"]] == [("nightly", "0 3 * * *")]
        assert schedules["schedules"][0]["next_run_at"]
