"""Per-function invoke auth and limits: signed requests, rate limits, max_concurrency, kill,
and secrets reaching workers without a cold start."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

import httpx

from tests.conftest import Orvad, wait_for
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed

SIGNING = "whsec-test-123456"


def _sign(body: bytes, ts: int | None = None, secret: str = SIGNING) -> dict[str, str]:
    stamp = str(ts if ts is not None else int(time.time()))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Orva-Timestamp": stamp, "X-Orva-Signature": f"sha256={digest}"}


def test_signed_requests(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "signed-fn", auth_mode="signed")
        wait_deployed(c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return e['body']\n")["id"])
        url = f"/fn/{fn['id']}"
        no_secret = c.post(url, content=b"x", headers=_sign(b"x"))
        assert no_secret.status_code == 401 and "ORVA_SIGNING_SECRET" in no_secret.text
        assert c.post(f"/api/v1/functions/{fn['id']}/secrets",
                      json={"key": "ORVA_SIGNING_SECRET", "value": SIGNING}).status_code == 200
    with orvad.client() as c:
        body = b'{"event": "paid"}'
        good = _sign(body)
        assert c.post(url, content=body, headers=good).text == body.decode()
        replay = c.post(url, content=body, headers=good)
        assert replay.status_code == 401 and "replay" in replay.json()["error"]["message"]
        assert c.post(url, content=body, headers=_sign(body, int(time.time()) - 400)).status_code == 401
        assert c.post(url, content=b"tampered", headers=_sign(body)).status_code == 401
        assert c.post(url, content=body, headers=_sign(body, secret="wrong")).status_code == 401
        assert c.post(url, content=body).status_code == 401
        fresh = _sign(body, int(good["X-Orva-Timestamp"]) + 1)  # same body, new timestamp: a new signature
        assert c.post(url, content=body, headers=fresh).status_code == 200


def test_rate_limit_per_client(make_orvad) -> None:  # type: ignore[no-untyped-def]
    server = make_orvad(env={"ORVA_TRUSTED_PROXIES": "127.0.0.1"})
    with server.admin() as c:
        fn = create_function(c, "limited-fn", rate_limit_per_min=3)
        wait_deployed(c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return 'ok'\n")["id"])
    with server.client() as c:
        url = f"/fn/{fn['id']}"
        codes = [c.get(url, headers={"X-Forwarded-For": "203.0.113.7"}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get(url, headers={"X-Forwarded-For": "203.0.113.7"})
        assert r.json()["error"]["code"] == "RATE_LIMITED" and int(r.headers["retry-after"]) >= 1
        assert c.get(url, headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 200  # another client


def test_max_concurrency_reject_and_queue(orvad: Orvad) -> None:
    code = "import time\n\ndef handler(e, c):\n    time.sleep(0.8)\n    return 'done'\n"
    with orvad.admin() as c:
        fn = create_function(c, "busy-fn", max_concurrency=1, concurrency_policy="reject", timeout_ms=5000)
        c.put("/api/v1/pool/config", json={"function_id": fn["id"], "max_warm": 4, "min_warm": 2})
        wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
    results: list[httpx.Response] = []

    def call() -> None:
        with httpx.Client(timeout=30) as hc:
            results.append(hc.get(f"{orvad.url}/fn/{fn['id']}"))

    first = threading.Thread(target=call)
    first.start()
    with orvad.admin() as c:
        wait_for(lambda: any(r["function_id"] == fn["id"] and r["inflight"] == 1
                             for r in c.get("/api/v1/system/metrics.json").json()["pools"]), 10, "first request running")
        busy = c.get(f"/fn/{fn['id']}")
        assert busy.status_code == 429 and busy.json()["error"]["code"] == "FUNCTION_BUSY" and busy.headers["retry-after"]
        first.join(30)
        c.put(f"/api/v1/functions/{fn['id']}", json={"concurrency_policy": "queue"})
    threads = [threading.Thread(target=call) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [r.status_code for r in results] == [200, 200, 200]


def test_kill_cancels_in_flight_executions(orvad: Orvad) -> None:
    code = "import time\n\ndef handler(e, c):\n    time.sleep(20)\n    return 'never'\n"
    with orvad.admin() as c:
        fn = create_function(c, "killable-fn", timeout_ms=30000)
        wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
    results: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: results.append(httpx.get(f"{orvad.url}/fn/{fn['id']}", timeout=60)))
    thread.start()
    with orvad.admin() as c:
        wait_for(lambda: any(r["function_id"] == fn["id"] and r["inflight"] == 1
                             for r in c.get("/api/v1/system/metrics.json").json()["pools"]), 10, "request running")
        killed = c.post(f"/api/v1/functions/{fn['id']}/kill").json()
        assert killed == {"id": fn["id"], "status": "inactive", "killed": 1}
        thread.join(30)
        assert results[0].status_code == 409 and "killed" in results[0].json()["error"]["message"]
        execution_id = results[0].json()["error"]["details"]["execution_id"]
        wait_for(lambda: c.get(f"/api/v1/executions/{execution_id}").status_code == 200, 5, "execution row")
        assert c.get(f"/api/v1/executions/{execution_id}").json()["status"] == "killed"
        assert c.get(f"/fn/{fn['id']}").status_code == 409


def test_secret_change_reaches_the_next_request_without_a_cold_start(orvad: Orvad) -> None:
    code = "import os\n\ndef handler(e, c):\n    return os.environ.get('TOKEN', '-')\n"
    with orvad.admin() as c:
        fn = create_function(c, "rotating-fn")
        wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
        assert c.get(f"/fn/{fn['id']}").text == "-"
        c.post(f"/api/v1/functions/{fn['id']}/secrets", json={"key": "TOKEN", "value": "one"})
        wait_for(lambda: c.get(f"/fn/{fn['id']}").text == "one", 15, "the secret to reach a worker")
        r = c.get(f"/fn/{fn['id']}")
        assert r.text == "one" and r.headers["x-orva-cold-start"] == "false"
        c.put(f"/api/v1/functions/{fn['id']}", json={"env_vars": {"OTHER": "x"}})
        wait_for(lambda: c.get(f"/fn/{fn['id']}").text == "one", 15, "workers rebuilt with env")
