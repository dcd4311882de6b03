"""GET /api/v1/traces and /api/v1/traces/{id} through HTTP with real workers: entries newest first with
their root function, duration, span count and status; filters and paging; a trace entered twice from
outside; F2F calls in one tree; 404s; and the executions' outlier flag (slower than 2x the rolling p95)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

OK = r"""
import json, time
from orva import trace

def handler(event, context):
    req = json.loads(event["body"] or "{}")
    if req.get("sleep"):
        time.sleep(req["sleep"])
    if req.get("bad_span"):
        with trace.span("bad") as s:
            s.set_status("error")
    return {"trace": context.trace_id, "span": context.span_id}
"""
FAIL = r"""
def handler(event, context):
    raise RuntimeError("boom")
"""
CALLER = r"""
import os
from orva import invoke, trace

def handler(event, context):
    with trace.span("calling"):
        reply = invoke(os.environ["TARGET"], {})
    return {"trace": context.trace_id, "callee": reply.json}
"""


@pytest.fixture(scope="module")
def fns(orvad: Orvad) -> Iterator[dict[str, dict[str, Any]]]:
    tag = uuid.uuid4().hex[:6]
    names = {k: f"ta-{k}-{tag}" for k in ("ok", "fail", "caller")}
    specs = {
        "ok": (OK, {}),
        "fail": (FAIL, {}),
        "caller": (CALLER, {"may_invoke": [names["ok"]], "env_vars": {"TARGET": names["ok"]}}),
    }
    with orvad.admin() as c:
        made, deps = {}, {}
        for key, (code, extra) in specs.items():
            made[key] = create_function(c, names[key], **extra)
            deps[key] = deploy_inline(c, names[key], code)
        for key, dep in deps.items():
            assert wait_deployed(c, dep["id"])["status"] == "succeeded", key
    yield made
    with orvad.admin() as c:
        for fn in made.values():
            c.delete(f"/api/v1/functions/{fn['id']}")


def _invoke(c: httpx.Client, fn: str, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
    return c.post(f"/fn/{fn}", content=json.dumps(body or {}), headers=headers, timeout=60)


def _written(c: httpx.Client, execution_id: str) -> dict[str, Any]:
    row: dict[str, Any] = {}

    def found() -> bool:
        r = c.get(f"/api/v1/executions/{execution_id}")
        row.update(r.json() if r.status_code == 200 else {})
        return r.status_code == 200

    wait_for(found, 10, f"execution {execution_id}")
    return row


def _traces(c: httpx.Client, **params: Any) -> dict[str, Any]:
    r = c.get("/api/v1/traces", params=params)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_traces_list_and_tree(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        ok = _invoke(c, fns["ok"]["name"])
        failed = _invoke(c, fns["fail"]["name"])
        assert ok.status_code == 200 and failed.status_code >= 500
        spanned = _invoke(
            c, fns["ok"]["name"], {"bad_span": True}
        )  # an execution that succeeded, a span that failed
        for r in (ok, failed, spanned):
            _written(c, r.headers["x-orva-execution-id"])
        wait_for(
            lambda: _traces(c, function_id=fns["ok"]["name"], status="error")["traces"] != [],
            10,
            "the span row",
        )
        mine = _traces(c, since=since, limit=500)["traces"]
        by_trace = {t["trace_id"]: t for t in mine}
        t_ok = by_trace[ok.headers["x-trace-id"]]
        assert t_ok["id"] == ok.headers["x-orva-execution-id"] and t_ok["function_name"] == fns["ok"]["name"]
        assert t_ok["root"] == {
            "execution_id": t_ok["id"],
            "function_id": fns["ok"]["id"],
            "function_name": fns["ok"]["name"],
            "trigger": "http",
            "status": "success",
        }
        assert t_ok["status"] == "ok" and t_ok["span_count"] == 1 and t_ok["executions"] == 1
        assert t_ok["duration_ms"] > 0 and t_ok["errors"] == 0
        assert by_trace[failed.headers["x-trace-id"]]["status"] == "error"
        assert by_trace[spanned.headers["x-trace-id"]]["status"] == "error"
        assert by_trace[spanned.headers["x-trace-id"]]["span_count"] == 2
        # newest first
        order = [t["trace_id"] for t in mine]
        assert order.index(spanned.headers["x-trace-id"]) < order.index(ok.headers["x-trace-id"])
        # filters: the function, the status, the time
        only = _traces(c, function_id=fns["fail"]["id"], since=since)["traces"]
        assert [t["trace_id"] for t in only] == [failed.headers["x-trace-id"]]
        errors = {t["trace_id"] for t in _traces(c, status="error", since=since)["traces"]}
        assert errors >= {failed.headers["x-trace-id"], spanned.headers["x-trace-id"]}
        assert ok.headers["x-trace-id"] not in errors
        oks = {t["trace_id"] for t in _traces(c, status="ok", since=since)["traces"]}
        assert ok.headers["x-trace-id"] in oks and not oks & errors
        assert _traces(c, until=since, function_id=fns["ok"]["id"])["traces"] == []
        # paging with the cursor
        first = _traces(c, since=since, limit=1)
        assert len(first["traces"]) == 1 and first["next_cursor"] == first["traces"][0]["id"]
        second = _traces(c, since=since, limit=1, cursor=first["next_cursor"])
        assert second["traces"][0]["id"] < first["traces"][0]["id"]
        # bad filters
        r = c.get("/api/v1/traces", params={"status": "success"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION"
        assert c.get("/api/v1/traces", params={"since": "yesterday"}).status_code == 400
        assert c.get("/api/v1/traces", params={"function_id": "no-such-fn"}).status_code == 404
        # a tree of one
        tree = c.get(f"/api/v1/traces/{ok.headers['x-trace-id']}").json()
        assert tree["span_count"] == 1 and tree["status"] == "ok" and tree["truncated"] is False
        (root,) = tree["spans"]
        assert root["kind"] == "execution" and root["span_id"] == ok.json()["span"] and root["depth"] == 0
        assert root["trigger"] == "http" and root["status_code"] == 200 and root["outlier"] is False
        # 404s: not a trace id, an unknown one
        for bad in ("nope", "A" * 32, "0" * 32, "4bf92f3577b34da6a3ce929d0e0e4736"):
            r = c.get(f"/api/v1/traces/{bad}")
            assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND", r.text
            assert r.json()["error"]["hint"]


def test_a_trace_entered_twice_is_listed_once_with_both_executions(orvad: Orvad, fns: dict[str, Any]) -> None:
    trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    with orvad.admin() as c:
        calls = [_invoke(c, fns["ok"]["name"], traceparent=f"00-{trace_id}-{parent}-01") for _ in range(2)]
        for r in calls:
            assert r.headers["x-trace-id"] == trace_id
            _written(c, r.headers["x-orva-execution-id"])
        listed = [
            t
            for t in _traces(c, function_id=fns["ok"]["id"], limit=500)["traces"]
            if t["trace_id"] == trace_id
        ]
        assert len(listed) == 1 and listed[0]["executions"] == 2 and listed[0]["span_count"] == 2
        tree = c.get(f"/api/v1/traces/{trace_id}").json()
        assert [s["depth"] for s in tree["spans"]] == [0, 0]
        assert {s["parent_span_id"] for s in tree["spans"]} == {parent}
        assert [s["execution_id"] for s in tree["spans"]] == [r.headers["x-orva-execution-id"] for r in calls]


def test_f2f_calls_join_the_callers_trace_in_one_tree(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        r = _invoke(c, fns["caller"]["name"])
        assert r.status_code == 200, r.text
        body = r.json()
        trace_id = r.headers["x-trace-id"]
        assert body["trace"] == trace_id and body["callee"]["trace"] == trace_id
        tree: dict[str, Any] = {}

        def complete() -> bool:
            tree.update(c.get(f"/api/v1/traces/{trace_id}").json())
            return tree.get("span_count") == 4

        wait_for(complete, 10, "the caller, its span, the invoke call's span and the callee")
        # the root first; then its children (siblings) in start order, the invoke call's span with the callee
        # under it; the user span and the call can start in the same millisecond: taken by kind
        caller, *rest = tree["spans"]
        by_kind = {s["kind"]: s for s in rest if s["kind"] != "execution"}
        calling, call = by_kind["span"], by_kind["sdk"]
        callee = next(s for s in rest if s["kind"] == "execution")
        assert caller["kind"] == "execution" and caller["function_name"] == fns["caller"]["name"]
        assert calling["kind"] == "span" and calling["name"] == "calling" and calling["depth"] == 1
        # the SDK call is a span of the caller's invocation (docs/SDK.md, Traces), and the callee its child
        assert call["name"] == "invoke" and call["parent_span_id"] == caller["span_id"] and call["depth"] == 1
        assert callee["kind"] == "execution" and callee["trigger"] == "f2f"
        assert callee["parent_span_id"] == call["span_id"] and callee["span_id"] == body["callee"]["span"]
        # an execution's start is stored to the millisecond, a span's finer: 1 ms of slack
        assert callee["depth"] == 2 and callee["offset_ms"] >= call["offset_ms"] - 1
        assert tree["spans"].index(callee) == tree["spans"].index(call) + 1  # right under its call
        # the callee is part of the caller's trace, not a trace entry of its own
        listed = _traces(c, function_id=fns["ok"]["id"], limit=500)["traces"]
        assert trace_id not in {t["trace_id"] for t in listed}
        entry = next(
            t for t in _traces(c, function_id=fns["caller"]["id"])["traces"] if t["trace_id"] == trace_id
        )
        assert entry["executions"] == 2 and entry["span_count"] == 4


def test_outlier_flag(orvad: Orvad, fns: dict[str, Any]) -> None:
    name = f"ta-outlier-{uuid.uuid4().hex[:6]}"
    with orvad.admin() as c:
        fn = create_function(c, name)
        assert wait_deployed(c, deploy_inline(c, name, OK)["id"])["status"] == "succeeded"
        try:
            fast = [_invoke(c, name) for _ in range(30)]
            slow = _invoke(c, name, {"sleep": 0.3})
            rows = [_written(c, r.headers["x-orva-execution-id"]) for r in [*fast, slow]]
            assert [row["outlier"] for row in rows[:-1]] == [False] * 30
            assert rows[-1]["outlier"] is True and rows[-1]["duration_ms"] >= 300
            listed = c.get("/api/v1/executions", params={"function_id": fn["id"], "limit": 1}).json()
            assert listed["executions"][0]["outlier"] is True
            tree = c.get(f"/api/v1/traces/{slow.headers['x-trace-id']}").json()
            assert tree["spans"][0]["outlier"] is True
        finally:
            c.delete(f"/api/v1/functions/{fn['id']}")
