"""The SDK channel (issue 23) through HTTP with real workers, both runtimes: a handler's `orva` call reaches
orvad over the worker's own pipes and gets orvad's answer about the invocation (never what the sandbox
says); refusals arrive as OrvaError; and the attacks on the channel (calls after the reply, a flood, forged
frames for ids never sent or for another request, malformed and oversized frames) neither reach another
request nor harm orvad."""

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

PY_SYNC = r'''
import json, os, stat, uuid
import orva
from orva import log, OrvaError
from orva import _channel

WORKER = uuid.uuid4().hex  # this worker's identity: the same value means the same process
try:
    orva.context()
except OrvaError as e:
    AT_IMPORT = e.code  # no request at import time

def handler(event, context):
    req = json.loads(event["body"] or "{}")
    do = req.get("do")
    if do == "basic":
        me = orva.context()
        ops = orva.call("sdk.operations")
        try:
            orva.call("no.such.op", {})
            unknown = None
        except OrvaError as e:
            unknown = [e.code, e.message, e.hint, e.status]
        log.info("channel works", answer=42)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:  # the handler's threads call for its request
            threads = sorted(set(pool.map(lambda _: orva.context()["executionId"], range(8))))
        return {"me": me, "ops": ops, "unknown": unknown, "worker": WORKER, "threads": threads,
                "at_import": AT_IMPORT, "ctx": [context.function_name, context.execution_id]}
    if do == "flood":  # n calls written at once (one write), then every answer read
        host, rid, n = _channel._host, _channel._host.request_id(), req["n"]
        keys, blob = [], b""
        for _ in range(n):
            cid = next(_channel._ids)
            keys.append((rid, cid))
            _channel._slots[(rid, cid)] = _channel._Slot()
            frame = json.dumps({"type": "call", "id": rid, "call": cid, "op": "context", "args": {}}).encode()
            blob += len(frame).to_bytes(4, "big") + frame
        os.write(frames_fd(), blob)
        codes = []
        for key in keys:
            frame = _channel._next_sync(_channel._slots[key])
            codes.append("ok" if frame["ok"] else frame["error"]["code"])
        return {"codes": codes, "after": orva.context()["functionName"]}
    if do == "ended":  # a call for this worker's previous request: orvad answers REQUEST_ENDED
        return {"result": raw_call(_channel._host.request_id() - 1, "context")}
    if do == "huge":
        try:
            orva.call("context", {"blob": "x" * (17 * 1024 * 1024)})
        except OrvaError as e:
            return {"code": e.code, "worker": WORKER}
    if do == "forge":
        frame = req["frame"]
        if frame.get("id") == "own":
            frame["id"] = _channel._host.request_id()
        elif frame.get("id") == "future":
            frame["id"] = _channel._host.request_id() + 1000
        _channel._host.write(json.dumps(frame).encode())
        return {"sent": True}
    if do == "unread":  # calls whose answers it never reads (for its previous request: each is refused)
        frame = json.dumps({"type": "call", "id": _channel._host.request_id() - 1, "call": 1, "op": "context",
                            "args": {}}).encode()
        one = len(frame).to_bytes(4, "big") + frame
        fd = frames_fd()
        for _ in range(req["batches"]):
            os.write(fd, one * 1000)
        import time
        time.sleep(20)
        return {"survived": True}
    if do == "oversized":  # a frame header announcing more than ORVA_MAX_FRAME: orvad refuses it unread
        os.write(frames_fd(), (17 * 1024 * 1024).to_bytes(4, "big") + b"x" * 64)
        return {"sent": True}
    return {"worker": WORKER}


def frames_fd():
    """The adapter's private copy of the frame pipe (what a hostile handler would find): a pipe that is
    neither stdin nor stderr."""
    others = {os.fstat(0).st_ino, os.fstat(2).st_ino}
    for fd in range(3, 64):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISFIFO(st.st_mode) and st.st_ino not in others:
            return fd
    raise RuntimeError("no frame pipe found")


def raw_call(rid, op, args=None):
    cid = next(_channel._ids)
    key = (rid, cid)
    slot = _channel._slots[key] = _channel._Slot()
    _channel._host.write(json.dumps({"type": "call", "id": rid, "call": cid, "op": op, "args": args or {}}).encode())
    frame = _channel._next_sync(slot)
    _channel._slots.pop(key, None)
    return frame
'''

