"""Every starter function of the catalog (orvad/templates), created the way the dashboard creates it (POST
/api/v1/functions with the manifest's settings, then deploy-inline with its files), deployed on a real
orvad with real sandboxed workers and called through HTTP with a meaningful input, its real output
asserted. The cases are keyed by template name and the test is parametrized over the catalog, so a new
template without a case fails `test_every_template_has_a_case`.

Webhook receivers: a correctly signed request is accepted; a wrong, missing, tampered or stale signature
is refused with 401 by the handler. The LLM relay talks to a fake OpenAI-compatible server speaking the
real SSE wire format, in a network namespace this module creates (tests/netns_helpers.py): no traffic
leaves the machine. The MCP tool appears in an MCP channel's tools list with its input_schema."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from orvad.templates import catalog
from tests.deploy_helpers import wait_deployed
from tests.helpers import Orvad, free_port, wait_for
from tests.netns_helpers import served_namespace

pytestmark = pytest.mark.sandbox  # deploys and invokes every template: nsjail, root, namespaces

HERE = Path(__file__).resolve().parent
LLM_NS, LLM_HOST_IF = "orvatest-llm", "orvatest-lh"
LLM_HOST, LLM_SERVER, LLM_PORT = "198.51.100.65", "198.51.100.66", 8088  # TEST-NET-2, in our namespace
LLM_KEY = "sk-test-relay"
SECRETS = {
    "github-webhook-python": {"GITHUB_WEBHOOK_SECRET": "gh-secret-1"},
    "stripe-webhook-node": {"STRIPE_WEBHOOK_SECRET": "whsec_test_1"},
    "slack-command-python": {"SLACK_SIGNING_SECRET": "slack-secret-1"},
    "llm-relay-python": {"OPENAI_API_KEY": LLM_KEY},
}
ENV = {"llm-relay-python": {"OPENAI_BASE_URL": f"http://{LLM_SERVER}:{LLM_PORT}/v1"}}


@dataclass
class Deployed:
    server: Orvad
    api: httpx.Client
    manifests: dict[str, dict[str, Any]]
    http: httpx.Client  # no key: the public side of /fn/<name>
    seconds: float


def create_from_template(api: httpx.Client, manifest: dict[str, Any], name: str) -> str:
    """What the dashboard's New function dialog does: create with the template's settings, set its
    secrets and env, deploy its files. Returns the deployment id."""
    env = ENV.get(manifest["name"], {})
    r = api.post(
        "/api/v1/functions",
        json={"name": name, "runtime": manifest["runtime"], **manifest["settings"], "env_vars": env},
    )
    assert r.status_code == 201, r.text
    for key, value in SECRETS.get(manifest["name"], {}).items():
        r = api.post(f"/api/v1/functions/{name}/secrets", json={"key": key, "value": value})
        assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = {
        "code": manifest["files"][manifest["entrypoint"]],
        "filename": manifest["entrypoint"],
    }
    if manifest["dependencies_file"]:
        body["dependencies"] = manifest["files"][manifest["dependencies_file"]]
    r = api.post(f"/api/v1/functions/{name}/deploy-inline", json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    """One orvad for the module, with every template deployed under its own name."""
    base = Path(tempfile.mkdtemp(prefix="orva-templates-"))
    base.chmod(0o711)
    server = Orvad(base / "data", free_port()).start()
    try:
        with server.admin() as api:
            api.timeout = httpx.Timeout(60.0)
            listed = api.get("/api/v1/templates").json()["templates"]
            manifests = {t["name"]: api.get(f"/api/v1/templates/{t['name']}").json() for t in listed}
            started = time.monotonic()
            deployments = {name: create_from_template(api, m, name) for name, m in manifests.items()}
            for name, dep in deployments.items():
                record = wait_deployed(api, dep, deadline_s=300)
                if record["status"] != "succeeded":
                    lines = api.get(f"/api/v1/deployments/{dep}/logs").json()["lines"]
                    pytest.fail(
                        f"{name} did not build: {record.get('error_message')}\n"
                        + "\n".join(ln["line"] for ln in lines[-30:])
                    )
            with server.client() as http:
                http.timeout = httpx.Timeout(60.0)
                yield Deployed(server, api, manifests, http, time.monotonic() - started)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def llm_upstream() -> Iterator[str]:
    """The fake OpenAI-compatible server on 198.51.100.66:8088 in a namespace of this module's own."""
    argv = [sys.executable, str(HERE / "fake_openai.py"), LLM_SERVER, str(LLM_PORT), LLM_KEY]
    with served_namespace(
        LLM_NS, LLM_HOST_IF, f"{LLM_HOST}/30", f"{LLM_SERVER}/30", LLM_PORT, server=argv
    ) as addr:
        yield addr


