"""Operator mode's whole catalog at /mcp, through the MCP SDK's own client against the shared real orvad:
the tools a key sees follow its permissions, a function's life through tools only (create, deploy inline,
build status and log, invoke, executions and logs, a files-map deploy, diff, rollback, source, secrets,
routes, pool settings, delete), keys and channels (admin), docs, metrics and health, bad arguments as
error results, destructive tools without confirm refused, every call an audit-log row, and clients of
older protocol revisions served."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from mcp.client.session import ClientSession

from orvad.mcp.tools import BY_NAME, TOOLS
from tests.helpers import Orvad
from tests.mcp.test_mcp import ACCEPT, _key, _session

pytestmark = pytest.mark.sandbox  # deploys and invokes: needs nsjail, root or namespaces

V1 = """
import os

def handler(event, context):
    print("v1 ran")
    return {"statusCode": 200, "body": {"v": 1, "has_secret": "API_TOKEN" in os.environ}}
"""
V2_FILES = {
    "handler.py": "from lib import answer\n\ndef handler(event, context):\n    return {'v': answer()}\n",
    "lib.py": "def answer():\n    return 2\n",
}
SECRET_VALUE = "s3cr3t-value-" + uuid.uuid4().hex


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def _ok(session: ClientSession, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """A tool call that must succeed; its structured answer."""
    result = await session.call_tool(tool, args)
    assert not result.is_error, (tool, result.content)
    if result.structured_content is not None:
        assert json.loads(result.content[0].text) == result.structured_content  # type: ignore[union-attr]
        return result.structured_content
    return {"text": result.content[0].text}  # type: ignore[union-attr]


async def _refused(session: ClientSession, tool: str, args: dict[str, Any], code: str) -> dict[str, Any]:
    """A tool call that must be an error result with ``code``, a message and a hint; the error."""
    result = await session.call_tool(tool, args)
    assert result.is_error, (tool, result.content)
    error = result.structured_content["error"]
    assert error["code"] == code, error
    assert error["message"] and error.get("hint"), error
    text = result.content[0].text  # type: ignore[union-attr]
    assert text.startswith(f"{code}: ") and "(hint: " in text
    return dict(error)


async def _until_built(session: ClientSession, deployment_id: str, deadline_s: float = 120) -> dict[str, Any]:
    end = time.monotonic() + deadline_s
    while True:
        dep = await _ok(session, "get_deployment", {"deployment_id": deployment_id})
        if dep["status"] in ("succeeded", "failed", "superseded"):
            return dep
        assert time.monotonic() < end, f"deployment {deployment_id} still {dep['status']}"
        await _pause()


async def _pause() -> None:
    import asyncio

    await asyncio.sleep(0.1)


def test_the_catalog_defines_every_tool_once_with_its_permission() -> None:
    destructive = {t.name for t in TOOLS if t.destructive}
    assert destructive == {
        "delete_function",
        "delete_secret",
        "delete_route",
        "revoke_key",
        "rotate_channel_token",
        "delete_channel",
        "kv_delete",
    }
    for t in TOOLS:
        schema = t.schema()
        assert schema["type"] == "object" and schema["additionalProperties"] is False, t.name
        assert set(schema["required"]) <= set(schema["properties"]), t.name
        assert ("confirm" in schema["required"]) == t.destructive, t.name
        assert t.read_only == (t.permission == "read"), t.name
        assert t.target is None or t.target in schema["properties"], t.name
    assert {t.name for t in TOOLS if t.permission == "admin"} == {
        "list_keys",
        "create_key",
        "revoke_key",
        "list_channels",
        "get_channel",
        "create_channel",
        "set_channel_functions",
        "rotate_channel_token",
        "delete_channel",
    }


async def test_a_key_sees_only_the_tools_its_permissions_allow_and_calls_beyond_are_refused(
    orvad: Orvad,
) -> None:
    async with _session(orvad, _key(orvad, "read")) as session:
        listed = {t.name: t for t in (await session.list_tools()).tools}
        assert set(listed) == {t.name for t in TOOLS if t.permission == "read"}
        assert all(t.annotations.read_only_hint for t in listed.values())
        for tool, args in (
            ("create_function", {"name": "x", "runtime": "python"}),
            ("deploy_function", {"function": "x", "code": "x"}),
            ("set_secret", {"function": "x", "key": "A", "value": "b"}),
            ("invoke_function", {"function": "x"}),
            ("list_keys", {}),
        ):
            error = await _refused(session, tool, args, "FORBIDDEN")
            assert error["details"]["granted"] == ["read"]
    async with _session(orvad, _key(orvad, "read", "write")) as session:
        listed = {t.name: t for t in (await session.list_tools()).tools}
        assert "deploy_function" in listed and "list_keys" not in listed and "invoke_function" not in listed
        delete = listed["delete_function"]
        assert delete.annotations.destructive_hint and "confirm: true" in (delete.description or "")
    async with _session(orvad, orvad.admin_key) as session:
        assert {t.name for t in (await session.list_tools()).tools} == set(BY_NAME)


async def test_a_function_is_built_run_changed_and_removed_through_tools(orvad: Orvad) -> None:
    name = _name("optools")
    async with _session(orvad, orvad.admin_key) as s:
        created = await _ok(s, "create_function", {"name": name, "runtime": "python", "description": "v1"})
        assert created["status"] == "created" and created["name"] == name

        first = await _ok(s, "deploy_function", {"function": name, "code": V1})
        assert first["status"] in ("queued", "building") and first["deployment_id"] == first["id"]
        built = await _until_built(s, first["id"])
        assert built["status"] == "succeeded", built
        log = await _ok(s, "get_build_logs", {"deployment_id": first["id"]})
        assert log["status"] == "succeeded" and log["lines"]

        ran = await _ok(s, "invoke_function", {"function": name})
        assert ran == {"v": 1, "has_secret": False}
        end = time.monotonic() + 10  # the row is written a few milliseconds after the reply
        while not (rows := (await _ok(s, "list_executions", {"function": name, "limit": 5}))["executions"]):
            assert time.monotonic() < end, "no execution recorded"
            await _pause()
        assert rows[0]["trigger"] == "mcp"
        one = await _ok(s, "get_execution", {"execution_id": rows[0]["id"]})
        assert one["id"] == rows[0]["id"] and one["status"] == "success"
        printed = await _ok(s, "get_execution_logs", {"execution_id": rows[0]["id"]})
        assert printed["logs"] == "v1 ran\n"

        # secrets: the value goes in, never out
        await _refused(s, "set_secret", {"function": name, "key": "ORVA_X", "value": "v"}, "VALIDATION")
        stored = await _ok(s, "set_secret", {"function": name, "key": "API_TOKEN", "value": SECRET_VALUE})
        assert stored == {"function_id": created["id"], "key": "API_TOKEN", "stored": True}
        listed = await s.call_tool("list_secrets", {"function": name})
        assert [x["key"] for x in listed.structured_content["secrets"]] == ["API_TOKEN"]
        assert SECRET_VALUE not in listed.content[0].text  # type: ignore[union-attr]
        assert (await _ok(s, "invoke_function", {"function": name}))["has_secret"] is True
        await _refused(s, "delete_secret", {"function": name, "key": "API_TOKEN"}, "VALIDATION")
        await _ok(s, "delete_secret", {"function": name, "key": "API_TOKEN", "confirm": True})
        assert (await _ok(s, "list_secrets", {"function": name}))["secrets"] == []

        # a second version from a files map, waited for in the call
        second = await _ok(s, "deploy_function", {"function": name, "files": V2_FILES, "wait": True})
        assert second["status"] == "succeeded", second
        assert await _ok(s, "invoke_function", {"function": name}) == {"v": 2}
        history = await _ok(s, "list_deployments", {"function": name})
        assert [d["id"] for d in history["deployments"]] == [second["id"], first["id"]]
        assert history["active_deployment_id"] == second["id"]

        diff = await _ok(s, "diff_deployments", {"function": name, "from": first["id"], "to": second["id"]})
        handler = next(f for f in diff["files"] if f["kind"] == "handler")
        assert "v1 ran" in handler["before"] and "from lib import answer" in handler["after"]
        unified = await _ok(
            s,
            "diff_deployments",
            {"function": name, "from": first["id"], "to": second["id"], "format": "unified"},
        )
        assert "+from lib import answer" in unified["diff"]

        back = await _ok(s, "rollback_function", {"function": name, "deployment_id": first["id"]})
        assert back["source"] == "rollback"
        assert (await _ok(s, "invoke_function", {"function": name}))["v"] == 1
        source = await _ok(s, "get_function_source", {"function": name})
        assert "v1 ran" in source["code"]

        # a failed build: the status says so and the log tells why
        broken = await _ok(s, "deploy_function", {"function": name, "code": "def handler(:\n"})
        assert (await _until_built(s, broken["id"]))["status"] == "failed"
        failed_log = await _ok(s, "get_build_logs", {"deployment_id": broken["id"]})
        assert any("SyntaxError" in line["line"] for line in failed_log["lines"]), failed_log
        waited = await _refused(
            s, "deploy_function", {"function": name, "code": "def handler(:\n", "wait": True}, "BUILD_FAILED"
        )
        assert "get_build_logs" in waited["hint"] and waited["details"]["log_tail"]

        # settings, routes and the pool
        changed = await _ok(
            s, "update_function", {"function": name, "description": "v2 now", "memory_mb": 64}
        )
        assert changed["description"] == "v2 now" and changed["memory_mb"] == 64
        path = f"/{name}/*"
        route = await _ok(s, "set_route", {"function": name, "path": path, "methods": "GET"})
        assert route["function_name"] == name and route["replaced"] is False
        assert httpx.get(f"{orvad.url}/{name}/anything").json() == {"v": 1, "has_secret": False}
        assert [r["path"] for r in (await _ok(s, "list_routes", {"function": name}))["routes"]] == [path]
        await _refused(s, "delete_route", {"path": path}, "VALIDATION")
        await _ok(s, "delete_route", {"path": path, "confirm": True})
        await _refused(s, "delete_route", {"path": path, "confirm": True}, "NOT_FOUND")

        pool = await _ok(s, "get_pool_config", {"function": name})
        assert pool["function_id"] == created["id"] and "max_warm" in pool
        pool = await _ok(s, "set_pool_config", {"function": name, "max_warm": 2, "idle_ttl_seconds": 30})
        assert pool["max_warm"] == 2 and pool["idle_ttl_seconds"] == 30
        await _refused(s, "set_pool_config", {"function": name, "max_warm": 0}, "VALIDATION")

        # removal needs confirm: true
        await _refused(s, "delete_function", {"function": name}, "VALIDATION")
        await _refused(s, "delete_function", {"function": name, "confirm": False}, "VALIDATION")
        await _ok(s, "delete_function", {"function": name, "confirm": True})
        await _refused(s, "get_function", {"function": name}, "NOT_FOUND")


async def test_a_write_key_is_kept_from_what_the_api_keeps_for_admin(orvad: Orvad) -> None:
    """As on the REST API: an unsandboxed function (csp_sandbox false) is changed only with admin, turning
    the sandbox off and routes under /.well-known/ need admin; a files map cannot leave the code's folder."""
    trusted, plain = _name("trusted"), _name("plain")
    with orvad.admin() as api:
        assert (
            api.post(
                "/api/v1/functions", json={"name": trusted, "runtime": "python", "csp_sandbox": False}
            ).status_code
            == 201
        )
        assert api.post("/api/v1/functions", json={"name": plain, "runtime": "python"}).status_code == 201
    async with _session(orvad, _key(orvad, "read", "write")) as s:
        for tool, args in (
            ("deploy_function", {"function": trusted, "code": V1}),
            ("update_function", {"function": trusted, "description": "x"}),
            ("set_secret", {"function": trusted, "key": "A", "value": "b"}),
            ("rollback_function", {"function": trusted, "deployment_id": "x"}),
            ("create_function", {"name": _name("nosandbox"), "runtime": "python", "csp_sandbox": False}),
            ("update_function", {"function": plain, "csp_sandbox": False}),
            ("set_route", {"function": plain, "path": "/.well-known/acme-challenge/*"}),
        ):
            error = await _refused(s, tool, args, "FORBIDDEN")
            assert error["details"]["required"] == "admin", (tool, error)
        # sandboxing it again is always allowed
        assert (await _ok(s, "update_function", {"function": trusted, "csp_sandbox": True}))[
            "csp_sandbox"
        ] is True
        for files in ({"../escape.py": "x"}, {"/etc/cron.d/x": "x"}, {}, {"handler.py": 5}):
            error = await _refused(s, "deploy_function", {"function": plain, "files": files}, "VALIDATION")
            assert error["details"]["field"] == "files", error
        await _refused(s, "deploy_function", {"function": plain}, "VALIDATION")
        both = {"function": plain, "code": V1, "files": V2_FILES}
        await _refused(s, "deploy_function", both, "VALIDATION")
    with orvad.admin() as api:
        for fn in (trusted, plain):
            api.delete(f"/api/v1/functions/{fn}")


