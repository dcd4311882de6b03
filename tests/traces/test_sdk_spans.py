"""SDK calls are spans (issue 23): a Python and a Node handler call kv.put, kv.get, jobs.enqueue and
orva.invoke (and one invoke its may_invoke does not allow); through HTTP, the trace tree holds one span per
call, named after the operation, a child of the invocation's span, inside the invocation's time, with the
key count and bytes and never a value or a key's text; the refused call's span carries FORBIDDEN; the
callee's execution hangs under the invoke span and the job's execution under the jobs.enqueue span.
ORVA_TRACE_SDK_SPANS limits the spans per execution (0: none)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

SECRET = "v4lue-that-never-goes-into-a-span"
KEY = "user:alice@example.com"  # a key that names someone: its text stays out of spans too

PY = r"""
import os
import orva
from orva import invoke, jobs, kv

def handler(event, context):
    kv.put("user:alice@example.com", {"secret": "SECRET_HERE"})
    got = kv.get("user:alice@example.com")
    job = jobs.enqueue(os.environ["TARGET"], {"secret": "SECRET_HERE"})
    reply = invoke(os.environ["TARGET"], {"secret": "SECRET_HERE"})
    try:
        invoke("not-allowed-anywhere", {})
        denied = None
    except orva.OrvaError as e:
        denied = e.code
    return {"trace": context.trace_id, "span": context.span_id, "job": job, "denied": denied,
            "callee": reply.json["span"], "got": got is not None}
""".replace("SECRET_HERE", SECRET)

NODE = r"""
const { invoke, jobs, kv } = require("orva");
exports.handler = async () => {
  await kv.put("user:alice@example.com", { secret: "SECRET_HERE" });
  const got = await kv.get("user:alice@example.com");
  const job = await jobs.enqueue(process.env.TARGET, { secret: "SECRET_HERE" });
  const reply = await invoke(process.env.TARGET, { secret: "SECRET_HERE" });
  let denied = null;
  try { await invoke("not-allowed-anywhere", {}); } catch (e) { denied = e.code; }
  return { trace: process.env.ORVA_TRACE_ID, span: process.env.ORVA_SPAN_ID, job, denied,
           callee: reply.json.span, got: got !== null };
};
""".replace("SECRET_HERE", SECRET)

CALLEE = r"""
def handler(event, context):
    return {"span": context.span_id}
