"""End to end through HTTP for both runtimes: the handler contract, routes, gates and failures."""

from __future__ import annotations

import threading

import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

HANDLERS = {
    "python": """
import asyncio, base64, sys, logging
print("module init")

async def handler(event, context):
    p = event["path"]
    if p == "/echo":
        return {"event": event, "remaining": context.get_remaining_time_in_millis(), "rid": context.aws_request_id}
    if p == "/binary":
        raw = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
        return raw
    if p == "/cookies":
        return {"statusCode": 201, "headers": {"Set-Cookie": ["a=1", "b=2"], "X-Mine": "yes"}, "body": "made"}
    if p == "/text":
        return "plain text"
    if p == "/list":
        return [1, 2, 3]
    if p == "/none":
        return None
    if p == "/raise":
        raise ValueError("boom from the handler")
    if p == "/log":
        n = event["query"]["n"]
        print("start", n)
        await asyncio.sleep(0.2)
        sys.stderr.write("end " + n + "\\n")
        logging.getLogger().warning("warn %s", n)
        return n
    if p == "/slow":
        await asyncio.sleep(float(event["query"].get("s", "5")))
        return "late"
    if p == "/crash":
        import os
        os._exit(3)
    if p == "/stream":
        async def gen():
            yield {"statusCode": 206, "headers": {"content-type": "text/plain"}}
            for i in range(3):
                yield f"part{i};"
        return gen()
    return {"path": p}
""",
    "node": """
console.log("module init");
exports.handler = async (event, context) => {
  const p = event.path;
  if (p === "/echo") return { event, remaining: context.getRemainingTimeInMillis(), rid: context.awsRequestId };
  if (p === "/binary") return event.isBase64Encoded ? Buffer.from(event.body, "base64") : Buffer.from(event.body);
  if (p === "/cookies") return { statusCode: 201, headers: { "Set-Cookie": ["a=1", "b=2"], "X-Mine": "yes" }, body: "made" };
  if (p === "/text") return "plain text";
  if (p === "/list") return [1, 2, 3];
  if (p === "/none") return null;
  if (p === "/raise") throw new Error("boom from the handler");
  if (p === "/log") {
    const n = event.query.n;
    console.log("start", n);
    await new Promise(r => setTimeout(r, 200));
    console.error("end " + n);
    console.warn("warn " + n);
    return n;
  }
  if (p === "/slow") { await new Promise(r => setTimeout(r, Number(event.query.s || 5) * 1000)); return "late"; }
  if (p === "/crash") process.exit(3);
  if (p === "/stream") {
    return (async function* () {
      yield { statusCode: 206, headers: { "content-type": "text/plain" } };
      for (let i = 0; i < 3; i++) yield `part${i};`;
    })();
  }
  return { path: p };
};
""",
}


@pytest.fixture(scope="module", params=["python", "node"])
def deployed(request: pytest.FixtureRequest, orvad: Orvad) -> dict:
    runtime = request.param
    with orvad.admin() as c:
        fn = create_function(c, f"contract-{runtime}", runtime, timeout_ms=3000)
        c.put("/api/v1/pool/config", json={"function_id": fn["id"], "target_concurrency": 4, "max_warm": 2})
        dep = wait_deployed(c, deploy_inline(c, fn["id"], HANDLERS[runtime])["id"])
        assert dep["status"] == "succeeded", dep
    return fn


def test_event_fields_and_lambda_aliases(orvad: Orvad, deployed: dict) -> None:
    with orvad.client(headers={"X-Orva-API-Key": orvad.admin_key}) as c:
        r = c.post(
            f"/fn/{deployed['name']}/echo?a=1&a=2&b=x",
            content=b'{"k": "v"}',
            headers={"X-Custom": "one", "Cookie": "session_token=secret; theme=dark"},
        )
    assert r.status_code == 200, r.text
    body = r.json()
    event = body["event"]
    assert event["method"] == event["httpMethod"] == "POST"
    assert event["path"] == event["rawPath"] == "/echo"
    assert event["query"] == {"a": "2", "b": "x"} and event["multiQuery"] == {"a": ["1", "2"], "b": ["x"]}
    assert event["rawQuery"] == event["rawQueryString"] == "a=1&a=2&b=x"
    assert event["headers"]["x-custom"] == "one" and "x-orva-api-key" not in event["headers"]
    assert event["headers"]["cookie"] == "theme=dark"
    assert event["body"] == '{"k": "v"}' and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["functionId"] == deployed["id"] and ctx["functionName"] == deployed["name"]
    assert (
        ctx["executionId"] == r.headers["x-orva-execution-id"]
        and ctx["requestId"] == r.headers["x-request-id"]
    )
    assert ctx["http"]["method"] == "POST" and ctx["trigger"] == "http"
    assert 0 < body["remaining"] <= 3000 and body["rid"] == ctx["requestId"]
    assert r.headers["x-orva-cold-start"] in ("true", "false") and float(r.headers["x-orva-duration-ms"]) > 0