async def test_keys_and_channels_are_managed_through_admin_tools(orvad: Orvad) -> None:
    fn_a, fn_b = _name("chan-a"), _name("chan-b")
    with orvad.admin() as api:
        for fn in (fn_a, fn_b):
            assert api.post("/api/v1/functions", json={"name": fn, "runtime": "python"}).status_code == 201
    async with _session(orvad, orvad.admin_key) as s:
        made = await _ok(s, "create_key", {"name": _name("agent"), "permissions": ["read"]})
        secret = made["key"]
        assert secret.startswith("orva_") and made["permissions"] == ["read"] and "once" in made["note"]
        listed = await s.call_tool("list_keys", {})
        assert made["id"] in listed.content[0].text and secret not in listed.content[0].text  # type: ignore[union-attr]
        assert (
            httpx.get(f"{orvad.url}/api/v1/functions", headers={"X-Orva-API-Key": secret}).status_code == 200
        )
        await _refused(s, "create_key", {"name": "x", "permissions": ["root"]}, "VALIDATION")
        await _refused(s, "revoke_key", {"key_id": made["id"]}, "VALIDATION")
        revoked = await _ok(s, "revoke_key", {"key_id": made["id"], "confirm": True})
        assert revoked["deleted"] is True and revoked["was_this_key"] is False
        assert (
            httpx.get(f"{orvad.url}/api/v1/functions", headers={"X-Orva-API-Key": secret}).status_code == 401
        )

        channel = _name("chan")
        created = await _ok(s, "create_channel", {"name": channel, "functions": [fn_a], "expires_in_days": 7})
        token = created["token"]
        assert token.startswith("orva_chn_") and created["function_count"] == 1
        assert created["functions"][0]["tool_name"] == fn_a.replace("-", "_")
        assert channel in {c["name"] for c in (await _ok(s, "list_channels", {}))["channels"]}
        assert token not in json.dumps(await _ok(s, "get_channel", {"channel": channel}))
        await _refused(
            s, "set_channel_functions", {"channel": channel, "functions": ["no-such-fn"]}, "NOT_FOUND"
        )
        both = await _ok(
            s,
            "set_channel_functions",
            {"channel": channel, "functions": [fn_a, fn_b], "descriptions": {fn_b: "the b tool"}},
        )
        assert {f["name"]: f["description"] for f in both["functions"]} == {fn_a: None, fn_b: "the b tool"}
        async with _session(orvad, token) as agent:
            assert {t.name for t in (await agent.list_tools()).tools} == {
                fn_a.replace("-", "_"),
                fn_b.replace("-", "_"),
            }

        await _refused(s, "rotate_channel_token", {"channel": channel}, "VALIDATION")
        rotated = await _ok(s, "rotate_channel_token", {"channel": channel, "confirm": True})
        assert rotated["token"] != token
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        }
        old = httpx.post(
            f"{orvad.url}/mcp", json=init, headers={**ACCEPT, "Authorization": f"Bearer {token}"}
        )
        assert old.status_code == 401
        await _refused(s, "delete_channel", {"channel": channel}, "VALIDATION")
        await _ok(s, "delete_channel", {"channel": channel, "confirm": True})
        await _refused(s, "get_channel", {"channel": channel}, "NOT_FOUND")
    with orvad.admin() as api:
        for fn in (fn_a, fn_b):
            api.delete(f"/api/v1/functions/{fn}")


