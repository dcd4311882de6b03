"""Outbound webhooks through HTTP (issue 24; docs/WEBHOOKS.md, "Outbound webhooks"): a real orvad and a receiver on
127.0.0.1 that this test starts. Deliveries are verified the way docs/WEBHOOKS.md tells a receiver to, with the
Python and Node snippets of that page run as written; the secret is shown once and never listed or logged; a
receiver answering 500 then 200 gets the delivery on the third attempt (attempts listed); a receiver that is
down gets it once it is up; a delivery pending (or in flight) at a kill -9 is sent after the restart; rotate;
a failed delivery retried by hand; bad URLs refused with the envelope; event filters and "*"."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Orvad, free_port, wait_for
from tests.webhooks.receiver import Received, Receiver

ROOT = Path(__file__).resolve().parents[2]
FAST = {"ORVA_WEBHOOK_RETRY_BASE_S": "0.05", "ORVA_WEBHOOK_RETRY_MAX_S": "0.2"}


def _snippet(language: str) -> str:
    """The code block of ``language`` in docs/WEBHOOKS.md's "Verifying a delivery"."""
    text = (ROOT / "docs" / "WEBHOOKS.md").read_text()
    section = text[text.index("### Verifying a delivery") :]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block under 'Verifying a delivery'"
    return match.group(1)


def _python_verifiers() -> dict[str, Any]:
    scope: dict[str, Any] = {}
    exec(compile(_snippet("python"), "docs/WEBHOOKS.md", "exec"), scope)
    return scope


