"""Jobs running on real workers (issue 23): a job runs as an execution (trigger job, requestContext.jobId, the
x-orva-trigger/x-orva-job-id headers); 5xx and raising handlers are retried with back-off then dead, a 4xx is
the handler's answer (succeeded); X-Orva-Invocation-Type: Event gives 202 with a job and respects the
function's auth_mode; kill -9 of orvad mid-attempt runs the job again after the restart, exactly once more
and never concurrently; 1,000 queued jobs drain at the pool's throughput; a function cannot see or enqueue
another function's jobs through the SDK."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from orvad.clock import iso, parse_iso
from tests import databases
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for
from tests.invoke.test_invoke_limits import SIGNING, _sign

pytestmark = pytest.mark.sandbox

FAST = {"ORVA_JOBS_BACKOFF_BASE_S": "0.05", "ORVA_JOBS_BACKOFF_MAX_S": "0.2"}

PY = """
import json, time
from orva import kv, jobs, OrvaError
from orva import _channel


def handler(event, context):
    body = json.loads(event["body"] or "null")
    mode = body.get("mode") if isinstance(body, dict) else None
    rc = event["requestContext"]
    if mode == "fail":
        return {"statusCode": 503, "body": "not now"}
    if mode == "raise":
        raise RuntimeError("boom")
    if mode == "4xx":
        return {"statusCode": 404, "body": "no such thing"}
    if mode == "slow":
        n = kv.incr("starts")
        kv.put(f"start-{n}", time.time())
        time.sleep(body["s"])
        kv.put(f"end-{n}", time.time())
        return {"ok": True}
    if mode == "sdk":
        try:
            return {"result": _channel.call(body["op"], body["args"])}
        except OrvaError as e:
            return {"error": e.code, "message": e.message}
    if mode == "enqueue":
        job_id = jobs.enqueue(body.get("target"), {"from": "sdk"}, max_attempts=2)
        return {"job_id": job_id, "got": jobs.get(job_id)["status"], "listed": [j["id"] for j in jobs.list()["jobs"]]}
    seen = {
        "jobId": rc.get("jobId"),
        "trigger": rc.get("trigger"),
        "headers": {k: v for k, v in event["headers"].items() if k.startswith("x-orva") or k == "x-custom"},
        "method": event["method"],
        "path": event["path"],
        "query": event["query"],
        "body": body,
    }
    if rc.get("jobId"):
        kv.put("seen:" + rc["jobId"], seen)
    return seen
"""


def _deploy(c: httpx.Client, name: str, code: str = PY, **extra: Any) -> dict[str, Any]:
    fn = create_function(c, name, "python", entrypoint="handler.py", **extra)
    dep = wait_deployed(c, deploy_inline(c, name, code)["id"])
    assert dep["status"] == "succeeded", dep
    return fn


def _job(c: httpx.Client, job_id: str) -> dict[str, Any]:
    r = c.get(f"/api/v1/jobs/{job_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _until_status(
    c: httpx.Client, job_id: str, statuses: tuple[str, ...], deadline_s: float = 60
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(_job(c, job_id))
        return seen["status"] in statuses

    wait_for(done, deadline_s, f"job {job_id} to be {statuses}", interval_s=0.05)
    return seen


def _enqueue(c: httpx.Client, fn: str, payload: Any, **extra: Any) -> dict[str, Any]:
    r = c.post("/api/v1/jobs", json={"function": fn, "payload": payload, **extra})
    assert r.status_code == 202, r.text
    return dict(r.json())


def _execution(c: httpx.Client, execution_id: str) -> dict[str, Any]:
    """An execution's record: its row is written by the batched writer a moment after the attempt ends."""
    found: dict[str, Any] = {}

    def written() -> bool:
        r = c.get(f"/api/v1/executions/{execution_id}")
        found.update(r.json() if r.status_code == 200 else {})
        return r.status_code == 200

    wait_for(written, 10, f"execution {execution_id} to be written")
    return found


def _kv(c: httpx.Client, fn: str, key: str) -> Any:
    r = c.get(f"/api/v1/functions/{fn}/kv/{key}")
    return r.json()["value"] if r.status_code == 200 else None