async def test_docs_metrics_and_health_are_tools(orvad: Orvad) -> None:
    async with _session(orvad, _key(orvad, "read")) as s:
        topics = await _ok(s, "get_orva_docs", {})
        by_topic = {t["topic"]: t for t in topics["topics"]}
        assert {"handlers", "api", "mcp", "errors", "security"} <= set(by_topic)
        assert "Operator mode" in by_topic["mcp"]["sections"]
        doc = await _ok(s, "get_orva_docs", {"topic": "handlers"})
        assert doc["file"] == "HANDLERS.md" and doc["text"].startswith("# Writing a handler")
        part = await _ok(s, "get_orva_docs", {"topic": "MCP", "section": "operator mode"})
        assert part["text"].startswith("## Operator mode") and "get_orva_docs" in part["text"]
        missing = await _refused(s, "get_orva_docs", {"topic": "nope"}, "NOT_FOUND")
        assert "handlers" in missing["hint"]
        await _refused(s, "get_orva_docs", {"topic": "mcp", "section": "nope"}, "NOT_FOUND")

        runtimes = await _ok(s, "list_runtimes", {})
        assert any(r["language"] == "python" for r in runtimes["runtimes"])
        metrics = await _ok(s, "get_metrics", {})
        assert {"invocations_total", "rate_per_s", "latency_ms", "pools", "uptime_seconds"} <= set(metrics)
        health = await _ok(s, "health", {})
        assert health["status"] == "ok" and health["checks"]


