"""Per-function invoke auth and limits: signed requests, rate limits, max_concurrency, kill,
and secrets reaching workers without a cold start."""

from __future__ import annotations

import hashlib
import hmac
import signal
import threading
import time

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

SIGNING = "whsec-test-123456"


def _sign(
    body: bytes,
    ts: int | None = None,
    secret: str = SIGNING,
    *,
    method: str = "POST",
    target: str = "",
    version: int = 2,
) -> dict[str, str]:
    """The headers of a signed request (docs/API.md): version 2 covers method and path?query."""
    stamp = str(ts if ts is not None else int(time.time()))
    message = f"{stamp}.".encode() if version == 1 else f"{stamp}.{method}.{target}.".encode()
    digest = hmac.new(secret.encode(), message + body, hashlib.sha256).hexdigest()
    return {"X-Orva-Timestamp": stamp, "X-Orva-Signature": f"sha256={digest}"}


def _signed_function(c: httpx.Client, name: str, **fields: object) -> dict:
    fn = create_function(c, name, auth_mode="signed", **fields)
    wait_deployed(
        c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return e['method'] + ' ' + e['body']\n")["id"]
    )
    assert (
        c.post(
            f"/api/v1/functions/{fn['id']}/secrets", json={"key": "ORVA_SIGNING_SECRET", "value": SIGNING}
        ).status_code
        == 200
    )
    return fn


