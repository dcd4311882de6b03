"""Outbound webhook events from real builds, invocations, jobs and cron runs (issue 24; docs/WEBHOOKS.md): each
type reaches a 127.0.0.1 receiver with a signature that docs/WEBHOOKS.md's check accepts and the data the page
describes; a receiver that hangs does not slow the invocations whose errors it is sent."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad
from tests.webhooks.receiver import Received, Receiver
from tests.webhooks.test_outbound_api import _create, _python_verifiers

pytestmark = pytest.mark.sandbox

FAST = {
    "ORVA_WEBHOOK_RETRY_BASE_S": "0.05",
    "ORVA_WEBHOOK_RETRY_MAX_S": "0.2",
    "ORVA_JOBS_BACKOFF_BASE_S": "0.05",
    "ORVA_JOBS_BACKOFF_MAX_S": "0.1",
}
PY = """
import json


def handler(event, context):
    body = json.loads(event["body"] or "{}")
    mode = body.get("mode")
    if mode == "raise":
        raise RuntimeError("boom")
    if mode == "500":
        return {"statusCode": 500, "body": "broken"}
    if mode == "404":
        return {"statusCode": 404, "body": "none"}
    return {"ok": True}
"""


def _data(got: Received) -> dict[str, Any]:
    return json.loads(got.body)["data"]  # type: ignore[no-any-return]


def test_every_event_type_is_delivered_signed_with_its_data(
    make_orvad: Callable[..., Orvad],
) -> None:
    orvad = make_orvad(env=FAST)
    receiver = Receiver().start()
    verify = _python_verifiers()["verify"]
    try:
        with orvad.admin() as c:
            hook = _create(c, receiver.url, ["*"])
            fn = create_function(c, "evt")
            ok = wait_deployed(c, deploy_inline(c, "evt", PY)["id"])
            assert ok["status"] == "succeeded"
            broken = wait_deployed(
                c, deploy_inline(c, "evt", "def handler(event, context)\n    return 1\n")["id"]
            )
            assert broken["status"] == "failed"
            # executions: a raise and a 5xx answer are errors; a 2xx and a 4xx are not
            assert c.post("/fn/evt", json={"mode": "raise"}).status_code == 500
            assert c.post("/fn/evt", json={"mode": "500"}).status_code == 500
            assert c.post("/fn/evt", json={"mode": "404"}).status_code == 404
            assert c.post("/fn/evt", json={}).status_code == 200
            # jobs: one succeeds, one ends dead after its single attempt
            good = c.post("/api/v1/jobs", json={"function": "evt", "payload": {}}).json()["id"]
            bad = c.post(
                "/api/v1/jobs", json={"function": "evt", "payload": {"mode": "raise"}, "max_attempts": 1}
            ).json()["id"]
            # a cron run that fails: its job (trigger cron) ends dead after its attempts
            base = f"/api/v1/functions/{fn['id']}/cron"
            sched = c.post(
                base, json={"name": "nightly", "expression": "0 3 * * *", "payload": {"mode": "raise"}}
            ).json()
            run = c.post(f"{base}/{sched['id']}/run")
            assert run.status_code == 202, run.text
            c.put("/api/v1/functions/evt", json={"memory_mb": 192}).raise_for_status()
            receiver.wait("cron.failed", deadline_s=60)
            receiver.wait("job.failed", 2, deadline_s=60)
            receiver.wait("job.succeeded")
            receiver.wait("execution.error", 2)
            receiver.wait("function.updated")
            c.delete("/api/v1/functions/evt").raise_for_status()
            receiver.wait("function.deleted")
        for got in receiver.received:
            assert verify(hook["secret"], got.headers, got.body), got.headers["x-orva-event"]
            assert got.headers["webhook-id"].startswith("msg_")
        assert {g.headers["x-orva-event"] for g in receiver.received} >= {
            "function.created",
            "function.updated",
            "function.deleted",
            "deployment.succeeded",
            "deployment.failed",
            "execution.error",
            "job.succeeded",
            "job.failed",
            "cron.failed",
        }
        assert _data(receiver.of_type("function.created")[0])["function"]["id"] == fn["id"]
        succeeded = [_data(g) for g in receiver.of_type("deployment.succeeded")]
        assert [d["deployment"]["id"] for d in succeeded] == [ok["id"]]
        assert (
            succeeded[0]["function"]["name"] == "evt" and succeeded[0]["deployment"]["status"] == "succeeded"
        )
        failed = [_data(g)["deployment"] for g in receiver.of_type("deployment.failed")]
        assert [d["id"] for d in failed] == [broken["id"]] and "SyntaxError" in failed[0]["error_message"]
        errors = [_data(g)["execution"] for g in receiver.of_type("execution.error")]
        # the two /fn errors, and the failed job and cron attempts (executions too); never the 404 or the 200
        by_trigger = {(e["trigger"], e["status"], e["status_code"]) for e in errors}
        assert ("http", "error", 500) in by_trigger and ("http", "success", 500) in by_trigger
        assert all(
            e["status_code"] != 404 and e["status"] != "success" or e["status_code"] >= 500 for e in errors
        )
        jobs = {_data(g)["job"]["id"]: _data(g)["job"] for g in receiver.of_type("job.succeeded")}
        assert jobs[good]["status"] == "succeeded" and jobs[good]["status_code"] == 200
        assert jobs[good]["execution_id"] and jobs[good]["function_name"] == "evt"
        dead = {_data(g)["job"]["id"]: _data(g)["job"] for g in receiver.of_type("job.failed")}
        assert dead[bad]["status"] == "dead" and dead[bad]["last_error"]["code"] == "FUNCTION_ERROR"
        cron = _data(receiver.of_type("cron.failed")[0])
        assert cron["schedule_id"] == sched["id"] and cron["job"]["id"] == run.json()["job_id"]
        assert cron["job"]["trigger"] == "cron" and cron["job"]["id"] in dead
        updated = _data(receiver.of_type("function.updated")[0])
        assert updated["changed"] == [
            "memory_mb"
        ]  # builds moving status/active_deployment_id are not updates
        assert len(receiver.of_type("function.updated")) == 1
    finally:
        receiver.stop()


def test_a_hanging_receiver_does_not_slow_the_invocations_it_hears_about(
    make_orvad: Callable[..., Orvad],
) -> None:
    orvad = make_orvad(env={**FAST, "ORVA_WEBHOOK_TIMEOUT_S": "30"})
    release = threading.Event()
    hanging = Receiver(hang=release).start()
    try:
        with orvad.admin() as c:
            create_function(c, "slowhook")
            assert wait_deployed(c, deploy_inline(c, "slowhook", PY)["id"])["status"] == "succeeded"

            def timed(n: int) -> list[float]:
                out = []
                for _ in range(n):
                    started = time.perf_counter()
                    assert c.post("/fn/slowhook", json={"mode": "500"}).status_code == 500
                    out.append(time.perf_counter() - started)
                return out

            timed(5)  # warm
            before = timed(30)
            _create(c, hanging.url, ["execution.error"])
            during = timed(30)
            # every event was taken by the receiver's 4 slots or waits in the outbox; none held an invocation
            hanging.wait("execution.error", 4)
            assert len(hanging.received) == 4  # ORVA_WEBHOOK_CONCURRENCY: the rest wait their turn
        assert max(during) < 1.0, during
        assert statistics.median(during) < statistics.median(before) + 0.05, (before, during)
        release.set()
        with orvad.admin() as c:
            hanging.wait("execution.error", 30, deadline_s=60)
            ids = {g.headers["webhook-id"] for g in hanging.received}
            assert len(ids) == 30
    finally:
        release.set()
        hanging.stop()


def test_a_dead_receiver_does_not_hold_back_another(make_orvad: Callable[..., Orvad]) -> None:
    """Per-receiver slots: a receiver that hangs keeps its own deliveries waiting, not another's."""
    orvad = make_orvad(env={**FAST, "ORVA_WEBHOOK_TIMEOUT_S": "30"})
    release = threading.Event()
    hanging, healthy = Receiver(hang=release).start(), Receiver().start()
    try:
        with orvad.admin() as c:
            _create(c, hanging.url, ["function.created"])
            _create(c, healthy.url, ["function.created"])
            for i in range(12):
                c.post("/api/v1/functions", json={"name": f"f{i}", "runtime": "python"}).raise_for_status()
            healthy.wait("function.created", 12)
            hanging.wait("function.created", 4)
            assert len(hanging.received) == 4
    finally:
        release.set()
        hanging.stop()
        healthy.stop()
