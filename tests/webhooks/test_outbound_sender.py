"""The outbound sender's correctness under races (docs/WEBHOOKS.md, "Delivery, retries and ordering"): each
attempt is claimed by one conditional UPDATE that only one claimer wins, so hammering
``POST /api/v1/webhooks/deliveries/{id}/retry`` while the sender runs never sends one delivery twice at once nor
overwrites an attempt's record: the receiver gets exactly as many requests as attempts are listed, numbered
1..n, each once."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_outbound_api import FAST, _create, _deliveries

HAMMERED = 400  # requests the receiver gets while retries are hammered
DELIVERIES = 4


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(default=500).start()
    yield r
    r.stop()


def test_retries_hammered_while_the_sender_runs_send_each_attempt_once(
    make_orvad: Callable[..., Orvad], receiver: Receiver
) -> None:
    orvad = make_orvad(env={**FAST, "ORVA_WEBHOOK_RETRY_BASE_S": "0.01", "ORVA_WEBHOOK_RETRY_MAX_S": "0.05"})
    with orvad.admin() as c:
        hook = _create(c, receiver.url, ["function.created"])
        ids = [c.post(f"/api/v1/webhooks/{hook['id']}/test").json()["id"] for _ in range(DELIVERIES)]
        receiver.wait("ping", DELIVERIES)
    stop = threading.Event()
    answers: Counter[int] = Counter()
    lock = threading.Lock()

    def hammer(offset: int) -> None:
        with orvad.admin() as c:
            i = offset
            while not stop.is_set():
                r = c.post(f"/api/v1/webhooks/deliveries/{ids[i % len(ids)]}/retry")
                with lock:
                    answers[r.status_code] += 1
                i += 1

    threads = [threading.Thread(target=hammer, args=(n,), daemon=True) for n in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: len(receiver.of_type("ping")) >= HAMMERED, 120, f"{HAMMERED} requests while hammering")
    stop.set()
    for t in threads:
        t.join(30)
    assert set(answers) == {200} and answers[200] > 50, answers
    receiver.default = 200
    with orvad.admin() as c:

        def settled() -> bool:
            return all(d["status"] == "delivered" for d in _deliveries(c, hook["id"]))

        wait_for(settled, 60, "every delivery delivered")
        got = Counter(r.headers["webhook-id"] for r in receiver.of_type("ping"))
        rows = {d["id"]: d for d in _deliveries(c, hook["id"])}
        metrics = c.get("/metrics").text
    assert set(rows) == set(ids)
    total = 0
    for delivery_id, d in rows.items():
        numbers = [a["attempt"] for a in d["attempts_list"]]
        assert numbers == list(range(1, d["attempts"] + 1)), (delivery_id, numbers, d["attempts"])
        # one request per attempt recorded: no attempt sent twice, none overwritten
        assert got[delivery_id] == d["attempts"], (delivery_id, got[delivery_id], d["attempts"])
        assert [a["status_code"] for a in d["attempts_list"]][-1] == 200
        total += d["attempts"]
    assert total > 2 * DELIVERIES, total  # the sender really ran during the hammering
    # the attempts metric counts the same attempts
    figures = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("orva_webhook_attempts_total{")
    }
    assert sum(figures.values()) == total, (figures, total)


SLOW = """
import json
import time


def handler(event, context):
    body = json.loads(event["body"] or "{}")
    if body.get("mode") == "slow":
        time.sleep(float(body.get("s", 3)))
        if body.get("fail"):
            raise RuntimeError("failed after the cancel")
    return {"ok": True}
"""


@pytest.mark.sandbox
def test_a_job_cancelled_during_its_last_attempt_is_not_announced(
    make_orvad: Callable[..., Orvad], receiver: Receiver
) -> None:
    """DELETE /api/v1/jobs/{id} while its attempt runs: the job stays cancelled and no job.succeeded or
    job.failed is sent for it, whatever the attempt's end (a job that is not cancelled still is)."""
    receiver.default = 200
    orvad = make_orvad(env=FAST)
    with orvad.admin() as c:
        _create(c, receiver.url, ["job.succeeded", "job.failed"])
        create_function(c, "slowjob")
        assert wait_deployed(c, deploy_inline(c, "slowjob", SLOW)["id"])["status"] == "succeeded"
        cancelled = []
        for payload in ({"mode": "slow"}, {"mode": "slow", "fail": True}):
            job = c.post(
                "/api/v1/jobs", json={"function": "slowjob", "payload": payload, "max_attempts": 1}
            ).json()
            url = f"/api/v1/jobs/{job['id']}"
            wait_for(lambda url=url: c.get(url).json()["status"] == "running", 30, "running")  # type: ignore[misc]
            r = c.delete(f"/api/v1/jobs/{job['id']}")
            assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text

            def attempt_ended(job_id: str = job["id"]) -> bool:
                got = c.get(f"/api/v1/jobs/{job_id}").json()
                return bool(got["attempts_list"]) and got["attempts_list"][-1]["outcome"] != "running"

            wait_for(attempt_ended, 30, "the cancelled job's attempt to end")
            ended = c.get(f"/api/v1/jobs/{job['id']}").json()
            assert ended["status"] == "cancelled", ended
            assert ended["attempts_list"][-1]["outcome"] == ("failed" if payload.get("fail") else "succeeded")
            cancelled.append(job["id"])
        # a job that is not cancelled: announced (and, sent after the two above ended, a barrier for them)
        last = c.post("/api/v1/jobs", json={"function": "slowjob", "payload": {}}).json()["id"]

        def announced_last() -> bool:
            return any(
                json.loads(g.body)["data"]["job"]["id"] == last for g in receiver.of_type("job.succeeded")
            )

        wait_for(announced_last, 30, "the job that was not cancelled announced")
    announced = [
        json.loads(g.body)["data"]["job"]["id"]
        for g in receiver.of_type("job.succeeded") + receiver.of_type("job.failed")
    ]
    assert announced == [last], announced
    assert not set(cancelled) & set(announced)