async def test_bad_arguments_are_error_results_with_code_message_and_hint(orvad: Orvad) -> None:
    async with _session(orvad, orvad.admin_key) as s:
        unknown = await _refused(s, "get_function", {"function": "x", "nmae": "y"}, "VALIDATION")
        assert unknown["details"] == {"field": "nmae"} and "function" in unknown["hint"]
        missing = await _refused(s, "get_function", {}, "VALIDATION")
        assert missing["details"] == {"field": "function"}
        typed = await _refused(s, "list_functions", {"limit": "ten"}, "VALIDATION")
        assert "integer" in typed["message"]
        assert (await _refused(s, "list_functions", {"limit": True}, "VALIDATION"))["details"][
            "field"
        ] == "limit"
        assert (await _refused(s, "list_functions", {"limit": 0}, "VALIDATION"))["details"][
            "field"
        ] == "limit"
        enum = await _refused(s, "list_functions", {"status": "sleeping"}, "VALIDATION")
        assert "active" in enum["message"]
        await _refused(s, "create_function", {"name": "Bad Name!", "runtime": "python"}, "VALIDATION")
        cobol = await _refused(
            s, "create_function", {"name": _name("nort"), "runtime": "cobol"}, "VALIDATION"
        )
        assert cobol["hint"].startswith("the list_runtimes tool lists")  # the REST hint, told as a tool
        both = await _refused(s, "deploy_function", {"function": "nothing-here", "code": "x"}, "NOT_FOUND")
        assert "list_functions" in both["hint"]  # the service's REST hint, told as a tool
        await _refused(s, "no_such_tool", {}, "NOT_FOUND")
        escape = await _refused(s, "get_execution_logs", {"execution_id": 5}, "VALIDATION")
        assert escape["details"] == {"field": "execution_id"}
        # inside lists and maps, and bounds
        item = await _refused(s, "create_key", {"name": "k", "permissions": ["read", {"x": 1}]}, "VALIDATION")
        assert item["details"] == {"field": "permissions"} and "[1]" in item["message"]
        await _refused(s, "create_channel", {"name": _name("c"), "functions": [7]}, "VALIDATION")
        value = await _refused(s, "invoke_function", {"function": "x", "headers": {"a": 1}}, "VALIDATION")
        assert "['a']" in value["message"]
        huge = await _refused(s, "get_build_logs", {"deployment_id": "x", "after_seq": 2**64}, "VALIDATION")
        assert huge["details"] == {"field": "after_seq"}
        # null stands for an absent optional argument
        listed = await _ok(s, "list_functions", {"limit": None, "status": None, "q": None})
        assert "functions" in listed
        days = await _refused(s, "create_key", {"name": "k", "expires_in_days": 0}, "VALIDATION")
        assert "from 1 to 3650" in days["message"]