def test_a_scheduled_job_starts_when_it_comes_due(make_orvad: Callable[..., Orvad]) -> None:
    """The runner sleeps until the next job's run_at; one that came due while the runner looked (its clock read
    a moment before) was taken for an expired lease and waited for the lease loop's next turn (seconds: about
    one job in four here). Each of 20 jobs, one at a time, starts within a second of its run_at."""
    server = make_orvad()
    with server.admin() as c:
        _deploy(c, "due")
        late = []
        for i in range(20):
            job = _enqueue(c, "due", {"i": i}, scheduled_at=iso(datetime.now(UTC) + timedelta(seconds=0.2)))
            done = _until_status(c, job["id"], ("succeeded",))
            (attempt,) = done["attempts_list"]
            late.append((parse_iso(attempt["started_at"]) - parse_iso(done["run_at"])).total_seconds())
    assert max(late) < 1.0, sorted(late)


def test_jobs_run_retry_and_die(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env=FAST)
    with server.admin() as c:
        _deploy(c, "worker")
        job = _enqueue(c, "worker", {"hello": "jobs"})
        done = _until_status(c, job["id"], ("succeeded", "dead"))
        assert done["status"] == "succeeded" and done["attempts"] == 1, done
        [attempt] = done["attempts_list"]
        assert attempt["outcome"] == "succeeded" and attempt["status_code"] == 200
        execution = _execution(c, attempt["execution_id"])
        assert execution["trigger"] == "job", execution
        reply = c.post("/fn/worker", json={"plain": True}).json()
        assert reply["jobId"] is None and reply["trigger"] == "http"
        # what the handler saw: the job's id in requestContext and headers, the payload as the JSON body
        assert done["finished_at"] is not None
        # 5xx: retried with back-off, then dead (the dead-letter list)
        failing = _enqueue(c, "worker", {"mode": "fail"}, max_attempts=3)
        dead = _until_status(c, failing["id"], ("dead",))
        outcomes = [(a["attempt"], a["outcome"], a["status_code"]) for a in dead["attempts_list"]]
        assert outcomes == [(1, "failed", 503), (2, "failed", 503), (3, "failed", 503)], outcomes
        starts = [
            datetime.fromisoformat(a["started_at"].replace("Z", "+00:00")) for a in dead["attempts_list"]
        ]
        ends = [
            datetime.fromisoformat(a["finished_at"].replace("Z", "+00:00")) for a in dead["attempts_list"]
        ]
        # back-off: base 0.05 x 2^(n-1) with jitter x0.5..1 -> at least 25 ms, then 50 ms (stamps are cut to the millisecond)
        assert starts[1] - ends[0] >= timedelta(milliseconds=22) and starts[2] - ends[1] >= timedelta(
            milliseconds=47
        )
        assert dead["last_error"]["code"] == "HANDLER_5XX"
        assert failing["id"] in [j["id"] for j in c.get("/api/v1/jobs?status=dead").json()["jobs"]]
        # a raising handler fails the attempt too (FUNCTION_ERROR), with its execution linked
        raised = _until_status(c, _enqueue(c, "worker", {"mode": "raise"}, max_attempts=1)["id"], ("dead",))
        assert raised["attempts_list"][0]["error"]["code"] == "FUNCTION_ERROR"
        assert raised["attempts_list"][0]["execution_id"]
        # a 4xx is the handler's deliberate answer: succeeded, not retried
        fourxx = _until_status(
            c, _enqueue(c, "worker", {"mode": "4xx"})["id"], ("succeeded", "dead", "failed")
        )
        assert fourxx["status"] == "succeeded" and fourxx["attempts"] == 1
        # retry a dead job: a fresh round, attempt numbers go on
        again = c.post(f"/api/v1/jobs/{failing['id']}/retry")
        assert again.status_code == 200 and again.json()["status"] in ("pending", "running", "failed")
        redead = _until_status(c, failing["id"], ("dead",))
        assert [a["attempt"] for a in redead["attempts_list"]] == [1, 2, 3, 4, 5, 6]
        # a scheduled job waits for its time (no polling delay after it)
        at = datetime.now(UTC) + timedelta(seconds=1.5)
        later = _enqueue(c, "worker", {"n": 1}, scheduled_at=at.isoformat().replace("+00:00", "Z"))
        assert _job(c, later["id"])["status"] == "pending"
        ran = _until_status(c, later["id"], ("succeeded",), 30)
        started = datetime.fromisoformat(ran["attempts_list"][0]["started_at"].replace("Z", "+00:00"))
        assert at - timedelta(milliseconds=5) <= started <= at + timedelta(seconds=3), (at, started)


