"""Jobs through the operator API on a real orvad (issue 23): validation errors (envelope + hint), idempotency
(one job per key within its window; 202 then 200), list filters and paging, cancel and retry rules, the
invoke permission, and a job of a deleted function ending dead with its reason."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import Orvad, wait_for


@pytest.fixture
def fn(orvad: Orvad) -> Iterator[str]:
    name = f"jobs-{uuid.uuid4().hex[:8]}"
    with orvad.admin() as c:
        c.post("/api/v1/functions", json={"name": name, "runtime": "python"}).raise_for_status()
    yield name


def _error(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["request_id"] and err.get("hint"), err
    return dict(err)


LATER = "2035-01-01T00:00:00Z"  # scheduled far ahead: these jobs never run during the test


def test_enqueue_get_and_validation(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        r = c.post(
            "/api/v1/jobs", json={"function": fn, "payload": {"a": 1}, "scheduled_at": "2030-01-01T00:00:00Z"}
        )
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["id"].startswith("job_") and job["status"] == "pending" and job["created"] is True
        assert job["function_name"] == fn and job["max_attempts"] == 3 and job["attempts"] == 0
        assert (
            job["run_at"] == "2030-01-01T00:00:00.000Z" and job["trigger"] == "job" and job["source"] == "api"
        )
        got = c.get(f"/api/v1/jobs/{job['id']}").json()
        assert got["id"] == job["id"] and got["attempts_list"] == []
        # validation: every refusal is the envelope with a hint
        _error(c.post("/api/v1/jobs", json={"payload": 1}), 400, "VALIDATION")
        _error(c.post("/api/v1/jobs", json={"function": fn, "max_attempts": 0}), 400, "VALIDATION")
        _error(c.post("/api/v1/jobs", json={"function": fn, "max_attempts": 26}), 400, "VALIDATION")
        _error(c.post("/api/v1/jobs", json={"function": fn, "max_attempts": "3"}), 400, "VALIDATION")
        _error(c.post("/api/v1/jobs", json={"function": fn, "scheduled_at": "tomorrow"}), 400, "VALIDATION")
        _error(c.post("/api/v1/jobs", json={"function": fn, "idempotency_key": ""}), 400, "VALIDATION")
        _error(
            c.post("/api/v1/jobs", json={"function": fn, "idempotency_key": "k", "idempotency_window_s": 0}),
            400,
            "VALIDATION",
        )
        _error(c.post("/api/v1/jobs", json={"function": fn, "bogus": 1}), 400, "VALIDATION")
        _error(
            c.post("/api/v1/jobs", content=b"[1]", headers={"content-type": "application/json"}),
            400,
            "INVALID_JSON",
        )
        _error(c.post("/api/v1/jobs", json={"function": "no-such-fn"}), 404, "NOT_FOUND")
        _error(c.get("/api/v1/jobs/job_nope"), 404, "NOT_FOUND")
        _error(c.get("/api/v1/jobs?status=weird"), 400, "VALIDATION")
        _error(c.get("/api/v1/jobs?limit=0"), 400, "VALIDATION")


def test_idempotency_one_job_per_key(orvad: Orvad, fn: str) -> None:
    body = {"function": fn, "payload": 1, "scheduled_at": LATER, "idempotency_key": "order-1"}
    with orvad.admin() as c:
        first = c.post("/api/v1/jobs", json=body)
        assert first.status_code == 202, first.text
        again = c.post("/api/v1/jobs", json={**body, "payload": 2})
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"], again.text
        assert again.json()["created"] is False
        # concurrent enqueues with one key: one job
        from concurrent.futures import ThreadPoolExecutor

        def post(_: int) -> httpx.Response:
            with orvad.admin() as cc:
                return cc.post("/api/v1/jobs", json={**body, "idempotency_key": "burst"})

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(post, range(32)))
        assert {r.json()["id"] for r in answers}.__len__() == 1
        assert sorted(r.status_code for r in answers).count(202) == 1
        # another function's same key is its own job; a short window lets the key be used again
        short = c.post("/api/v1/jobs", json={**body, "idempotency_key": "short", "idempotency_window_s": 1})
        assert short.status_code == 202
        wait_for(
            lambda: (
                c.post(
                    "/api/v1/jobs", json={**body, "idempotency_key": "short", "idempotency_window_s": 1}
                ).status_code
                == 202
            ),
            10,
            "the idempotency window to end",
        )
        listed = c.get(f"/api/v1/jobs?function_id={fn}&limit=500").json()["jobs"]
        assert sum(1 for j in listed if j["idempotency_key"] == "burst") == 1
        assert sum(1 for j in listed if j["idempotency_key"] == "order-1") == 1


def test_list_filters_paging_cancel_retry(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        ids = [
            c.post("/api/v1/jobs", json={"function": fn, "payload": i, "scheduled_at": LATER}).json()["id"]
            for i in range(5)
        ]
        page = c.get(f"/api/v1/jobs?function_id={fn}&limit=2").json()
        assert [j["id"] for j in page["jobs"]] == ids[::-1][:2] and page["next_cursor"] == ids[3]
        rest = c.get(f"/api/v1/jobs?function_id={fn}&limit=10&cursor={page['next_cursor']}").json()
        assert [j["id"] for j in rest["jobs"]] == ids[::-1][2:] and rest["next_cursor"] is None
        assert page["counts"]["pending"] == 5
        # cancel a pending job; it cannot be cancelled twice; it can be retried (back to pending)
        cancelled = c.delete(f"/api/v1/jobs/{ids[0]}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
        _error(c.delete(f"/api/v1/jobs/{ids[0]}"), 409, "JOB_NOT_CANCELLABLE")
        only = c.get(f"/api/v1/jobs?function_id={fn}&status=cancelled").json()["jobs"]
        assert [j["id"] for j in only] == [ids[0]]
        _error(c.post(f"/api/v1/jobs/{ids[1]}/retry"), 409, "JOB_NOT_RETRYABLE")  # pending
        back = c.post(f"/api/v1/jobs/{ids[0]}/retry")
        assert back.status_code == 200 and back.json()["status"] == "pending", back.text
        # back due now: the function was never deployed, so its attempts fail (NOT_DEPLOYED) ... then cancel
        c.delete(f"/api/v1/jobs/{ids[0]}")
        for job_id in ids[1:]:
            c.delete(f"/api/v1/jobs/{job_id}").raise_for_status()


def test_permissions(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        key = c.post("/api/v1/keys", json={"name": "w", "permissions": ["read", "write"]}).json()["key"]
        job = c.post("/api/v1/jobs", json={"function": fn, "scheduled_at": LATER}).json()
    with orvad.client(headers={"X-Orva-API-Key": key}) as w:
        err = _error(w.post("/api/v1/jobs", json={"function": fn}), 403, "FORBIDDEN")
        assert "invoke" in str(err["hint"])
        assert w.get(f"/api/v1/jobs/{job['id']}").status_code == 200
    with orvad.client() as anon:
        _error(anon.get("/api/v1/jobs"), 401, "UNAUTHORIZED")
    # a signed function's jobs come only from signed requests (X-Orva-Invocation-Type: Event), never from a key
    signed = f"signed-{uuid.uuid4().hex[:6]}"
    with orvad.admin() as c:
        c.post(
            "/api/v1/functions", json={"name": signed, "runtime": "python", "auth_mode": "signed"}
        ).raise_for_status()
        err = _error(c.post("/api/v1/jobs", json={"function": signed}), 403, "FORBIDDEN")
        assert "X-Orva-Invocation-Type: Event" in str(err["hint"])
        assert sum(c.get(f"/api/v1/jobs?function_id={signed}").json()["counts"].values()) == 0


def test_deleted_function_job_ends_dead(orvad: Orvad) -> None:
    name = f"gone-{uuid.uuid4().hex[:8]}"
    with orvad.admin() as c:
        c.post("/api/v1/functions", json={"name": name, "runtime": "python"}).raise_for_status()
        soon = c.post(
            "/api/v1/jobs",
            json={"function": name, "scheduled_at": "2020-01-01T00:00:00Z", "max_attempts": 25},
        )
        later = c.post("/api/v1/jobs", json={"function": name, "scheduled_at": LATER}).json()["id"]
        job_id = soon.json()["id"]
        c.delete(f"/api/v1/functions/{name}").raise_for_status()
        # a waiting job at once, not when it comes due
        job = c.get(f"/api/v1/jobs/{later}").json()
        assert job["status"] == "dead" and job["last_error"]["code"] == "FUNCTION_DELETED", job
        assert job["attempts_list"] == []
        # the due one (its attempts failed NOT_DEPLOYED meanwhile; one may have been running at the delete)
        wait_for(lambda: c.get(f"/api/v1/jobs/{job_id}").json()["status"] == "dead", 30, "the due job to end")
        job = c.get(f"/api/v1/jobs/{job_id}").json()
        assert job["last_error"]["code"] == "FUNCTION_DELETED", job
        assert any(j["id"] == job_id for j in c.get("/api/v1/jobs?status=dead&limit=500").json()["jobs"])


def test_retention_deletes_ended_jobs_but_keeps_dead_letters(make_orvad) -> None:  # type: ignore[no-untyped-def]
    server: Orvad = make_orvad(env={"ORVA_JOBS_RETENTION_S": "1", "ORVA_JOBS_LEASE_S": "0.6"})
    with server.admin() as c:
        c.post("/api/v1/functions", json={"name": "kept", "runtime": "python"}).raise_for_status()
        cancelled = c.post("/api/v1/jobs", json={"function": "kept", "scheduled_at": LATER}).json()["id"]
        c.delete(f"/api/v1/jobs/{cancelled}").raise_for_status()
        # never deployed: its one attempt fails (NOT_DEPLOYED) and it is dead
        dead = c.post("/api/v1/jobs", json={"function": "kept", "max_attempts": 1}).json()["id"]
        wait_for(lambda: c.get(f"/api/v1/jobs/{dead}").json()["status"] == "dead", 10, "the job to die")
        assert c.get(f"/api/v1/jobs/{dead}").json()["last_error"]["code"] == "NOT_DEPLOYED"
        wait_for(lambda: c.get(f"/api/v1/jobs/{cancelled}").status_code == 404, 10, "the cancelled job to go")
        assert c.get(f"/api/v1/jobs/{dead}").json()["status"] == "dead"