PY_ASYNC = r"""
import asyncio, uuid
import orva
from orva import OrvaError

WORKER = uuid.uuid4().hex
LATE = {}  # what a call made after the reply got


async def late():
    await asyncio.sleep(0.05)  # the reply has gone by now
    try:
        LATE["result"] = await orva.acall("context")
    except OrvaError as e:
        LATE["result"] = {"code": e.code, "message": e.message}


async def handler(event, context):
    if event["path"] == "/late":
        asyncio.get_running_loop().create_task(late())
        return {"worker": WORKER}
    if event["path"] == "/seen":
        return {"worker": WORKER, "late": LATE.get("result")}
    me, ops = await asyncio.gather(orva.acall("context"), orva.acall("sdk.operations"))
    sync_inside_async = orva.context()  # a sync call on the event loop: answered (it blocks the loop meanwhile)
    try:
        await orva.acall("no.such.op")
        unknown = None
    except OrvaError as e:
        unknown = e.code
    return {"me": me, "ops": ops, "sync": sync_inside_async, "unknown": unknown, "worker": WORKER,
            "ctx": [context.function_name, context.execution_id]}
"""

NODE = r"""
const orva = require('orva');
const { log, OrvaError } = require('orva');
const WORKER = require('crypto').randomUUID();
let late = null;

exports.handler = async (event, context) => {
  if (event.path === '/late') {
    setTimeout(() => {
      orva.call('context').then((v) => { late = v; }, (e) => { late = { code: e.code, message: e.message, isOrva: e instanceof OrvaError }; });
    }, 50);
    return { worker: WORKER };
  }
  if (event.path === '/seen') return { worker: WORKER, late };
  const [me, ops] = await Promise.all([orva.context(), orva.call('sdk.operations')]);
  let unknown = null;
  try { await orva.call('no.such.op', {}); } catch (e) {
    unknown = [e.code, e.message, e.hint, e.status, e instanceof OrvaError, e instanceof Error];
  }
  log.info('channel works', { answer: 42 });
  return { me, ops, unknown, worker: WORKER, ctx: [context.functionName, context.executionId] };
};
"""

NODE_ESM = r"""
import { context as whoami, OrvaError } from 'orva';
import orva from 'orva';

export async function handler(event, context) {
  const me = await whoami();
  let unknown = null;
  try { await orva.call('no.such.op'); } catch (e) { unknown = e instanceof OrvaError ? e.code : String(e); }
  return { me, unknown };
}
"""


@pytest.fixture()
def admin(orvad: Orvad) -> Iterator[httpx.Client]:
    with orvad.admin() as client:
        yield client


def deployed(
    admin: httpx.Client, code: str, runtime: str = "python", entrypoint: str | None = None, **fields: Any
) -> str:
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    create_function(admin, name, runtime, **({"entrypoint": entrypoint} if entrypoint else {}), **fields)
    extra = {"filename": entrypoint} if entrypoint else {}
    record = wait_deployed(admin, deploy_inline(admin, name, code, **extra)["id"])
    assert record["status"] == "succeeded", record
    return name


def post(orvad: Orvad, name: str, body: Any = None, path: str = "") -> httpx.Response:
    with httpx.Client(base_url=orvad.url, timeout=60) as c:
        return c.post(f"/fn/{name}{path}", content=json.dumps(body or {}))


def logs_of(admin: httpx.Client, execution_id: str) -> str:
    box: dict[str, str] = {}

    def ready() -> bool:
        r = admin.get(f"/api/v1/executions/{execution_id}/logs")
        box["logs"] = r.json().get("logs", "") if r.status_code == 200 else ""
        return r.status_code == 200

    wait_for(ready, 10, "the execution's logs")
    return box["logs"]


