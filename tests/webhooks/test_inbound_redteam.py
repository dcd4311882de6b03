"""Red-team pass on inbound webhooks (``POST /webhook/{id}``), as an attacker would, through HTTP on real
orvads with a real jailed function that records what it got. Each test is one attack; those that broke are
fixed in orvad/webhooks/inbound*.py (the test failed before), the others stay as regressions:

- signature headers: padding, inner white space, duplicates, case, Unicode digits, several Stripe v1,
  timestamps far in the future, negative, huge;
- a captured signature reused after the webhook's format changed (hex <-> base64, Stripe's MAC as a raw-body
  MAC): refused as a replay;
- a delivery refused before the function ran (not deployed, paused) does not spend its replay key: the
  sender's retry of the same delivery runs once the function can;
- the body: 0 bytes, exactly the cap, the cap + 1 (Content-Length and chunked), a Content-Length that lies,
  gzip (verified over the raw bytes, never inflated);
- the webhook disabled or deleted, or its function deleted, while the body is still arriving;
- CORS preflight and cross-origin posts get no CORS grant;
- unknown, malformed, deleted and disabled ids and wrong signatures: what each answer tells;
- X-Orva-* headers a sender sets never reach the function; thousands of headers.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from orvad.webhooks.inbound_formats import Settings, sign
from tests.helpers import Orvad, wait_for
from tests.webhooks.test_inbound import NOW, _create, _deploy, _executions, _last, _post, _settled

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def fn(orvad: Orvad) -> Iterator[str]:
    with orvad.admin() as c:
        yield _deploy(c, "inbound-redteam")["name"]


def _mac(secret: str, data: bytes) -> bytes:
    return hmac.new(secret.encode(), data, hashlib.sha256).digest()


def _code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def _raw_post(
    server: Orvad, path: str, head: list[tuple[bytes, bytes]], body: bytes, *, close: bool = True
) -> bytes:
    """One HTTP/1.1 request written byte for byte (headers httpx would refuse or normalise); the answer's bytes."""
    port = int(server.url.rsplit(":", 1)[1])
    lines = [f"POST {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{port}".encode()]
    lines += [k + b": " + v for k, v in head]
    lines += [b"Connection: close", b"", b""] if close else [b"", b""]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"\r\n".join(lines) + body)
        if not close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_signature_header_tricks_are_refused(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        gh = _create(c, fn, name="rt-gh", format="github")
        st = _create(c, fn, name="rt-stripe", format="stripe")
        sl = _create(c, fn, name="rt-slack", format="slack")
        before = len(_executions(c, fn))
    body = b'{"attack": 1}'
    good = sign("github", body, gh["secret"].encode(), Settings(), NOW())["X-Hub-Signature-256"]
    hexsig = good[7:]
    refused: list[tuple[str, list[tuple[bytes, bytes]]]] = [
        ("inner space", [(b"X-Hub-Signature-256", b"sha256= " + hexsig.encode())]),
        ("tab inside", [(b"X-Hub-Signature-256", b"sha256=\t" + hexsig.encode())]),
        ("trailing junk", [(b"X-Hub-Signature-256", good.encode() + b",sha256=00")]),
        ("upper-case hex", [(b"X-Hub-Signature-256", b"sha256=" + hexsig.upper().encode())]),
        ("upper-case scheme", [(b"X-Hub-Signature-256", b"SHA256=" + hexsig.encode())]),
        (
            "two headers, good and bad",
            [(b"X-Hub-Signature-256", good.encode()), (b"x-hub-signature-256", b"x")],
        ),
        ("two good headers", [(b"X-Hub-Signature-256", good.encode())] * 2),
        ("two in one", [(b"X-Hub-Signature-256", good.encode() + b", " + good.encode())]),
        (
            "latin-1 digit look-alikes",
            [(b"X-Hub-Signature-256", b"sha256=" + hexsig[:-1].encode() + b"\xb9")],
        ),
        (
            "fullwidth digit as utf-8",
            [(b"X-Hub-Signature-256", b"sha256=" + hexsig[:-1].encode("ascii") + "１".encode())],
        ),
    ]
    for what, head in refused:
        answer = _raw_post(
            orvad, f"/webhook/{gh['id']}", [(b"Content-Length", str(len(body)).encode()), *head], body
        )
        status = int(answer.split(b" ", 2)[1])
        assert status in (400, 401), (what, answer[:300])
    # leading and trailing white space is not part of a header's value (RFC 9110): the server strips it
    answer = _raw_post(
        orvad,
        f"/webhook/{gh['id']}",
        [
            (b"Content-Length", str(len(body)).encode()),
            (b"x-HUB-signature-256", b"  " + good.encode() + b"  "),
        ],
        body,
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]

    # Stripe: several v1 (Stripe sends one per live secret) are fine; the timestamp is strict
    secret = st["secret"]
    now = NOW()
    v1 = _mac(secret, f"{now}.".encode() + body).hex()
    r = _post(orvad, st, body, {"Stripe-Signature": f"t={now},v1={'0' * 64},v1={v1},v0=whatever"})
    assert r.status_code == 200, r.text
    # the same delivery with its v1 list reordered or padded is the same delivery: a replay
    r = _post(orvad, st, body, {"Stripe-Signature": f"t={now}, v1={v1} ,v1={'1' * 64}"})
    assert r.status_code == 409 and _code(r) == "WEBHOOK_REPLAY", r.text
    for stamp in (str(now + 3600), "-1", "0", "999999999999", "9" * 13, f"+{now}", f"{now}.0", f"{now:x}"):
        sig = _mac(secret, f"{stamp}.".encode() + body).hex()
        r = _post(orvad, st, body, {"Stripe-Signature": f"t={stamp},v1={sig}"})
        assert r.status_code == 401 and _code(r) == "WEBHOOK_SIGNATURE_INVALID", (stamp, r.text)
    sig = _mac(secret, f"{now}.".encode() + body).hex()
    for header in (
        f"t={now},t={now},v1={sig}",
        f"v1={sig}",
        f"t={now}",
        f"t={now},v1={sig},",
        f"t={now};v1={sig}",
    ):
        r = _post(orvad, st, body, {"Stripe-Signature": header})
        assert r.status_code in (401, 409), (header, r.text)
        assert r.status_code == 401 or header.endswith(","), (header, r.text)
    # Slack: a timestamp in Arabic-Indic digits, sent as UTF-8, is not a number
    ts = "١٧" + str(now)[2:]
    slack_sig = "v0=" + _mac(sl["secret"], f"v0:{ts}:".encode() + body).hex()
    answer = _raw_post(
        orvad,
        f"/webhook/{sl['id']}",
        [
            (b"Content-Length", str(len(body)).encode()),
            (b"X-Slack-Request-Timestamp", ts.encode()),
            (b"X-Slack-Signature", slack_sig.encode()),
        ],
        body,
    )
    assert int(answer.split(b" ", 2)[1]) in (400, 401), answer[:300]
    with orvad.admin() as c:
        _settled(c, fn, before + 2)  # the padded GitHub header and the Stripe delivery: nothing else ran


def test_a_captured_signature_is_not_reused_after_a_format_change(orvad: Orvad, fn: str) -> None:
    """The same secret, another format: the captured MAC in another spelling (hex <-> base64), or a Stripe MAC
    over "<t>.<body>" sent as a raw-body MAC of that text, is the delivery already seen (a replay)."""
    with orvad.admin() as c:
        hook = _create(c, fn, name="rt-switch", format="hmac_sha256_hex", header="X-Sig")
        secret = hook["secret"]
        body = b'{"pay": 100}'
        mac = _mac(secret, body)
        assert _post(orvad, hook, body, {"X-Sig": mac.hex()}).status_code == 200
        path = f"/api/v1/functions/{fn}/inbound-webhooks/{hook['id']}"
        c.put(path, json={"format": "hmac_sha256_base64"}).raise_for_status()
        r = _post(orvad, hook, body, {"X-Sig": base64.b64encode(mac).decode()})
        assert r.status_code == 409 and _code(r) == "WEBHOOK_REPLAY", r.text
        # Stripe's signed text as a raw body
        c.put(path, json={"format": "stripe"}).raise_for_status()
        now = NOW()
        v1 = _mac(secret, f"{now}.".encode() + body).hex()
        assert _post(orvad, hook, body, {"Stripe-Signature": f"t={now},v1={v1}"}).status_code == 200
        c.put(path, json={"format": "hmac_sha256_hex", "header": "X-Sig"}).raise_for_status()
        r = _post(orvad, hook, f"{now}.".encode() + body, {"X-Sig": v1})
        assert r.status_code == 409 and _code(r) == "WEBHOOK_REPLAY", r.text


def test_a_changed_format_is_stored_and_survives_a_restart(make_orvad: Callable[..., Orvad]) -> None:
    """PUT's new format reached the database, not only orvad's memory: after a restart the webhook still has
    it (the row kept the old one: a restart, or on a cluster the next reload, brought the old format back)."""
    server = make_orvad()
    with server.admin() as c:
        c.post("/api/v1/functions", json={"name": "fmt", "runtime": "python"}).raise_for_status()
        _deploy_into(c, "fmt")
        hook = _create(c, "fmt", name="fmt", format="hmac_sha256_hex", header="X-Sig")
        c.put(
            f"/api/v1/functions/fmt/inbound-webhooks/{hook['id']}", json={"format": "hmac_sha256_base64"}
        ).raise_for_status()
    server.stop()
    server.start()
    with server.admin() as c:
        shown = c.get(f"/api/v1/functions/fmt/inbound-webhooks/{hook['id']}").json()
        assert shown["format"] == "hmac_sha256_base64", shown
    body = b'{"after": "restart"}'
    mac = base64.b64encode(_mac(hook["secret"], body)).decode()
    r = _post(server, hook, body, {"X-Sig": mac})
    assert r.status_code == 200, r.text


def test_a_delivery_refused_before_the_function_ran_can_be_sent_again(
    make_orvad: Callable[..., Orvad],
) -> None:
    """Not deployed yet, or paused: the answer says so and the delivery's replay key is not spent, so the
    sender's retry (GitHub resends the same body, signature and delivery id) runs once the function can."""
    server = make_orvad()
    with server.admin() as c:
        c.post("/api/v1/functions", json={"name": "later", "runtime": "python"}).raise_for_status()
        hook = _create(c, "later", name="gh", format="github")
        body = b'{"retry": "me"}'
        headers = {
            **sign("github", body, hook["secret"].encode(), Settings(), NOW()),
            "X-GitHub-Delivery": "d-1",
        }
        r = _post(server, hook, body, headers)
        assert r.status_code >= 400 and _code(r) == "NOT_DEPLOYED", r.text
        r = _post(server, hook, body, headers, "?async=1")
        assert _code(r) == "NOT_DEPLOYED", r.text
        _deploy_into(c, "later")
        c.put("/api/v1/functions/later", json={"status": "inactive"}).raise_for_status()
        r = _post(server, hook, body, headers)
        assert _code(r) == "NOT_ACTIVE", r.text
        r = _post(server, hook, body, headers, "?async=1")
        assert _code(r) == "NOT_ACTIVE", r.text
        c.put("/api/v1/functions/later", json={"status": "active"}).raise_for_status()
        r = _post(server, hook, body, headers)
        assert r.status_code == 200, r.text
        assert _post(server, hook, body, headers).status_code == 409  # and now it is a replay


def _deploy_into(c: httpx.Client, name: str) -> None:
    from tests.deploy_helpers import deploy_inline, wait_deployed
    from tests.webhooks.test_inbound import RECORDER

    assert wait_deployed(c, deploy_inline(c, name, RECORDER)["id"])["status"] == "succeeded"


def test_body_edges_empty_cap_cap_plus_one_lying_length_and_gzip(make_orvad: Callable[..., Orvad]) -> None:
    cap = 4096
    server = make_orvad(env={"ORVA_MAX_BODY_BYTES": str(cap)})
    with server.admin() as c:
        name = _deploy(c, "edges")["name"]
        hook = _create(c, name, name="edge", format="hmac_sha256_hex", header="X-Sig")
    secret = hook["secret"]

    def signed(body: bytes) -> dict[str, str]:
        return {"X-Sig": _mac(secret, body).hex()}

    ran = 0
    # 0 bytes
    r = _post(server, hook, b"", signed(b""))
    assert r.status_code == 200, r.text
    ran += 1
    with server.admin() as c:
        _settled(c, name, ran)
        assert _last(c, name)["body"] in ("", None)
    # exactly the cap, with Content-Length and chunked
    full = b"a" * cap
    assert _post(server, hook, full, signed(full)).status_code == 200
    ran += 1
    chunked = b"b" * cap
    r = httpx.post(
        f"{server.url}/webhook/{hook['id']}",
        content=iter([chunked[:1000], chunked[1000:]]),
        headers=signed(chunked),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    ran += 1
    # the cap + 1
    over = b"c" * (cap + 1)
    assert _post(server, hook, over, signed(over)).status_code == 413
    r = httpx.post(
        f"{server.url}/webhook/{hook['id']}",
        content=iter([over[:cap], over[cap:]]),
        headers=signed(over),
        timeout=30,
    )
    assert r.status_code == 413, r.text
    # a Content-Length that says less than is sent: the body is what it says; the tail is read as a request
    # of its own (pipelined), verified on its own: one signed with a guessed secret is refused, nothing else
    small = b'{"n": 1}'
    smuggled = (
        b"POST /webhook/"
        + hook["id"].encode()
        + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Sig: "
        + _mac("guessed-secret", small).hex().encode()
        + b"\r\nContent-Length: "
        + str(len(small)).encode()
        + b"\r\n\r\n"
        + small
    )
    head = b'{"a": 0}'
    answer = _raw_post(
        server,
        f"/webhook/{hook['id']}",
        [(b"Content-Length", str(len(head)).encode()), (b"X-Sig", _mac(secret, head).hex().encode())],
        head + smuggled,
        close=False,
    )
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", answer) == [b"200", b"401"], answer
    ran += 1
    with server.admin() as c:
        _settled(c, name, ran)
        assert _last(c, name)["body"] == head.decode()

    # a Content-Length with both framings: refused
    answer = _raw_post(
        server,
        f"/webhook/{hook['id']}",
        [
            (b"Content-Length", b"8"),
            (b"Transfer-Encoding", b"chunked"),
            (b"X-Sig", _mac(secret, head).hex().encode()),
        ],
        b"8\r\n" + head + b"\r\n0\r\n\r\n",
    )
    assert int(answer.split(b" ", 2)[1]) == 400, answer[:300]
    # a Content-Length that says more than is sent, then the sender goes away: nothing runs
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(
            f"POST /webhook/{hook['id']} HTTP/1.1\r\nHost: x\r\nX-Sig: {_mac(secret, head).hex()}\r\n"
            f"Content-Length: 100\r\n\r\n".encode()
            + head
        )
    # gzip: verified over the bytes sent (the compressed ones), handed to the function as sent
    inner = json.dumps({"zipped": True}).encode()
    packed = gzip.compress(inner)
    zheaders = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    r = _post(server, hook, packed, {**zheaders, **signed(inner)})
    assert r.status_code == 401, r.text  # a MAC over the inflated text does not match
    r = _post(server, hook, packed, {**zheaders, **signed(packed)})
    assert r.status_code == 200, r.text
    ran += 1
    with server.admin() as c:
        _settled(c, name, ran)
        last = _last(c, name)
        assert last["base64"] and base64.b64decode(last["body"]) == packed
        assert last["headers"].get("content-encoding") == "gzip"


def _slow_post(server: Orvad, hook: dict[str, Any], body: bytes, gate: threading.Event) -> dict[str, Any]:
    """A delivery whose body arrives in two parts, the second once ``gate`` is set; its answer (in a thread).
    ``out["begun"]`` is set once the head and the first part were written."""
    out: dict[str, Any] = {"begun": threading.Event()}
    secret = hook["secret"]

    def parts() -> Iterator[bytes]:
        yield body[:4]
        out["begun"].set()
        gate.wait(30)
        yield body[4:]

    def run() -> None:
        r = httpx.post(
            f"{server.url}/webhook/{hook['id']}",
            content=parts(),
            headers={"X-Sig": _mac(secret, body).hex()},
            timeout=60,
        )
        out["status"], out["body"] = r.status_code, r.text

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    out["thread"] = thread
    return out


def test_a_webhook_disabled_or_deleted_while_its_body_arrives_does_not_run(
    make_orvad: Callable[..., Orvad],
) -> None:
    server = make_orvad()
    with server.admin() as c:
        name = _deploy(c, "midway")["name"]
        body = b'{"slow": "delivery"}'
        base = f"/api/v1/functions/{name}/inbound-webhooks"
        cases: list[tuple[str, Callable[[dict[str, Any]], None], int]] = [
            (
                "disabled",
                lambda h: c.put(f"{base}/{h['id']}", json={"enabled": False}).raise_for_status(),
                403,
            ),
            ("deleted", lambda h: c.delete(f"{base}/{h['id']}").raise_for_status(), 404),
        ]
        for what, act, status in cases:
            hook = _create(c, name, name=what, format="hmac_sha256_hex", header="X-Sig")
            gate = threading.Event()
            answer = _slow_post(server, hook, body, gate)
            assert answer["begun"].wait(30)  # the head is in: orvad waits for the body's second part
            act(hook)
            gate.set()
            answer["thread"].join(60)
            assert answer.get("status") == status, (what, answer)
        # the function deleted while the body arrives
        hook = _create(c, name, name="fn-gone", format="hmac_sha256_hex", header="X-Sig")
        gate = threading.Event()
        answer = _slow_post(server, hook, body, gate)
        assert answer["begun"].wait(30)
        c.delete(f"/api/v1/functions/{name}").raise_for_status()
        gate.set()
        answer["thread"].join(60)
        assert answer.get("status") == 404, answer
        r = c.get("/api/v1/executions", params={"limit": 50})
        assert not [e for e in r.json()["executions"] if e.get("trigger") == "webhook"], r.text


def test_cors_preflight_and_cross_origin_posts_get_no_grant(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        hook = _create(c, fn, name="rt-cors", format="hmac_sha256_hex", header="X-Sig")
    url = f"{orvad.url}/webhook/{hook['id']}"
    r = httpx.options(
        url,
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-sig, content-type",
        },
        timeout=30,
    )
    assert r.status_code == 405 and r.headers.get("allow") == "POST"
    assert not [h for h in r.headers if h.lower().startswith("access-control-")], dict(r.headers)
    body = b"{}"
    for headers in ({"X-Sig": "0" * 64}, {"X-Sig": _mac(hook["secret"], body).hex()}):
        r = httpx.post(url, content=body, headers={"Origin": "https://evil.example", **headers}, timeout=30)
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], dict(r.headers)
    assert r.status_code == 200  # a sender is not a browser: Origin is neither needed nor refused


def test_what_each_refusal_tells_a_prober(orvad: Orvad, fn: str) -> None:
    """An unknown, malformed or deleted id answers exactly as any unknown path does; a wrong signature on a
    known id says only that it is wrong (never which part or how close)."""
    with orvad.admin() as c:
        hook = _create(c, fn, name="rt-probe", format="hmac_sha256_hex", header="X-Sig")
        gone = _create(c, fn, name="rt-gone", format="hmac_sha256_hex", header="X-Sig")
        c.delete(f"/api/v1/functions/{fn}/inbound-webhooks/{gone['id']}").raise_for_status()

    def answer(path: str, sig: str = "0" * 64) -> tuple[int, dict[str, Any]]:
        r = httpx.post(f"{orvad.url}{path}", content=b"{}", headers={"X-Sig": sig}, timeout=30)
        err = r.json()["error"]
        return r.status_code, {k: v for k, v in err.items() if k != "request_id"}

    unknown = "iwh_" + "A" * 22
    shapes = {
        p: answer(p)
        for p in (
            f"/webhook/{unknown}",
            f"/webhook/{gone['id']}",
            "/webhook/nope",
            "/webhook/",
        )
    }
    for path, (status, err) in shapes.items():
        assert status == 404 and err["code"] == "NOT_FOUND", (path, status, err)
        assert set(err) <= {"code", "message", "hint", "details"} and unknown not in json.dumps(
            err.get("details")
        )
        # unknown, deleted and malformed ids: one answer but for the path it names
        assert err["hint"] == shapes["/webhook/nope"][1]["hint"], (path, err)
        assert err["message"].replace(path, "<path>") == "no such endpoint: <path>", (path, err)
    generic = answer(f"/nope/{unknown}")
    assert (
        generic[0] == 404
        and generic[1]["code"] == "NOT_FOUND"
        and generic[1]["message"].startswith("no such endpoint")
    ), generic
    good = _mac(hook["secret"], b"{}").hex()
    near = good[:-1] + ("0" if good[-1] != "0" else "1")
    wrong = [answer(f"/webhook/{hook['id']}", s) for s in ("0" * 64, near, "f" * 64)]
    assert all(status == 401 for status, _ in wrong)
    assert len({json.dumps(err, sort_keys=True) for _, err in wrong}) == 1, wrong  # no "how close"


def test_sender_headers_cannot_pose_as_orva(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        hook = _create(c, fn, name="rt-headers", format="hmac_sha256_hex", header="X-Sig")
        body = b'{"who": "me"}'
        forged = [
            (b"X-Orva-Webhook-Id", b"iwh_forged"),
            (b"x-orva-trigger", b"http"),
            (b"X-ORVA-EXECUTION-ID", b"exe_forged"),
            (b"X-Orva-Invocation-Type", b"Event"),
            (b"X-Orva-Idempotency-Key", b"forged"),
            (b"X-Orva-Api-Key", b"orva_forged"),
            (b"X-Orva-Job-Id", b"job_forged"),
        ]
        answer = _raw_post(
            orvad,
            f"/webhook/{hook['id']}",
            [
                (b"Content-Length", str(len(body)).encode()),
                (b"X-Sig", _mac(hook["secret"], body).hex().encode()),
                *forged,
            ],
            body,
        )
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]  # run now: not made a job by a header
        wait_for(lambda: _last(c, fn)["body"] == body.decode(), 10, "the delivery recorded")
        seen = _last(c, fn)
    orva = {k.lower(): v for k, v in seen["headers"].items() if k.lower().startswith("x-orva-")}
    assert orva.get("x-orva-webhook-id") == hook["id"], orva
    assert not {v for v in orva.values() if "forged" in str(v)}, orva
    assert seen["webhookId"] == hook["id"] and seen["trigger"] == "webhook" and seen["jobId"] is None


def test_thousands_of_headers_are_refused_cheaply(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        hook = _create(c, fn, name="rt-many", format="hmac_sha256_hex", header="X-Sig")
        before = len(_executions(c, fn))
    body = b"{}"
    many = [(f"X-Pad-{i}".encode(), b"y" * 20) for i in range(5000)]
    sig = (b"X-Sig", _mac(hook["secret"], body).hex().encode())
    started = time.monotonic()
    try:
        answer = _raw_post(orvad, f"/webhook/{hook['id']}", [(b"Content-Length", b"2"), sig, *many], body)
        status = int(answer.split(b" ", 2)[1]) if answer else 0
    except OSError:
        status = 0  # the server dropped the connection
    assert status in (0, 400, 413, 431), status
    assert time.monotonic() - started < 10
    # a few hundred are a normal request
    answer = _raw_post(orvad, f"/webhook/{hook['id']}", [(b"Content-Length", b"2"), sig, *many[:200]], body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    with orvad.admin() as c:
        _settled(c, fn, before + 1)


def test_the_same_delivery_sent_many_times_at_once_runs_once(orvad: Orvad, fn: str) -> None:
    with orvad.admin() as c:
        hook = _create(c, fn, name="rt-race", format="stripe")
        before = len(_executions(c, fn))
    body = b'{"race": true}'
    headers = sign("stripe", body, hook["secret"].encode(), Settings(), NOW())
    statuses: list[int] = []
    lock = threading.Lock()
    go = threading.Event()

    def one() -> None:
        go.wait(10)
        r = _post(orvad, hook, body, headers)
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(16)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(60)
    assert sorted(statuses) == [200] + [409] * 15, statuses
    with orvad.admin() as c:
        _settled(c, fn, before + 1)


SLOW = """
import json
import time


def handler(event, context):
    if json.loads(event["body"] or "{}").get("slow"):
        time.sleep(3)
    return {"ok": True}
"""


def test_a_sync_delivery_turned_away_busy_can_be_sent_again(make_orvad: Callable[..., Orvad]) -> None:
    """max_concurrency 1, policy reject: a second delivery while the first runs is 429 FUNCTION_BUSY and did not
    run, so the sender's retry of that same delivery runs (and a third copy of it is a replay)."""
    from tests.deploy_helpers import create_function, deploy_inline, wait_deployed

    server = make_orvad()
    with server.admin() as c:
        create_function(c, "busy")
        assert wait_deployed(c, deploy_inline(c, "busy", SLOW)["id"])["status"] == "succeeded"
        c.put(
            "/api/v1/functions/busy", json={"max_concurrency": 1, "concurrency_policy": "reject"}
        ).raise_for_status()
        hook = _create(c, "busy", name="gh", format="github")
    secret = hook["secret"].encode()
    slows: list[tuple[threading.Thread, dict[str, int]]] = []

    def start_slow() -> None:
        # each slow delivery its own body: one that ran must not make the next a replay
        slow = json.dumps({"slow": True, "n": len(slows)}).encode()
        result: dict[str, int] = {}

        def run() -> None:
            result["status"] = _post(
                server, hook, slow, sign("github", slow, secret, Settings(), NOW())
            ).status_code

        thread = threading.Thread(target=run, daemon=True)
        slows.append((thread, result))
        thread.start()

    # fresh deliveries until one is turned away. Those before the slow one took the slot simply run; a probe
    # that holds the slot when the slow one arrives turns the slow one away (429) instead, so a slow delivery
    # that has ended without one turned away is followed by another
    turned: list[tuple[bytes, dict[str, str], httpx.Response]] = []
    start_slow()

    def turned_away() -> bool:
        if not slows[-1][0].is_alive():
            start_slow()
        body = json.dumps({"probe": len(turned) + time.monotonic()}).encode()
        headers = {**sign("github", body, secret, Settings(), NOW()), "X-GitHub-Delivery": body.decode()}
        r = _post(server, hook, body, headers)
        assert r.status_code in (200, 429), r.text
        turned.append((body, headers, r))
        return r.status_code == 429

    wait_for(turned_away, 60, "a delivery turned away while a slow one runs")
    body, headers, busy = turned[-1]
    assert _code(busy) == "FUNCTION_BUSY", busy.text
    thread, first = slows[-1]  # probes go one at a time: the slot was this slow delivery's
    thread.join(60)
    assert first.get("status") == 200, first
    r = _post(server, hook, body, headers)
    assert r.status_code == 200, r.text
    r = _post(server, hook, body, headers)
    assert r.status_code == 409 and _code(r) == "WEBHOOK_REPLAY", r.text