def test_signed_requests(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "signed-fn", auth_mode="signed")
        assert fn["signature_version"] == 2  # new functions sign method and path too
        wait_deployed(c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return e['body']\n")["id"])
        url = f"/fn/{fn['id']}"
        no_secret = c.post(url, content=b"x", headers=_sign(b"x", target=url))
        assert no_secret.status_code == 401 and "ORVA_SIGNING_SECRET" in no_secret.text
        assert (
            c.post(
                f"/api/v1/functions/{fn['id']}/secrets", json={"key": "ORVA_SIGNING_SECRET", "value": SIGNING}
            ).status_code
            == 200
        )
    with orvad.client() as c:
        body = b'{"event": "paid"}'
        good = _sign(body, target=url)
        assert c.post(url, content=body, headers=good).text == body.decode()
        replay = c.post(url, content=body, headers=good)
        assert replay.status_code == 401 and "replay" in replay.json()["error"]["message"]
        assert (
            c.post(url, content=body, headers=_sign(body, int(time.time()) - 400, target=url)).status_code
            == 401
        )
        assert c.post(url, content=b"tampered", headers=_sign(body, target=url)).status_code == 401
        assert c.post(url, content=body, headers=_sign(body, secret="wrong", target=url)).status_code == 401
        assert c.post(url, content=body).status_code == 401
        fresh = _sign(
            body, int(good["X-Orva-Timestamp"]) + 1, target=url
        )  # same body, new timestamp: a new signature
        assert c.post(url, content=body, headers=fresh).status_code == 200
        soon = _sign(body, int(time.time()) + 10, target=url)  # a caller's clock a little ahead
        assert c.post(url, content=body, headers=soon).status_code == 200
        future = c.post(url, content=body, headers=_sign(body, int(time.time()) + 60, target=url))
        assert future.status_code == 401 and "30 s into the future" in future.json()["error"]["message"]


def test_padded_signatures_are_refused_and_cannot_be_replayed(orvad: Orvad) -> None:
    """str.strip() took \\x1c-\\x1f, \\x85 and \\xa0 away, while the replay memory was keyed on
    the raw header: each padding was one more use of the same signature."""
    with orvad.admin() as c:
        fn = _signed_function(c, "padded-sig")
    url = f"/fn/{fn['id']}"
    good = _sign(b"pay", target=url)
    with orvad.client() as c:
        for pad in (b"\x85", b"\xa0", b"\x1c", b"\x1f", b" \xa0"):
            headers = {
                "X-Orva-Timestamp": good["X-Orva-Timestamp"],
                "X-Orva-Signature": good["X-Orva-Signature"].encode() + pad,
            }
            r = c.post(url, content=b"pay", headers=headers)  # type: ignore[arg-type]
            # 401 from orvad, or 400 from a server that refuses the byte in a header itself
            assert r.status_code in (400, 401), (pad, r.status_code, r.text)
        assert c.post(url, content=b"pay", headers=good).status_code == 200  # the clean one: once
        assert c.post(url, content=b"pay", headers=good).status_code == 401
        upper = {**good, "X-Orva-Signature": "sha256=" + good["X-Orva-Signature"][7:].upper()}
        assert c.post(url, content=b"pay", headers=upper).status_code == 401  # only lower-case hex


def test_a_signature_is_bound_to_method_path_and_query(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _signed_function(c, "bound-sig")
    url = f"/fn/{fn['id']}"
    with orvad.client() as c:
        signed = _sign(b"", target=url)
        for method, target in (
            ("PUT", url + "/admin/delete?all=1"),
            ("POST", url + "/admin/delete"),
            ("POST", url + "?all=1"),
            ("PUT", url),
        ):
            r = c.request(method, target, content=b"", headers=signed)
            assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED", (method, target)
        assert c.post(url, content=b"", headers=signed).text == "POST "  # the request it was made for
        target = url + "/admin/delete?all=1"
        assert c.put(target, content=b"x", headers=_sign(b"x", method="PUT", target=target)).text == "PUT x"


def test_malformed_timestamps_are_401_not_500(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _signed_function(c, "stamp-sig")
    url = f"/fn/{fn['id']}"
    with orvad.client() as c:
        for stamp in (b"\xb2", "\u0661\u0662".encode(), b"+1", b"1e9", b"", b"17\x85"):
            headers = {"X-Orva-Timestamp": stamp, "X-Orva-Signature": "sha256=" + "0" * 64}
            r = c.post(url, content=b"", headers=headers)  # type: ignore[arg-type]
            assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED", (stamp, r.text)


def test_signature_version_1_keeps_the_old_form(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _signed_function(c, "v1-sig", signature_version=1)
        for bad in (0, 3, True, "1"):
            r = c.put(f"/api/v1/functions/{fn['id']}", json={"signature_version": bad})
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "signature_version"
    url = f"/fn/{fn['id']}"
    with orvad.client() as c:
        assert c.post(url, content=b"a", headers=_sign(b"a", target=url)).status_code == 401
        assert c.post(url, content=b"a", headers=_sign(b"a", version=1)).text == "POST a"


def test_a_replay_after_a_restart_is_refused(make_orvad) -> None:  # type: ignore[no-untyped-def]
    first = make_orvad()
    with first.admin() as c:
        fn = _signed_function(c, "restart-sig")
    url = f"/fn/{fn['id']}"
    used = _sign(b"once", target=url)
    assert httpx.post(first.url + url, content=b"once", headers=used).status_code == 200
    first.stop()  # a clean stop: the memory is written, the next start trusts it
    second = make_orvad(data_dir=first.data_dir)
    with second.client() as c:
        r = c.post(url, content=b"once", headers=used)
        assert r.status_code == 401 and "replay" in r.json()["error"]["message"], r.text
        signed = _sign(b"pre-crash", target=url)
        assert c.post(url, content=b"pre-crash", headers=signed).status_code == 200
        assert c.post(url, content=b"pre-crash", headers=signed).status_code == 401
    second.stop(signal.SIGKILL)  # a crash: the last batch may be lost, so the next start trusts nothing older
    third = make_orvad(data_dir=first.data_dir)
    with third.client() as c:
        r = c.post(url, content=b"pre-crash", headers=signed)
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED", r.text
        # the start's own second is distrusted too; a request signed after it is accepted
        attempt = iter(range(1000))

        def fresh_request_accepted() -> bool:
            body = f"again-{next(attempt)}".encode()
            return c.post(url, content=body, headers=_sign(body, target=url)).status_code == 200

        wait_for(fresh_request_accepted, 5, "a request signed after the second of the start to be accepted")


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
        wait_for(
            lambda: any(
                r["function_id"] == fn["id"] and r["inflight"] == 1
                for r in c.get("/api/v1/system/metrics.json").json()["pools"]
            ),
            10,
            "first request running",
        )
        busy = c.get(f"/fn/{fn['id']}")
        assert (
            busy.status_code == 429
            and busy.json()["error"]["code"] == "FUNCTION_BUSY"
            and busy.headers["retry-after"]
        )
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
    thread = threading.Thread(
        target=lambda: results.append(httpx.get(f"{orvad.url}/fn/{fn['id']}", timeout=60))
    )
    thread.start()
    with orvad.admin() as c:
        wait_for(
            lambda: any(
                r["function_id"] == fn["id"] and r["inflight"] == 1
                for r in c.get("/api/v1/system/metrics.json").json()["pools"]
            ),
            10,
            "request running",
        )
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
