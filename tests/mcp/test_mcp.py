"""/mcp in operator mode, driven by the MCP SDK's own client against a real orvad: the handshake, the
tool list per key permission, invoke_function on a deployed Python function, the 401 that points at
the protected-resource metadata, a foreign Origin refused, and DELETE ending a session."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # deploys and invokes: needs nsjail, root or namespaces

HANDLER = """
def handler(event, context):
    if event["path"] == "/raise":
        raise ValueError("boom from the handler")
    if event["path"] == "/text":
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "plain words"}
    print("seen", event["requestContext"]["trigger"])
    return {"statusCode": 200, "body": {"got": event["body"], "method": event["method"]}}
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


def _key(orvad: Orvad, *permissions: str) -> str:
    with orvad.admin() as api:
        r = api.post(
            "/api/v1/keys", json={"name": f"mcp-{uuid.uuid4().hex[:8]}", "permissions": list(permissions)}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["key"])


@asynccontextmanager
async def _session(orvad: Orvad, key: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        streamable_http_client(f"{orvad.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@pytest.fixture(scope="module")
def deployed(orvad: Orvad) -> str:
    name = f"mcp-tool-{uuid.uuid4().hex[:6]}"
    with orvad.admin() as api:
        create_function(api, name)
        assert wait_deployed(api, deploy_inline(api, name, HANDLER)["id"])["status"] == "succeeded"
    return name


async def test_the_tools_a_key_sees_follow_its_permissions(orvad: Orvad) -> None:
    async with _session(orvad, _key(orvad, "read")) as session:
        assert session.initialize_result is not None if hasattr(session, "initialize_result") else True
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"list_functions", "get_function", "list_executions", "get_execution_logs", "health"} <= names
        assert "invoke_function" not in names
        # calling it anyway is an error result naming the permission, not a crash
        refused = await session.call_tool("invoke_function", {"function": "x"})
        assert refused.is_error and "FORBIDDEN" in refused.content[0].text  # type: ignore[union-attr]
        health = await session.call_tool("health", {})
        assert not health.is_error and health.structured_content["status"] in ("ok", "unhealthy")
    async with _session(orvad, _key(orvad, "invoke", "read")) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert "invoke_function" in tools
        assert tools["invoke_function"].input_schema["required"] == ["function"]


async def test_invoke_function_returns_the_reply_and_errors_as_error_results(
    orvad: Orvad, deployed: str
) -> None:
    async with _session(orvad, _key(orvad, "invoke", "read")) as session:
        result = await session.call_tool("invoke_function", {"function": deployed, "body": {"n": 2}})
        assert not result.is_error, result
        assert result.structured_content == {"got": '{"n": 2}', "method": "POST"}
        assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]

        text = await session.call_tool("invoke_function", {"function": deployed, "path": "/text"})
        assert not text.is_error and text.content[0].text == "plain words"  # type: ignore[union-attr]
        assert text.structured_content is None

        failed = await session.call_tool("invoke_function", {"function": deployed, "path": "/raise"})
        assert failed.is_error
        error = failed.structured_content["error"]
        assert error["code"] == "FUNCTION_ERROR" and "boom from the handler" in error["message"]

        missing = await session.call_tool("get_function", {"function": "no-such-function-here"})
        assert missing.is_error and missing.structured_content["error"]["code"] == "NOT_FOUND"

        # the execution is recorded with trigger mcp, and its logs are a tool away
        listed = await session.call_tool("list_executions", {"function": deployed, "limit": 5})
        rows = listed.structured_content["executions"]
        assert rows and all(r["trigger"] == "mcp" for r in rows)
        ok = next(r for r in rows if r["status"] == "success" and r["path"] == "/")
        logs = await session.call_tool("get_execution_logs", {"execution_id": ok["id"]})
        assert logs.structured_content["logs"] == "seen mcp\n"


def test_no_or_a_bad_credential_is_401_pointing_at_the_metadata(orvad: Orvad) -> None:
    for headers in ({}, {"Authorization": "Bearer orva_" + "0" * 64}, {"X-Orva-API-Key": "nonsense"}):
        r = httpx.post(f"{orvad.url}/mcp", json=INIT, headers={**ACCEPT, **headers})
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == (
            f'Bearer resource_metadata="{orvad.url}/.well-known/oauth-protected-resource"'
        )
        assert r.json()["error"]["code"] == "UNAUTHORIZED"


def test_a_foreign_origin_is_refused_and_our_own_is_served(orvad: Orvad) -> None:
    key = _key(orvad, "read")
    auth = {**ACCEPT, "X-Orva-API-Key": key}
    for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example"):
        r = httpx.post(f"{orvad.url}/mcp", json=INIT, headers={**auth, "Origin": origin})
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", (origin, r.text)
    r = httpx.post(f"{orvad.url}/mcp", json=INIT, headers={**auth, "Origin": orvad.url})
    assert r.status_code == 200, r.text
    httpx.delete(f"{orvad.url}/mcp", headers={**auth, "Mcp-Session-Id": r.headers["mcp-session-id"]})