# ---------------------------------------------------------------------------------------------- helpers


def wait_job(api: httpx.Client, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = {}

    def done() -> bool:
        job.update(api.get(f"/api/v1/jobs/{job_id}").json())
        return job["status"] in ("succeeded", "dead", "cancelled")

    wait_for(done, 60, f"job {job_id}", interval_s=0.1)
    assert job["status"] == "succeeded", job
    return job


def kv_value(api: httpx.Client, fn: str, key: str) -> Any:
    r = api.get(f"/api/v1/functions/{fn}/kv/{key}")
    return r.json()["value"] if r.status_code == 200 else None


def kv_keys(api: httpx.Client, fn: str, prefix: str) -> list[str]:
    r = api.get(f"/api/v1/functions/{fn}/kv", params={"prefix": prefix, "limit": 1000})
    assert r.status_code == 200, r.text
    return [k["key"] for k in r.json()["keys"]]


def png(width: int, height: int) -> bytes:
    """An RGB PNG with a pattern (so it does not compress to nothing), made without an image library."""
    rows = b"".join(
        b"\x00"
        + bytes(
            ((x * 7 + y * 13) % 256, (x * y) % 256, (x ^ y) % 256)[c] for x in range(width) for c in range(3)
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:32]
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# ------------------------------------------------------------------------------------------ the cases


def case_hello(d: Deployed, name: str) -> None:
    c = d.http
    assert c.get(f"/fn/{name}", params={"name": "orva"}).json() == {"hello": "orva"}
    assert c.post(f"/fn/{name}", json={"name": "json"}).json() == {"hello": "json"}
    assert c.get(f"/fn/{name}").json() == {"hello": "world"}


def case_json_api(d: Deployed, name: str) -> None:
    c = d.http
    ok = c.post(f"/fn/{name}/orders", json={"email": "Ada@Example.com", "sku": "TEA-02", "quantity": 3})
    assert ok.status_code == 201, ok.text
    order = ok.json()
    assert order["email"] == "ada@example.com" and order["total_cents"] == 2100 and order["id"]
    bad = c.post(f"/fn/{name}/orders", json={"email": "nope", "sku": "TEA-01", "quantity": 0, "admin": True})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["error"]["errors"]} == {"email", "quantity", "admin"}
    assert c.post(f"/fn/{name}/orders", content=b"{not json").status_code == 400
    assert c.get(f"/fn/{name}/orders").status_code == 405
    assert c.get(f"/fn/{name}/").json()["endpoints"]["POST /orders"]["quantity"] == "1..100"


def _github(
    c: httpx.Client, name: str, body: bytes, kind: str, secret: str | None, signature: str | None = None
) -> httpx.Response:
    headers = {"x-github-event": kind, "x-github-delivery": "d-1", "content-type": "application/json"}
    if signature is None and secret is not None:
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if signature is not None:
        headers["x-hub-signature-256"] = signature
    return c.post(f"/fn/{name}", content=body, headers=headers)


def case_github(d: Deployed, name: str) -> None:
    c, secret = d.http, SECRETS[name]["GITHUB_WEBHOOK_SECRET"]
    ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    r = _github(c, name, ping, "ping", secret)
    assert r.status_code == 200 and r.json() == {
        "ok": True,
        "event": "ping",
        "zen": "Keep it logically awesome.",
    }
    push = json.dumps(
        {"ref": "refs/heads/main", "repository": {"full_name": "o/r"}, "commits": [{}, {}]}
    ).encode()
    r = _github(c, name, push, "push", secret)
    assert r.json() == {
        "ok": True,
        "event": "push",
        "repository": "o/r",
        "ref": "refs/heads/main",
        "commits": 2,
    }
    # refused by the handler: wrong secret, no signature, a body other than the one signed
    assert _github(c, name, push, "push", "wrong-secret").status_code == 401
    assert _github(c, name, push, "push", None).status_code == 401
    signed_ping = "sha256=" + hmac.new(secret.encode(), ping, hashlib.sha256).hexdigest()
    refused = _github(c, name, push, "push", None, signature=signed_ping)
    assert refused.status_code == 401 and "X-Hub-Signature-256" in refused.json()["error"]


def _stripe(c: httpx.Client, name: str, body: bytes, secret: str, t: int | None = None) -> httpx.Response:
    t = int(time.time()) if t is None else t
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return c.post(f"/fn/{name}", content=body, headers={"stripe-signature": f"t={t},v1={sig}"})


def case_stripe(d: Deployed, name: str) -> None:
    c, secret = d.http, SECRETS[name]["STRIPE_WEBHOOK_SECRET"]
    event = {
        "id": "evt_123",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": "pi_1", "amount": 500}},
    }
    body = json.dumps(event).encode()
    r = _stripe(c, name, body, secret)
    assert r.status_code == 200 and r.json() == {
        "received": True,
        "id": "evt_123",
        "type": "payment_intent.succeeded",
    }
    again = _stripe(c, name, body, secret)  # Stripe's retry: acknowledged, not handled twice
    assert again.json() == {"received": True, "id": "evt_123", "duplicate": True}
    assert _stripe(c, name, body, "whsec_wrong").status_code == 401
    stale = _stripe(
        c, name, json.dumps({**event, "id": "evt_old"}).encode(), secret, t=int(time.time()) - 600
    )
    assert stale.status_code == 401 and "too old" in stale.json()["error"]
    assert c.post(f"/fn/{name}", content=body).status_code == 401  # no Stripe-Signature
    tampered = _stripe(c, name, body, secret).request.headers["stripe-signature"]
    r = c.post(f"/fn/{name}", content=body.replace(b"500", b"5"), headers={"stripe-signature": tampered})
    assert r.status_code == 401
    assert kv_value(d.api, name, "event/evt_123") == "payment_intent.succeeded"


def _slack(
    c: httpx.Client, name: str, body: str, secret: str, ts: int | None = None, kind: str = "form"
) -> httpx.Response:
    ts = int(time.time()) if ts is None else ts
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    ctype = "application/x-www-form-urlencoded" if kind == "form" else "application/json"
    headers = {"x-slack-request-timestamp": str(ts), "x-slack-signature": sig, "content-type": ctype}
    return c.post(f"/fn/{name}", content=body.encode(), headers=headers)


def case_slack(d: Deployed, name: str) -> None:
    c, secret = d.http, SECRETS[name]["SLACK_SIGNING_SECRET"]
    form = urlencode({"command": "/echo", "text": "hello world", "user_name": "ada", "token": "x"})
    r = _slack(c, name, form, secret)
    assert r.status_code == 200 and r.json() == {
        "response_type": "in_channel",
        "text": "ada said: hello world",
    }
    challenge = json.dumps({"type": "url_verification", "challenge": "c-42"})
    assert _slack(c, name, challenge, secret, kind="json").json() == {"challenge": "c-42"}
    assert _slack(c, name, form, "wrong").status_code == 401
    stale = _slack(c, name, form, secret, ts=int(time.time()) - 3600)
    assert stale.status_code == 401 and "five minutes" in stale.json()["error"]
    assert c.post(f"/fn/{name}", content=form.encode()).status_code == 401


def case_cron_cleanup(d: Deployed, name: str) -> None:
    c, api = d.http, d.api
    declared = c.get(f"/fn/{name}").json()
    assert declared["schedule"] == "cleanup" and declared["expression"] == "*/15 * * * *"
    schedules = api.get(f"/api/v1/functions/{name}/cron").json()["schedules"]
    assert [s["name"] for s in schedules] == ["cleanup"]
    assert c.put(f"/fn/{name}/sessions/live").json() == {"stored": "session/live"}
    old = api.put(f"/api/v1/functions/{name}/kv/session/old", json={"value": {"seen": 1000}})
    assert old.status_code in (200, 201), old.text
    api.put(f"/api/v1/functions/{name}/kv/keep/other", json={"value": {"seen": 1}})
    assert set(kv_keys(api, name, "session/")) == {"session/live", "session/old"}
    run = api.post(f"/api/v1/functions/{name}/cron/{schedules[0]['id']}/run")
    assert run.status_code == 202, run.text
    wait_job(api, run.json()["job_id"])  # the real cron run: trigger cron, the schedule's payload
    assert kv_keys(api, name, "session/") == ["session/live"]
    assert kv_keys(api, name, "keep/") == ["keep/other"]  # outside the prefix: untouched
    assert c.post(f"/fn/{name}/run").json() == {"prefix": "session/", "scanned": 1, "deleted": 0}


def case_kv_counter(d: Deployed, name: str) -> None:
    c = d.http
    assert [c.post(f"/fn/{name}/visits").json()["value"] for _ in range(3)] == [1, 2, 3]
    values: list[int] = []

    def bump() -> None:
        with httpx.Client(base_url=d.server.url, timeout=60) as own:
            values.append(own.post(f"/fn/{name}/visits").json()["value"])

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(values) == list(range(4, 12))  # cas: no lost update, no value twice
    assert c.get(f"/fn/{name}/visits").json() == {"counter": "counter/visits", "value": 11}
    assert c.delete(f"/fn/{name}/visits").json()["existed"] is True
    assert c.get(f"/fn/{name}/visits").json()["value"] == 0


def case_url_shortener(d: Deployed, name: str) -> None:
    c = d.http
    made = c.post(f"/fn/{name}", json={"url": "https://example.com/a/long/page?x=1"})
    assert made.status_code == 201, made.text
    code = made.json()["code"]
    assert made.json()["short"] == f"/fn/{name}/{code}" and len(code) == 7
    same = c.post(f"/fn/{name}", json={"url": "https://example.com/a/long/page?x=1"})
    assert same.status_code == 200 and same.json()["code"] == code
    hop = c.get(f"/fn/{name}/{code}", follow_redirects=False)
    assert hop.status_code == 302 and hop.headers["location"] == "https://example.com/a/long/page?x=1"
    assert c.get(f"/fn/{name}/{code}/stats").json()["visits"] == 1
    assert c.post(f"/fn/{name}", json={"url": "javascript:alert(1)"}).status_code == 422
    assert c.post(f"/fn/{name}", json={"url": "not a url"}).status_code == 422
    assert c.get(f"/fn/{name}/zzzzzzz").status_code == 404


def case_llm_relay(d: Deployed, name: str, upstream: str) -> None:
    c = d.http
    events: list[str] = []
    with c.stream("POST", f"/fn/{name}", json={"prompt": "hello there orva"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(line[5:].strip())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks)
    assert text == "[gpt-4o-mini] echo: hello there orva"  # the default model, our prompt, relayed as sent
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # relayed as it comes: the first words arrive while the endpoint still holds back the rest
    arrivals: list[tuple[float, str]] = []
    with c.stream("POST", f"/fn/{name}", params={"format": "text"}, json={"prompt": "wait pause done"}) as r:
        for piece in r.iter_text():
            arrivals.append((time.monotonic(), piece))
    assert "".join(p for _, p in arrivals) == "[gpt-4o-mini] echo: wait pause done"
    before = next(t for t, p in arrivals if "pause" in p)
    assert arrivals[-1][0] - before > 0.7, arrivals
    plain = c.post(
        f"/fn/{name}",
        params={"format": "text"},
        json={
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "just text"}]
        },
    )
    assert plain.status_code == 200 and plain.text == "[gpt-4o-mini] echo: just text"
    assert plain.headers["content-type"].startswith("text/plain")
    assert c.post(f"/fn/{name}", json={"messages": [{"role": "robot"}]}).status_code == 422
    # a wrong key: the endpoint's 401 comes back as the relay's 502 with the endpoint's words
    d.api.post(f"/api/v1/functions/{name}/secrets", json={"key": "OPENAI_API_KEY", "value": "sk-wrong"})
    wrong = c.post(f"/fn/{name}", json={"prompt": "x"})
    d.api.post(f"/api/v1/functions/{name}/secrets", json={"key": "OPENAI_API_KEY", "value": LLM_KEY})
    assert wrong.status_code == 502 and "401" in wrong.json()["error"]
    assert "Incorrect API key" in wrong.json()["detail"]


