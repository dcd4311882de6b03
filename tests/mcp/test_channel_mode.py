"""/mcp in channel mode, driven by the MCP SDK's own client against a real orvad: the tools a channel
token sees (names, descriptions, overrides, a declared input_schema), calls to a Python and a Node
function (JSON, text, a handler error, an error envelope, a timeout, a rate limit), api_key and signed
functions authorised by the channel and recorded with its id, expired and rotated tokens, a renamed
function taking another member's tool name, and the attacks: a tool outside the channel, a function
removed mid-session, credentials and X-Orva-* headers named by the agent."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.cli.test_cli import error_line, logged_in
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # deploys and invokes: needs nsjail, root or namespaces

PY = """
import time

def handler(event, context):
    p = event["path"]
    if p == "/raise":
        raise ValueError("boom from python")
    if p == "/text":
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "plain python words"}
    if p == "/envelope":
        return {"statusCode": 409, "body": {"error": {"code": "OUT_OF_STOCK", "message": "none left",
                                                       "hint": "order fewer"}}}
    if p == "/slow":
        time.sleep(20)
    return {"statusCode": 200, "body": {"runtime": "python", "method": event["method"], "path": p,
            "body": event["body"], "headers": event["headers"],
            "function": event["requestContext"]["functionName"], "trigger": event["requestContext"]["trigger"]}}