def _rpc(orvad: Orvad, headers: dict[str, str], body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{orvad.url}/mcp", json=body, headers=headers)


def test_delete_ends_the_session_and_a_session_is_bound_to_its_key(orvad: Orvad) -> None:
    key = _key(orvad, "read")
    headers = {**ACCEPT, "X-Orva-API-Key": key}
    opened = _rpc(orvad, headers, INIT)
    assert opened.status_code == 200, opened.text
    sid = opened.headers["mcp-session-id"]
    session = {**headers, "Mcp-Session-Id": sid, "Mcp-Protocol-Version": "2025-06-18"}
    assert _rpc(orvad, session, {"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code == 202
    listing = _rpc(orvad, session, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert listing.status_code == 200 and "list_functions" in listing.text

    # another key may not use this session
    other = {**session, "X-Orva-API-Key": _key(orvad, "read")}
    assert _rpc(orvad, other, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}).status_code == 404

    assert httpx.delete(f"{orvad.url}/mcp", headers=session).status_code == 200
    assert _rpc(orvad, session, {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}).status_code == 404


def test_the_body_cap_holds_and_a_stop_with_an_open_session_is_clean(make_orvad: Any) -> None:
    """Over ORVA_MAX_BODY_BYTES: 413 envelope. SIGTERM with a session's GET stream open: the stream
    ends and orvad exits 0 within the drain (regression: the SDK's task group leaked a CancelledError)."""
    server: Orvad = make_orvad(env={"ORVA_MAX_BODY_BYTES": "65536"})
    headers = {**ACCEPT, "X-Orva-API-Key": server.admin_key}
    opened = httpx.post(f"{server.url}/mcp", json=INIT, headers=headers)
    session = {
        **headers,
        "Mcp-Session-Id": opened.headers["mcp-session-id"],
        "Mcp-Protocol-Version": "2025-06-18",
    }
    notified = httpx.post(
        f"{server.url}/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session
    )
    assert notified.status_code == 202

    big = httpx.post(f"{server.url}/mcp", content=b'{"x": "' + b"a" * 70_000 + b'"}', headers=session)
    assert big.status_code == 413 and big.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    stream_open = threading.Event()
    ended: list[str] = []

    def listen() -> None:
        try:
            with httpx.stream(
                "GET", f"{server.url}/mcp", headers={**session, "Accept": "text/event-stream"}, timeout=60
            ) as s:
                assert s.status_code == 200
                stream_open.set()
                for _ in s.iter_lines():
                    pass
            ended.append("closed")
        except httpx.HTTPError as exc:
            ended.append(type(exc).__name__)

    listener = threading.Thread(target=listen)
    listener.start()
    assert stream_open.wait(10), "the session's GET stream did not open"
    assert server.stop(timeout_s=15) == 0, server.stderr()[-3000:]
    listener.join(10)
    assert ended and "Traceback" not in server.stderr()


async def test_a_channel_token_sees_one_tool_per_bundled_function_and_invokes_it(
    orvad: Orvad, deployed: str
) -> None:
    with orvad.admin() as api:
        made = api.post(
            "/api/v1/channels", json={"name": f"ch-{uuid.uuid4().hex[:6]}", "function_ids": [deployed]}
        )
        assert made.status_code == 201, made.text
        token = made.json()["token"]
    async with _session(orvad, token) as session:
        listed = (await session.list_tools()).tools
        assert [t.name for t in listed] == [deployed.replace("-", "_")]
        assert set(listed[0].input_schema["properties"]) == {"body", "query", "headers", "method", "path"}
        result = await session.call_tool(listed[0].name, {"body": {"n": 3}})
        assert not result.is_error and result.structured_content == {"got": '{"n": 3}', "method": "POST"}
        assert (await session.call_tool("list_functions", {})).is_error  # no management in channel mode
    r = httpx.post(f"{orvad.url}/mcp", json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {token}x"})
    assert r.status_code == 401


async def test_a_destructive_tool_needs_confirm_true(orvad: Orvad) -> None:
    name = f"mcp-doomed-{uuid.uuid4().hex[:6]}"
    with orvad.admin() as api:
        create_function(api, name)
    async with _session(orvad, _key(orvad, "read", "write")) as session:
        tool = next(t for t in (await session.list_tools()).tools if t.name == "delete_function")
        assert tool.input_schema["required"] == ["function", "confirm"] and "confirm: true" in (
            tool.description or ""
        )
        assert tool.annotations is not None and tool.annotations.destructive_hint
        refused = await session.call_tool("delete_function", {"function": name})
        assert refused.is_error and refused.structured_content["error"]["code"] == "VALIDATION"
        with orvad.admin() as api:
            assert api.get(f"/api/v1/functions/{name}").status_code == 200
        done = await session.call_tool("delete_function", {"function": name, "confirm": True})
        assert not done.is_error and done.structured_content["deleted"] is True
        with orvad.admin() as api:
            assert api.get(f"/api/v1/functions/{name}").status_code == 404