def test_plain_values_binary_and_multi_value_headers(orvad: Orvad, deployed: dict) -> None:
    base = f"/fn/{deployed['id']}"
    with orvad.client() as c:
        text = c.get(f"{base}/text")
        assert text.text == "plain text" and text.headers["content-type"].startswith("text/plain")
        assert c.get(f"{base}/list").json() == [1, 2, 3]
        assert c.get(f"{base}/none").json() is None
        blob = bytes(range(256)) * 4
        binary = c.post(f"{base}/binary", content=blob)
        assert binary.content == blob and binary.headers["content-type"] == "application/octet-stream"
        cookies = c.get(f"{base}/cookies")
        assert cookies.status_code == 201 and cookies.text == "made" and cookies.headers["x-mine"] == "yes"
        # sandboxed on the dashboard's origin a reply sets no cookie at all (docs/API.md); trusted, a list
        # value becomes repeated headers
        assert cookies.headers.get_list("set-cookie") == []
        with orvad.admin() as admin:
            assert (
                admin.put(f"/api/v1/functions/{deployed['id']}", json={"csp_sandbox": False}).status_code
                == 200
            )
            try:
                assert c.get(f"{base}/cookies").headers.get_list("set-cookie") == ["a=1", "b=2"]
            finally:
                admin.put(f"/api/v1/functions/{deployed['id']}", json={"csp_sandbox": True})
        assert c.get(f"{base}").json() == {"path": "/"}


def test_streaming(orvad: Orvad, deployed: dict) -> None:
    with orvad.client() as c, c.stream("GET", f"/fn/{deployed['id']}/stream") as r:
        assert r.status_code == 206 and r.headers["content-type"] == "text/plain"
        assert "content-length" not in r.headers
        assert r.read() == b"part0;part1;part2;"


def test_exception_is_function_error_with_traceback_in_logs(orvad: Orvad, deployed: dict) -> None:
    with orvad.admin() as c:
        r = c.get(f"/fn/{deployed['id']}/raise")
        assert r.status_code == 500
        err = r.json()["error"]
        assert err["code"] == "FUNCTION_ERROR" and "boom from the handler" in err["message"]
        assert "Traceback" not in r.text and "at " not in err["message"]
        execution_id = err["details"]["execution_id"]

        def logged() -> bool:
            return c.get(f"/api/v1/executions/{execution_id}/logs").status_code == 200

        wait_for(logged, 5, "execution logs")
        logs = c.get(f"/api/v1/executions/{execution_id}/logs").json()["logs"]
        assert "boom from the handler" in logs and ("Traceback" in logs or "Error:" in logs)
        row = c.get(f"/api/v1/executions/{execution_id}").json()
        assert (
            row["status"] == "error" and row["status_code"] == 500 and row["error_code"] == "FUNCTION_ERROR"
        )