def case_csv(d: Deployed, name: str) -> None:
    c = d.http
    doc = "\ufeffname,age,member,note\nada,36,true,\ngrace,45.5,false,navy\n\n"
    r = c.post(
        f"/fn/{name}", params={"types": "1"}, content=doc.encode(), headers={"content-type": "text/csv"}
    )
    assert r.json() == {
        "columns": ["name", "age", "member", "note"],
        "count": 2,
        "rows": [
            {"name": "ada", "age": 36, "member": True, "note": None},
            {"name": "grace", "age": 45.5, "member": False, "note": "navy"},
        ],
    }
    semi = c.post(f"/fn/{name}", params={"delimiter": ";"}, content=b"a;b\n1;2\n").json()
    assert semi["rows"] == [{"a": "1", "b": "2"}]
    ragged = c.post(f"/fn/{name}", content=b"a,b\n1,2\n3\n")
    assert ragged.status_code == 422 and "row 3" in ragged.json()["error"]
    assert c.post(f"/fn/{name}", content=b"").status_code == 422


def case_thumbnail(d: Deployed, name: str) -> None:
    c = d.http
    original = png(300, 200)
    r = c.post(f"/fn/{name}", params={"size": "64"}, content=original, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert png_size(r.content) == (64, 43) and r.headers["x-thumbnail-size"] == "64x43"
    assert r.headers["x-original-size"] == "300x200" and len(r.content) < len(original)
    jpeg = c.post(f"/fn/{name}", params={"size": "32", "format": "jpeg"}, content=original)
    assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:3] == b"\xff\xd8\xff"
    assert c.post(f"/fn/{name}", content=b"\x00\x01not an image\xff").status_code == 422
    assert c.post(f"/fn/{name}", params={"size": "5000"}, content=original).status_code == 400