def _check_basic(reply: httpx.Response, name: str) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    out = reply.json()
    execution = reply.headers["x-orva-execution-id"]
    me = out["me"]
    assert me["functionName"] == name and me["executionId"] == execution, me
    assert out["ctx"] == [name, execution]
    assert me["depth"] == 0 and 0 < me["remainingMs"] <= 30000
    assert {"context", "sdk.operations"} <= set(out["ops"])
    return out


def test_python_sync_handler_gets_orvads_answers(orvad: Orvad, admin: httpx.Client) -> None:
    name = deployed(admin, PY_SYNC, network_mode="none")
    reply = post(orvad, name, {"do": "basic"})
    out = _check_basic(reply, name)
    code, message, hint, status = out["unknown"]
    assert code == "UNKNOWN_OPERATION" and "no.such.op" in message and "docs/SDK.md" in hint and status == 400
    assert out["threads"] == [out["me"]["executionId"]] and out["at_import"] == "NO_REQUEST"
    line = next(
        json.loads(x)
        for x in logs_of(admin, reply.headers["x-orva-execution-id"]).splitlines()
        if x.startswith("{")
    )
    assert line["level"] == "info" and line["msg"] == "channel works" and line["answer"] == 42
    # the worker is the same one on the next request: nothing broke the channel
    assert post(orvad, name, {"do": "basic"}).json()["worker"] == out["worker"]


def test_python_async_handler_and_a_call_after_the_reply(orvad: Orvad, admin: httpx.Client) -> None:
    name = deployed(admin, PY_ASYNC.replace("async def handler", "async def handler", 1))
    out = _check_basic(post(orvad, name), name)
    assert out["sync"]["executionId"] == out["me"]["executionId"] and out["unknown"] == "UNKNOWN_OPERATION"
    worker = post(orvad, name, path="/late").json()["worker"]
    seen: dict[str, Any] = {}

    def answered() -> bool:
        seen.update(post(orvad, name, path="/seen").json())
        return seen["late"] is not None

    wait_for(answered, 10, "the late call's answer")
    assert seen["late"]["code"] == "REQUEST_ENDED", seen
    assert seen["worker"] == worker  # the worker survived it


def test_node_handler_gets_orvads_answers_and_a_late_call_is_refused(
    orvad: Orvad, admin: httpx.Client
) -> None:
    name = deployed(admin, NODE, "node")
    reply = post(orvad, name)
    out = _check_basic(reply, name)
    assert (
        out["unknown"][0] == "UNKNOWN_OPERATION"
        and out["unknown"][3] == 400
        and out["unknown"][4:] == [True, True]
    )
    line = next(
        json.loads(x)
        for x in logs_of(admin, reply.headers["x-orva-execution-id"]).splitlines()
        if x.startswith("{")
    )
    assert line["msg"] == "channel works" and line["answer"] == 42
    worker = post(orvad, name, path="/late").json()["worker"]
    seen: dict[str, Any] = {}

    def answered() -> bool:
        seen.update(post(orvad, name, path="/seen").json())
        return seen["late"] is not None

    wait_for(answered, 10, "the late call's answer")
    assert seen["late"]["code"] == "REQUEST_ENDED" and seen["late"]["isOrva"], seen
    assert seen["worker"] == worker


def test_node_es_module_imports_orva(orvad: Orvad, admin: httpx.Client) -> None:
    name = deployed(admin, NODE_ESM, "node", entrypoint="handler.mjs")
    reply = post(orvad, name)
    assert reply.status_code == 200, reply.text
    assert reply.json()["me"]["functionName"] == name and reply.json()["unknown"] == "UNKNOWN_OPERATION"


def test_a_flood_of_calls_is_capped(orvad: Orvad, admin: httpx.Client) -> None:
    name = deployed(admin, PY_SYNC)
    out = post(orvad, name, {"do": "flood", "n": 300}).json()
    codes = out["codes"]
    assert len(codes) == 300 and set(codes) <= {"ok", "TOO_MANY_CALLS"}, set(codes)
    assert codes.count("TOO_MANY_CALLS") > 0 and codes.count("ok") >= 64
    assert out["after"] == name  # the request goes on calling afterwards