def test_handler_sees_the_job(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env=FAST)
    with server.admin() as c:
        _deploy(c, "seer")
        job = _enqueue(c, "seer", {"hello": "jobs"})
        done = _until_status(c, job["id"], ("succeeded",))
        execution = _execution(c, done["attempts_list"][0]["execution_id"])
        assert execution["trigger"] == "job"
        seen = _kv(c, "seer", f"seen:{job['id']}")
        assert seen["jobId"] == job["id"] and seen["trigger"] == "job", seen
        assert seen["headers"]["x-orva-trigger"] == "job" and seen["headers"]["x-orva-job-id"] == job["id"]
        assert seen["method"] == "POST" and seen["path"] == "/" and seen["body"] == {"hello": "jobs"}
        # an Event invocation: the request itself (method, path, query, headers; credentials dropped)
        r = c.post(
            "/fn/seer/a/b?x=1",
            json={"x": 1},
            headers={"X-Orva-Invocation-Type": "Event", "X-Custom": "kept"},
        )
        assert r.status_code == 202, r.text
        ev = r.json()
        assert ev["job_id"].startswith("job_") and r.headers["x-orva-job-id"] == ev["job_id"]
        ran = _until_status(c, ev["job_id"], ("succeeded",))
        assert ran["trigger"] == "event" and ran["source"] == "event"
        seen = _kv(c, "seer", f"seen:{ev['job_id']}")
        assert seen["path"] == "/a/b" and seen["query"] == {"x": "1"} and seen["body"] == {"x": 1}, seen
        assert seen["headers"]["x-custom"] == "kept" and seen["headers"]["x-orva-job-id"] == ev["job_id"]
        assert "x-orva-api-key" not in seen["headers"] and "x-orva-invocation-type" not in seen["headers"]
        [(stored,)] = server.sql("SELECT request FROM jobs WHERE id = ?", (ev["job_id"],))
        assert isinstance(stored, str)
        assert server.admin_key not in stored  # the caller's key is never written into the queue


NODE = """
const { jobs, OrvaError } = require("orva");
exports.handler = async (event) => {
  const body = JSON.parse(event.body || "null");
  if (body && body.child) return { child: true, jobId: event.requestContext.jobId };
  try {
    const id = await jobs.enqueue(null, { child: true }, { maxAttempts: 2, idempotencyKey: "n1" });
    const again = await jobs.enqueue("nodejobs", { child: true }, { idempotencyKey: "n1" });
    const got = await jobs.get(id);
    const listed = await jobs.list({ limit: 10 });
    let refused = null;
    try { await jobs.enqueue("someone-else", {}); } catch (e) { refused = e instanceof OrvaError ? e.code : String(e); }
    return { id, same: again === id, max: got.max_attempts, listed: listed.jobs.map((j) => j.id), refused };
  } catch (e) {
    return { error: e.code, message: e.message };
  }
};
"""

PY_ASYNC = """
import json
from orva import jobs


async def handler(event, context):
    body = json.loads(event["body"] or "null")
    if body and body.get("child"):
        return {"child": True}
    job_id = await jobs.aenqueue("pyasync", {"child": True}, delay_seconds=0.2)
    got = await jobs.aget(job_id)
    listed = await jobs.alist(status="pending")
    return {"id": job_id, "status": got["status"], "listed": [j["id"] for j in listed["jobs"]]}
"""


def test_sdk_in_node_and_async_python(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env=FAST)
    with server.admin() as c:
        create_function(c, "nodejobs", "node", entrypoint="handler.js")
        assert wait_deployed(c, deploy_inline(c, "nodejobs", NODE)["id"])["status"] == "succeeded"
        r = c.post("/fn/nodejobs", json={})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out.get("error") is None, out
        assert out["same"] is True and out["max"] == 2 and out["id"] in out["listed"]
        assert out["refused"] == "FORBIDDEN"
        assert _until_status(c, out["id"], ("succeeded",))["source"] == "sdk"
        _deploy(c, "pyasync", PY_ASYNC)
        out = c.post("/fn/pyasync", json={}).json()
        assert out["status"] == "pending" and out["id"] in out["listed"], out
        assert _until_status(c, out["id"], ("succeeded",))["status"] == "succeeded"


