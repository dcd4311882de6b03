"""The Channels view, Settings > Connected apps and the function's input schema field (issue 21) in a
real browser (Debian's Chromium) against a real orvad.

The journey an operator takes to hand functions to an AI agent: create a channel with a function, see its
token once and copy it, copy the "Connect an agent" snippet (the token filled in) and connect with exactly
that configuration through the MCP SDK's client, edit a tool's description (one PUT) and see the agent's
tool list change, reload (the token is gone for good), rotate (the old token is refused at once), delete.
Then an OAuth app connected through orvad's consent page appears under Settings > Connected apps and
Disconnect cuts it off.
No function is deployed or invoked, so no sandbox is needed: the `browser` marker (from the fixtures)
keeps it out of `make test-fast`, as every dashboard test.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from playwright.sync_api import Page, Request, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function
from tests.helpers import Orvad

TOKEN = re.compile(r"^orva_chn_[0-9a-f]{32}$")
REDIRECT = "https://client.example/callback"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


async def _tools(url: str, headers: dict[str, str]) -> dict[str, str]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return {t.name: t.description or "" for t in (await session.list_tools()).tools}


def list_tools(url: str, headers: dict[str, str]) -> dict[str, str]:
    """The tool list through the MCP SDK's client, in a thread of its own (Playwright's sync API holds an
    event loop in this one)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _tools(url, headers)).result(timeout=60)


def tools(url: str, token: str) -> dict[str, str]:
    return list_tools(url, {"Authorization": f"Bearer {token}"})


