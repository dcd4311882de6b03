"""Go Orva SDK compatibility (issue 23): handlers written exactly as the original's docs show run unchanged,
in Python and Node, through /fn with real workers. kv.put with ttl_seconds/ttlSeconds, kv.get with a
default, kv.list(prefix=) giving key names, kv.delete twice (idempotent), jobs.enqueue of another function
(allowed by may_invoke) giving a string id whose job then succeeds, invoke giving statusCode 200 and a
decoded body, OrvaError with .status for a missing function, and a trace span in the caller's trace."""

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

PY = r"""
import json
import orva
from orva import kv, jobs, invoke, OrvaError


def handler(event, context):
    req = json.loads(event["body"])
    kv.put("user:42", {"name": "Ada"}, ttl_seconds=3600)
    kv.put("page:1", {"n": 1}, ttl_seconds=3600)
    kv.put("page:2", {"n": 2})
    user = kv.get("user:42", default=None)
    missing = kv.get("user:404", default={"anonymous": True})
    pages = kv.list(prefix="page:", limit=50)
    expiry = kv.list(prefix="user:").entries[0]["expires_at"]
    deleted = [kv.delete("page:1"), kv.delete("page:1")]
    job_id = jobs.enqueue(req["other"], {"user": 42}, delay_seconds=0, max_attempts=3)
    with orva.trace.span("x"):
        res = invoke(req["other"], {"x": 7})
    try:
        invoke(req["ghost"], {})
        error = None
    except OrvaError as e:
        error = {"status": e.status, "code": e.code, "is_orva_error": isinstance(e, OrvaError)}
    return {
        "user": user, "missing": missing, "pages": pages, "is_list": isinstance(pages, list),
        "expiry": expiry, "deleted": deleted, "job_id": job_id, "job_id_is_str": isinstance(job_id, str),
        "status_code": res["statusCode"], "x": res["body"]["x"], "body": res["body"], "error": error,
        "after": kv.list(prefix="page:"),
    }
"""

NODE = r"""
const { kv, jobs, trace, invoke, OrvaError } = require('orva');

exports.handler = async (event) => {
  const req = JSON.parse(event.body);
  await kv.put('user:42', { name: 'Ada' }, { ttlSeconds: 3600 });
  await kv.put('page:1', { n: 1 }, { ttlSeconds: 3600 });
  await kv.put('page:2', { n: 2 });
  const user = await kv.get('user:42', null);
  const missing = await kv.get('user:404', { anonymous: true });
  const pages = await kv.list({ prefix: 'page:', limit: 50 });
  const expiry = (await kv.list({ prefix: 'user:' })).entries[0].expires_at;
  const deleted = [await kv.delete('page:1'), await kv.delete('page:1')];
  const jobId = await jobs.enqueue(req.other, { user: 42 }, { delaySeconds: 0, maxAttempts: 3 });
  const res = await trace.span('x', async () => invoke(req.other, { x: 7 }));
  let error = null;
  try {
    await invoke(req.ghost, {});
  } catch (e) {
    error = { status: e.status, code: e.code, is_orva_error: e instanceof OrvaError };
  }
  return {
    user, missing, pages, is_list: Array.isArray(pages), expiry, deleted, job_id: jobId,
    job_id_is_str: typeof jobId === 'string', status_code: res.statusCode, x: res.body.x, body: res.body, error,
    after: [...(await kv.list({ prefix: 'page:' }))],
  };
};
"""

# the other function: answers what it got, and how it was triggered
OTHER = r"""
import json


def handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({**json.loads(event["body"] or "{}"), "trigger": event["requestContext"]["trigger"]}),
    }
"""


@pytest.fixture(scope="module")
def fns(orvad: Orvad) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:6]
    names = {k: f"goc-{k}-{tag}" for k in ("py", "node", "other", "ghost")}
    may = {"may_invoke": [names["other"], names["ghost"]]}  # the ghost is named: NOT_FOUND, not FORBIDDEN
    specs = {
        "other": (OTHER, "python", {}),
        "py": (PY, "python", may),
        "node": (NODE, "node", may),
    }
    with orvad.admin() as c:
        deps = {}
        for key, (code, runtime, extra) in specs.items():
            entry = "handler.js" if runtime == "node" else "handler.py"
            create_function(c, names[key], runtime, entrypoint=entry, **extra)
            deps[key] = deploy_inline(c, names[key], code, filename=entry)
        for key, dep in deps.items():
            assert wait_deployed(c, dep["id"])["status"] == "succeeded", key
    yield names
    with orvad.admin() as c:
        for key in specs:
            c.delete(f"/api/v1/functions/{names[key]}")


def _job_succeeded(c: httpx.Client, job_id: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        r = c.get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        seen.update(r.json())
        assert seen["status"] not in ("dead", "cancelled"), seen
        return bool(seen["status"] == "succeeded")

    wait_for(done, 30, f"job {job_id} to succeed")
    return seen


def _span_named(c: httpx.Client, trace_id: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def there() -> bool:
        r = c.get(f"/api/v1/traces/{trace_id}")
        if r.status_code != 200:
            return False
        spans = [s for s in r.json()["spans"] if s["kind"] == "span" and s["name"] == name]
        found.update(spans[0] if spans else {})
        return bool(found)

    wait_for(there, 15, f"span {name!r} in trace {trace_id}")
    return found


@pytest.mark.parametrize("runtime", ["py", "node"])
def test_a_go_orva_handler_runs_unchanged(orvad: Orvad, fns: dict[str, str], runtime: str) -> None:
    with orvad.admin() as c:
        r = c.post(
            f"/fn/{fns[runtime]}/",
            content=json.dumps({"other": fns["other"], "ghost": fns["ghost"]}),
            timeout=60,
        )
        assert r.status_code == 200, r.text
        out = r.json()
        # kv
        assert out["user"] == {"name": "Ada"} and out["missing"] == {"anonymous": True}
        assert out["pages"] == ["page:1", "page:2"] and out["is_list"] is True
        assert out["expiry"] is not None  # ttl_seconds / ttlSeconds took effect
        assert out["deleted"] == [True, False] and out["after"] == ["page:2"]
        # jobs: a string id, and the job runs the other function
        assert out["job_id_is_str"] is True and out["job_id"], out
        job = _job_succeeded(c, out["job_id"])
        assert job["function_name"] == fns["other"] and job["trigger"] == "job", job
        assert job["max_attempts"] == 3 and job["attempts_list"][0]["status_code"] == 200, job
        # invoke: Go's reply shape
        assert out["status_code"] == 200 and out["x"] == 7
        assert out["body"] == {"x": 7, "trigger": "f2f"}
        assert out["error"] == {"status": 404, "code": "NOT_FOUND", "is_orva_error": True}, out
        # the span is in the calling execution's trace
        trace_id = r.headers["x-trace-id"]
        span = _span_named(c, trace_id, "x")
        assert span["execution_id"] == r.headers["x-orva-execution-id"], span