"""
NODE = """
exports.handler = async (event, context) => {
  const p = event.path;
  if (p === "/raise") throw new Error("boom from node");
  if (p === "/text") return { statusCode: 200, headers: { "content-type": "text/plain" }, body: "plain node words" };
  if (p === "/envelope") return { statusCode: 409, body: { error: { code: "OUT_OF_STOCK", message: "none left" } } };
  if (p === "/slow") await new Promise(r => setTimeout(r, 20000));
  return { statusCode: 200, body: { runtime: "node", method: event.method, path: p, body: event.body,
           headers: event.headers } };
};
"""
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"},
    },
}
ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
    "required": ["order_id"],
    "additionalProperties": False,
}


@dataclass
class Fns:
    tag: str
    py: str
    node: str
    keyed: str  # auth_mode api_key
    signed: str  # auth_mode signed
    limited: str  # rate_limit_per_min 2
    busy: str  # max_concurrency 1, concurrency_policy reject
    schema: str  # input_schema ORDER_SCHEMA
    outside: str  # deployed, in no channel

    def tool(self, name: str) -> str:
        return name.replace("-", "_")


def _deploy(api: httpx.Client, name: str, code: str, runtime: str = "python", **fields: Any) -> str:
    create_function(api, name, runtime, **fields)
    assert wait_deployed(api, deploy_inline(api, name, code)["id"])["status"] == "succeeded"
    return name


@pytest.fixture(scope="module")
def fns(orvad: Orvad) -> Fns:
    tag = uuid.uuid4().hex[:6]
    with orvad.admin() as api:
        return Fns(
            tag=tag,
            py=_deploy(api, f"ch-py-{tag}", PY, description="Echo the request (python)", timeout_ms=3000),
            node=_deploy(api, f"ch-node-{tag}", NODE, "node", description="Echo (node)", timeout_ms=3000),
            keyed=_deploy(api, f"ch-keyed-{tag}", PY, auth_mode="api_key"),
            signed=_deploy(api, f"ch-signed-{tag}", PY, auth_mode="signed"),
            limited=_deploy(api, f"ch-limited-{tag}", PY, rate_limit_per_min=2),
            busy=_deploy(
                api, f"ch-busy-{tag}", PY, max_concurrency=1, concurrency_policy="reject", timeout_ms=3000
            ),
            schema=_deploy(
                api, f"ch-schema-{tag}", PY, input_schema=ORDER_SCHEMA, description="Look up an order"
            ),
            outside=_deploy(api, f"ch-outside-{tag}", PY),
        )


def _channel(orvad: Orvad, functions: list[str], **extra: Any) -> tuple[str, str]:
    """(channel id, token)."""
    with orvad.admin() as api:
        r = api.post(
            "/api/v1/channels",
            json={"name": f"ch-{uuid.uuid4().hex[:8]}", "function_ids": functions, **extra},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"]), str(r.json()["token"])


@asynccontextmanager
async def _session(orvad: Orvad, token: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        streamable_http_client(f"{orvad.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _text(result: Any) -> str:
    return str(result.content[0].text)


def _raw_init(orvad: Orvad, token: str) -> httpx.Response:
    return httpx.post(f"{orvad.url}/mcp", json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {token}"})


async def test_the_tools_are_named_described_and_typed_from_the_functions(orvad: Orvad, fns: Fns) -> None:
    channel_id, token = _channel(orvad, [fns.py, fns.node, fns.schema])
    with orvad.admin() as api:
        r = api.put(
            f"/api/v1/channels/{channel_id}/functions",
            json={
                "function_ids": [fns.py, fns.node, fns.schema],
                "descriptions": {fns.node: "Node echo, described by the channel"},
            },
        )
        assert r.status_code == 200, r.text
    async with _session(orvad, token) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
    assert set(tools) == {fns.tool(fns.py), fns.tool(fns.node), fns.tool(fns.schema)}
    assert tools[fns.tool(fns.py)].description == "Echo the request (python)"
    assert tools[fns.tool(fns.node)].description == "Node echo, described by the channel"  # the override
    assert tools[fns.tool(fns.schema)].description == "Look up an order"
    default = tools[fns.tool(fns.py)].input_schema
    assert default["type"] == "object" and set(default["properties"]) == {
        "body",
        "query",
        "headers",
        "method",
        "path",
    }
    assert tools[fns.tool(fns.schema)].input_schema == ORDER_SCHEMA  # the declared one, as declared
    with orvad.admin() as api:
        assert api.get(f"/api/v1/functions/{fns.schema}").json()["input_schema"] == ORDER_SCHEMA
        assert api.get(f"/api/v1/functions/{fns.py}").json()["input_schema"] is None


async def test_python_and_node_replies_become_tool_results(orvad: Orvad, fns: Fns) -> None:
    channel_id, token = _channel(orvad, [fns.py, fns.node])
    async with _session(orvad, token) as session:
        for name, runtime in ((fns.py, "python"), (fns.node, "node")):
            tool = fns.tool(name)
            ok = await session.call_tool(tool, {"body": {"n": 1}, "query": {"q": "x"}, "method": "put"})
            assert not ok.is_error, ok
            assert ok.structured_content is not None
            assert ok.structured_content["runtime"] == runtime and ok.structured_content["method"] == "PUT"
            assert json.loads(ok.structured_content["body"]) == {"n": 1}
            assert json.loads(_text(ok)) == ok.structured_content  # JSON: the text and structuredContent

            text = await session.call_tool(tool, {"path": "/text"})
            assert not text.is_error and _text(text) == f"plain {runtime} words"
            assert text.structured_content is None

            raised = await session.call_tool(tool, {"path": "/raise"})
            assert raised.is_error
            error = raised.structured_content["error"]  # type: ignore[index]
            assert error["code"] == "FUNCTION_ERROR" and f"boom from {runtime}" in error["message"]
            assert _text(raised).startswith("FUNCTION_ERROR: ")

            envelope = await session.call_tool(tool, {"path": "/envelope"})
            assert envelope.is_error and _text(envelope).startswith("OUT_OF_STOCK: none left")
            assert envelope.structured_content["error"]["code"] == "OUT_OF_STOCK"  # type: ignore[index]

            slow = await session.call_tool(tool, {"path": "/slow"})
            assert slow.is_error and slow.structured_content["error"]["code"] == "TIMEOUT", slow  # type: ignore[index]

        # the timed-out worker is replaced: the function answers again
        again = await session.call_tool(fns.tool(fns.py), {})
        assert not again.is_error and again.structured_content["trigger"] == "mcp"  # type: ignore[index]


async def test_a_declared_input_schema_checks_the_arguments_and_sends_them_as_the_json_body(
    orvad: Orvad, fns: Fns
) -> None:
    _channel_id, token = _channel(orvad, [fns.schema])
    tool = fns.tool(fns.schema)
    async with _session(orvad, token) as session:
        ok = await session.call_tool(tool, {"order_id": "A-17", "qty": 2})
        assert not ok.is_error, ok
        seen = ok.structured_content
        assert seen is not None and seen["method"] == "POST" and seen["path"] == "/"
        assert json.loads(seen["body"]) == {"order_id": "A-17", "qty": 2}
        assert seen["headers"]["content-type"] == "application/json"
        for wrong in (
            {"qty": 2},
            {"order_id": 5},
            {"order_id": "A", "qty": 0},
            {"order_id": "A", "body": "x"},
        ):
            refused = await session.call_tool(tool, wrong)
            assert refused.is_error, wrong
            assert refused.structured_content["error"]["code"] == "VALIDATION"  # type: ignore[index]
            assert "input schema" in _text(refused) and "tools/list" in _text(refused)


def test_input_schema_is_validated_on_create_and_update(orvad: Orvad, fns: Fns) -> None:
    bad_schemas: list[Any] = [
        "object",
        ["type"],
        {"properties": {}},
        {"type": "string"},
        {"type": "object", "properties": {"a": {"type": "nonsense"}}},
        {"type": "object", "required": "order_id"},
        {"type": "object", "$schema": "https://example.com/my-schema"},
        {"type": "object", "description": "x" * 70_000},
    ]
    with orvad.admin() as api:
        for schema in bad_schemas:
            r = api.post(
                "/api/v1/functions",
                json={"name": f"ch-bad-{uuid.uuid4().hex[:6]}", "runtime": "python", "input_schema": schema},
            )
            assert r.status_code == 400, (schema, r.text)
            error = r.json()["error"]
            assert error["code"] == "VALIDATION" and error["details"]["field"] == "input_schema"
            assert "JSON Schema" in error["hint"], error
            r = api.put(f"/api/v1/functions/{fns.outside}", json={"input_schema": schema})
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "input_schema"
        assert api.get(f"/api/v1/functions/{fns.outside}").json()["input_schema"] is None  # nothing saved
        draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
        r = api.put(f"/api/v1/functions/{fns.outside}", json={"input_schema": draft7})
        assert r.status_code == 200 and r.json()["input_schema"] == draft7
        r = api.put(f"/api/v1/functions/{fns.outside}", json={"input_schema": None})
        assert r.status_code == 200 and r.json()["input_schema"] is None


async def test_api_key_and_signed_functions_run_through_the_channel_and_are_recorded_with_it(
    orvad: Orvad, fns: Fns
) -> None:
    channel_id, token = _channel(orvad, [fns.keyed, fns.signed])
    async with _session(orvad, token) as session:
        for name in (fns.keyed, fns.signed):
            result = await session.call_tool(fns.tool(name), {"body": "hi", "headers": {"x-trace": "t1"}})
            assert not result.is_error, (name, result)
            seen = result.structured_content
            assert seen is not None and seen["body"] == "hi" and seen["headers"]["x-trace"] == "t1"
            # the channel token never reaches the handler
            assert token not in json.dumps(seen) and "x-orva-api-key" not in seen["headers"]
            assert "authorization" not in seen["headers"]
    with orvad.admin() as api:
        for name in (fns.keyed, fns.signed):
            rows: list[dict[str, Any]] = []

            def recorded(fn: str = name, found: list[dict[str, Any]] = rows) -> bool:
                found[:] = api.get("/api/v1/executions", params={"function_id": fn}).json()["executions"]
                return bool(found)

            wait_for(recorded, 10, f"the execution of {name}")
            assert rows[0]["trigger"] == "mcp" and rows[0]["channel_id"] == channel_id
            assert rows[0]["status"] == "success"
            one = api.get(f"/api/v1/executions/{rows[0]['id']}").json()
            assert one["channel_id"] == channel_id
        # the functions keep their auth_mode everywhere else: /fn without a key, or with the channel token
        assert api.get(f"/api/v1/functions/{fns.keyed}").json()["auth_mode"] == "api_key"
    for headers in ({}, {"X-Orva-API-Key": token}, {"Authorization": f"Bearer {token}"}):
        r = httpx.post(f"{orvad.url}/fn/{fns.keyed}", content=b"x", headers=headers)
        assert r.status_code == 401, (headers, r.text)
        r = httpx.post(f"{orvad.url}/fn/{fns.signed}", content=b"x", headers=headers)
        assert r.status_code == 401, (headers, r.text)


async def test_the_rate_limit_applies_to_tool_calls(orvad: Orvad, fns: Fns) -> None:
    _channel_id, token = _channel(orvad, [fns.limited])
    async with _session(orvad, token) as session:
        results = [await session.call_tool(fns.tool(fns.limited), {}) for _ in range(3)]
    assert [r.is_error for r in results] == [False, False, True], results
    error = results[2].structured_content["error"]  # type: ignore[index]
    assert error["code"] == "RATE_LIMITED" and "rate_limit_per_min" in error["hint"]


async def test_expired_and_rotated_tokens_are_401(orvad: Orvad, fns: Fns) -> None:
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _cid, expiring = _channel(orvad, [fns.py], expires_at=soon)
    assert _raw_init(orvad, expiring).status_code == 200
    wait_for(lambda: _raw_init(orvad, expiring).status_code == 401, 10, "the channel token to expire")
    r = _raw_init(orvad, expiring)
    assert r.json()["error"]["code"] == "UNAUTHORIZED" and "expired" in r.json()["error"]["message"]
    assert "resource_metadata" in r.headers["www-authenticate"]

    channel_id, old = _channel(orvad, [fns.py])
    async with _session(orvad, old) as session:
        assert (await session.list_tools()).tools
        with orvad.admin() as api:
            rotated = api.post(f"/api/v1/channels/{channel_id}/rotate")
            assert rotated.status_code == 200, rotated.text
            new = rotated.json()["token"]
        # the open session's token is dead at once: every request is authenticated again
        opened = _raw_init(orvad, old)
        assert opened.status_code == 401
    async with _session(orvad, new) as session:
        assert [t.name for t in (await session.list_tools()).tools] == [fns.tool(fns.py)]


async def test_a_renamed_function_that_takes_another_members_tool_name_is_listed_with_a_suffix(
    orvad: Orvad, fns: Fns
) -> None:
    older, newer = f"ren-{fns.tag}", f"ren-new-{fns.tag}"
    with orvad.admin() as api:
        _deploy(api, older, PY)
        newer_id = create_function(api, newer)["id"]
        assert wait_deployed(api, deploy_inline(api, newer, PY)["id"])["status"] == "succeeded"
        channel_id, token = _channel(orvad, [older, newer])
        renamed = f"ren_{fns.tag}"  # the same tool name as older's
        assert api.put(f"/api/v1/functions/{newer}", json={"name": renamed}).status_code == 200
    suffixed = f"ren_{fns.tag}_{newer_id.replace('-', '')[-6:]}"
    async with _session(orvad, token) as session:
        names = [t.name for t in (await session.list_tools()).tools]
        assert names == [f"ren_{fns.tag}", suffixed]
        assert (await session.list_tools()).tools[1].name == suffixed  # stable
        first = await session.call_tool(f"ren_{fns.tag}", {})
        second = await session.call_tool(suffixed, {})
    assert first.structured_content["function"] == older  # type: ignore[index]
    assert second.structured_content["function"] == renamed  # type: ignore[index]
    with orvad.admin() as api:  # the next change of the set asks the operator to resolve it
        r = api.put(f"/api/v1/channels/{channel_id}/functions", json={"function_ids": [older, renamed]})
        assert r.status_code == 400 and r.json()["error"]["code"] == "TOOL_NAME_COLLISION"


async def test_a_channel_reaches_only_its_own_functions_even_mid_session(orvad: Orvad, fns: Fns) -> None:
    channel_id, token = _channel(orvad, [fns.py, fns.node])
    async with _session(orvad, token) as session:
        for name in (fns.tool(fns.outside), fns.outside, fns.tool(fns.keyed), "list_functions", "../x"):
            refused = await session.call_tool(name, {})
            assert refused.is_error and refused.structured_content["error"]["code"] == "NOT_FOUND", name  # type: ignore[index]
        assert not (await session.call_tool(fns.tool(fns.py), {})).is_error
        with orvad.admin() as api:  # the operator takes py out of the channel while the session is open
            r = api.put(f"/api/v1/channels/{channel_id}/functions", json={"function_ids": [fns.node]})
            assert r.status_code == 200, r.text
        assert [t.name for t in (await session.list_tools()).tools] == [fns.tool(fns.node)]
        gone = await session.call_tool(fns.tool(fns.py), {})
        assert gone.is_error and gone.structured_content["error"]["code"] == "NOT_FOUND"  # type: ignore[index]


async def test_headers_the_agent_names_cannot_carry_credentials_or_orva_headers(
    orvad: Orvad, fns: Fns
) -> None:
    _channel_id, token = _channel(orvad, [fns.py])
    smuggled = {
        "Authorization": f"Bearer {orvad.admin_key}",
        "X-Orva-API-Key": orvad.admin_key,
        "Proxy-Authorization": "Basic eDp5",
        "Cookie": "orva_session=stolen; theme=dark",
        "X-Orva-Signature": "sha256=" + "0" * 64,
        "X-Orva-Timestamp": "1",
        "X-Orva-Execution-Id": "forged",
        "X-Forwarded-For": "203.0.113.9",
        "X-Real-IP": "203.0.113.9",
        "Host": "evil.example",
        "Content-Length": "99",
        "X-Trace": "kept",
    }
    async with _session(orvad, token) as session:
        result = await session.call_tool(fns.tool(fns.py), {"headers": smuggled, "body": "b"})
        assert not result.is_error, result
        seen = result.structured_content["headers"]  # type: ignore[index]
        assert seen["x-trace"] == "kept"
        leaked = {
            k
            for k in seen
            if k.startswith("x-orva-")
            or k in ("authorization", "proxy-authorization", "cookie", "x-forwarded-for", "x-real-ip")
        }
        assert not leaked, seen
        assert seen.get("host") != "evil.example" and seen.get("content-length") != "99"
        dump = json.dumps(seen)
        assert orvad.admin_key not in dump and token not in dump and "stolen" not in dump
        for broken in ({"X-Bad": "a\r\nInjected: 1"}, {"Bad Name": "x"}, {"x": "\u20ac"}, {"x": 5}):
            refused = await session.call_tool(fns.tool(fns.py), {"headers": broken})
            assert refused.is_error and refused.structured_content["error"]["code"] == "VALIDATION", broken  # type: ignore[index]


def test_the_cli_sets_and_drops_an_input_schema(orvad: Orvad, tmp_path: Path) -> None:
    name = f"ch-cli-{uuid.uuid4().hex[:6]}"
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(ORDER_SCHEMA))
    with logged_in(orvad, tmp_path / "home", "ch-cli-") as cli:
        made = cli.json(
            "functions", "create", name, "--runtime", "python", "--input-schema", str(schema_file)
        )
        assert made["input_schema"] == ORDER_SCHEMA
        assert "order_id" in cli.ok("functions", "get", name).stdout
        (tmp_path / "bad.json").write_text('{"type": "string"}')
        refused = cli.run("functions", "update", name, "--input-schema", str(tmp_path / "bad.json"))
        assert refused.returncode != 0 and "input_schema" in error_line(refused.stderr, "VALIDATION")
        (tmp_path / "broken.json").write_text("{not json")
        broken = cli.run("functions", "update", name, "--input-schema", str(tmp_path / "broken.json"))
        assert broken.returncode == 2 and "is not JSON" in broken.stderr
        both = cli.run("functions", "update", name, "--input-schema", str(schema_file), "--no-input-schema")
        assert both.returncode == 2 and "one of --input-schema and --no-input-schema" in both.stderr
        from_stdin = cli.run(
            "functions", "update", name, "--input-schema", "-", "--json", input='{"type": "object"}'
        )
        assert from_stdin.returncode == 0 and json.loads(from_stdin.stdout)["input_schema"] == {
            "type": "object"
        }
        assert cli.json("functions", "update", name, "--no-input-schema")["input_schema"] is None


async def test_max_concurrency_applies_to_tool_calls(orvad: Orvad, fns: Fns) -> None:
    """One call holds the only slot (a handler that runs to its timeout); meanwhile another is refused."""
    _channel_id, token = _channel(orvad, [fns.busy])
    tool = fns.tool(fns.busy)
    async with _session(orvad, token) as holder, _session(orvad, token) as other:
        held = asyncio.create_task(holder.call_tool(tool, {"path": "/slow"}))
        refusals = []
        while not held.done() and not refusals:
            result = await other.call_tool(tool, {})
            if result.is_error:
                refusals.append(result.structured_content["error"])  # type: ignore[index]
        assert (await held).structured_content["error"]["code"] == "TIMEOUT"  # type: ignore[index]
    assert refusals and refusals[0]["code"] == "FUNCTION_BUSY", refusals


async def test_a_schema_ref_is_never_fetched(orvad: Orvad, fns: Fns) -> None:
    """A declared input_schema may $ref a URL: orvad never fetches it (no requests from orvad to a URL an
    owner names); the call is a VALIDATION error result telling the owner to fix the schema."""
    hits: list[str] = []

    class Count(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = b'{"type": "string"}'
            self.send_response(200)
            self.send_header("content-type", "application/schema+json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Count)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        name = f"ch-ref-{fns.tag}"
        url = f"http://127.0.0.1:{server.server_address[1]}/order-id.json"
        schema = {"type": "object", "properties": {"order_id": {"$ref": url}}}
        with orvad.admin() as api:
            _deploy(api, name, PY, input_schema=schema)
        _channel_id, token = _channel(orvad, [name])
        async with _session(orvad, token) as session:
            refused = await session.call_tool(fns.tool(name), {"order_id": "A-1"})
        assert refused.is_error, refused
        error = refused.structured_content["error"]  # type: ignore[index]
        assert error["code"] == "VALIDATION" and "cannot be applied" in error["message"]
        assert "PUT /api/v1/functions/" in error["hint"]
        assert hits == []
    finally:
        server.shutdown()
        server.server_close()