def _node_verify(tmp_path: Path, secret: str, got: Received) -> dict[str, bool]:
    (tmp_path / "verify.js").write_text(_snippet("js"))
    (tmp_path / "run.js").write_text(
        "const { verify, verifyOrva } = require('./verify.js');\n"
        "const input = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));\n"
        "const body = Buffer.from(input.body, 'base64');\n"
        "console.log(JSON.stringify({v1: verify(input.secret, input.headers, body),"
        " orva: verifyOrva(input.secret, input.headers, body)}));\n"
    )
    out = subprocess.run(
        ["node", str(tmp_path / "run.js")],
        input=json.dumps(
            {"secret": secret, "headers": got.headers, "body": base64.b64encode(got.body).decode()}
        ),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _create(c: httpx.Client, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
    r = c.post("/api/v1/webhooks", json={"url": url, "events": events, **extra})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _deliveries(c: httpx.Client, wid: str, **params: str) -> list[dict[str, Any]]:
    r = c.get(f"/api/v1/webhooks/{wid}/deliveries", params=params)
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]  # type: ignore[no-any-return]


def _wait_status(c: httpx.Client, wid: str, status: str, deadline_s: float = 30.0) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def done() -> bool:
        found[:] = [d for d in _deliveries(c, wid) if d["status"] == status]
        return bool(found)

    try:
        wait_for(done, deadline_s, f"a {status} delivery of {wid}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; deliveries: {json.dumps(_deliveries(c, wid))[:3000]}") from None
    return found[0]


@pytest.fixture
def receiver() -> Any:
    r = Receiver().start()
    yield r
    r.stop()


def test_ping_is_signed_as_the_docs_say_and_both_snippets_verify_it(
    make_orvad: Callable[..., Orvad], receiver: Receiver, tmp_path: Path
) -> None:
    orvad = make_orvad(env=FAST)
    with orvad.admin() as c:
        hook = _create(c, receiver.url, ["deployment.failed"], description="ops")
        secret = hook["secret"]
        assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
        r = c.post(f"/api/v1/webhooks/{hook['id']}/test")
        assert r.status_code == 202 and r.json()["event_type"] == "ping" and r.json()["status"] == "pending"
        got = receiver.wait("ping")[0]
        delivered = _wait_status(c, hook["id"], "delivered")
        # the secret is shown once: never in the list, one webhook, a delivery, nor orvad's logs
        assert "secret" not in c.get("/api/v1/webhooks").json()["webhooks"][0]
        assert "secret" not in c.get(f"/api/v1/webhooks/{hook['id']}").json()
        assert secret not in json.dumps(_deliveries(c, hook["id"]))
    body = json.loads(got.body)
    assert set(body) == {"id", "type", "created_at", "data"} and body["type"] == "ping"
    assert body["data"]["webhook_id"] == hook["id"]
    h = got.headers
    assert h["content-type"] == "application/json" and h["user-agent"].startswith("Orva-Webhooks/")
    assert h["webhook-id"] == h["x-orva-delivery"] == delivered["id"]
    assert (
        h["webhook-timestamp"] == h["x-orva-timestamp"]
        and abs(int(h["webhook-timestamp"]) - time.time()) < 60
    )
    assert h["x-orva-event"] == "ping"
    # the signatures, computed here from the definition
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + got.body
    assert (
        h["webhook-signature"]
        == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    )
    mac = hmac.new(key, f"{h['x-orva-timestamp']}.".encode() + got.body, hashlib.sha256).hexdigest()
    assert h["x-orva-signature"] == "sha256=" + mac
    # docs/WEBHOOKS.md's Python snippet, as written: accepts the delivery, refuses any change
    py = _python_verifiers()
    assert py["verify"](secret, h, got.body) and py["verify_orva"](secret, h, got.body)
    tampered = got.body.replace(b"ping", b"pong")
    assert not py["verify"](secret, h, tampered) and not py["verify_orva"](secret, h, tampered)
    assert not py["verify"](secret, {**h, "webhook-id": "msg_other"}, got.body)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert not py["verify"](other, h, got.body) and not py["verify_orva"](other, h, got.body)
    stale = str(int(h["webhook-timestamp"]) - 3600)
    assert not py["verify"](secret, {**h, "webhook-timestamp": stale}, got.body)
    # ... and the Node one
    assert _node_verify(tmp_path, secret, got) == {"v1": True, "orva": True}
    assert _node_verify(tmp_path, other, got) == {"v1": False, "orva": False}
    assert _node_verify(tmp_path, secret, Received(got.path, h, tampered)) == {"v1": False, "orva": False}
    # the attempt is listed with its answer
    attempt = delivered["attempts_list"][0]
    assert attempt["status_code"] == 200 and attempt["response"] == "answer 200" and attempt["error"] is None
    assert attempt["duration_ms"] >= 0 and attempt["attempt"] == 1
    assert secret not in orvad.stderr() and secret not in orvad.stdout()


def test_bad_urls_events_and_callers_are_refused_with_the_envelope(orvad: Orvad) -> None:
    with orvad.admin() as c:
        for url in (
            "ftp://example.com/x",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "gopher://127.0.0.1:70/",
            "http://user:secret@127.0.0.1/hook",
            "http://@127.0.0.1/hook",
            "http:///nohost",
            "127.0.0.1:8080/hook",
            "http://127.0.0.1/has space",
            "http://127.0.0.1:99999/",
            "",
            "https://" + "a" * 3000 + ".example",
            "http://\U000fbc3f\u00fd.example/hook",  # no IDNA name (schemathesis': every attempt then failed)
        ):
            r = c.post("/api/v1/webhooks", json={"url": url, "events": ["*"]})
            assert r.status_code == 400, (url, r.text)
            err = r.json()["error"]
            assert err["code"] == "VALIDATION" and err["details"]["field"] == "url" and err["hint"], url
        for events in ([], ["deployment.exploded"], "*", [1]):
            r = c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": events})
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "events", events
        r = c.post(
            "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["*"], "function": "nope"}
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
        r = c.post(
            "/api/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["*"], "secret": "mine"}
        )
        assert r.status_code == 400 and r.json()["error"]["details"]["fields"] == ["secret"]
        assert c.get("/api/v1/webhooks/wh_nope").status_code == 404
        assert c.post("/api/v1/webhooks/deliveries/msg_nope/retry").status_code == 404
        hook = _create(c, "http://127.0.0.1:9/x", ["*"])
        r = c.put(f"/api/v1/webhooks/{hook['id']}", json={"url": "file:///etc/shadow"})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "url"
        key = c.post("/api/v1/keys", json={"name": "writer", "permissions": ["read", "write"]}).json()["key"]
    with orvad.client(key) as w:  # admin only: a write key may not see or send orvad's events
        for method, path in (
            ("GET", "/api/v1/webhooks"),
            ("POST", "/api/v1/webhooks"),
            ("POST", f"/api/v1/webhooks/{hook['id']}/rotate"),
            ("GET", f"/api/v1/webhooks/{hook['id']}/deliveries"),
        ):
            r = w.request(method, path, json={"url": "http://127.0.0.1:9/", "events": ["*"]})
            assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", path
    with orvad.client() as anon:
        assert anon.get("/api/v1/webhooks").status_code == 401
    with orvad.admin() as c:
        assert c.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
        assert c.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404


def test_500_then_200_is_retried_with_back_off_and_every_attempt_is_listed(
    make_orvad: Callable[..., Orvad], receiver: Receiver
) -> None:
    orvad = make_orvad(env=FAST)
    receiver.statuses = [500, 503]
    with orvad.admin() as c:
        hook = _create(c, receiver.url, ["function.created"])
        c.post("/api/v1/functions", json={"name": "retried", "runtime": "python"}).raise_for_status()
        delivered = _wait_status(c, hook["id"], "delivered")
    got = receiver.of_type("function.created")
    assert len(got) == 3 and len({g.headers["webhook-id"] for g in got}) == 1  # one delivery, three attempts
    assert [a["status_code"] for a in delivered["attempts_list"]] == [500, 503, 200]
    assert [a["response"] for a in delivered["attempts_list"]] == ["answer 500", "answer 503", "answer 200"]
    assert delivered["attempts_list"][0]["error"] == "the receiver answered 500"
    assert (
        delivered["attempts"] == 3
        and delivered["last_status_code"] == 200
        and delivered["last_error"] is None
    )
    assert delivered["payload"]["data"]["function"]["name"] == "retried"
    with orvad.client() as anon:
        metrics = anon.get("/metrics", headers={"X-Orva-API-Key": orvad.admin_key}).text
    assert 'orva_webhook_attempts_total{outcome="retry"} 2.0' in metrics
    assert 'orva_webhook_attempts_total{outcome="delivered"} 1.0' in metrics
    assert "orva_webhook_events_dropped_total 0.0" in metrics


def test_a_receiver_that_is_down_gets_the_delivery_once_it_is_up(make_orvad: Callable[..., Orvad]) -> None:
    orvad = make_orvad(env=FAST)
    port = free_port()
    down = Receiver(port=port)
    with orvad.admin() as c:
        hook = _create(c, down.url, ["*"])
        c.post(f"/api/v1/webhooks/{hook['id']}/test").raise_for_status()

        def refused_twice() -> bool:
            ds = _deliveries(c, hook["id"])
            return bool(ds) and ds[0]["status"] == "pending" and ds[0]["attempts"] >= 2

        wait_for(refused_twice, 30, "two refused attempts")
        pending = _deliveries(c, hook["id"])[0]
        assert pending["attempts_list"][0]["status_code"] is None
        assert "Connect" in pending["attempts_list"][0]["error"]
        assert pending["next_attempt_at"] is not None
        down.start()
        try:
            delivered = _wait_status(c, hook["id"], "delivered")
            assert down.of_type("ping")[0].headers["webhook-id"] == delivered["id"]
        finally:
            down.stop()


def test_kill_9_with_a_pending_and_an_in_flight_delivery_sends_both_after_the_restart(
    make_orvad: Callable[..., Orvad], receiver: Receiver
) -> None:
    orvad = make_orvad(env={"ORVA_WEBHOOK_RETRY_BASE_S": "600", "ORVA_WEBHOOK_RETRY_MAX_S": "600"})
    failing = Receiver(default=500).start()
    try:
        with orvad.admin() as c:
            waiting = _create(c, failing.url, ["*"])
            c.post(f"/api/v1/webhooks/{waiting['id']}/test").raise_for_status()
            failing.wait("ping")
            wait_for(
                lambda: _deliveries(c, waiting["id"])[0]["attempts"] == 1, 30, "the first attempt written"
            )
            # a receiver that holds the request: the attempt is in flight when orvad dies
            receiver.hang = threading.Event()
            flying = _create(c, receiver.url, ["*"])
            c.post(f"/api/v1/webhooks/{flying['id']}/test").raise_for_status()
            receiver.wait("ping")
        orvad.stop(signal.SIGKILL)
        failing.default = 200
        receiver.hang.set()
        receiver.hang = None
        # the pending one waits for its back-off (600 s): a retry by hand makes it due now after the restart;
        # the in-flight one is due at once
        orvad.start()
        with orvad.admin() as c:
            sent = _wait_status(c, flying["id"], "delivered")
            first, second = receiver.wait("ping", 2)[:2]
            assert (
                first.headers["webhook-id"] == second.headers["webhook-id"] == sent["id"]
            )  # receivers dedupe
            pending = _deliveries(c, waiting["id"])[0]
            assert pending["status"] == "pending" and pending["attempts"] == 1
            assert c.post(f"/api/v1/webhooks/deliveries/{pending['id']}/retry").status_code == 200
            delivered = _wait_status(c, waiting["id"], "delivered")
            assert [a["status_code"] for a in delivered["attempts_list"]] == [500, 200]
    finally:
        failing.stop()


def test_failed_after_its_window_then_retried_by_hand(
    make_orvad: Callable[..., Orvad], receiver: Receiver
) -> None:
    orvad = make_orvad(env={**FAST, "ORVA_WEBHOOK_RETRY_WINDOW_S": "0.5"})
    receiver.default = 500
    with orvad.admin() as c:
        hook = _create(c, receiver.url, ["function.deleted"])
        c.post("/api/v1/functions", json={"name": "gone", "runtime": "python"}).raise_for_status()
        c.delete("/api/v1/functions/gone").raise_for_status()
        failed = _wait_status(c, hook["id"], "failed")
        assert failed["attempts"] >= 2 and failed["finished_at"] and failed["next_attempt_at"] is None
        assert failed["last_status_code"] == 500
        assert c.get(f"/api/v1/webhooks/{hook['id']}").json()["deliveries"]["failed"] == 1
        assert [d["id"] for d in _deliveries(c, hook["id"], status="failed")] == [failed["id"]]
        assert _deliveries(c, hook["id"], status="delivered") == []
        assert c.get(f"/api/v1/webhooks/{hook['id']}/deliveries?status=lost").status_code == 400
        receiver.default = 200
        r = c.post(f"/api/v1/webhooks/deliveries/{failed['id']}/retry")
        assert r.status_code == 200 and r.json()["status"] == "pending"
        delivered = _wait_status(c, hook["id"], "delivered")
        assert delivered["id"] == failed["id"] and delivered["attempts"] == failed["attempts"] + 1
        assert delivered["attempts_list"][-1]["status_code"] == 200
        assert json.loads(receiver.of_type("function.deleted")[-1].body)["data"]["function"]["name"] == "gone"
        # disabled: nothing is sent, a test or a retry says why
        c.put(f"/api/v1/webhooks/{hook['id']}", json={"enabled": False}).raise_for_status()
        for path in (
            f"/api/v1/webhooks/{hook['id']}/test",
            f"/api/v1/webhooks/deliveries/{failed['id']}/retry",
        ):
            r = c.post(path)
            assert r.status_code == 409 and r.json()["error"]["code"] == "WEBHOOK_DISABLED", path
            assert "enabled" in r.json()["error"]["hint"]


def test_rotate_shows_a_new_secret_once_and_signs_with_it(
    make_orvad: Callable[..., Orvad], receiver: Receiver
) -> None:
    orvad = make_orvad(env=FAST)
    py = _python_verifiers()
    with orvad.admin() as c:
        hook = _create(c, receiver.url, ["*"])
        r = c.post(f"/api/v1/webhooks/{hook['id']}/rotate")
        assert r.status_code == 200
        new = r.json()["secret"]
        assert new.startswith("whsec_") and new != hook["secret"]
        assert "secret" not in c.get(f"/api/v1/webhooks/{hook['id']}").json()
        c.post(f"/api/v1/webhooks/{hook['id']}/test").raise_for_status()
        got = receiver.wait("ping")[0]
    assert py["verify"](new, got.headers, got.body)
    assert not py["verify"](hook["secret"], got.headers, got.body)
    # the new secret survives a restart (sealed under the master key, opened at start)
    orvad.stop()
    orvad.start()
    with orvad.admin() as c:
        assert c.get(f"/api/v1/webhooks/{hook['id']}").json()["secret_usable"] is True
        c.post(f"/api/v1/webhooks/{hook['id']}/test").raise_for_status()
        again = receiver.wait("ping", 2)[1]
    assert py["verify"](new, again.headers, again.body)
    assert new not in orvad.stderr() and hook["secret"] not in orvad.stderr()
    db = orvad.database_bytes()  # orva.db and its WAL, or pg_dump's text (a BYTEA column as hex)
    for plain in (new.encode(), new[6:].encode()):
        assert plain not in db and plain.hex().encode() not in db


def test_event_filters_function_filter_and_star(make_orvad: Callable[..., Orvad]) -> None:
    orvad = make_orvad(env=FAST)
    created_only, star_for_x, deleted_only = (Receiver().start() for _ in range(3))
    try:
        with orvad.admin() as c:
            c.post("/api/v1/functions", json={"name": "fx", "runtime": "python"}).raise_for_status()
            _create(c, created_only.url, ["function.created"])
            star = _create(c, star_for_x.url, ["*"], function="fx")
            assert star["function_name"] == "fx" and star["events"] == ["*"]
            _create(c, deleted_only.url, ["function.deleted", "function.updated"])
            c.post("/api/v1/functions", json={"name": "fy", "runtime": "python"}).raise_for_status()
            c.put("/api/v1/functions/fx", json={"memory_mb": 256}).raise_for_status()
            c.put("/api/v1/functions/fy", json={"description": "why"}).raise_for_status()
            c.delete("/api/v1/functions/fy").raise_for_status()
            c.delete("/api/v1/functions/fx").raise_for_status()
            deleted_only.wait("function.deleted", 2)
            star_for_x.wait("function.deleted")
            created_only.wait("function.created")
            c.post("/api/v1/functions", json={"name": "fz", "runtime": "python"}).raise_for_status()
            created_only.wait("function.created", 2)
        names = lambda r, t: [json.loads(g.body)["data"]["function"]["name"] for g in r.of_type(t)]  # noqa: E731
        assert names(created_only, "function.created") == ["fy", "fz"]
        assert [g.headers["x-orva-event"] for g in created_only.received] == ["function.created"] * 2
        # "*" limited to fx: its update and delete, nothing of fy or fz
        assert sorted(g.headers["x-orva-event"] for g in star_for_x.received) == [
            "function.deleted",
            "function.updated",
        ]
        updated = json.loads(star_for_x.of_type("function.updated")[0].body)["data"]
        assert updated["changed"] == ["memory_mb"] and updated["function"]["name"] == "fx"
        assert sorted(names(deleted_only, "function.deleted")) == ["fx", "fy"]
        assert sorted(names(deleted_only, "function.updated")) == ["fx", "fy"]
    finally:
        for r in (created_only, star_for_x, deleted_only):
            r.stop()


def test_redirects_are_not_followed(make_orvad: Callable[..., Orvad], receiver: Receiver) -> None:
    """A 3xx is an answer that is not 2xx: the attempt failed; the Location is never requested."""
    orvad = make_orvad(env={**FAST, "ORVA_WEBHOOK_RETRY_WINDOW_S": "0.3"})
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    target = Receiver().start()
    seen: list[bytes] = []

    def redirector() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                seen.append(conn.recv(65536))
                conn.sendall(
                    f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target.url}\r\nContent-Length: 0\r\n"
                    "Connection: close\r\n\r\n".encode()
                )

    threading.Thread(target=redirector, daemon=True).start()
    try:
        with orvad.admin() as c:
            hook = _create(c, f"http://127.0.0.1:{sock.getsockname()[1]}/hook", ["*"])
            c.post(f"/api/v1/webhooks/{hook['id']}/test").raise_for_status()
            failed = _wait_status(c, hook["id"], "failed")
        assert {a["status_code"] for a in failed["attempts_list"]} == {307}
        assert seen and target.received == []
    finally:
        sock.close()
        target.stop()
