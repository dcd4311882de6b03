"""Function-to-function calls through HTTP, real workers: orva.invoke in Python and Node handlers.

A caller function is invoked over /fn; inside, it calls another function with the SDK; orvad checks the
call against the caller's own records (may_invoke, its chain, its deadline), never the arguments."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

# a caller: its body says what to call; it answers what the call gave (or the OrvaError it raised)
PY_CALLER = r"""
import json, orva
from orva import invoke, OrvaError

def handler(event, context):
    req = json.loads(event["body"] or "{}")
    try:
        if req.get("raw"):  # the channel's call as it is, extra arguments and all (attack tests)
            return {"reply": orva.call("invoke", req["raw"])}
        if req.get("stream"):
            s = invoke(req["target"], req.get("payload"), stream=True)
            chunks = [c.decode() for c in s]
            return {"status": s.status, "headers": s.headers, "chunks": chunks}
        kwargs = {"event": req["event"]} if "event" in req else {}
        args = (req["payload"],) if "payload" in req else ()
        reply = invoke(req["target"], *args, **kwargs)
        return {"reply": dict(reply), "json": reply.json, "me": orva.context()}
    except OrvaError as e:
        return {"error": {"code": e.code, "message": e.message, "hint": e.hint, "status": e.status}}
"""
PY_ACALLER = r"""
import json
from orva import ainvoke, OrvaError

async def handler(event, context):
    req = json.loads(event["body"] or "{}")
    try:
        if req.get("stream"):
            s = await ainvoke(req["target"], req.get("payload"), stream=True)
            return {"status": s.status, "headers": s.headers, "chunks": [c.decode() async for c in s]}
        reply = await ainvoke(req["target"], req.get("payload"))
        return {"reply": dict(reply), "json": reply.json}
    except OrvaError as e:
        return {"error": {"code": e.code, "message": e.message, "hint": e.hint}}
"""
NODE_CALLER = r"""
const orva = require("orva");
exports.handler = async (event) => {
  const req = JSON.parse(event.body || "{}");
  try {
    if (req.stream) {
      const s = await orva.invoke(req.target, req.payload, { stream: true });
      const chunks = [];
      for await (const c of s) chunks.push(c.toString());
      return { status: s.status, headers: s.headers, chunks };
    }
    const reply = await orva.invoke(req.target, req.payload);
    return { reply: { status: reply.status, statusCode: reply.statusCode, headers: reply.headers, body: reply.body, text: reply.text }, json: reply.json };
  } catch (e) {
    return { error: { code: e.code, message: e.message, hint: e.hint, status: e.status } };
  }
};
"""
# the callee: what it was sent, and how it was triggered
ECHO = r"""
import json

def handler(event, context):
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-echo": "1"},
        "body": json.dumps({
            "method": event["httpMethod"], "path": event["path"], "body": event["body"],
            "query": event.get("queryStringParameters"), "headers": event["headers"],
            "trigger": event["requestContext"]["trigger"],
        }),
    }
"""
# a chain: calls $NEXT with what it got, and says where it stands
HOP = r"""
import json, os, orva
from orva import invoke, OrvaError

def handler(event, context):
    me, nxt = os.environ["ME"], os.environ.get("NEXT")
    if not nxt:
        return {"at": me, "depth": orva.context()["depth"]}
    try:
        inner = invoke(nxt, {}).json
    except OrvaError as e:
        return {"at": me, "depth": orva.context()["depth"], "error": e.code, "message": e.message}
    return {"at": me, "depth": orva.context()["depth"], "inner": inner}
"""
SLOW = r"""
import time

def handler(event, context):
    time.sleep(20)
    return {"late": True}
"""
BOOM = r"""
def handler(event, context):
    raise ValueError("callee broke")
"""
CUT_STREAM = r"""
def handler(event, context):
    yield {"statusCode": 200, "headers": {"content-type": "text/plain"}}
    yield "first\n"
    raise RuntimeError("mid-stream")
"""
PY_STREAM = r"""
def handler(event, context):
    yield {"statusCode": 200, "headers": {"content-type": "text/plain"}}
    for word in ("one", "two", "three"):
        yield word + "\n"
