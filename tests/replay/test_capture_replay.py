"""Request capture and replay (issue 23) through HTTP with real workers: capture on by default with every
credential redacted (the attack: no credential is ever readable through GET .../request or a replay's own
captured request), the 1 MiB body bound, capture off per function, replay of the current version with
trigger replay, the invoke permission, a signed function's refusal, and retention (the capture goes with
its execution)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

ECHO = """
import json

def handler(event, context):
    return {"version": %d, "method": event["method"], "path": event["path"], "query": event["rawQuery"],
            "headers": event["headers"], "size": len(event["body"]), "b64": event["isBase64Encoded"],
            "trigger": event["requestContext"]["trigger"]}
"""
MIB = 1 << 20
SECRET = "s3cr3t-VALUE-never-stored"
# every credential header variant a caller may send: orvad's own, the usual API-key and signature headers
CREDENTIALS = [
    ("Authorization", f"Bearer {SECRET}-a"),
    ("AUTHORIZATION", f"Basic {SECRET}-b"),
    ("Proxy-Authorization", f"Basic {SECRET}-c"),
    ("Cookie", f"sid={SECRET}-d"),
    ("cookie", f"other={SECRET}-e"),
    ("X-Orva-API-Key", f"orva_{SECRET}-f"),
    ("X-Orva-Signature", f"sha256={SECRET}-g"),
    ("x-orva-timestamp", f"{SECRET}-h"),
    ("X-API-Key", f"{SECRET}-i"),
    ("Api-Key", f"{SECRET}-j"),
    ("X-Hub-Signature-256", f"sha256={SECRET}-k"),
    ("Stripe-Signature", f"t=1,v1={SECRET}-l"),
    ("X-Auth-Token", f"{SECRET}-m"),
    ("X-Amz-Security-Token", f"{SECRET}-n"),
    ("X-Session-Id", f"{SECRET}-o"),
    ("X-Slack-Signature", f"v0={SECRET}-p"),
    ("X-Client-Secret", f"{SECRET}-q"),
]


def _deploy(c: httpx.Client, name: str, version: int = 1, **extra: Any) -> dict[str, Any]:
    fn = create_function(c, name, **extra) if version == 1 else c.get(f"/api/v1/functions/{name}").json()
    wait_deployed(c, deploy_inline(c, name, ECHO % version)["id"])
    return fn


def _captured(c: httpx.Client, execution_id: str) -> dict[str, Any]:
    """GET .../request once the batched writer has written it."""
    found: dict[str, Any] = {}

    def written() -> bool:
        r = c.get(f"/api/v1/executions/{execution_id}/request")
        if r.status_code == 200:
            found.update(r.json())
        return r.status_code == 200

    wait_for(written, 10, f"the captured request of {execution_id}")
    return found


def _written(c: httpx.Client, execution_id: str) -> dict[str, Any]:
    row: dict[str, Any] = {}

    def done() -> bool:
        r = c.get(f"/api/v1/executions/{execution_id}")
        if r.status_code == 200:
            row.update(r.json())
        return r.status_code == 200

    wait_for(done, 10, f"execution {execution_id}")
    return row


def test_capture_is_on_by_default_and_no_credential_is_ever_readable(orvad: Orvad) -> None:
    """The attack: every credential variant (any case, repeated, in the query too) sent to a function; none
    can be read back through GET .../request, nor through a replay's answer or its own captured request."""
    with orvad.admin() as c:
        fn = _deploy(c, "cap-redact")
        assert fn["capture_requests"] is True
        headers = [*CREDENTIALS, ("X-Trace-Me", "visible-1"), ("X-Trace-Me", "visible-2")]
        r = httpx.post(
            f"{orvad.url}/fn/cap-redact/orders/7?page=2&api_key={SECRET}-r&token={SECRET}-s&x=1",
            headers=headers,
            content=b'{"order": 7}',
            timeout=30,
        )
        assert r.status_code == 200, r.text
        execution_id = r.headers["x-orva-execution-id"]
        captured = _captured(c, execution_id)
        assert SECRET not in json.dumps(captured)
        assert captured["method"] == "POST" and captured["path"] == "/orders/7"
        assert captured["query"].startswith("page=2&api_key=") and captured["query"].endswith("&x=1")
        assert captured["body"] == '{"order": 7}' and captured["body_encoding"] == "text"
        assert captured["body_size"] == 12 and captured["body_truncated"] is False
        names = [name for name, _ in captured["headers"]]
        for name, _ in CREDENTIALS:  # every one is listed (what was sent), its value gone
            assert [name.lower(), "[redacted]"] in captured["headers"], name
        assert names.count("authorization") == 2 and names.count("cookie") == 2
        assert ["x-trace-me", "visible-1"] in captured["headers"]
        assert ["x-trace-me", "visible-2"] in captured["headers"]
        assert _written(c, execution_id)["trigger"] == "http"

        # the replay runs without them (they are gone), and its own capture holds none either
        r = c.post(f"/api/v1/executions/{execution_id}/replay")
        assert r.status_code == 200, r.text
        replayed = r.json()
        assert SECRET not in r.text
        assert replayed["replay_of"] == execution_id and replayed["status"] == 200
        seen = json.loads(replayed["body"])
        assert seen["trigger"] == "replay" and seen["path"] == "/orders/7" and seen["size"] == 12
        assert seen["query"] == "page=2&x=1"  # the redacted parameters are left out
        assert seen["headers"]["x-trace-me"] == "visible-1, visible-2"
        assert not {"authorization", "cookie", "x-api-key", "x-orva-api-key"} & set(seen["headers"])
        again = _captured(c, replayed["execution_id"])
        assert SECRET not in json.dumps(again) and "orva_" not in json.dumps(again["headers"])
        row = _written(c, replayed["execution_id"])
        assert row["trigger"] == "replay" and row["function_id"] == fn["id"]
    # nor in the database itself (orva.db and its WAL, or pg_dump's text, where a BYTEA column is hex)
    stored = orvad.database_bytes()
    assert SECRET.encode() not in stored and SECRET.encode().hex().encode() not in stored