async def test_every_tool_call_is_an_audit_log_row(orvad: Orvad) -> None:
    key = _key(orvad, "read", "invoke")
    with orvad.admin() as api:
        key_id = next(
            k["id"]
            for k in api.get("/api/v1/keys", params={"limit": 500}).json()["keys"]
            if k["prefix"] == key[:12]
        )
    async with _session(orvad, key) as s:
        await _ok(s, "health", {})
        await _refused(s, "get_function", {"function": "audit-missing"}, "NOT_FOUND")
        await _refused(s, "create_function", {"name": "x", "runtime": "python"}, "FORBIDDEN")

    def rows() -> list[dict[str, Any]]:
        with orvad.admin() as api:
            r = api.get("/api/v1/audit-log", params={"method": "MCP", "actor_id": key_id})
            assert r.status_code == 200, r.text
            return list(r.json()["entries"])

    end = time.monotonic() + 10
    while len(found := rows()) < 3:
        assert time.monotonic() < end, found
        time.sleep(0.05)
    by_path = {e["path"]: e for e in found}
    assert by_path["/mcp tools/call health"]["status"] == 200
    assert by_path["/mcp tools/call get_function"]["status"] == 404
    assert by_path["/mcp tools/call get_function"]["target_id"] == "audit-missing"
    assert by_path["/mcp tools/call create_function"]["status"] == 403
    assert all(e["actor_kind"] == "key" and e["method"] == "MCP" for e in found)
    prefix = httpx.get(
        f"{orvad.url}/api/v1/audit-log",
        params={"path_prefix": "/mcp tools/call health", "actor_id": key_id},
        headers={"X-Orva-API-Key": orvad.admin_key},
    ).json()["entries"]
    assert [e["path"] for e in prefix] == ["/mcp tools/call health"]

    # channel mode too: the channel is the actor
    fn = _name("audited")
    with orvad.admin() as api:
        assert api.post("/api/v1/functions", json={"name": fn, "runtime": "python"}).status_code == 201
        made = api.post("/api/v1/channels", json={"name": _name("audit"), "function_ids": [fn]}).json()
    async with _session(orvad, made["token"]) as agent:
        result = await agent.call_tool(fn.replace("-", "_"), {})
        assert result.is_error  # never deployed

    def channel_rows() -> list[dict[str, Any]]:
        with orvad.admin() as api:
            return list(
                api.get("/api/v1/audit-log", params={"method": "MCP", "actor_id": made["id"]}).json()[
                    "entries"
                ]
            )

    end = time.monotonic() + 10
    while not (found := channel_rows()):
        assert time.monotonic() < end, "no audit row for the channel's call"
        time.sleep(0.05)
    (row,) = found
    assert row["actor_kind"] == "channel" and row["actor_name"] == made["name"]
    assert row["path"] == f"/mcp tools/call {fn.replace('-', '_')}" and row["status"] >= 400
    with orvad.admin() as api:
        api.delete(f"/api/v1/channels/{made['id']}")
        api.delete(f"/api/v1/functions/{fn}")


