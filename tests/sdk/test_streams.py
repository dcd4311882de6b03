"""Streamed SDK results through HTTP, real workers: the F2F `invoke(..., stream=True)` operation answers with
an async iterator, which the channel carries as chunk results under credit (16 ahead of what the handler
took). Long streams (far past the window) arrive whole and in order in both runtimes and both Python modes;
a handler that stops reading early cancels the stream (it does not wait for the callee), and its worker goes
on serving."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox

# the callee: n lines, one chunk each, `sleep` seconds apart
CALLEE = r"""
import json, time

def handler(event, context):
    req = json.loads(event["body"] or "{}")

    def lines():
        for i in range(req["n"]):
            if req.get("sleep"):
                time.sleep(req["sleep"])
            yield f"{i}\n"
    return lines()
"""

PY_SYNC = r"""
import json, time, uuid
import orva
from orva import invoke

WORKER = uuid.uuid4().hex

def handler(event, context):
    req = json.loads(event["body"])
    got, started = [], time.monotonic()
    with invoke(req["target"], {"n": req["n"], "sleep": req.get("sleep", 0)}, stream=True) as s:
        for chunk in s:
            got.append(chunk.decode())
            if req.get("take") and len(got) >= req["take"]:
                break
    return {"lines": "".join(got).split(), "s": time.monotonic() - started, "worker": WORKER,
            "after": orva.context()["functionName"]}
"""

PY_ASYNC = r"""
import json, time, uuid
import orva
from orva import ainvoke

WORKER = uuid.uuid4().hex

async def handler(event, context):
    req = json.loads(event["body"])
    got, started = [], time.monotonic()
    s = await ainvoke(req["target"], {"n": req["n"], "sleep": req.get("sleep", 0)}, stream=True)
    async for chunk in s:
        got.append(chunk.decode())
        if req.get("take") and len(got) >= req["take"]:
            break
    await s.aclose()
    return {"lines": "".join(got).split(), "s": time.monotonic() - started, "worker": WORKER,
            "after": (await orva.acall("context"))["functionName"]}
"""

NODE = r"""
const orva = require('orva');
const WORKER = require('crypto').randomUUID();

exports.handler = async (event) => {
  const req = JSON.parse(event.body);
  const got = [], started = Date.now();
  const s = await orva.invoke(req.target, { n: req.n, sleep: req.sleep || 0 }, { stream: true });
  for await (const chunk of s) {
    got.push(chunk.toString());
    if (req.take && got.length >= req.take) break;
  }
  return { lines: got.join('').split(/\s+/).filter(Boolean), s: (Date.now() - started) / 1000, worker: WORKER,
           after: (await orva.context()).functionName };
};
"""


@pytest.fixture(scope="module")
def fns(orvad: Orvad) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:6]
    names = {
        "callee": f"st-callee-{tag}",
        "py": f"st-py-{tag}",
        "apy": f"st-apy-{tag}",
        "node": f"st-node-{tag}",
    }
    with orvad.admin() as c:
        create_function(c, names["callee"], timeout_ms=60000)
        for key, runtime in (("py", "python"), ("apy", "python"), ("node", "node")):
            create_function(c, names[key], runtime, may_invoke=[names["callee"]], timeout_ms=60000)
        for key, code in (("callee", CALLEE), ("py", PY_SYNC), ("apy", PY_ASYNC), ("node", NODE)):
            record = wait_deployed(c, deploy_inline(c, names[key], code)["id"])
            assert record["status"] == "succeeded", record
    yield names


def call(orvad: Orvad, name: str, body: dict[str, Any]) -> dict[str, Any]:
    with httpx.Client(base_url=orvad.url, timeout=60) as c:
        r = c.post(f"/fn/{name}", content=json.dumps(body))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


@pytest.mark.parametrize("caller", ["py", "apy", "node"])
def test_a_long_stream_arrives_whole_and_in_order(orvad: Orvad, fns: dict[str, str], caller: str) -> None:
    """500 chunks: 31 times the window, so every credit round trip has to work."""
    out = call(orvad, fns[caller], {"target": fns["callee"], "n": 500})
    assert out["lines"] == [str(i) for i in range(500)]
    assert out["after"] == fns[caller]


@pytest.mark.parametrize("caller", ["py", "apy", "node"])
def test_stopping_early_cancels_the_stream(orvad: Orvad, fns: dict[str, str], caller: str) -> None:
    """The callee would take 20 s (200 chunks, 0.1 s apart); the handler takes 3 and goes on at once."""
    started = time.monotonic()
    out = call(orvad, fns[caller], {"target": fns["callee"], "n": 200, "sleep": 0.1, "take": 3})
    assert out["lines"] == ["0", "1", "2"]
    assert out["s"] < 5 and time.monotonic() - started < 10, out
    again = call(orvad, fns[caller], {"target": fns["callee"], "n": 20})
    assert again["lines"] == [str(i) for i in range(20)] and again["worker"] == out["worker"]