def case_mcp_tool(d: Deployed, name: str) -> None:
    c = d.http
    stats = c.post(f"/fn/{name}", json={"text": "Hello there. How are you? Hello again.", "top": 1}).json()
    assert (
        stats["words"] == 7
        and stats["sentences"] == 3
        and stats["top_words"] == [{"word": "hello", "count": 2}]
    )
    assert c.post(f"/fn/{name}", json={"top": 1}).status_code == 422
    r = d.api.post("/api/v1/channels", json={"name": "templates-tools", "function_ids": [name]})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    tools, result = asyncio.run(_mcp_tools_and_call(d.server, token, name.replace("-", "_")))
    schema = d.manifests[name]["settings"]["input_schema"]
    assert tools[name.replace("-", "_")]["input_schema"] == schema
    assert tools[name.replace("-", "_")]["description"] == d.manifests[name]["settings"]["description"]
    assert result["words"] == 2 and result["top_words"] == [{"word": "agent", "count": 1}]


async def _mcp_tools_and_call(server: Orvad, token: str, tool: str) -> tuple[dict[str, Any], dict[str, Any]]:
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        listed = {
            t.name: {"input_schema": t.input_schema, "description": t.description}
            for t in (await session.list_tools()).tools
        }
        called = await session.call_tool(tool, {"text": "agent words", "top": 1})
        assert not called.is_error, called
        assert called.structured_content is not None
        return listed, dict(called.structured_content)