def test_event_invocation_respects_auth_mode(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env=FAST)
    with server.admin() as c:
        _deploy(c, "open")
        _deploy(c, "keyed", auth_mode="api_key")
        _deploy(c, "signedfn", auth_mode="signed")
        invoker = c.post("/api/v1/keys", json={"name": "inv", "permissions": ["invoke"]}).json()["key"]
        # open: 202 with the job; the request's method, path, query, headers and body are the job's event
        r = httpx.post(
            f"{server.url}/fn/open/sub/path?q=1",
            content=b'{"a": 2}',
            headers={
                "X-Orva-Invocation-Type": "Event",
                "Content-Type": "application/json",
                "X-Custom": "yes",
            },
        )
        assert r.status_code == 202, r.text
        job = _until_status(c, r.json()["job_id"], ("succeeded",))
        assert job["trigger"] == "event"
        # unknown invocation types are refused
        bad = httpx.post(f"{server.url}/fn/open", headers={"X-Orva-Invocation-Type": "Later"})
        assert bad.status_code == 400 and bad.json()["error"]["hint"]
        # api_key: no key -> 401 and no job; a key with invoke -> 202
        before = c.get("/api/v1/jobs?function_id=keyed").json()["counts"]
        anon = httpx.post(f"{server.url}/fn/keyed", json={}, headers={"X-Orva-Invocation-Type": "Event"})
        assert anon.status_code == 401 and anon.json()["error"]["code"] == "UNAUTHORIZED", anon.text
        signed = httpx.post(f"{server.url}/fn/signedfn", json={}, headers={"X-Orva-Invocation-Type": "Event"})
        assert signed.status_code == 401, signed.text
        assert c.get("/api/v1/jobs?function_id=keyed").json()["counts"] == before
        assert sum(c.get("/api/v1/jobs?function_id=signedfn").json()["counts"].values()) == 0
        # signed: a valid signature over this request (version 2: method and path) -> 202; the signature is
        # checked before the job exists, and a replay of it is refused
        c.post(
            "/api/v1/functions/signedfn/secrets", json={"key": "ORVA_SIGNING_SECRET", "value": SIGNING}
        ).raise_for_status()
        body = b'{"signed": true}'
        fn_id = c.get("/api/v1/functions/signedfn").json()["id"]
        headers = {
            **_sign(body, target="/fn/signedfn"),
            "X-Orva-Invocation-Type": "Event",
            "Content-Type": "application/json",
        }
        good = httpx.post(f"{server.url}/fn/signedfn", content=body, headers=headers)
        assert good.status_code == 202, good.text
        assert _until_status(c, good.json()["job_id"], ("succeeded",))["function_id"] == fn_id
        replayed = httpx.post(f"{server.url}/fn/signedfn", content=body, headers=headers)
        assert replayed.status_code == 401, replayed.text
        forged = httpx.post(f"{server.url}/fn/signedfn", content=b'{"signed": false}', headers=headers)
        assert forged.status_code == 401, forged.text
        assert sum(c.get("/api/v1/jobs?function_id=signedfn").json()["counts"].values()) == 1
        ok = httpx.post(
            f"{server.url}/fn/keyed",
            json={},
            headers={"X-Orva-Invocation-Type": "event", "X-Orva-API-Key": invoker},
        )
        assert ok.status_code == 202, ok.text
        assert _until_status(c, ok.json()["job_id"], ("succeeded",))["status"] == "succeeded"
        # an idempotency key on an Event call: one job, 200 the second time
        h = {"X-Orva-Invocation-Type": "Event", "X-Orva-Idempotency-Key": "evt-1"}
        first = httpx.post(f"{server.url}/fn/open", json={}, headers=h)
        second = httpx.post(f"{server.url}/fn/open", json={}, headers=h)
        assert (first.status_code, second.status_code) == (202, 200)
        assert first.json()["job_id"] == second.json()["job_id"]