def test_concurrent_requests_keep_their_logs_apart(orvad: Orvad, deployed: dict) -> None:
    ids: dict[str, str] = {}

    def call(n: str) -> None:
        with orvad.client() as c:
            r = c.get(f"/fn/{deployed['id']}/log", params={"n": n})
            assert r.status_code == 200
            ids[n] = r.headers["x-orva-execution-id"]

    threads = [threading.Thread(target=call, args=(str(i),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(ids) == 4
    with orvad.admin() as c:
        for n, execution_id in ids.items():
            wait_for(
                lambda eid=execution_id: c.get(f"/api/v1/executions/{eid}/logs").status_code == 200, 5, "logs"
            )
            logs = c.get(f"/api/v1/executions/{execution_id}/logs").json()["logs"]
            assert f"start {n}" in logs and f"end {n}" in logs and f"warn {n}" in logs
            others = [m for m in ids if m != n]
            assert not any(f"start {m}\n" in logs or f"end {m}\n" in logs for m in others), logs


def test_second_call_is_warm(orvad: Orvad, deployed: dict) -> None:
    with orvad.client() as c:
        c.get(f"/fn/{deployed['id']}/text")
        assert c.get(f"/fn/{deployed['id']}/text").headers["x-orva-cold-start"] == "false"


def test_timeout_and_crash_replace_the_worker(orvad: Orvad, deployed: dict) -> None:
    with orvad.client() as c:
        slow = c.get(f"/fn/{deployed['id']}/slow", params={"s": "10"})
        assert slow.status_code == 504 and slow.json()["error"]["code"] == "TIMEOUT"
        crash = c.get(f"/fn/{deployed['id']}/crash")
        assert crash.status_code == 502 and crash.json()["error"]["code"] == "WORKER_CRASHED"
        assert "exited with code 3" in crash.json()["error"]["message"]
        assert c.get(f"/fn/{deployed['id']}/text").text == "plain text"  # a fresh worker serves


def test_import_error_fails_the_build(orvad: Orvad) -> None:
    # (issue 18.5: the import check fails the build; the adapter's first-request report is in test_runtime_contract)
    with orvad.admin() as c:
        for runtime, code in (
            ("python", "import no_such_module_here\n"),
            ("node", "require('no-such-module-here');\n"),
        ):
            fn = create_function(c, f"broken-{runtime}", runtime)
            record = wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
            assert record["status"] == "failed"
            assert (
                "no_such_module_here" in record["error_message"]
                or "no-such-module-here" in record["error_message"]
            )
            r = c.get(f"/fn/{fn['id']}/")
            assert r.status_code == 409 and r.json()["error"]["code"] == "NOT_ACTIVE"


def test_gates_and_errors(orvad: Orvad) -> None:
    with orvad.admin() as c:
        assert c.get("/fn/no-such-function").status_code == 404
        fn = create_function(c, "gated-fn")
        r = c.get(f"/fn/{fn['id']}")  # never deployed (issue 18.10; a running first build is BUILDING)
        assert r.status_code == 409 and r.json()["error"]["code"] == "NOT_DEPLOYED"
        wait_deployed(c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return 'ok'\n")["id"])
        assert c.get(f"/fn/{fn['id']}").text == "ok"
        c.put(f"/api/v1/functions/{fn['id']}", json={"status": "inactive"})
        r = c.get(f"/fn/{fn['id']}")
        assert r.status_code == 409 and r.json()["error"]["code"] == "NOT_ACTIVE"
        c.put(f"/api/v1/functions/{fn['id']}", json={"status": "active"})
        assert c.get(f"/fn/{fn['id']}").text == "ok"
        big = c.post(f"/fn/{fn['id']}", content=b"x" * (6 * 1024 * 1024 + 10))
        assert big.status_code == 413 and big.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_custom_routes(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "routed-invoke")
        wait_deployed(
            c,
            deploy_inline(
                c, fn["id"], "def handler(e, c):\n    return {'path': e['path'], 'm': e['method']}\n"
            )["id"],
        )
        assert (
            c.post(
                "/api/v1/routes", json={"path": "/hooks/pay", "function_id": fn["id"], "methods": "POST"}
            ).status_code
            == 201
        )
        assert c.post("/api/v1/routes", json={"path": "/shop/*", "function_id": fn["id"]}).status_code == 201
    with orvad.client() as c:
        assert c.post("/hooks/pay").json() == {"path": "/", "m": "POST"}
        wrong = c.get("/hooks/pay")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
        assert c.get("/shop/cart/1").json() == {"path": "/cart/1", "m": "GET"}
        assert c.get("/shop").json()["path"] == "/"
        assert c.get("/nowhere").status_code == 404
    with orvad.admin() as c:
        c.delete("/api/v1/routes", params={"path": "/shop/*"})
    with orvad.client() as c:
        assert c.get("/shop/cart/1").status_code == 404


def test_api_key_auth_mode(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "keyed-fn", auth_mode="api_key")
        wait_deployed(c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return 'secret stuff'\n")["id"])
        reader = c.post("/api/v1/keys", json={"name": "r", "permissions": ["read"]}).json()["key"]
        invoker = c.post("/api/v1/keys", json={"name": "i", "permissions": ["invoke"]}).json()["key"]
    with orvad.client() as c:
        assert c.get(f"/fn/{fn['id']}").status_code == 401
        assert c.get(f"/fn/{fn['id']}", headers={"X-Orva-API-Key": reader}).status_code == 403
        assert c.get(f"/fn/{fn['id']}", headers={"Authorization": f"Bearer {invoker}"}).text == "secret stuff"


def test_executions_are_listed_with_their_fields(orvad: Orvad, deployed: dict) -> None:
    with orvad.client() as c:
        execution_id = c.get(f"/fn/{deployed['id']}/text").headers["x-orva-execution-id"]
    with orvad.admin() as c:
        wait_for(lambda: c.get(f"/api/v1/executions/{execution_id}").status_code == 200, 5, "execution row")
        row = c.get(f"/api/v1/executions/{execution_id}").json()
        assert {
            "id",
            "function_id",
            "function_name",
            "code_hash",
            "trigger",
            "method",
            "path",
            "status",
            "status_code",
            "cold_start",
            "duration_ms",
            "queue_ms",
            "request_bytes",
            "response_bytes",
            "error_code",
            "error_message",
            "started_at",
            "finished_at",
        } <= set(row)
        assert (row["status"], row["status_code"], row["path"], row["response_bytes"]) == (
            "success",
            200,
            "/text",
            10,
        )
        listed = c.get(
            "/api/v1/executions", params={"function_id": deployed["name"], "status": "success"}
        ).json()
        assert listed["executions"] and all(e["function_id"] == deployed["id"] for e in listed["executions"])
        assert c.get("/api/v1/executions", params={"status": "weird"}).status_code == 400