def test_body_bound_is_one_mib_and_a_longer_body_is_flagged(orvad: Orvad) -> None:
    with orvad.admin() as c:
        _deploy(c, "cap-body")
        exact = bytes(range(256)) * (MIB // 256)
        r = httpx.post(f"{orvad.url}/fn/cap-body", content=exact, timeout=30)
        assert r.status_code == 200, r.text
        got = _captured(c, r.headers["x-orva-execution-id"])
        assert got["body_size"] == MIB and got["body_truncated"] is False and got["body_encoding"] == "base64"
        import base64

        assert base64.b64decode(got["body"]) == exact
        over = b"a" * (MIB + 1)
        r = httpx.post(f"{orvad.url}/fn/cap-body", content=over, timeout=30)
        assert r.status_code == 200, r.text
        cut_id = r.headers["x-orva-execution-id"]
        got = _captured(c, cut_id)
        assert got["body_size"] == MIB + 1 and got["body_truncated"] is True
        assert got["body"] == "a" * MIB  # the first 1 MiB, never silently cut
        r = c.post(f"/api/v1/executions/{cut_id}/replay")
        assert r.status_code == 409 and r.json()["error"]["code"] == "NOT_REPLAYABLE", r.text
        assert r.json()["error"]["details"]["body_size"] == MIB + 1


def test_capture_off_per_function_answers_404_with_a_hint(orvad: Orvad) -> None:
    with orvad.admin() as c:
        _deploy(c, "cap-off", capture_requests=False)
        assert c.get("/api/v1/functions/cap-off").json()["capture_requests"] is False
        r = httpx.post(f"{orvad.url}/fn/cap-off", content=b"private", timeout=30)
        assert r.status_code == 200
        execution_id = r.headers["x-orva-execution-id"]
        _written(c, execution_id)
        for method, path in (("GET", "request"), ("POST", "replay")):
            r = c.request(method, f"/api/v1/executions/{execution_id}/{path}")
            assert r.status_code == 404, r.text
            error = r.json()["error"]
            assert error["code"] == "NOT_FOUND" and '"capture_requests": true' in error["hint"]
        # turned on again: later executions keep their request
        assert c.put("/api/v1/functions/cap-off", json={"capture_requests": True}).status_code == 200
        r = httpx.post(f"{orvad.url}/fn/cap-off", content=b"kept", timeout=30)
        assert _captured(c, r.headers["x-orva-execution-id"])["body"] == "kept"
        r = c.put("/api/v1/functions/cap-off", json={"capture_requests": "no"})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "capture_requests"
        r = c.get("/api/v1/executions/0190a0a0-0000-7000-8000-000000000000/request")
        assert r.status_code == 404 and "ORVA_LOG_RETENTION_DAYS" in r.json()["error"]["hint"]


def test_replay_runs_the_current_version_as_the_operator_and_needs_invoke(orvad: Orvad) -> None:
    with orvad.admin() as c:
        _deploy(c, "cap-ver", auth_mode="api_key")
        reader = c.post("/api/v1/keys", json={"name": "rp-read", "permissions": ["read"]}).json()["key"]
        writer = c.post("/api/v1/keys", json={"name": "rp-write", "permissions": ["read", "write"]}).json()[
            "key"
        ]
        invoker = c.post("/api/v1/keys", json={"name": "rp-inv", "permissions": ["invoke"]}).json()["key"]
        r = httpx.put(
            f"{orvad.url}/fn/cap-ver/x", headers={"X-Orva-API-Key": invoker}, content=b"v", timeout=30
        )
        assert r.status_code == 200 and r.json()["version"] == 1, r.text
        first = r.headers["x-orva-execution-id"]
        _captured(c, first)
        _deploy(c, "cap-ver", version=2)
    with orvad.client(reader) as rd:
        assert rd.get(f"/api/v1/executions/{first}/request").status_code == 200  # read: like its logs
        r = rd.post(f"/api/v1/executions/{first}/replay")
        assert r.status_code == 403 and r.json()["error"]["details"]["required"] == "invoke", r.text
    with orvad.client(writer) as w:
        r = w.post(f"/api/v1/executions/{first}/replay")
        assert r.status_code == 403 and r.json()["error"]["details"]["required"] == "invoke", r.text
    with orvad.client(invoker) as inv:
        assert inv.get(f"/api/v1/executions/{first}/request").status_code == 403  # invoke alone cannot read
        r = inv.post(f"/api/v1/executions/{first}/replay")
        assert r.status_code == 200, r.text
        body = json.loads(r.json()["body"])
        # the api_key function ran as the replaying key (its X-Orva-API-Key was redacted), on version 2
        assert body["version"] == 2 and body["method"] == "PUT" and body["trigger"] == "replay"
    with orvad.admin() as c:
        assert _written(c, r.json()["execution_id"])["trigger"] == "replay"
        assert c.post("/api/v1/executions/nope/replay").status_code == 404


def test_a_signed_function_is_not_replayable(orvad: Orvad) -> None:
    """Its signature covered a timestamp and orvad remembers it: replay answers 409 NOT_REPLAYABLE (and
    the captured request keeps neither the signature nor its timestamp)."""
    import hashlib
    import hmac
    import time

    with orvad.admin() as c:
        _deploy(c, "cap-signed", auth_mode="signed")
        key = "whsec-replay-123456"
        r = c.post("/api/v1/functions/cap-signed/secrets", json={"key": "ORVA_SIGNING_SECRET", "value": key})
        assert r.status_code == 200, r.text
        ts = str(int(time.time()))
        body = b'{"n": 1}'
        mac = hmac.new(key.encode(), f"{ts}.POST./fn/cap-signed.".encode() + body, hashlib.sha256).hexdigest()
        r = httpx.post(
            f"{orvad.url}/fn/cap-signed",
            headers={"X-Orva-Timestamp": ts, "X-Orva-Signature": f"sha256={mac}"},
            content=body,
            timeout=30,
        )
        assert r.status_code == 200, r.text
        execution_id = r.headers["x-orva-execution-id"]
        got = _captured(c, execution_id)
        assert mac not in json.dumps(got) and ts not in json.dumps(got["headers"])
        r = c.post(f"/api/v1/executions/{execution_id}/replay")
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "NOT_REPLAYABLE" and error["details"]["auth_mode"] == "signed"
        assert "/fn/cap-signed" in error["hint"]


def test_a_capture_goes_with_its_execution(orvad: Orvad) -> None:
    """Retention and a function's delete remove executions; their captured requests go with them
    (ON DELETE CASCADE): deleting the function leaves no request row behind."""
    with orvad.admin() as c:
        _deploy(c, "cap-gone")
        r = httpx.post(f"{orvad.url}/fn/cap-gone", content=b"bye", timeout=30)
        execution_id = r.headers["x-orva-execution-id"]
        _captured(c, execution_id)
        assert c.delete("/api/v1/functions/cap-gone").status_code in (200, 204)
        assert c.get(f"/api/v1/executions/{execution_id}/request").status_code == 404
    left = orvad.sql("SELECT COUNT(*) FROM execution_requests WHERE execution_id = ?", (execution_id,))
    assert left == [(0,)]
