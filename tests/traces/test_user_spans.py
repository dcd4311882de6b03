"""User spans (orva.trace.span) from Python and Node handlers through HTTP, the span tree of
GET /api/v1/traces/{id}, the trace list, and the trust boundary: the trace and the execution of a user span
are always the caller's own (a handler cannot put spans into another trace or under another execution)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

PY_SPANS = r"""
import json, orva
from orva import trace

def handler(event, context):
    with trace.span("outer", kind="sync", n=1) as s:
        s.set("rows", 3)
        with trace.span("inner"):
            pass
        try:
            with trace.span("failing"):
                raise ValueError("nope")
        except ValueError:
            pass
    return {"trace": context.trace_id, "span": context.span_id, "ids": [trace.trace_id(), trace.span_id()]}
"""
PY_ASYNC = r"""
import asyncio
from orva import trace

async def handler(event, context):
    async with trace.span("a-outer"):
        async def leg(i):
            async with trace.span(f"leg-{i}", i=i):
                await asyncio.sleep(0.01)
        await asyncio.gather(leg(1), leg(2))
    return {"trace": context.trace_id}
"""
NODE_SPANS = r"""
const { trace } = require("orva");
exports.handler = async (event, context) => {
  const got = await trace.span("n-outer", async (span) => {
    span.set("rows", 2);
    await trace.span("n-inner", async () => { await new Promise((r) => setTimeout(r, 5)); }, { deep: true });
    try { await trace.span("n-failing", async () => { throw new TypeError("bad"); }); } catch (e) {}
    return 7;
  }, { kind: "node" });
  return { got, trace: process.env.ORVA_TRACE_ID, span: process.env.ORVA_SPAN_ID };
};
"""
# the attacker: sends raw trace.span calls (the SDK's own checks skipped)
RAW = r"""
import json, time, orva

def handler(event, context):
    out = []
    now = time.time() * 1000
    for spec in json.loads(event["body"]):
        span = {"name": "x", "span_id": spec.get("span_id", "%016x" % (len(out) + 1)), "start": now - 5, "end": now}
        span.update(spec.get("extra", {}))
        args = spec["args"] if "args" in spec else {"spans": [span] * spec.get("times", 1)}
        try:
            out.append(orva.call("trace.span", args))
        except orva.OrvaError as e:
            out.append({"code": e.code, "message": e.message})
    return {"out": out, "trace": context.trace_id, "span": context.span_id}