def case_fan_out(d: Deployed, name: str) -> None:
    c = d.http
    r = c.post(f"/fn/{name}", json={"targets": ["hello-python", "hello-node"], "payload": {"name": "fan"}})
    got = r.json()
    assert got["ok"] is True, got
    assert got["results"]["hello-python"]["body"] == {"hello": "fan"}
    assert got["results"]["hello-node"]["body"] == {"hello": "fan"}
    assert got["results"]["hello-python"]["status"] == 200
    # not in may_invoke: refused for that target (and the callee never runs), the other still answers
    mixed = c.post(f"/fn/{name}", json={"targets": ["hello-node", "csv-to-json-python"]}).json()
    assert mixed["ok"] is False and mixed["results"]["hello-node"]["ok"] is True
    assert mixed["results"]["csv-to-json-python"]["error"] == "FORBIDDEN"
    assert c.post(f"/fn/{name}", json={"targets": []}).status_code == 422


def case_html_page(d: Deployed, name: str) -> None:
    r = d.http.get(f"/fn/{name}", params={"name": '<script>alert("x")</script>'})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<h1>Hello, &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;!</h1>" in r.text
    assert "<script>" not in r.text and f"<code>{name}</code>" in r.text


def case_form_handler(d: Deployed, name: str) -> None:
    c, api = d.http, d.api
    form = c.get(f"/fn/{name}")
    assert form.headers["content-type"].startswith("text/html") and 'name="email"' in form.text
    stored = c.post(f"/fn/{name}", json={"name": "Ada", "email": "ada@example.com", "message": "Hi!"})
    assert stored.status_code == 201, stored.text
    key = stored.json()["stored"]
    assert kv_value(api, name, key) | {"ip": None} == {
        "name": "Ada",
        "email": "ada@example.com",
        "message": "Hi!",
        "ip": None,
    }
    browser = c.post(
        f"/fn/{name}",
        content=urlencode({"name": "Bo", "email": "bo@example.com", "message": "from a browser"}),
        headers={"content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert browser.status_code == 303 and browser.headers["location"] == "?sent=1"
    assert "Thank you" in c.get(f"/fn/{name}", params={"sent": "1"}).text
    bad = c.post(f"/fn/{name}", json={"name": "", "email": "x", "message": "m"})
    assert bad.status_code == 422 and len(bad.json()["problems"]) == 2
    bot = c.post(
        f"/fn/{name}", json={"name": "B", "email": "b@example.com", "message": "spam", "website": "x"}
    )
    assert bot.status_code == 202
    assert len(kv_keys(api, name, "submission/")) == 2  # Ada and Bo; not the bot


def case_scheduled_report(d: Deployed, name: str) -> None:
    c, api = d.http, d.api
    for kind in ("signup", "signup", "login"):
        assert c.post(f"/fn/{name}/events", json={"kind": kind}).status_code == 200
    assert c.get(f"/fn/{name}/report").status_code == 404
    queued = c.post(f"/fn/{name}/report")
    assert queued.status_code == 202, queued.text
    wait_job(api, queued.json()["job_id"])
    report = c.get(f"/fn/{name}/report").json()
    assert report["total"] == 3 and report["by_kind"] == {"login": 1, "signup": 2}
    assert report["reason"] == "requested"
    assert [s["name"] for s in api.get(f"/api/v1/functions/{name}/cron").json()["schedules"]] == [
        "daily-report"
    ]


def case_markdown(d: Deployed, name: str) -> None:
    c = d.http
    doc = "# Notes\n\nSome *emphasis* and `code`.\n\n- one\n- two\n\n<script>alert(1)</script>\n"
    r = c.post(f"/fn/{name}", content=doc.encode(), headers={"content-type": "text/markdown"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<h1 id="notes">Notes</h1>' in html or "<h1>Notes</h1>" in html, html
    assert "<em>emphasis</em>" in html and "<code>code</code>" in html and "<li>two</li>" in html
    assert (
        "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    )  # raw HTML shown as text
    page = c.post(f"/fn/{name}", params={"page": "1"}, content=doc.encode()).text
    assert page.startswith("<!doctype html>") and "<title>Notes</title>" in page
    assert c.get(f"/fn/{name}").status_code == 405


CASES: dict[str, Callable[..., None]] = {
    "markdown-render-node": case_markdown,
    "hello-python": case_hello,
    "hello-node": case_hello,
    "json-api-node": case_json_api,
    "github-webhook-python": case_github,
    "stripe-webhook-node": case_stripe,
    "slack-command-python": case_slack,
    "cron-cleanup-python": case_cron_cleanup,
    "kv-counter-python": case_kv_counter,
    "url-shortener-node": case_url_shortener,
    "llm-relay-python": case_llm_relay,
    "csv-to-json-python": case_csv,
    "image-thumbnail-python": case_thumbnail,
    "mcp-tool-node": case_mcp_tool,
    "fan-out-node": case_fan_out,
    "html-page-node": case_html_page,
    "form-handler-node": case_form_handler,
    "scheduled-report-python": case_scheduled_report,
}


def test_every_template_has_a_case() -> None:
    missing = sorted(set(catalog()) - set(CASES))
    assert not missing, f"templates without a case in tests/templates/test_templates.py: {missing}"
    assert len(catalog()) >= 16
    runtimes = [t.runtime for t in catalog().values()]
    assert abs(runtimes.count("python") - runtimes.count("node")) <= 2, runtimes


@pytest.mark.parametrize("name", sorted(catalog()))
def test_template_deploys_and_answers(deployed: Deployed, name: str, request: pytest.FixtureRequest) -> None:
    assert name in CASES, f"template {name} has no case"
    if name == "llm-relay-python":
        CASES[name](deployed, name, request.getfixturevalue("llm_upstream"))
    else:
        CASES[name](deployed, name)
    wait_for(
        lambda: bool(
            deployed.api.get("/api/v1/executions", params={"function_id": name, "limit": 1}).json()[
                "executions"
            ]
        ),
        10,
        f"an execution of {name}",
    )


def test_the_api_lists_and_serves_the_catalog(deployed: Deployed) -> None:
    server = deployed.server
    read = deployed.api.post("/api/v1/keys", json={"name": "templates-read", "permissions": ["read"]})
    assert read.status_code == 201, read.text
    with server.client(read.json()["key"]) as c:
        listed = c.get("/api/v1/templates").json()["templates"]
        assert [t["name"] for t in listed] == sorted(catalog())
        assert set(listed[0]) == {"name", "title", "description", "runtime", "tags"}
        node = c.get("/api/v1/templates", params={"runtime": "node"}).json()["templates"]
        assert node and all(t["runtime"] == "node" for t in node)
        wrong = c.get("/api/v1/templates", params={"runtime": "go"})
        assert wrong.status_code == 400 and wrong.json()["error"]["details"] == {"field": "runtime"}
        one = c.get("/api/v1/templates/github-webhook-python").json()
        assert one["entrypoint"] == "handler.py" and "hmac.compare_digest" in one["files"]["handler.py"]
        assert one["env"][0]["name"] == "GITHUB_WEBHOOK_SECRET" and one["env"][0]["secret"] is True
        thumb = c.get("/api/v1/templates/image-thumbnail-python").json()
        assert (
            thumb["dependencies_file"] == "requirements.txt"
            and "Pillow" in thumb["files"]["requirements.txt"]
        )
        missing = c.get("/api/v1/templates/no-such")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
        assert "GET /api/v1/templates" in missing.json()["error"]["hint"]
        escape = c.get("/api/v1/templates/..%2F..%2Fconfig.py")
        assert escape.status_code == 404
    assert httpx.get(f"{server.url}/api/v1/templates").status_code == 401  # no key: no catalog


def test_suite_time_of_the_deploys(deployed: Deployed) -> None:
    """Every template built and serving within the fixture's deadline; the figure goes to the notes."""
    print(f"\n{len(deployed.manifests)} templates deployed in {deployed.seconds:.1f} s")
    assert deployed.seconds < 300


def test_template_handlers_never_import_orvad() -> None:
    for template in catalog().values():
        for filename, text in template.files.items():
            assert "import orvad" not in text and "from orvad" not in text, (template.name, filename)
            assert "require('orvad" not in text, (template.name, filename)


def test_a_broken_manifest_is_refused(tmp_path: Path) -> None:
    from importlib.resources.abc import Traversable

    from orvad.templates import TemplateError, _load

    folder = tmp_path / "bad-one"
    folder.mkdir()
    (folder / "handler.py").write_text("def handler(e, c):\n    return 1\n")
    cases = [
        ({"name": "other", "title": "t", "description": "d", "runtime": "python"}, "folder's name"),
        ({"name": "bad-one", "title": "t", "description": "d", "runtime": "go"}, "runtime"),
        (
            {
                "name": "bad-one",
                "title": "t",
                "description": "d",
                "runtime": "python",
                "settings": {"csp_sandbox": False},
            },
            "settings may set only",
        ),
        (
            {
                "name": "bad-one",
                "title": "t",
                "description": "d",
                "runtime": "python",
                "env": [{"name": "ORVA_X", "description": "d"}],
            },
            "usable",
        ),
    ]
    for manifest, words in cases:
        (folder / "template.json").write_text(json.dumps(manifest))
        traversable: Traversable = folder
        with pytest.raises(TemplateError, match=words):
            _load(traversable)
    (folder / "template.json").write_text(
        json.dumps({"name": "bad-one", "title": "t", "description": "d", "runtime": "python"})
    )
    (folder / "secrets.txt").write_text("x")
    with pytest.raises(TemplateError, match="not the entry file"):
        _load(folder)
    (folder / "secrets.txt").unlink()
    (folder / "handler.py").write_text("from orvad.config import Config\n")
    with pytest.raises(TemplateError, match="never orvad"):
        _load(folder)