def test_kill_9_mid_attempt_runs_again_once(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={**FAST, "ORVA_JOBS_LEASE_S": "3"})
    with server.admin() as c:
        _deploy(c, "durable")
        job = _enqueue(c, "durable", {"mode": "slow", "s": 4}, max_attempts=3)
        wait_for(lambda: _kv(c, "durable", "starts") == 1, 60, "the first attempt to start")
        assert _job(c, job["id"])["status"] == "running"
    server.stop(signal.SIGKILL)
    restarted = time.time()
    server.start()
    with server.admin() as c:
        done = _until_status(c, job["id"], ("succeeded", "dead"), 90)
        assert done["status"] == "succeeded", done
        outcomes = [(a["attempt"], a["outcome"]) for a in done["attempts_list"]]
        assert outcomes == [(1, "lost"), (2, "succeeded")], outcomes
        assert done["attempts_list"][0]["error"]["code"] == "ATTEMPT_LOST"
        # the handler's own record: started twice, the cut attempt never finished (its worker died with
        # orvad: no orphan went on beside the second attempt), the second ran to its end
        assert _kv(c, "durable", "starts") == 2
        assert _kv(c, "durable", "end-1") is None and _kv(c, "durable", "end-2") is not None
        assert _kv(c, "durable", "start-2") >= restarted
        assert _job(c, job["id"])["tries"] == 2


def test_clean_stop_mid_attempt_is_not_counted(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env=FAST)
    with server.admin() as c:
        _deploy(c, "patient")
        job = _enqueue(c, "patient", {"mode": "slow", "s": 4}, max_attempts=1)
        wait_for(lambda: _kv(c, "patient", "starts") == 1, 60, "the first attempt to start")
    assert server.stop(signal.SIGTERM) == 0
    server.start()
    with server.admin() as c:
        done = _until_status(c, job["id"], ("succeeded", "dead"), 90)
        # one attempt allowed, yet it succeeded: the attempt the stop cut was not counted
        assert done["status"] == "succeeded" and done["attempts"] == 1 and done["tries"] == 2, done
        assert [(a["outcome"], (a["error"] or {}).get("code")) for a in done["attempts_list"]] == [
            ("lost", "ORVAD_STOPPED"),
            ("succeeded", None),
        ]
        assert _kv(c, "patient", "starts") == 2 and _kv(c, "patient", "end-2") is not None


def test_thousand_jobs_drain(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env=FAST)
    n = 1000
    # measured here: 700-750 jobs/s against 750-1,000 calls/s from 16 HTTP clients in this process (the runner
    # writes attempt ends, starts and its next claim in one write; bench/jobs.py compares with wrk's load of the
    # same pool). On PostgreSQL each of the runner's writes is a few round trips to a server on the same 2 cores:
    # 457-512 jobs/s against 617-694 calls/s on a quiet machine, hence its lower floor. A figure taken while the
    # rest of the suite runs beside it can be one bad moment (CI once drained at 0.385 of direct), so a round is
    # measured again, up to three times, before the floor fails
    floor = 0.4 if databases.driver() == databases.SQLITE else 0.3
    with server.admin() as c:
        _deploy(c, "quick", max_concurrency=0)
        rounds = []
        for done in range(1, 4):
            drain_s, direct_s = _drain_round(server, c, n, done * n)
            rounds.append((round(drain_s, 3), round(direct_s, 3)))
            if n / drain_s >= floor * n / direct_s:
                break
        else:
            raise AssertionError(f"jobs drained below {floor} of direct calls in every round: {rounds}")