"""


@pytest.fixture(scope="module")
def fns(orvad: Orvad) -> Iterator[dict[str, dict[str, Any]]]:
    tag = uuid.uuid4().hex[:6]
    specs = {
        "py": (PY_SPANS, "python"),
        "pyasync": (PY_ASYNC, "python"),
        "node": (NODE_SPANS, "node"),
        "raw": (RAW, "python"),
        "victim": (PY_SPANS, "python"),
    }
    with orvad.admin() as c:
        made, deps = {}, {}
        for key, (code, runtime) in specs.items():
            name = f"us-{key}-{tag}"
            made[key] = create_function(c, name, runtime)
            deps[key] = deploy_inline(
                c, name, code, filename="handler.js" if runtime == "node" else "handler.py"
            )
        for key, dep in deps.items():
            assert wait_deployed(c, dep["id"])["status"] == "succeeded", key
    yield made
    with orvad.admin() as c:
        for fn in made.values():
            c.delete(f"/api/v1/functions/{fn['id']}")


def _tree(c: httpx.Client, trace_id: str, spans: int) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def ready() -> bool:
        r = c.get(f"/api/v1/traces/{trace_id}")
        got.clear()
        got.update(r.json() if r.status_code == 200 else {})
        return r.status_code == 200 and got["span_count"] >= spans

    wait_for(ready, 10, f"trace {trace_id} with {spans} spans")
    return got


def _by_name(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"] if s["kind"] == "span" else "<execution>": s for s in tree["spans"]}


def test_python_spans_nest_under_the_invocation(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        r = c.post(f"/fn/{fns['py']['name']}", json={})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["trace"] == r.headers["x-trace-id"] and body["ids"] == [body["trace"], body["span"]]
        tree = _tree(c, body["trace"], 4)
        assert tree["trace_id"] == body["trace"] and tree["span_count"] == 4 and tree["status"] == "error"
        spans = _by_name(tree)
        root = spans["<execution>"]
        assert root["span_id"] == body["span"] and root["depth"] == 0 and root["offset_ms"] == 0
        assert root["execution_id"] == r.headers["x-orva-execution-id"]
        outer = spans["outer"]
        assert outer["parent_span_id"] == body["span"] and outer["depth"] == 1 and outer["status"] == "ok"
        assert outer["attributes"] == {"kind": "sync", "n": 1, "rows": 3}
        assert spans["inner"]["parent_span_id"] == outer["span_id"] and spans["inner"]["depth"] == 2
        failing = spans["failing"]
        assert failing["status"] == "error" and failing["attributes"] == {"error.type": "ValueError"}
        assert [s["name"] for s in tree["spans"]] == [root["name"], "outer", "inner", "failing"]
        for s in tree["spans"][1:]:
            assert 0 <= s["offset_ms"] and s["offset_ms"] + s["duration_ms"] <= root["duration_ms"] + 5
            assert s["execution_id"] == root["execution_id"] and s["function_id"] == fns["py"]["id"]


def test_async_python_spans_keep_their_own_parents(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        r = c.post(f"/fn/{fns['pyasync']['name']}", json={})
        assert r.status_code == 200, r.text
        spans = _by_name(_tree(c, r.json()["trace"], 4))
        outer = spans["a-outer"]
        assert spans["leg-1"]["parent_span_id"] == outer["span_id"] == spans["leg-2"]["parent_span_id"]
        assert spans["leg-1"]["attributes"] == {"i": 1} and spans["leg-2"]["depth"] == 2


def test_node_spans_nest_under_the_invocation(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        r = c.post(f"/fn/{fns['node']['name']}", json={})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["got"] == 7 and body["trace"] == r.headers["x-trace-id"]
        spans = _by_name(_tree(c, body["trace"], 4))
        outer = spans["n-outer"]
        assert outer["parent_span_id"] == body["span"] and outer["attributes"] == {"kind": "node", "rows": 2}
        assert spans["n-inner"]["parent_span_id"] == outer["span_id"] and spans["n-inner"]["attributes"] == {
            "deep": True
        }
        assert spans["n-inner"]["duration_ms"] >= 4
        assert (
            spans["n-failing"]["status"] == "error"
            and spans["n-failing"]["attributes"]["error.type"] == "TypeError"
        )


def _raw(c: httpx.Client, fn: str, specs: list[dict[str, Any]]) -> dict[str, Any]:
    r = c.post(f"/fn/{fn}", content=json.dumps(specs))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_handler_cannot_put_spans_into_another_trace_or_execution(
    orvad: Orvad, fns: dict[str, Any]
) -> None:
    with orvad.admin() as c:
        victim = c.post(f"/fn/{fns['victim']['name']}", json={})
        v_trace, v_span = victim.json()["trace"], victim.json()["span"]
        v_spans = _tree(c, v_trace, 4)["spans"]
        v_outer = next(s for s in v_spans if s["name"] == "outer")["span_id"]
        out = _raw(
            c,
            fns["raw"]["name"],
            [
                {"extra": {"trace_id": v_trace}},  # naming another trace
                {"args": {"spans": [], "trace_id": v_trace}},
                {
                    "args": {
                        "trace_id": v_trace,
                        "name": "x",
                        "span_id": "00000000000000aa",
                        "start": 1,
                        "end": 2,
                    }
                },
                {"extra": {"parent_span_id": v_span}},  # under another execution's span
                {"extra": {"parent_span_id": v_outer}},  # under another execution's user span
                {"extra": {"execution_id": victim.headers["x-orva-execution-id"]}},
                {"extra": {"span_id": "0" * 16}},
                {"extra": {"span_id": "ABCDEF0123456789"}},
                {"extra": {"name": ""}},
                {"extra": {"start": 0, "end": 1}},  # not around now
                {"extra": {"attributes": {f"k{i}": i for i in range(33)}}},
                {"extra": {"attributes": {"big": "x" * 1025}}},
                {"extra": {"attributes": {"nested": {"a": 1}}}},
                {"extra": {"status": "weird"}},
                {"span_id": "00000000000000b1"},  # accepted: under the invocation's span
                {"span_id": "00000000000000b1"},  # the same id again
                {"span_id": "00000000000000b2", "extra": {"parent_span_id": "00000000000000b1"}},  # accepted
                {
                    "span_id": "00000000000000c1",
                    "extra": {"parent_span_id": "00000000000000c2"},
                },  # unknown parent
                {"span_id": "00000000000000d0", "times": 65},  # over the per-call bound
            ],
        )
        results = out["out"]
        assert [r.get("code") for r in results] == [
            *(["VALIDATION"] * 14),
            None,
            "VALIDATION",
            None,
            "VALIDATION",
            "VALIDATION",
        ], results
        assert results[14] == {"recorded": 1} and results[16] == {"recorded": 1}
        assert "neither this invocation's span" in results[3]["message"]
        # the victim's trace is unchanged; the attacker's has exactly its two accepted spans
        assert _tree(c, v_trace, 4)["spans"] == v_spans
        mine = _tree(c, out["trace"], 3)
        assert mine["span_count"] == 3
        user = [s for s in mine["spans"] if s["kind"] == "span"]
        assert {s["span_id"] for s in user} == {"00000000000000b1", "00000000000000b2"}
        assert all(s["execution_id"] == mine["spans"][0]["execution_id"] for s in user)
        # the per-execution bound: 256 spans, then TOO_MANY_SPANS
        specs = [{"span_id": f"{i:016x}", "extra": {}} for i in range(1, 257)]
        out = _raw(c, fns["raw"]["name"], [*specs, {"span_id": "f" * 16}])
        assert (
            all(r == {"recorded": 1} for r in out["out"][:256])
            and out["out"][256]["code"] == "TOO_MANY_SPANS"
        )
