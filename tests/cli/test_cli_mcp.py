"""`orva mcp config` (issue 21) against a real orvad: ready-to-paste client configuration for a channel,
the token filled in when given (never sent to orvad), else the placeholder and a note saying where it goes;
the printed Cursor entry, with the token, opens an MCP session at /mcp and lists the channel's tool."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.cli.test_cli import Cli, error_line, logged_in
from tests.helpers import Orvad


@pytest.fixture(scope="module")
def cli(orvad: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(orvad, tmp_path_factory.mktemp("home"), "climcp-") as runner:
        yield runner


async def _tools(url: str, headers: dict[str, str]) -> list[str]:
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return [t.name for t in (await session.list_tools()).tools]


def test_mcp_config_prints_each_client_and_fills_the_token(cli: Cli, orvad: Orvad) -> None:
    stem = f"climcp-{uuid.uuid4().hex[:6]}"
    cli.ok("functions", "create", f"{stem}-fn", "--runtime", "python")
    name = f"{stem}-bot"
    token = cli.ok("channels", "create", name, "-f", f"{stem}-fn").stdout.strip()
    url = f"{orvad.url}/mcp"

    # all three, under headings; no token: the placeholder stays and stderr says where the token goes
    every = cli.ok("mcp", "config", "--channel", name)
    assert "# Claude Desktop" in every.stdout and "# Cursor" in every.stdout and "# Any stdio" in every.stdout
    assert token not in every.stdout and "${env:ORVA_CHANNEL_TOKEN}" in every.stdout
    assert "ORVA_CHANNEL_TOKEN" in every.stderr and "--token" in every.stderr
    assert "claude_desktop_config.json" in every.stderr

    # one client: stdout is exactly that snippet (valid JSON to redirect into the file)
    desktop = json.loads(
        cli.ok("mcp", "config", "-c", name, "--client", "claude-desktop", "--token", token).stdout
    )
    entry = desktop["mcpServers"][f"orva-{name}"]
    assert entry["command"] == "npx" and entry["args"][:3] == ["-y", "mcp-remote", url]
    assert entry["env"] == {"ORVA_CHANNEL_TOKEN": token}
    cursor_run = cli.ok("mcp", "config", "-c", name, "--client", "cursor", "--token", token)
    assert "--token" not in cursor_run.stderr  # the token is in: no note asking for it
    cursor = json.loads(cursor_run.stdout)["mcpServers"][f"orva-{name}"]
    assert cursor == {"url": url, "headers": {"Authorization": f"Bearer {token}"}}
    line = cli.ok("mcp", "config", "-c", name, "--client", "mcp-remote", "--token", token).stdout.strip()
    assert line == f'npx -y mcp-remote {url} --header "Authorization: Bearer {token}"'
    # --token - reads it from stdin (a pipe from `orva channels rotate`, kept out of the process list)
    piped = cli.ok("mcp", "config", "-c", name, "--client", "mcp-remote", "--token", "-", input=token + "\n")
    assert piped.stdout.strip() == line
    whole = cli.json("mcp", "config", "-c", name, "--token", token)
    assert whole["cursor"]["mcpServers"][f"orva-{name}"]["headers"]["Authorization"] == f"Bearer {token}"

    # the pasted Cursor entry works: its url and headers open a session that sees the channel's tool
    tools = asyncio.run(_tools(cursor["url"], cursor["headers"]))
    assert tools == [f"{stem}_fn".replace("-", "_")]

    # errors in orva's words: an unknown channel, a token that is not a channel token
    missing = error_line(cli.fails(1, "mcp", "config", "--channel", f"{stem}?x#y"), "NOT_FOUND")
    assert f"{stem}?x#y" in missing  # the name travels whole (quoted in the path)
    assert "orva channels list" in missing and "/api/v1" not in missing
    bad = cli.fails(2, "mcp", "config", "-c", name, "--token", "orva_" + "0" * 64)
    assert "orva_chn_" in bad and "--token" in bad
    usage = cli.fails(2, "mcp", "config", "-c", name, "--client", "vim")
    assert "claude-desktop" in usage