"""
NODE_STREAM = r"""
exports.handler = async function* () {
  yield { statusCode: 200, headers: { "content-type": "text/plain" } };
  for (const w of ["uno", "dos", "tres"]) yield w + "\n";
};
"""


def _deploy_all(c: httpx.Client, specs: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Create and deploy every function (name -> (code, settings)) at once; their records."""
    made, deps = {}, {}
    for name, (code, settings) in specs.items():
        runtime = settings.pop("runtime", "python")
        made[name] = create_function(c, name, runtime, **settings)
        deps[name] = deploy_inline(
            c, name, code, filename="handler.js" if runtime == "node" else "handler.py"
        )
    for name, dep in deps.items():
        assert wait_deployed(c, dep["id"])["status"] == "succeeded", name
    return made


def _call(c: httpx.Client, fn: str, body: dict[str, Any], **headers: str) -> Any:
    r = c.post(f"/fn/{fn}", json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def _executions(c: httpx.Client, fn_id: str) -> list[dict[str, Any]]:
    return list(c.get("/api/v1/executions", params={"function_id": fn_id, "limit": 100}).json()["executions"])


@pytest.fixture(scope="module")
def fns(orvad: Orvad) -> Iterator[dict[str, dict[str, Any]]]:
    with orvad.admin() as c:
        specs: dict[str, tuple[str, dict[str, Any]]] = {
            "ff-caller": (
                PY_CALLER,
                {"may_invoke": ["ff-echo", "ff-keyed", "ff-signed", "ff-stream", "ff-nstream"]},
            ),
            "ff-ncaller": (
                NODE_CALLER,
                {"runtime": "node", "may_invoke": ["ff-echo", "ff-stream", "ff-nstream"]},
            ),
            "ff-star": (PY_CALLER, {"may_invoke": ["*"]}),
            "ff-acaller": (PY_ACALLER, {"may_invoke": ["ff-echo", "ff-stream", "ff-nstream"]}),
            "ff-none": (PY_CALLER, {"may_invoke": ["ff-other"]}),
            "ff-echo": (ECHO, {}),
            "ff-boom": (BOOM, {}),
            "ff-cut": (CUT_STREAM, {}),
            "ff-never": (ECHO, {}),
            "ff-keyed": (ECHO, {"auth_mode": "api_key"}),
            "ff-signed": (ECHO, {"auth_mode": "signed"}),
            "ff-stream": (PY_STREAM, {}),
            "ff-nstream": (NODE_STREAM, {"runtime": "node"}),
            "ff-short": (PY_CALLER, {"may_invoke": ["ff-slow"], "timeout_ms": 1500}),
            "ff-slow": (SLOW, {"timeout_ms": 60000}),
            "ff-cyc-a": (HOP, {"may_invoke": ["ff-cyc-b"], "env_vars": {"ME": "a", "NEXT": "ff-cyc-b"}}),
            "ff-cyc-b": (HOP, {"may_invoke": ["ff-cyc-a"], "env_vars": {"ME": "b", "NEXT": "ff-cyc-a"}}),
        }
        for i in range(10):  # ff-hop0 -> ff-hop1 -> ... -> ff-hop9
            env = {"ME": str(i), **({"NEXT": f"ff-hop{i + 1}"} if i < 9 else {})}
            specs[f"ff-hop{i}"] = (HOP, {"may_invoke": ["*"], "env_vars": env})
        made = _deploy_all(c, specs)
        made["ff-undeployed"] = create_function(c, "ff-undeployed")
    yield made
    with orvad.admin() as c:
        for name in made:
            c.delete(f"/api/v1/functions/{name}")


def test_an_allowed_call_returns_the_callees_reply_python(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        out = _call(c, "ff-caller", {"target": "ff-echo", "payload": {"n": 1}})
        reply = out["reply"]
        assert reply["status"] == 201 and reply["headers"]["x-echo"] == "1", out
        seen = out["json"]
        assert seen["method"] == "POST" and seen["path"] == "/" and json.loads(seen["body"]) == {"n": 1}
        assert seen["headers"]["content-type"] == "application/json" and seen["trigger"] == "f2f"
        # Go Orva's shape: statusCode, and body is the parsed JSON reply; text is the raw text
        assert reply["statusCode"] == 201 and reply["body"] == seen and json.loads(reply["text"]) == seen
        # an event: method, path, query, headers; credentials and orvad's headers are never passed on
        out = _call(
            c,
            "ff-caller",
            {
                "target": "ff-echo",
                "event": {
                    "method": "GET",
                    "path": "/items/42",
                    "query": {"full": "1"},
                    "headers": {"x-mine": "v", "authorization": "Bearer x", "x-orva-api-key": "k"},
                },
            },
        )
        seen = out["json"]
        assert seen["method"] == "GET" and seen["path"] == "/items/42" and seen["query"] == {"full": "1"}
        assert seen["headers"]["x-mine"] == "v"
        assert "authorization" not in seen["headers"] and "x-orva-api-key" not in seen["headers"]
        # the callee's executions: trigger f2f (rows are written in batches: wait for them)
        wait_for(lambda: len(_executions(c, fns["ff-echo"]["id"])) >= 2, 10, "the callee's execution rows")
        assert all(e["trigger"] == "f2f" for e in _executions(c, fns["ff-echo"]["id"]))


def _execution(c: httpx.Client, execution_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def there() -> bool:
        r = c.get(f"/api/v1/executions/{execution_id}")
        found.update(r.json() if r.status_code == 200 else {})
        return bool(found)

    wait_for(there, 10, f"execution {execution_id}")
    return found


def test_the_callee_joins_the_callers_trace_as_its_child(orvad: Orvad, fns: dict[str, Any]) -> None:
    """trigger f2f, the caller's trace id, the caller's invoke call span as parent; a forged trace id is ignored."""
    with orvad.admin() as c:
        out = _call(c, "ff-caller", {"target": "ff-echo", "payload": {}})
        me, callee_id = out["me"], out["reply"]["headers"]["x-orva-execution-id"]
        callee = _execution(c, callee_id)
        assert callee["trigger"] == "f2f" and callee["function_id"] == fns["ff-echo"]["id"], callee
        assert callee["trace_id"] == me["traceId"], (callee, me)
        # its parent: the invoke call's span, a child of the caller's span (docs/SDK.md, Traces)
        tree: dict[str, Any] = {}

        def linked() -> bool:
            tree.update(c.get(f"/api/v1/traces/{me['traceId']}").json())
            return any(s["span_id"] == callee["parent_span_id"] for s in tree.get("spans", ()))

        wait_for(linked, 10, "the invoke call's span")
        call = next(s for s in tree["spans"] if s["span_id"] == callee["parent_span_id"])
        assert call["kind"] == "sdk" and call["name"] == "invoke" and call["parent_span_id"] == me["spanId"]
        caller = _execution(c, me["executionId"])
        assert caller["trace_id"] == me["traceId"] and caller["trigger"] == "http"
        forged = {"function": "ff-echo", "payload": {}, "trace_id": "0" * 31 + "1", "span_id": "0" * 15 + "1"}
        reply = _call(c, "ff-caller", {"raw": forged})["reply"]
        again = _execution(c, reply["headers"]["x-orva-execution-id"])
        assert again["trace_id"] != forged["trace_id"] and again["parent_span_id"] != forged["span_id"]
        assert again["parent_span_id"] is not None


def test_an_allowed_call_returns_the_callees_reply_node(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        out = _call(c, "ff-ncaller", {"target": "ff-echo", "payload": [1, "two"]})
        assert out["reply"]["status"] == 201, out
        assert json.loads(out["json"]["body"]) == [1, "two"] and out["json"]["trigger"] == "f2f"
        reply = out["reply"]
        assert (
            reply["statusCode"] == 201
            and reply["body"] == out["json"]
            and json.loads(reply["text"]) == out["json"]
        )


def test_ainvoke_in_an_async_python_handler(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        out = _call(c, "ff-acaller", {"target": "ff-echo", "payload": {"a": 1}})
        assert out["reply"]["status"] == 201 and json.loads(out["json"]["body"]) == {"a": 1}, out
        assert _call(c, "ff-acaller", {"target": "ff-never"})["error"]["code"] == "FORBIDDEN"


def test_a_call_not_in_may_invoke_is_forbidden_and_the_callee_never_runs(
    orvad: Orvad, fns: dict[str, Any]
) -> None:
    with orvad.admin() as c:
        out = _call(c, "ff-none", {"target": "ff-never", "payload": {}})
        error = out["error"]
        assert error["code"] == "FORBIDDEN" and error["status"] == 403, out
        assert "may_invoke" in error["message"] and "PUT /api/v1/functions/ff-none" in error["hint"]
        assert "may_invoke" in error["hint"]
        # by id: the name it has now is what may_invoke must hold
        out = _call(c, "ff-none", {"target": fns["ff-never"]["id"]})
        assert out["error"]["code"] == "FORBIDDEN", out
        # a function that does not exist is not told apart from one that may not be called
        assert _call(c, "ff-none", {"target": "ff-nonexistent"})["error"]["code"] == "FORBIDDEN"
        assert _executions(c, fns["ff-never"]["id"]) == []
        # with "*": any function, and a missing one is NOT_FOUND
        assert _call(c, "ff-star", {"target": "ff-never", "payload": 1})["reply"]["status"] == 201
        missing = _call(c, "ff-star", {"target": "ff-nonexistent"})["error"]
        assert missing["code"] == "NOT_FOUND" and missing["status"] == 404, missing  # OrvaError.status
        out = _call(c, "ff-star", {"target": fns["ff-echo"]["id"], "payload": 2})
        assert out["reply"]["status"] == 201


def test_the_callees_failures_keep_their_codes(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        error = _call(c, "ff-star", {"target": "ff-boom", "payload": {}})["error"]
        assert error["code"] == "FUNCTION_ERROR" and "callee broke" in error["message"], error
        assert _call(c, "ff-star", {"target": "ff-undeployed"})["error"]["code"] == "NOT_DEPLOYED"
        error = _call(c, "ff-star", {"target": "ff-cut", "payload": {}, "stream": True})["error"]
        assert error["code"] == "FUNCTION_ERROR" and "before it was complete" in error["message"], error
        error = _call(c, "ff-star", {"target": "ff-cut", "payload": {}})["error"]  # buffered: the same
        assert error["code"] == "FUNCTION_ERROR", error
        # a bad event is the caller's BAD_REQUEST, naming the field
        error = _call(c, "ff-star", {"target": "ff-echo", "event": {"path": "no-slash"}})["error"]
        assert error["code"] == "BAD_REQUEST" and "event.path" in error["message"], error


def test_the_callees_auth_mode_is_satisfied_by_may_invoke_but_http_still_needs_a_key(
    orvad: Orvad, fns: dict[str, Any]
) -> None:
    with orvad.admin() as c:
        for target in ("ff-keyed", "ff-signed"):
            out = _call(c, "ff-caller", {"target": target, "payload": {"k": 1}})
            assert out["reply"]["status"] == 201, (target, out)
    with orvad.client() as anonymous:  # regression: HTTP callers still need their credentials
        assert anonymous.post("/fn/ff-keyed", json={}).status_code == 401
        assert anonymous.post("/fn/ff-signed", json={}).status_code == 401
        # a header naming a caller function gives HTTP nothing
        r = anonymous.post("/fn/ff-keyed", json={}, headers={"x-orva-caller": fns["ff-caller"]["id"]})
        assert r.status_code == 401


def test_depth_nine_is_refused(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        out = _call(c, "ff-hop0", {})
    depths = []
    while "inner" in out:
        depths.append(out["depth"])
        out = out["inner"]
    depths.append(out["depth"])
    # ff-hop0 ran at depth 0, ..., ff-hop8 at depth 8 (8 calls deep); its call to ff-hop9 is refused
    assert depths == list(range(9)), depths
    assert out["at"] == "8" and out["error"] == "CALL_DEPTH_EXCEEDED", out


def test_a_cycle_is_refused(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        out = _call(c, "ff-cyc-a", {})
    assert out["at"] == "a" and out["inner"]["at"] == "b", out
    assert out["inner"]["error"] == "CALL_CYCLE", out
    assert "ff-cyc-a -> ff-cyc-b -> ff-cyc-a" in out["inner"]["message"]


def test_the_caller_deadline_bounds_the_callee(orvad: Orvad, fns: dict[str, Any]) -> None:
    """A caller with 1.5 s calls a callee that sleeps 20 s: the caller gets TIMEOUT in time, and the callee
    does not run on past the caller's deadline (its execution ends as a timeout within it)."""
    with orvad.admin() as c:
        started = time.monotonic()
        r = c.post("/fn/ff-short", json={"target": "ff-slow", "payload": {}}, timeout=60)
        took = time.monotonic() - started
        assert took < 5, took
        if r.status_code == 200:
            assert r.json()["error"]["code"] == "TIMEOUT", r.text
        else:  # the caller itself ran out of time while handling the error
            assert r.json()["error"]["code"] == "TIMEOUT", r.text
        slow = fns["ff-slow"]["id"]

        def ended() -> list[dict[str, Any]]:
            return [e for e in _executions(c, slow) if e["status"] != "running"]

        wait_for(lambda: bool(ended()), 10, "the callee's execution to end")
        (callee,) = ended()
        assert callee["status"] == "timeout" and callee["trigger"] == "f2f", callee
        assert callee["duration_ms"] < 1600, callee


@pytest.mark.parametrize("caller", ["ff-caller", "ff-acaller", "ff-ncaller"])
@pytest.mark.parametrize("target", ["ff-stream", "ff-nstream"])
def test_streamed_replies(orvad: Orvad, fns: dict[str, Any], caller: str, target: str) -> None:
    with orvad.admin() as c:
        out = _call(c, caller, {"target": target, "payload": {}, "stream": True})
    assert out["status"] == 200 and out["headers"]["content-type"].startswith("text/plain"), out
    words = "".join(out["chunks"]).split()
    assert words == (["one", "two", "three"] if target == "ff-stream" else ["uno", "dos", "tres"])


def test_arguments_claiming_a_chain_a_trace_or_a_caller_are_ignored(
    orvad: Orvad, fns: dict[str, Any]
) -> None:
    """The sandbox cannot lengthen or shorten its chain, borrow another function's grants or trace."""
    forged = {
        "function": "ff-echo",
        "payload": {"x": 1},
        "chain": [fns["ff-echo"]["id"]] * 8,  # would be a cycle and too deep, if it counted
        "caller": fns["ff-star"]["id"],
        "function_id": fns["ff-star"]["id"],
        "may_invoke": ["*"],
        "trace_id": "0" * 31 + "1",
        "depth": 0,
    }
    with orvad.admin() as c:
        out = _call(c, "ff-caller", {"raw": forged})
        assert out["reply"]["status"] == 201, out
        # ff-none may not call ff-never: claiming to be ff-star (which may) changes nothing
        out = _call(c, "ff-none", {"raw": {**forged, "function": "ff-never"}})
        assert out["error"]["code"] == "FORBIDDEN", out
        assert _executions(c, fns["ff-never"]["id"]) == [] or all(
            e["trigger"] == "f2f" for e in _executions(c, fns["ff-never"]["id"])
        )


def test_after_a_rename_may_invoke_names_the_old_name(orvad: Orvad, fns: dict[str, Any]) -> None:
    """may_invoke holds names, looked up at each call: a renamed callee is no longer allowed (by its new name
    or by id), and a new function given the old name is."""
    with orvad.admin() as c:
        made = _deploy_all(c, {"ff-rn-a": (PY_CALLER, {"may_invoke": ["ff-rn-b"]}), "ff-rn-b": (ECHO, {})})
        try:
            assert _call(c, "ff-rn-a", {"target": "ff-rn-b", "payload": 1})["reply"]["status"] == 201
            assert c.put("/api/v1/functions/ff-rn-b", json={"name": "ff-rn-c"}).status_code == 200
            assert _call(c, "ff-rn-a", {"target": "ff-rn-c"})["error"]["code"] == "FORBIDDEN"
            assert _call(c, "ff-rn-a", {"target": made["ff-rn-b"]["id"]})["error"]["code"] == "FORBIDDEN"
            assert _call(c, "ff-rn-a", {"target": "ff-rn-b"})["error"]["code"] == "NOT_FOUND"
            _deploy_all(c, {"ff-rn-b": (ECHO, {})})
            assert _call(c, "ff-rn-a", {"target": "ff-rn-b", "payload": 1})["reply"]["status"] == 201
        finally:
            for name in ("ff-rn-a", "ff-rn-b", "ff-rn-c"):
                c.delete(f"/api/v1/functions/{name}")
