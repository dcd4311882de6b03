"""The KV figures (issue 23): what one `orva.kv.get` from a handler costs, sandbox to orvad and back.

A Python and a Node handler each time `KV_GETS` sequential gets of one small key with their own clock
(perf_counter / hrtime) inside one invocation, after a warm-up; the figure is the distribution of those
round trips (the issue's target: under 0.5 ms p50). A put is timed the same way for comparison.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from harness import Orvad

KV_GETS = 2000

PY_KV = """
import json, time
from orva import kv

def handler(event, context):
    n = json.loads(event["body"])["n"]
    kv.put("bench", {"hello": "world"})
    for _ in range(50):
        kv.get("bench")
    gets, puts = [], []
    for _ in range(n):
        t = time.perf_counter()
        kv.get("bench")
        gets.append((time.perf_counter() - t) * 1000)
    for _ in range(n // 10):
        t = time.perf_counter()
        kv.put("bench", {"hello": "world"})
        puts.append((time.perf_counter() - t) * 1000)
    return {"gets": gets, "puts": puts}
"""

NODE_KV = """
const { kv } = require("orva");
const ms = (t) => Number(process.hrtime.bigint() - t) / 1e6;
exports.handler = async (event) => {
  const n = JSON.parse(event.body).n;
  await kv.put("bench", { hello: "world" });
  for (let i = 0; i < 50; i++) await kv.get("bench");
  const gets = [], puts = [];
  for (let i = 0; i < n; i++) { const t = process.hrtime.bigint(); await kv.get("bench"); gets.push(ms(t)); }
  for (let i = 0; i < n / 10; i++) { const t = process.hrtime.bigint(); await kv.put("bench", { hello: "world" }); puts.push(ms(t)); }
  return { gets, puts };
};
"""


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)


def _figures(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": _pct(samples, 0.5),
        "p95_ms": _pct(samples, 0.95),
        "p99_ms": _pct(samples, 0.99),
        "n": len(samples),
    }


def bench_kv(orvad: Orvad, gets: int = KV_GETS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for runtime, entrypoint, code in (("python", "handler.py", PY_KV), ("node", "handler.js", NODE_KV)):
        fn = orvad.deploy(f"bench-kv-{runtime}", runtime, code, entrypoint=entrypoint)
        with httpx.Client(base_url=orvad.url, timeout=120) as c:
            r = c.post(f"/fn/{fn['id']}/", content=json.dumps({"n": gets}))
            r.raise_for_status()
            body = r.json()
        out[runtime] = {"get": _figures(body["gets"]), "put": _figures(body["puts"])}
    return out