"""

CALLS = ["kv.put", "kv.get", "jobs.enqueue", "invoke", "invoke"]


@pytest.fixture(scope="module")
def fns(orvad: Orvad) -> Iterator[dict[str, dict[str, Any]]]:
    tag = uuid.uuid4().hex[:6]
    callee = f"sp-callee-{tag}"
    made, deps = {}, {}
    with orvad.admin() as c:
        made["callee"] = create_function(c, callee, "python")
        deps["callee"] = deploy_inline(c, callee, CALLEE)
        for key, code, runtime in (("py", PY, "python"), ("node", NODE, "node")):
            name = f"sp-{key}-{tag}"
            made[key] = create_function(c, name, runtime, may_invoke=[callee], env_vars={"TARGET": callee})
            deps[key] = deploy_inline(
                c, name, code, filename="handler.js" if runtime == "node" else "handler.py"
            )
        for key, dep in deps.items():
            assert wait_deployed(c, dep["id"])["status"] == "succeeded", key
    yield made
    with orvad.admin() as c:
        for fn in made.values():
            c.delete(f"/api/v1/functions/{fn['id']}")


def _tree(c: httpx.Client, trace_id: str, ready: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def done() -> bool:
        r = c.get(f"/api/v1/traces/{trace_id}")
        got.clear()
        got.update(r.json() if r.status_code == 200 else {})
        return r.status_code == 200 and ready(got)

    wait_for(done, 20, f"trace {trace_id}")
    return got


def _ms(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000


@pytest.mark.parametrize("runtime", ["py", "node"])
def test_each_sdk_call_is_a_child_span_of_the_invocation(
    orvad: Orvad, fns: dict[str, Any], runtime: str
) -> None:
    with orvad.admin() as c:
        r = c.post(f"/fn/{fns[runtime]['name']}", content="{}", timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["denied"] == "FORBIDDEN" and body["got"] is True
        trace_id = body["trace"]

        def complete(tree: dict[str, Any]) -> bool:
            # spans are written after their replies, each on its own: the invocation's own among them too
            kinds = [(s["kind"], s.get("trigger")) for s in tree["spans"]]
            return (
                any(s["span_id"] == body["span"] for s in tree["spans"])
                and sum(k == "sdk" for k, _ in kinds) == len(CALLS)
                and ("execution", "f2f") in kinds
                and ("execution", "job") in kinds
            )

        tree = _tree(c, trace_id, complete)
        spans = tree["spans"]
        root = spans[0]
        assert root["kind"] == "execution" and root["span_id"] == body["span"] and root["depth"] == 0
        sdk = [s for s in spans if s["kind"] == "sdk"]
        # one span per call, in call order, each a child of the invocation's span, within its time
        assert [s["name"] for s in sorted(sdk, key=lambda s: s["offset_ms"])] == CALLS
        start, end = root["offset_ms"], root["offset_ms"] + root["duration_ms"]
        for s in sdk:
            assert s["parent_span_id"] == root["span_id"] and s["depth"] == 1, s
            assert s["execution_id"] == root["execution_id"] and s["function_id"] == fns[runtime]["id"]
            assert start - 1 <= s["offset_ms"] and s["offset_ms"] + s["duration_ms"] <= end + 1, (s, root)
            assert s["duration_ms"] >= 0 and s["attributes"]["orva.sdk.op"] == s["name"]
        by = {s["name"]: s for s in sdk if s["status"] == "ok"}
        assert set(by) == {"kv.put", "kv.get", "jobs.enqueue", "invoke"}
        for name in ("kv.put", "kv.get"):
            assert by[name]["attributes"]["orva.kv.keys"] == 1
            assert by[name]["attributes"]["orva.kv.key_bytes"] == len(KEY.encode())
        assert by["invoke"]["attributes"]["orva.target"] == fns["callee"]["name"]
        assert by["jobs.enqueue"]["attributes"]["orva.target"] == fns["callee"]["name"]
        # the refused call: its span says error with the code the handler saw
        failed = [s for s in sdk if s["status"] == "error"]
        assert len(failed) == 1 and failed[0]["name"] == "invoke"
        assert failed[0]["attributes"]["error.code"] == "FORBIDDEN"
        assert failed[0]["attributes"]["orva.target"] == "not-allowed-anywhere"
        # what the calls started hangs under the call: the callee's execution under invoke, the job's
        # attempt under jobs.enqueue
        callee = next(s for s in spans if s["kind"] == "execution" and s["trigger"] == "f2f")
        assert callee["parent_span_id"] == by["invoke"]["span_id"] and callee["depth"] == 2
        assert callee["span_id"] == body["callee"]
        ran = next(s for s in spans if s["kind"] == "execution" and s["trigger"] == "job")
        assert ran["parent_span_id"] == by["jobs.enqueue"]["span_id"] and ran["depth"] == 2
        # never a value, never a key's text
        text = json.dumps(tree)
        assert SECRET not in text and KEY not in text and "alice" not in text
        # the trace's entry counts the spans and the refused call's error
        entry = next(
            t
            for t in c.get("/api/v1/traces", params={"function_id": fns[runtime]["id"]}).json()["traces"]
            if t["trace_id"] == trace_id
        )
        assert entry["span_count"] == len(spans) and entry["errors"] >= 1 and entry["status"] == "error"


LOOP = r"""
from orva import kv

def handler(event, context):
    for i in range(10):
        kv.put("k%d" % i, i)
    return {"trace": context.trace_id}
"""


@pytest.mark.parametrize("limit", [3, 0])
def test_sdk_spans_per_execution_are_limited_by_the_setting(
    make_orvad: Callable[..., Orvad], limit: int
) -> None:
    server = make_orvad(env={"ORVA_TRACE_SDK_SPANS": str(limit)})
    with server.admin() as c:
        create_function(c, "looper", "python")
        assert wait_deployed(c, deploy_inline(c, "looper", LOOP)["id"])["status"] == "succeeded"
        r = c.post("/fn/looper", content="{}", timeout=60)
        assert r.status_code == 200, r.text
        tree = _tree(c, r.json()["trace"], lambda t: t["executions"] == 1)
        # the batched writer writes a moment after: wait for the first `limit` spans, then no more come
        wait_for(
            lambda: (
                sum(s["kind"] == "sdk" for s in c.get(f"/api/v1/traces/{tree['trace_id']}").json()["spans"])
                == limit
            ),
            10,
            f"{limit} SDK spans",
        )
        r2 = c.post("/fn/looper", content="{}", timeout=60)  # a later invocation's spans are written after
        _tree(c, r2.json()["trace"], lambda t: t["executions"] == 1)
        again = c.get(f"/api/v1/traces/{tree['trace_id']}").json()
        assert [s["name"] for s in again["spans"] if s["kind"] == "sdk"] == ["kv.put"] * limit