def mcp_status(server: Orvad, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    return httpx.post(f"{server.url}/mcp", json=INIT, headers=headers).status_code


def clipboard(pg: Page) -> str:
    return str(pg.evaluate("() => navigator.clipboard.readText()"))


def test_channels_journey(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    with server.admin() as admin:
        create_function(admin, "lookup-order", description="Find an order")
        create_function(admin, "refund")
        create_function(admin, "pay-out")
        create_function(admin, "pay_out")
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    url = f"{server.url}/mcp"

    # Settings > Connected apps renders: no app yet (or, without an OAuth server, says it is unavailable)
    page.goto(f"{server.url}/web/#/settings")
    apps = page.get_by_role("region", name="Connected apps")
    expect(apps.get_by_role("heading", name="Connected apps")).to_be_visible()
    expect(
        apps.get_by_test_id("connected-apps-unavailable").or_(apps.get_by_text("No apps connected."))
    ).to_be_visible()
    shot(page, "channels-01-connected-apps")

    # the list, empty; create a channel with one function (its page is a chunk of its own)
    page.get_by_role("link", name="Channels").click()
    expect(page.get_by_role("heading", name="Channels", exact=True)).to_be_visible()
    expect(page.get_by_text("No channels yet.")).to_be_visible()
    form = page.get_by_role("form", name="Create a channel")
    form.get_by_label("Name").fill("support-bot")
    form.get_by_label("Expires in (days)").fill("30")
    # two functions that make one tool name: orvad's refusal, with what to do on this page
    form.get_by_role("checkbox", name="pay-out").check()
    form.get_by_role("checkbox", name="pay_out").check()
    form.get_by_role("button", name="Create channel").click()
    expect(form.get_by_role("alert")).to_contain_text("TOOL_NAME_COLLISION")
    expect(form.get_by_role("alert")).to_contain_text("untick one of them")
    form.get_by_role("checkbox", name="pay-out").uncheck()
    form.get_by_role("checkbox", name="pay_out").uncheck()
    form.get_by_role("checkbox", name="lookup-order").check()
    expect(form.get_by_text("(1 chosen)")).to_be_visible()
    shot(page, "channels-02-create")
    form.get_by_role("button", name="Create channel").click()

    # the token, once, with a copy button
    dialog = page.get_by_role("dialog", name="Your channel token")
    expect(dialog).to_be_visible()
    token = dialog.get_by_test_id("channel-token").inner_text().strip()
    assert TOKEN.match(token), token
    dialog.get_by_role("button", name="Copy channel token").click()
    expect(dialog.get_by_role("button", name="Copied channel token")).to_be_visible()
    assert clipboard(page) == token
    shot(page, "channels-03-token")
    dialog.get_by_role("button", name="Done").click()
    expect(page.get_by_role("heading", name="support-bot")).to_be_visible()

    # "Connect an agent": the snippets come with the fresh token filled in; the copied Cursor entry connects
    panel = page.get_by_role("region", name="Connect an agent")
    expect(panel.get_by_test_id("token-filled")).to_be_visible()
    desktop = json.loads(panel.get_by_test_id("snippet").inner_text())
    entry = desktop["mcpServers"]["orva-support-bot"]
    assert entry["command"] == "npx" and entry["args"][:3] == ["-y", "mcp-remote", url]
    assert entry["env"] == {"ORVA_CHANNEL_TOKEN": token}
    panel.get_by_role("tab", name="Cursor").click()
    panel.get_by_role("button", name="Copy Cursor configuration").click()
    expect(panel.get_by_role("button", name="Copied Cursor configuration")).to_be_visible()
    cursor = json.loads(clipboard(page))["mcpServers"]["orva-support-bot"]
    assert cursor == {"url": url, "headers": {"Authorization": f"Bearer {token}"}}
    assert list_tools(cursor["url"], cursor["headers"]) == {"lookup_order": "Find an order"}
    panel.get_by_role("tab", name="Other clients (mcp-remote)").click()
    expect(panel.get_by_test_id("snippet")).to_have_text(
        f'npx -y mcp-remote {url} --header "Authorization: Bearer {token}"'
    )
    shot(page, "channels-04-connect")

    # tools: override lookup-order's description and add refund, in one PUT; the agent sees both
    puts: list[dict[str, Any]] = []

    def record(req: Request) -> None:
        if req.method == "PUT" and "/api/v1/channels/" in req.url:
            puts.append(json.loads(req.post_data or "{}"))

    page.on("request", record)
    tools_form = page.get_by_role("form", name="Tools")
    tools_form.get_by_label("Tool lookup_order: description").fill("Look up an order by its id")
    tools_form.get_by_role("checkbox", name="refund").check()
    tools_form.get_by_role("button", name="Save tools").click()
    expect(tools_form.get_by_text("Saved.", exact=False)).to_be_visible()
    assert len(puts) == 1 and len(puts[0]["function_ids"]) == 2, puts
    listed = tools(url, token)
    assert (
        set(listed) == {"lookup_order", "refund"} and listed["lookup_order"] == "Look up an order by its id"
    )
    shot(page, "channels-05-tools")

    # shown once: after a reload the token is nowhere on the page, and the panel says where it goes
    page.reload()
    expect(page.get_by_role("heading", name="support-bot")).to_be_visible()
    expect(page.get_by_role("dialog", name="Your channel token")).to_be_hidden()
    expect(panel.get_by_test_id("token-missing")).to_be_visible()
    assert token not in page.content()
    expect(panel.get_by_test_id("snippet")).to_contain_text("ORVA_CHANNEL_TOKEN")
    # the saved description is the field's value after the reload
    expect(tools_form.get_by_label("Tool lookup_order: description")).to_have_value(
        "Look up an order by its id"
    )

    # rotate, confirmed: a new token shown once and filled in; the old one is refused at /mcp at once
    page.get_by_role("button", name="Rotate token").click()
    page.get_by_role("dialog", name="Rotate token").get_by_role("button", name="Rotate token").click()
    dialog = page.get_by_role("dialog", name="Your channel token")
    expect(dialog).to_be_visible()
    rotated = dialog.get_by_test_id("channel-token").inner_text().strip()
    assert TOKEN.match(rotated) and rotated != token
    dialog.get_by_role("button", name="Done").click()
    expect(panel.get_by_test_id("token-filled")).to_be_visible()
    assert mcp_status(server, token) == 401
    assert set(tools(url, rotated)) == {"lookup_order", "refund"}

    # on a phone the channel's page fits the screen (snippets and tables scroll inside their boxes)
    page.set_viewport_size({"width": 390, "height": 844})
    width = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the channel page is {width[0]} px wide on a {width[1]} px screen"
    shot(page, "channels-05b-phone")
    page.set_viewport_size({"width": 1280, "height": 860})

    # details: a description, and no expiry any more (one PATCH of what changed)
    patches: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda req: req.method == "PATCH" and patches.append(json.loads(req.post_data or "{}")),
    )
    page.get_by_role("button", name="Edit details").click()
    edit = page.get_by_role("form", name="Edit channel")
    edit.get_by_label("Description").fill("Order desk toolkit")
    expect(edit.get_by_label("Expires after")).not_to_have_value("")
    edit.get_by_label("Expires after").fill("")
    edit.get_by_role("button", name="Save details").click()
    expect(page.get_by_text("Order desk toolkit")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("never")
    assert patches == [{"description": "Order desk toolkit", "expires_at": None}], patches
    with server.admin() as admin:
        saved = admin.get("/api/v1/channels/support-bot").json()
    assert saved["description"] == "Order desk toolkit" and saved["expires_at"] is None

    # the list: two tools, last used, the expiry
    page.get_by_role("link", name="← Channels").click()
    row = page.get_by_role("table", name="Channels").locator("tbody tr").filter(has_text="support-bot")
    expect(row).to_contain_text("2")
    expect(row).to_contain_text("ago")  # last used: the agent's calls above
    # a taken name: the envelope's code and message, in the page
    form.get_by_label("Name").fill("support-bot")
    form.get_by_role("button", name="Create channel").click()
    expect(form.get_by_role("alert")).to_contain_text("CONFLICT")
    expect(form.get_by_role("alert")).to_contain_text("Choose another name")
    assert "/api/v1" not in form.get_by_role("alert").inner_text()
    shot(page, "channels-06-list")

    # delete, confirmed: gone from the list, its token refused
    row.get_by_role("link", name="support-bot").click()
    page.get_by_role("button", name="Delete channel").click()
    page.get_by_role("dialog", name="Delete channel").get_by_role("button", name="Delete channel").click()
    expect(page.get_by_text("No channels yet.")).to_be_visible()
    assert mcp_status(server, rotated) == 401
    with server.admin() as admin:
        assert admin.get("/api/v1/channels").json()["channels"] == []


def test_function_settings_input_schema(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The input schema field: sent only when edited, bad JSON caught on the page, orvad's 400 shown under
    the field with the field marked, a good schema saved."""
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    with server.admin() as admin:
        fn = create_function(admin, "schemed")
        has_field = "input_schema" in admin.get(f"/api/v1/functions/{fn['id']}").json()
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])
    bodies: list[dict[str, Any]] = []

    def record(req: Request) -> None:
        if req.method == "PUT" and "/api/v1/functions/" in req.url:
            bodies.append(json.loads(req.post_data or "{}"))

    page.on("request", record)
    page.goto(f"{server.url}/web/#/functions/{fn['id']}?tab=settings")
    settings = page.get_by_role("form", name="Function settings")
    field = settings.get_by_label("Input schema (MCP tool arguments)")
    expect(field).to_have_value("")

    # untouched: a save sends no input_schema
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.get_by_text("Saved.", exact=False)).to_be_visible()
    assert len(bodies) == 1 and "input_schema" not in bodies[0], bodies

    # not JSON: refused on the page, nothing sent
    field.fill('{"type": "object",')
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.get_by_role("alert")).to_contain_text("not valid JSON")
    expect(field).to_have_attribute("aria-invalid", "true")
    assert len(bodies) == 1

    # JSON that orvad refuses: its 400, under the field
    field.fill('{"type": "string"}')
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.get_by_role("alert")).to_contain_text("VALIDATION")
    expect(settings.get_by_role("alert")).to_contain_text("input_schema")
    assert bodies[-1]["input_schema"] == {"type": "string"}
    shot(page, "channels-07-input-schema-refused")

    schema = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}
    if not has_field:  # this orvad has no input_schema yet: the refusal above is all there is to see
        return
    field.fill(json.dumps(schema))
    settings.get_by_role("button", name="Save settings").click()
    expect(settings.get_by_text("Saved.", exact=False)).to_be_visible()
    with server.admin() as admin:
        assert admin.get(f"/api/v1/functions/{fn['id']}").json()["input_schema"] == schema
    page.reload()
    expect(settings.get_by_label("Input schema (MCP tool arguments)")).to_have_value(
        json.dumps(schema, indent=2)
    )


def test_connected_apps_list_and_disconnect(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """An app connects through orvad's consent page in the browser (the dashboard session approves it, one
    scope unticked); Settings > Connected apps lists it with the scopes granted; Disconnect, confirmed,
    removes it and its tokens are refused at once."""
    server: Orvad = make_orvad(start=False)
    server.env["ORVA_PUBLIC_URL"] = server.url  # OAuth needs it
    server.start()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
        client = c.post(
            "/oauth/register",
            json={
                "client_name": "Test Connector",
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
            },
        )
    assert client.status_code == 201, client.text
    client_id = client.json()["client_id"]
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    authorize = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "read invoke write admin",
        "state": "st-1",
    }
    # the client's redirect URI is not on this closed network: the browser's visit there is answered here
    back: list[str] = []
    page.route(
        "https://client.example/**",
        lambda route: (back.append(route.request.url), route.fulfill(status=200, body="back at the client")),
    )
    page.goto(f"{server.url}/oauth/authorize?{urlencode(authorize)}")
    expect(page.get_by_role("heading", name="Connect Test Connector?")).to_be_visible()
    page.get_by_role("checkbox", name="admin").uncheck()
    shot(page, "channels-08-consent")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_text("back at the client")).to_be_visible()
    query = parse_qs(urlsplit(back[-1]).query)
    assert query["state"] == ["st-1"], back
    with server.client() as c:
        tokens = c.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "client_id": client_id,
                "code": query["code"][0],
                "code_verifier": verifier,
                "redirect_uri": REDIRECT,
            },
        )
    assert tokens.status_code == 200, tokens.text
    access, refresh = tokens.json()["access_token"], tokens.json()["refresh_token"]
    assert mcp_status(server, access) == 200

    page.goto(f"{server.url}/web/#/settings")
    apps = page.get_by_role("table", name="Connected apps")
    row = apps.locator("tbody tr").filter(has_text="Test Connector")
    expect(row).to_contain_text("read, invoke, write")
    expect(row).to_contain_text(REDIRECT)
    shot(page, "channels-09-connected-apps")
    row.get_by_role("button", name="Disconnect").click()
    page.get_by_role("dialog", name="Disconnect").get_by_role("button", name="Disconnect").click()
    expect(page.get_by_text("No apps connected.")).to_be_visible()
    assert mcp_status(server, access) == 401
    with server.client() as c:
        again = c.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "client_id": client_id, "refresh_token": refresh},
        )
    assert again.status_code in (400, 401), again.text