async def test_an_oauth_clients_tool_call_is_audited_as_the_client(make_orvad: Any) -> None:
    """A connector's call (orva_oat_ access token) is a row whose actor is the OAuth client, not a key."""
    from tests.oauth.test_oauth import _grant, _session_token

    server: Orvad = make_orvad(start=False)
    server.env["ORVA_PUBLIC_URL"] = server.url
    server.start()
    grant = _grant(server, _session_token(server), ["read"], scope="read")
    async with _session(server, grant["access_token"]) as s:
        await _ok(s, "health", {})
    client_id = grant["client"]["client_id"]
    end = time.monotonic() + 10
    while True:
        with server.admin() as api:
            rows = api.get("/api/v1/audit-log", params={"method": "MCP", "actor_id": client_id}).json()[
                "entries"
            ]
        if rows:
            break
        assert time.monotonic() < end, "no audit row for the OAuth client's call"
        time.sleep(0.05)
    assert rows[0]["actor_kind"] == "oauth_client" and rows[0]["path"] == "/mcp tools/call health"
    assert rows[0]["actor_name"] == "OAuth app Test Connector" and rows[0]["status"] == 200


def _post(orvad: Orvad, headers: dict[str, str], body: dict[str, Any]) -> tuple[httpx.Response, Any]:
    """One JSON-RPC message; the reply's JSON-RPC object whether it came as JSON or as SSE."""
    r = httpx.post(f"{orvad.url}/mcp", json=body, headers=headers)
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in r.text.splitlines() if line.startswith("data:")]
        return r, json.loads(data[-1]) if data else None
    return r, r.json() if r.content else None


