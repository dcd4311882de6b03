"""Inbound webhooks (issue 24) through HTTP with a real orvad and a real jailed function that records what
it got: each format accepts a correctly signed delivery (the function sees the raw body and the sender's
headers; the execution has trigger webhook and names the webhook), and every attack is refused before the
function runs (no execution recorded): wrong secret, a signature over another body, truncated / padded /
upper-case / re-prefixed signatures, stale and future timestamps, replays (also after a restart), missing
headers, another webhook's secret, a disabled webhook, an unknown id, an oversized body. The secret is in
the create and rotate answers only. Async mode answers 202 and the job runs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orvad.webhooks.inbound_formats import Settings, sign
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

RECORDER = """
import json
from orva import kv


def handler(event, context):
    rc = event["requestContext"]
    seen = {
        "body": event["body"],
        "base64": event.get("isBase64Encoded", False),
        "headers": event["headers"],
        "trigger": rc.get("trigger"),
        "webhookId": rc.get("webhookId"),
        "jobId": rc.get("jobId"),
        "executionId": rc.get("executionId"),
    }
    kv.put("last", seen)
    kv.incr("count")
    return {"statusCode": 200, "headers": {"X-From": "function"}, "body": json.dumps({"got": len(event["body"])})}
"""

NOW = lambda: int(time.time())  # noqa: E731


def _deploy(c: httpx.Client, name: str) -> dict[str, Any]:
    fn = create_function(c, name, "python", entrypoint="handler.py")
    dep = wait_deployed(c, deploy_inline(c, name, RECORDER)["id"])
    assert dep["status"] == "succeeded", dep
    return fn


def _create(c: httpx.Client, fn: str, **body: Any) -> dict[str, Any]:
    r = c.post(f"/api/v1/functions/{fn}/inbound-webhooks", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _count(c: httpx.Client, fn: str) -> int:
    r = c.get(f"/api/v1/functions/{fn}/kv/count")
    return 0 if r.status_code == 404 else int(r.json()["value"])


def _last(c: httpx.Client, fn: str) -> dict[str, Any]:
    return c.get(f"/api/v1/functions/{fn}/kv/last").json()["value"]  # type: ignore[no-any-return]


def _executions(c: httpx.Client, fn: str) -> list[dict[str, Any]]:
    return c.get("/api/v1/executions", params={"function_id": fn, "limit": 500}).json()["executions"]  # type: ignore[no-any-return]


def _post(
    server: Orvad, hook: dict[str, Any], body: bytes, headers: dict[str, str], query: str = ""
) -> httpx.Response:
    return httpx.post(
        f"{server.url}/webhook/{hook['id']}{query}",
        content=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )


@pytest.fixture(scope="module")
def fn(orvad: Orvad) -> Iterator[str]:
    with orvad.admin() as c:
        yield _deploy(c, "inbound-recorder")["name"]


def _written(c: httpx.Client, r: httpx.Response) -> None:
    """The execution that answered ``r`` is written (and, the writer being in order, every one before it)."""
    url = f"/api/v1/executions/{r.headers['x-orva-execution-id']}"
    wait_for(lambda: c.get(url).status_code == 200, 10, "the execution row")


def _settled(c: httpx.Client, fn: str, expected: int) -> None:
    """The batched writer has written every execution so far: exactly ``expected`` of them."""
    wait_for(lambda: len(_executions(c, fn)) >= expected, 10, f"{expected} executions")
    assert len(_executions(c, fn)) == expected


FORMATS: list[tuple[str, dict[str, Any]]] = [
    ("github", {}),
    ("stripe", {}),
    ("slack", {}),
    ("hmac_sha256_hex", {"header": "X-Shopify-Hmac-Hex", "prefix": "sha256="}),
    ("hmac_sha256_base64", {"header": "X-Shopify-Hmac-Sha256"}),
]


@pytest.mark.parametrize(("fmt", "extra"), FORMATS, ids=[f for f, _ in FORMATS])
def test_each_format_accepts_a_signed_delivery(
    orvad: Orvad, fn: str, fmt: str, extra: dict[str, Any]
) -> None:
    with orvad.admin() as c:
        hook = _create(c, fn, name=f"accept-{fmt}", format=fmt, **extra)
        secret = hook["secret"].encode()
        assert hook["url"].endswith(f"/webhook/{hook['id']}") and hook["format"] == fmt
        body = json.dumps({"event": fmt, "n": 1, "text": "héllo"}).encode()
        headers = sign(fmt, body, secret, Settings(extra.get("header"), extra.get("prefix", "")), NOW())
        if fmt == "github":
            headers["X-GitHub-Delivery"] = f"delivery-{time.time_ns()}"
            headers["X-GitHub-Event"] = "push"
        before = _count(c, fn)
        r = _post(orvad, hook, body, headers)
        assert r.status_code == 200, r.text
        assert r.json() == {"got": len(body.decode())} and r.headers["x-from"] == "function"
        assert _count(c, fn) == before + 1
        seen = _last(c, fn)
        assert seen["body"] == body.decode() and not seen["base64"]  # the raw body, byte for byte
        assert seen["trigger"] == "webhook" and seen["webhookId"] == hook["id"]
        assert seen["headers"]["x-orva-webhook-id"] == hook["id"]
        for name, value in headers.items():  # the sender's headers, as sent
            assert seen["headers"][name.lower()] == value
        url = f"/api/v1/executions/{seen['executionId']}"
        wait_for(lambda: c.get(url).status_code == 200, 10, "the execution row")
        execution = c.get(url).json()
        assert execution["trigger"] == "webhook" and execution["status"] == "success"
        wait_for(
            lambda: c.get(f"/api/v1/functions/{fn}/inbound-webhooks/{hook['id']}").json()["deliveries"] == 1,
            10,
            "the delivery counted",
        )
        got = c.get(f"/api/v1/functions/{fn}/inbound-webhooks/{hook['id']}").json()
        assert got["last_status"] == 200 and got["last_execution_id"] == seen["executionId"]


def _hex(secret: bytes, data: bytes) -> str:
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


def _attacks(fmt: str, body: bytes, secret: bytes, other: bytes, now: int) -> dict[str, dict[str, str]]:
    """Deliveries of ``body`` that must each be refused with 401."""
    good = sign(fmt, body, secret, Settings("X-Sig", "sha256=" if fmt == "hmac_sha256_hex" else ""), now)
    if fmt == "github":
        sig = good["X-Hub-Signature-256"]
        return {
            "wrong secret": sign(fmt, body, b"not-the-secret-at-all", Settings(), now),
            "another webhook's secret": sign(fmt, body, other, Settings(), now),
            "other body": sign(fmt, body + b" ", secret, Settings(), now),
            "truncated": {"X-Hub-Signature-256": sig[:-2]},
            "padded": {"X-Hub-Signature-256": sig + "00"},
            "uppercase hex": {"X-Hub-Signature-256": "sha256=" + sig[7:].upper()},
            "wrong prefix": {"X-Hub-Signature-256": "sha1=" + sig[7:]},
            "no prefix": {"X-Hub-Signature-256": sig[7:]},
            "trailing text": {"X-Hub-Signature-256": sig + ",sha256=" + "0" * 64},
            "missing header": {},
            "sha1 header only": {"X-Hub-Signature": "sha1=" + hmac.new(secret, body, "sha1").hexdigest()},
        }
    if fmt == "stripe":
        v1 = good["Stripe-Signature"].split("v1=")[1]
        return {
            "wrong secret": sign(fmt, body, b"not-the-secret-at-all", Settings(), now),
            "another webhook's secret": sign(fmt, body, other, Settings(), now),
            "other body": sign(fmt, body + b"x", secret, Settings(), now),
            "truncated": {"Stripe-Signature": f"t={now},v1={v1[:-1]}"},
            "padded": {"Stripe-Signature": f"t={now},v1={v1}0"},
            "uppercase hex": {"Stripe-Signature": f"t={now},v1={v1.upper()}"},
            "wrong prefix": {"Stripe-Signature": f"t={now},v0={v1}"},
            "other timestamp signed": {"Stripe-Signature": f"t={now - 1},v1={v1}"},
            "stale": sign(fmt, body, secret, Settings(), now - 301),
            "future": sign(fmt, body, secret, Settings(), now + 330),
            "no timestamp": {"Stripe-Signature": f"v1={v1}"},
            "two timestamps": {"Stripe-Signature": f"t={now},t={now},v1={v1}"},
            "missing header": {},
        }
    if fmt == "slack":
        sig, ts = good["X-Slack-Signature"], good["X-Slack-Request-Timestamp"]
        return {
            "wrong secret": sign(fmt, body, b"not-the-secret-at-all", Settings(), now),
            "another webhook's secret": sign(fmt, body, other, Settings(), now),
            "other body": sign(fmt, b"{}", secret, Settings(), now),
            "truncated": {"X-Slack-Signature": sig[:-1], "X-Slack-Request-Timestamp": ts},
            "padded": {"X-Slack-Signature": sig + "a", "X-Slack-Request-Timestamp": ts},
            "uppercase hex": {"X-Slack-Signature": "v0=" + sig[3:].upper(), "X-Slack-Request-Timestamp": ts},
            "wrong prefix": {"X-Slack-Signature": "v1=" + sig[3:], "X-Slack-Request-Timestamp": ts},
            "other timestamp": {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": str(now - 5)},
            "stale": sign(fmt, body, secret, Settings(), now - 301),
            "future": sign(fmt, body, secret, Settings(), now + 330),
            "signed timestamp not digits": {"X-Slack-Signature": sig, "X-Slack-Request-Timestamp": f"{ts}.0"},
            "missing timestamp": {"X-Slack-Signature": sig},
            "missing header": {"X-Slack-Request-Timestamp": ts},
        }
    if fmt == "hmac_sha256_hex":
        sig = _hex(secret, body)
        return {
            "wrong secret": {"X-Sig": "sha256=" + _hex(b"not-the-secret-at-all", body)},
            "another webhook's secret": {"X-Sig": "sha256=" + _hex(other, body)},
            "other body": {"X-Sig": "sha256=" + _hex(secret, body[:-1])},
            "truncated": {"X-Sig": "sha256=" + sig[:63]},
            "padded": {"X-Sig": "sha256=" + sig + "0"},
            "uppercase hex": {"X-Sig": "sha256=" + sig.upper()},
            "wrong prefix": {"X-Sig": "sha1=" + sig},
            "no prefix": {"X-Sig": sig},
            "other header": {"X-Signature": "sha256=" + sig},
            "missing header": {},
        }
    sig64 = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()
    return {
        "wrong secret": {
            "X-Sig": base64.b64encode(hmac.new(b"nope-nope-nope-no", body, "sha256").digest()).decode()
        },
        "another webhook's secret": {
            "X-Sig": base64.b64encode(hmac.new(other, body, "sha256").digest()).decode()
        },
        "other body": {"X-Sig": base64.b64encode(hmac.new(secret, b"x" + body, "sha256").digest()).decode()},
        "truncated": {"X-Sig": sig64[:-1]},
        "unpadded": {"X-Sig": sig64.rstrip("=")},
        "padded": {"X-Sig": sig64 + "="},
        "urlsafe alphabet": {"X-Sig": base64.urlsafe_b64encode(base64.b64decode(sig64)).decode() + "x"},
        "hex instead": {"X-Sig": _hex(secret, body)},
        "missing header": {},
    }


@pytest.mark.parametrize("fmt", [f for f, _ in FORMATS])
def test_attacks_are_refused_before_the_function_runs(orvad: Orvad, fn: str, fmt: str) -> None:
    with orvad.admin() as c:
        extra: dict[str, Any] = {}
        if fmt.startswith("hmac"):
            extra = {"header": "X-Sig", "prefix": "sha256=" if fmt == "hmac_sha256_hex" else ""}
        target = _create(c, fn, name=f"attack-{fmt}", format=fmt, **extra)
        other = _create(c, fn, name=f"attack-other-{fmt}", format=fmt, **extra)
        secret, other_secret = target["secret"].encode(), other["secret"].encode()
        body = json.dumps({"amount": 100, "to": "me"}).encode()
        # a valid delivery first, then wait for its execution: the executions written so far are settled
        good = sign(
            fmt, b'{"warm": 1}', secret, Settings(extra.get("header"), extra.get("prefix", "")), NOW()
        )
        warm = _post(orvad, target, b'{"warm": 1}', good)
        assert warm.status_code == 200
        _written(c, warm)
        executions, count = len(_executions(c, fn)), _count(c, fn)
        attacks = _attacks(fmt, body, secret, other_secret, NOW())
        for what, headers in attacks.items():
            r = _post(orvad, target, body, headers)
            assert r.status_code == 401, (what, r.status_code, r.text)
            error = r.json()["error"]
            assert error["code"] == "WEBHOOK_SIGNATURE_INVALID" and error["hint"], (what, error)
            assert target["secret"] not in r.text and other["secret"] not in r.text
        # a valid delivery after the attacks: its execution is the only new one
        fresh = sign(fmt, body, secret, Settings(extra.get("header"), extra.get("prefix", "")), NOW())
        last = _post(orvad, target, body, fresh)
        assert last.status_code == 200
        _written(c, last)
        assert len(_executions(c, fn)) == executions + 1
        assert _count(c, fn) == count + 1


def test_replays_are_refused_also_after_a_restart(make_orvad: Any) -> None:
    server = make_orvad()
    with server.admin() as c:
        name = _deploy(c, "replayed")["name"]
        hooks = {
            fmt: _create(c, name, name=fmt, format=fmt, header="X-Sig" if fmt.startswith("hmac") else None)
            for fmt, _ in FORMATS
        }
        deliveries = []
        for fmt, hook in hooks.items():
            body = json.dumps({"fmt": fmt}).encode()
            headers = sign(fmt, body, hook["secret"].encode(), Settings("X-Sig"), NOW())
            if fmt == "github":
                headers["X-GitHub-Delivery"] = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
            deliveries.append((fmt, hook, body, headers))
            assert _post(server, hook, body, headers).status_code == 200
        for fmt, hook, body, headers in deliveries:
            r = _post(server, hook, body, headers)
            assert r.status_code == 409 and r.json()["error"]["code"] == "WEBHOOK_REPLAY", (fmt, r.text)
        # GitHub: the same delivery id with another valid signature (a new body) is a replay too
        github = hooks["github"]
        headers = sign("github", b'{"other": 1}', github["secret"].encode(), Settings(), NOW())
        headers["X-GitHub-Delivery"] = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
        assert _post(server, github, b'{"other": 1}', headers).status_code == 409
        _settled(c, name, len(FORMATS))
    assert server.stop() == 0
    server.start()
    with server.admin() as c:
        for fmt, hook, body, headers in deliveries:
            r = _post(server, hook, body, headers)
            assert r.status_code == 409, (fmt, r.text)
        assert len(_executions(c, name)) == len(FORMATS)
        # a fresh delivery still runs
        hook = hooks["stripe"]
        body = b'{"fresh": true}'
        assert (
            _post(
                server, hook, body, sign("stripe", body, hook["secret"].encode(), Settings(), NOW())
            ).status_code
            == 200
        )


def test_secret_is_shown_once_and_never_again(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        supplied = "whsec_" + "s" * 32
        hook = _create(c, fn, name="once", format="stripe", secret=supplied, tolerance_s=120)
        assert hook["secret"] == supplied and hook["tolerance_s"] == 120
        generated = _create(c, fn, name="once-generated", format="github")
        assert len(generated["secret"]) >= 32
        rotated = c.post(f"/api/v1/functions/{fn}/inbound-webhooks/{generated['id']}/rotate")
        assert rotated.status_code == 200 and rotated.json()["secret"] not in (generated["secret"], None)
        new_secret = rotated.json()["secret"]
        secrets = [supplied, generated["secret"], new_secret]
        texts = [
            c.get(f"/api/v1/functions/{fn}/inbound-webhooks").text,
            c.get(f"/api/v1/functions/{fn}/inbound-webhooks/{hook['id']}").text,
            c.put(
                f"/api/v1/functions/{fn}/inbound-webhooks/{hook['id']}", json={"name": "once-renamed"}
            ).text,
            c.get("/api/v1/audit-log", params={"limit": 200}).text,
            c.get(f"/api/v1/functions/{fn}").text,
            c.get(f"/api/v1/functions/{fn}/secrets").text,
        ]
        for text in texts:
            for secret in secrets:
                assert secret not in text
        assert "secret" not in c.get(f"/api/v1/functions/{fn}/inbound-webhooks/{hook['id']}").json()
        # the old secret stopped working at rotation, the new one works
        body = b'{"rotated": 1}'
        old = sign("github", body, generated["secret"].encode(), Settings(), NOW())
        assert _post(orvad, generated, body, old).status_code == 401
        assert (
            _post(
                orvad, generated, body, sign("github", body, new_secret.encode(), Settings(), NOW())
            ).status_code
            == 200
        )
        # a supplied secret through PUT (a sender's own, e.g. Stripe's) takes over
        c.put(
            f"/api/v1/functions/{fn}/inbound-webhooks/{hook['id']}", json={"secret": "whsec_" + "t" * 32}
        ).raise_for_status()
        assert "whsec_" + "t" * 32 not in c.get(f"/api/v1/functions/{fn}/inbound-webhooks").text
        body = b'{"put": 1}'
        assert (
            _post(
                orvad, hook, body, sign("stripe", body, b"whsec_" + b"t" * 32, Settings(), NOW())
            ).status_code
            == 200
        )
    logs = orvad.stdout() + orvad.stderr()
    for secret in [*secrets, "whsec_" + "t" * 32]:
        assert secret not in logs


def test_disabled_unknown_and_wrong_method(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        hook = _create(c, fn, name="disabled", format="github", enabled=False)
        body = b'{"x": 1}'
        headers = sign("github", body, hook["secret"].encode(), Settings(), NOW())
        count = _count(c, fn)
        r = _post(orvad, hook, body, headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "INBOUND_WEBHOOK_DISABLED"
        c.put(
            f"/api/v1/functions/{fn}/inbound-webhooks/{hook['id']}", json={"enabled": True}
        ).raise_for_status()
        assert _post(orvad, hook, body, headers).status_code == 200
        assert _count(c, fn) == count + 1
        unknown = {"id": "iwh_" + "A" * 22}
        r1 = _post(orvad, unknown, body, headers)
        r2 = _post(orvad, {"id": "nothing-like-an-id"}, body, headers)
        for r in (r1, r2):
            assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
            assert "webhook" not in r.json()["error"]["message"].replace("/webhook/", "")
        assert httpx.get(f"{orvad.url}/webhook/{hook['id']}").status_code == 405
        # deleted: 404 like any unknown id
        assert c.delete(f"/api/v1/functions/{fn}/inbound-webhooks/{hook['id']}").json()["deleted"] is True
        headers = sign("github", b'{"y": 2}', hook["secret"].encode(), Settings(), NOW())
        r = _post(orvad, hook, b'{"y": 2}', headers)
        assert r.status_code == 404 and r.json()["error"]["message"] == r1.json()["error"]["message"].replace(
            unknown["id"], hook["id"]
        )
        assert c.get(f"/api/v1/functions/{fn}/inbound-webhooks/{hook['id']}").status_code == 404


def test_oversized_body_is_refused_unread(make_orvad: Any) -> None:
    server = make_orvad(env={"ORVA_MAX_BODY_BYTES": "4096"})
    with server.admin() as c:
        name = _deploy(c, "oversized")["name"]
        hook = _create(c, name, name="big", format="hmac_sha256_hex", header="X-Sig")
        body = b'"' + b"x" * 5000 + b'"'
        headers = sign("hmac_sha256_hex", body, hook["secret"].encode(), Settings("X-Sig"), NOW())
        r = _post(server, hook, body, headers)
        assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while reading
            for _ in range(5):
                yield b"x" * 1000

        r = httpx.post(f"{server.url}/webhook/{hook['id']}", content=chunks(), headers=headers, timeout=30)
        assert r.status_code == 413
        small = b'{"ok": 1}'
        assert (
            _post(
                server,
                hook,
                small,
                sign("hmac_sha256_hex", small, hook["secret"].encode(), Settings("X-Sig"), NOW()),
            ).status_code
            == 200
        )
        _settled(c, name, 1)


def test_async_mode_answers_202_and_the_job_runs(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        hook = _create(c, fn, name="async", format="slack", mode="async")
        body = b"token=x&team_id=T1&text=hello"
        r = _post(orvad, hook, body, sign("slack", body, hook["secret"].encode(), Settings(), NOW()))
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        assert r.headers["x-orva-job-id"] == job_id
        wait_for(
            lambda: c.get(f"/api/v1/jobs/{job_id}").json()["status"] == "succeeded", 30, "the job to run"
        )
        job = c.get(f"/api/v1/jobs/{job_id}").json()
        assert job["trigger"] == "webhook"
        seen = _last(c, fn)
        assert seen["jobId"] == job_id and seen["webhookId"] == hook["id"] and seen["body"] == body.decode()
        assert seen["trigger"] == "webhook" and "x-slack-signature" in seen["headers"]
        # ?async=1 on a sync webhook does the same
        sync = _create(c, fn, name="sync-asked-async", format="github")
        body = b'{"queued": true}'
        r = _post(
            orvad, sync, body, sign("github", body, sync["secret"].encode(), Settings(), NOW()), "?async=1"
        )
        assert r.status_code == 202
        job_id = r.json()["job_id"]
        wait_for(
            lambda: c.get(f"/api/v1/jobs/{job_id}").json()["status"] == "succeeded", 30, "the job to run"
        )
        # a bad signature in async mode: 401, no job
        jobs_before = c.get("/api/v1/jobs", params={"function_id": fn}).json()["counts"]
        r = _post(
            orvad,
            hook,
            body,
            {"X-Slack-Signature": "v0=" + "0" * 64, "X-Slack-Request-Timestamp": str(NOW())},
        )
        assert r.status_code == 401
        assert c.get("/api/v1/jobs", params={"function_id": fn}).json()["counts"] == jobs_before


def test_custom_routes_may_not_take_webhook(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        for path in ("/webhook/x", "/webhook", "/webhook/*"):
            r = c.put("/api/v1/routes", json={"path": path, "function_id": fn})
            assert r.status_code == 400, (path, r.text)
            assert "/webhook/" in r.json()["error"]["details"]["reserved"]


def test_api_validation(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        base = f"/api/v1/functions/{fn}/inbound-webhooks"
        for bad in (
            {"name": "x", "format": "gitlab"},
            {"name": "x", "format": {}},  # found by schemathesis: a dict is no format (was a 500)
            {"name": "x", "format": "stripe", "mode": ["sync"]},
            {"name": "", "format": "github"},
            {"format": "github"},
            {"name": "x", "format": "github", "header": "X-Sig"},
            {"name": "x", "format": "hmac_sha256_hex", "header": "X Sig"},
            {"name": "x", "format": "stripe", "tolerance_s": 5},
            {"name": "x", "format": "stripe", "tolerance_s": 1.5},
            {"name": "x", "format": "stripe", "mode": "later"},
            {"name": "x", "format": "stripe", "secret": "short"},
            {"name": "x", "format": "stripe", "enabled": "yes"},
            {"name": "x", "format": "stripe", "zzz": 1},
        ):
            r = c.post(base, json=bad)
            assert r.status_code == 400, (bad, r.text)
        for field in ("name", "prefix", "secret"):  # a lone surrogate is not text: 400, not a 500
            body = {"name": "x", "format": "hmac_sha256_hex", field: "a" * 16 + "\ud800"}
            r = c.post(base, content=json.dumps(body), headers={"Content-Type": "application/json"})
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == field, r.text
        _create(c, fn, name="dup", format="github")
        r = c.post(base, json={"name": "dup", "format": "github"})
        assert r.status_code == 409
        assert c.get(f"/api/v1/functions/{fn}/inbound-webhooks/wh_nope").status_code == 404
        with orvad.client() as anonymous:
            assert anonymous.get(base).status_code == 401


def test_the_docs_curl_and_openssl_example_runs(orvad: Orvad, fn: str) -> None:
    """docs/WEBHOOKS.md's "Testing with curl and openssl" block, run as written: 200 the first time, 409 the
    second (the same body and signature)."""
    import re
    import subprocess
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "WEBHOOKS.md").read_text()
    section = doc[doc.index("**Testing with curl and openssl**") :]
    script = re.search(r"```\n(.*?)```", section, re.S)
    assert script is not None
    with orvad.admin() as c:
        hook = _create(c, fn, name="docs-example", format="github")
    # the delivery id is fixed here so the second run is the same delivery
    text = script.group(1).replace("test-$(date +%s%N)", "docs-example-1")
    env = {"SECRET": hook["secret"], "URL": hook["url"], "PATH": "/usr/bin:/bin"}
    codes = []
    for _ in range(2):
        done = subprocess.run(
            ["bash", "-euc", text.replace("curl -s ", "curl -s -o /dev/null -w '%{http_code}' ")],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        codes.append(done.stdout.strip())
    assert codes == ["200", "409"]


def test_deliveries_are_activity_rows_and_need_no_key(orvad: Orvad) -> None:
    """A verified delivery is one activity row (source webhook, actor the webhook, target the function);
    refused ones are none. A function whose auth_mode is api_key runs from its webhook without a key: the
    signature is the delivery's credential."""
    with orvad.admin() as c:
        fn = create_function(c, "inbound-keyed", "python", entrypoint="handler.py", auth_mode="api_key")
        dep = wait_deployed(c, deploy_inline(c, fn["name"], RECORDER)["id"])
        assert dep["status"] == "succeeded", dep
        assert httpx.post(f"{orvad.url}/fn/{fn['name']}", content=b"{}").status_code == 401  # /fn wants a key
        hook = _create(c, fn["name"], name="keyed", format="hmac_sha256_hex")
        for _ in range(3):
            assert _post(orvad, hook, b"{}", {"X-Signature": "0" * 64}).status_code == 401
        body = b'{"keyed": 1}'
        r = _post(
            orvad, hook, body, sign("hmac_sha256_hex", body, hook["secret"].encode(), Settings(), NOW())
        )
        assert r.status_code == 200, r.text
        _written(c, r)

        def rows() -> list[dict[str, Any]]:
            return c.get("/api/v1/activity", params={"source": "webhook", "actor_id": hook["id"]}).json()[
                "activity"
            ]  # type: ignore[no-any-return]

        wait_for(lambda: len(rows()) >= 1, 10, "the delivery's activity row")
        (row,) = rows()
        assert row["status"] == 200 and row["path"] == f"/webhook/{hook['id']}"
        assert row["target_id"] == fn["id"] and hook["secret"] not in json.dumps(row)