def _drain_round(server: Orvad, c: httpx.Client, n: int, succeeded: int) -> tuple[float, float]:
    """One measured round: n direct calls, 16 at a time, then n jobs due at one moment; (drain_s, direct_s)."""
    shared = server.client(limits=httpx.Limits(max_connections=32))  # one client: building one costs ~50 ms

    def call(_: int) -> int:
        return shared.post("/fn/quick", json={"n": 1}).status_code

    call(0)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(call, range(n))) == {200}
    direct_s = time.perf_counter() - t0
    shared.close()
    at = datetime.now(UTC) + timedelta(seconds=10)
    stamp = at.isoformat().replace("+00:00", "Z")

    def enqueue(i: int) -> str:
        r = c.post("/api/v1/jobs", json={"function": "quick", "payload": {"i": i}, "scheduled_at": stamp})
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(enqueue, range(n)))
    assert datetime.now(UTC) < at, "enqueueing took longer than the head start"
    wait_for(
        lambda: c.get("/api/v1/jobs?function_id=quick&limit=1").json()["counts"]["succeeded"] == succeeded,
        120,
        "the jobs to drain",
        interval_s=0.2,
    )
    this_round = [j for j in _all_jobs(c, "quick") if j["id"] in ids]
    assert len(this_round) == n and all(j["attempts"] == 1 for j in this_round)
    last = max(datetime.fromisoformat(j["finished_at"].replace("Z", "+00:00")) for j in this_round)
    drain_s = (last - at).total_seconds()
    print(
        json.dumps(
            {
                "jobs": n,
                "drain_s": round(drain_s, 3),
                "jobs_per_s": round(n / drain_s, 1),
                "direct_http_s": round(direct_s, 3),
                "direct_per_s": round(n / direct_s, 1),
            }
        )
    )
    return drain_s, direct_s


def _all_jobs(c: httpx.Client, fn: str) -> Any:
    params: dict[str, Any] = {"function_id": fn, "limit": 500}
    while True:
        page = c.get("/api/v1/jobs", params=params).json()
        yield from page["jobs"]
        if not page["next_cursor"]:
            return
        params["cursor"] = page["next_cursor"]


def test_sdk_jobs_own_only(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env=FAST)
    with server.admin() as c:
        _deploy(c, "alice")
        _deploy(c, "bob")
        bobs = _enqueue(c, "bob", {"n": 1}, scheduled_at="2035-01-01T00:00:00Z")

        def sdk(fn: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
            r = c.post(f"/fn/{fn}", json={"mode": "sdk", "op": op, "args": args})
            assert r.status_code == 200, r.text
            return dict(r.json())

        # enqueue for itself works (by name, or no function at all) and runs
        r = c.post("/fn/alice", json={"mode": "enqueue"})
        own = r.json()
        assert own["job_id"].startswith("job_") and own["job_id"] in own["listed"], own
        ran = _until_status(c, own["job_id"], ("succeeded",))
        assert ran["source"] == "sdk" and ran["trace_id"] == r.headers["x-trace-id"]
        # the job's execution joins the trace of the execution that enqueued it
        execution = _execution(c, ran["attempts_list"][0]["execution_id"])
        assert execution["trace_id"] == r.headers["x-trace-id"] and execution["trigger"] == "job"
        # another function: refused (not in may_invoke), whether it exists or not
        assert sdk("alice", "jobs.enqueue", {"function": "bob", "payload": 1})["error"] == "FORBIDDEN"
        assert sdk("alice", "jobs.enqueue", {"function": "nobody", "payload": 1})["error"] == "FORBIDDEN"
        assert (
            sdk("alice", "jobs.enqueue", {"function": bobs["function_id"], "payload": 1})["error"]
            == "FORBIDDEN"
        )
        # nor can it read bob's jobs: not found, and not listed
        assert sdk("alice", "jobs.get", {"id": bobs["id"]})["error"] == "NOT_FOUND"
        listed = sdk("alice", "jobs.list", {})["result"]["jobs"]
        assert bobs["id"] not in [j["id"] for j in listed] and all(
            j["function_name"] == "alice" for j in listed
        )
        # smuggled fields are refused, not obeyed
        assert sdk("alice", "jobs.list", {"function_id": bobs["function_id"]})["error"] == "VALIDATION"
        assert sdk("alice", "jobs.enqueue", {"function_id": bobs["function_id"]})["error"] == "VALIDATION"
        assert sdk("alice", "jobs.enqueue", {"max_attempts": 1000})["error"] == "VALIDATION"
        # with bob in alice's may_invoke, alice may enqueue for bob
        c.put("/api/v1/functions/alice", json={"may_invoke": ["bob"]}).raise_for_status()
        made = sdk("alice", "jobs.enqueue", {"function": "bob", "payload": {"from": "alice"}})["result"]
        assert made["function_name"] == "bob"
        assert _until_status(c, made["id"], ("succeeded",))["status"] == "succeeded"
