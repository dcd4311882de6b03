"""GET /api/v1/channels/{id}/client-config (issue 21): ready-to-paste MCP client configuration.

The snippets name this orvad's /mcp (ORVA_PUBLIC_URL, else the request's own host) and never the token:
each reads it from ORVA_CHANNEL_TOKEN. The answer's shapes are the ones the clients document (Claude
Desktop's mcpServers with an npx mcp-remote command, Cursor's url + headers).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from orvad.api.channels import client_config, server_key
from tests.helpers import Orvad


def _channel(c: httpx.Client, name: str) -> dict:  # type: ignore[type-arg]
    fn = c.post("/api/v1/functions", json={"name": f"cfg-{uuid.uuid4().hex[:8]}", "runtime": "python"})
    assert fn.status_code == 201, fn.text
    r = c.post("/api/v1/channels", json={"name": name, "function_ids": [fn.json()["id"]]})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_client_config_names_this_orvad_and_never_the_token(orvad: Orvad) -> None:
    with orvad.admin() as c:
        created = _channel(c, "Support Bot")
        by_name = c.get("/api/v1/channels/Support Bot/client-config")
        by_id = c.get(f"/api/v1/channels/{created['id']}/client-config")
        assert by_name.status_code == by_id.status_code == 200, by_name.text
        assert by_name.json() == by_id.json()
        cfg = by_id.json()
        assert created["token"] not in by_id.text
        url = f"{orvad.url}/mcp"
        assert cfg["url"] == url and cfg["token_placeholder"] == "ORVA_CHANNEL_TOKEN"
        assert cfg["server_name"] == "orva-support-bot"
        desktop = cfg["claude_desktop"]["mcpServers"]["orva-support-bot"]
        assert desktop["command"] == "npx"
        # 127.0.0.1 over http: mcp-remote allows it without --allow-http; no space in any argument
        assert desktop["args"] == [
            "-y",
            "mcp-remote",
            url,
            "--header",
            "X-Orva-API-Key:${ORVA_CHANNEL_TOKEN}",
        ]
        assert list(desktop["env"]) == ["ORVA_CHANNEL_TOKEN"]
        cursor = cfg["cursor"]["mcpServers"]["orva-support-bot"]
        assert cursor == {"url": url, "headers": {"Authorization": "Bearer ${env:ORVA_CHANNEL_TOKEN}"}}
        assert cfg["mcp_remote"] == (
            f'npx -y mcp-remote {url} --header "Authorization: Bearer ${{ORVA_CHANNEL_TOKEN}}"'
        )

        # the request's own Host names the URL when ORVA_PUBLIC_URL is unset
        other = c.get(f"/api/v1/channels/{created['id']}/client-config", headers={"Host": "localhost:9"})
        assert other.status_code == 200, other.text  # localhost is one of the default allowed hosts
        assert other.json()["url"] == "http://localhost:9/mcp"

        # errors: an unknown channel is 404 with a hint; a channel token is 401 here as everywhere
        missing = c.get("/api/v1/channels/no-such-channel/client-config")
        assert missing.status_code == 404 and missing.json()["error"]["hint"]
    with orvad.client() as anon:
        bearer = {"Authorization": f"Bearer {created['token']}"}
        assert anon.get(f"/api/v1/channels/{created['id']}/client-config", headers=bearer).status_code == 401
        assert anon.get(f"/api/v1/channels/{created['id']}/client-config").status_code == 401
    with orvad.admin() as c:
        key = c.post("/api/v1/keys", json={"name": "reader", "permissions": ["read"]}).json()["key"]
    with orvad.client() as reader:
        r = reader.get(f"/api/v1/channels/{created['id']}/client-config", headers={"X-Orva-API-Key": key})
        assert r.status_code == 403 and r.json()["error"]["details"]["required"] == "admin"


def test_public_url_wins_and_plain_http_elsewhere_gets_allow_http(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_PUBLIC_URL": "https://orva.example.com"})
    with server.admin() as c:
        _channel(c, "ops")
        cfg = c.get("/api/v1/channels/ops/client-config").json()
    assert cfg["url"] == "https://orva.example.com/mcp"
    assert "--allow-http" not in cfg["claude_desktop"]["mcpServers"]["orva-ops"]["args"]

    lan = client_config("http://10.0.0.5:8443/mcp", "ops")
    assert lan["claude_desktop"]["mcpServers"]["orva-ops"]["args"][-1] == "--allow-http"
    assert lan["mcp_remote"].endswith(" --allow-http")
    assert server_key("  ") == "orva-channel" and server_key("Ünïcode bot!") == "orva-n-code-bot"
