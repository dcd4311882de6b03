"""The SDK channel's own cost (issue 23): one `orva` call from a handler to orvad and back, with an operation
that does nothing but answer (`context`: orvad's record of the invocation), so the figure is the channel
alone: the call frame out, orvad's task, the result frame in. KV's figures (bench/kv.py) add the store.

Python (sync `def` and `async def`) and Node handlers each time `CALLS` sequential calls with their own
clock (perf_counter / hrtime) inside one invocation, after a warm-up.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from harness import Orvad

CALLS = 2000

PY_SYNC = """
import json, time
import orva

def handler(event, context):
    n = json.loads(event["body"])["n"]
    for _ in range(50):
        orva.call("context")
    took = []
    for _ in range(n):
        t = time.perf_counter()
        orva.call("context")
        took.append((time.perf_counter() - t) * 1000)
    return {"calls": took}
"""

PY_ASYNC = """
import json, time
import orva

async def handler(event, context):
    n = json.loads(event["body"])["n"]
    for _ in range(50):
        await orva.acall("context")
    took = []
    for _ in range(n):
        t = time.perf_counter()
        await orva.acall("context")
        took.append((time.perf_counter() - t) * 1000)
    return {"calls": took}
"""

NODE = """
const orva = require("orva");
const ms = (t) => Number(process.hrtime.bigint() - t) / 1e6;
exports.handler = async (event) => {
  const n = JSON.parse(event.body).n;
  for (let i = 0; i < 50; i++) await orva.call("context");
  const calls = [];
  for (let i = 0; i < n; i++) { const t = process.hrtime.bigint(); await orva.call("context"); calls.push(ms(t)); }
  return { calls };
};
"""


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)


def bench_sdk(orvad: Orvad, calls: int = CALLS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, runtime, entrypoint, code in (
        ("python", "python", "handler.py", PY_SYNC),
        ("python_async", "python", "handler.py", PY_ASYNC),
        ("node", "node", "handler.js", NODE),
    ):
        fn = orvad.deploy(f"bench-sdk-{label.replace('_', '-')}", runtime, code, entrypoint=entrypoint)
        with httpx.Client(base_url=orvad.url, timeout=120) as c:
            r = c.post(f"/fn/{fn['id']}/", content=json.dumps({"n": calls}))
            r.raise_for_status()
            took = r.json()["calls"]
        out[label] = {
            "p50_ms": _pct(took, 0.5),
            "p95_ms": _pct(took, 0.95),
            "p99_ms": _pct(took, 0.99),
            "n": len(took),
        }
    return out