@pytest.mark.parametrize("revision", ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"])
def test_a_client_of_an_older_protocol_revision_is_served_in_its_revision(
    orvad: Orvad, revision: str
) -> None:
    headers = {**ACCEPT, "X-Orva-API-Key": orvad.admin_key}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": revision,
            "capabilities": {},
            "clientInfo": {"name": "old", "version": "1"},
        },
    }
    opened, answer = _post(orvad, headers, init)
    assert opened.status_code == 200, opened.text
    assert answer["result"]["protocolVersion"] == revision
    assert answer["result"]["serverInfo"]["name"] == "orva"
    # a 2025-03-26 client sends no Mcp-Protocol-Version header; later ones send theirs
    session = {**headers, "Mcp-Session-Id": opened.headers["mcp-session-id"]}
    if revision >= "2025-06-18":
        session["Mcp-Protocol-Version"] = revision
    assert (
        _post(orvad, session, {"jsonrpc": "2.0", "method": "notifications/initialized"})[0].status_code == 202
    )
    _r, listed = _post(orvad, session, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert "deploy_function" in {t["name"] for t in listed["result"]["tools"]}
    _r, called = _post(
        orvad,
        session,
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "health", "arguments": {}}},
    )
    assert (
        called["result"]["isError"] is False
        and json.loads(called["result"]["content"][0]["text"])["status"] == "ok"
    )
    httpx.delete(f"{orvad.url}/mcp", headers=session)


@pytest.mark.parametrize("revision", ["1999-01-01", "2026-07-28"])
def test_a_revision_outside_the_handshake_ones_is_offered_the_current_one(
    orvad: Orvad, revision: str
) -> None:
    headers = {**ACCEPT, "X-Orva-API-Key": orvad.admin_key}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": revision,
            "capabilities": {},
            "clientInfo": {"name": "x", "version": "1"},
        },
    }
    opened, answer = _post(orvad, headers, init)
    assert opened.status_code == 200, opened.text
    assert answer["result"]["protocolVersion"] == "2025-11-25"  # the client then decides whether to go on
    httpx.delete(f"{orvad.url}/mcp", headers={**headers, "Mcp-Session-Id": opened.headers["mcp-session-id"]})