def test_forged_and_malformed_frames(orvad: Orvad, admin: httpx.Client) -> None:
    name = deployed(admin, PY_SYNC)
    post(orvad, name)
    # a call for this worker's previous request (ended): an error result, and the request goes on to answer
    ended = post(orvad, name, {"do": "ended"}).json()["result"]
    assert ended["ok"] is False and ended["error"]["code"] == "REQUEST_ENDED", ended
    # credit and cancel frames for calls that do not exist: ignored (frames are read in order, so the 200
    # of the request that wrote them says orvad took them without replacing its worker)
    for frame in (
        {"type": "credit", "id": "own", "call": 999, "n": 1 << 40},
        {"type": "cancel", "id": "own", "call": 5},
    ):
        assert post(orvad, name, {"do": "forge", "frame": frame}).status_code == 200
    # a call for an id never sent, and call frames without an integer call id: protocol errors, the worker
    # is replaced, orvad serves the next request
    for frame in (
        {"type": "call", "id": "future", "call": 1, "op": "context", "args": {}},
        {"type": "call", "id": "own", "call": "1", "op": "context", "args": {}},
        {"type": "call", "id": "own", "op": "context"},
        {"type": "call", "call": 1, "op": "context", "args": {}},
        {"type": "credit", "id": "own", "call": 1, "n": "lots"},
    ):
        reply = post(orvad, name, {"do": "forge", "frame": frame})
        assert reply.status_code == 502 and reply.json()["error"]["code"] == "WORKER_CRASHED", (
            frame,
            reply.text,
        )
        assert (
            "answers no request" in reply.json()["error"]["message"]
            or "protocol" in reply.json()["error"]["message"]
        )
        assert post(orvad, name).status_code == 200  # a fresh worker (or another of the pool's) answers
    # arguments over the frame limit never leave the handler; a frame header announcing more is refused unread
    assert post(orvad, name, {"do": "huge"}).json()["code"] == "PAYLOAD_TOO_LARGE"
    reply = post(orvad, name, {"do": "oversized"})
    assert reply.status_code == 502 and reply.json()["error"]["code"] == "WORKER_CRASHED"
    assert post(orvad, name).status_code == 200
    assert httpx.get(f"{orvad.url}/api/v1/system/health", timeout=10).status_code == 200


def test_a_call_cannot_name_another_function(orvad: Orvad, admin: httpx.Client) -> None:
    """Whatever the arguments say, `context` answers for the invocation orvad recorded."""
    name = deployed(admin, PY_SYNC)
    other = deployed(admin, PY_SYNC)
    code = PY_SYNC  # the same handler: its forge path sends a call whose args claim the other function
    del code
    frame = {
        "type": "call",
        "id": "own",
        "call": 1,
        "op": "context",
        "args": {"functionId": other, "functionName": other, "executionId": "x"},
    }
    reply = post(orvad, name, {"do": "forge", "frame": frame})  # its result is read by nobody: no harm
    assert reply.status_code == 200
    me = post(orvad, name, {"do": "basic"}).json()["me"]
    assert me["functionName"] == name


def test_a_worker_that_leaves_its_results_unread_is_replaced(orvad: Orvad, admin: httpx.Client) -> None:
    """40,000 calls whose refusals it never reads: orvad stops at a few MiB of unread answers, replaces the
    worker (502 at once, not after the handler's 20 s) and serves the next request."""
    name = deployed(admin, PY_SYNC)
    post(orvad, name)
    started = time.monotonic()
    reply = post(orvad, name, {"do": "unread", "batches": 40})
    assert reply.status_code == 502 and reply.json()["error"]["code"] == "WORKER_CRASHED", reply.text
    assert "unread" in reply.json()["error"]["message"] and time.monotonic() - started < 15
    assert post(orvad, name).status_code == 200
