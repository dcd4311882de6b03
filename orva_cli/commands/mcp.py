"""`orva mcp config`: ready-to-paste MCP client configuration for a channel (issue 21).

The configuration comes from GET /api/v1/channels/{id}/client-config, which never holds the token:
its snippets read it from the environment variable ORVA_CHANNEL_TOKEN. Given --token, the CLI puts
the token in (Claude Desktop's env block, Cursor's header, the shell line); orvad never sees it here.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any
from urllib.parse import quote

import click

from orva_cli.context import App, json_option, pass_app

CLIENTS = {
    "claude-desktop": ("claude_desktop", "Claude Desktop: claude_desktop_config.json"),
    "cursor": ("cursor", "Cursor: ~/.cursor/mcp.json (or .cursor/mcp.json in a project)"),
    "mcp-remote": ("mcp_remote", "Any stdio MCP client, or a terminal: mcp-remote"),
}
WHERE = (
    "Claude Desktop reads ~/Library/Application Support/Claude/claude_desktop_config.json (macOS) or "
    "%APPDATA%\\Claude\\claude_desktop_config.json (Windows); Cursor ~/.cursor/mcp.json. Put the entry "
    "under the file's mcpServers and restart the client."
)


def fill(config: dict[str, Any], token: str) -> dict[str, Any]:
    """The answer of client-config with `token` where each snippet reads the token variable."""
    var = config["token_placeholder"]
    out = copy.deepcopy(config)
    for server in out["claude_desktop"]["mcpServers"].values():
        if var in server.get("env", {}):
            server["env"][var] = token
    for server in out["cursor"]["mcpServers"].values():
        server["headers"] = {k: v.replace(f"${{env:{var}}}", token) for k, v in server["headers"].items()}
    out["mcp_remote"] = out["mcp_remote"].replace(f"${{{var}}}", token)
    return out


def snippet(config: dict[str, Any], field: str) -> str:
    value = config[field]
    return value if isinstance(value, str) else json.dumps(value, indent=2)


@click.group()
def mcp() -> None:
    """Connect AI agents to orvad's MCP server at /mcp.

    \b
    Example:
      orva mcp config --channel support-bot --client cursor --token "$TOKEN"
    """


@mcp.command("config")
@click.option("--channel", "-c", required=True, metavar="NAME", help="The channel (a name or id).")
@click.option(
    "--token",
    metavar="TOKEN",
    help="The channel's token (orva_chn_..., shown by `orva channels create` or `rotate`) to fill in; - reads it from stdin.",
)
@click.option(
    "--client",
    "client",
    type=click.Choice(list(CLIENTS)),
    help="Print only this client's snippet (stdout is then exactly the snippet).",
)
@json_option
@pass_app
def config(app: App, channel: str, token: str | None, client: str | None) -> None:
    """Print ready-to-paste MCP client configuration for CHANNEL's tools (needs an admin key).

    Without --token the snippets read the token from the environment variable ORVA_CHANNEL_TOKEN
    (Claude Desktop: the env entry to fill in; Cursor: ${env:ORVA_CHANNEL_TOKEN}).

    \b
    Examples:
      orva mcp config --channel support-bot
      orva mcp config -c support-bot --client claude-desktop --token "$(orva channels rotate support-bot)"
      orva channels rotate support-bot | orva mcp config -c support-bot --client cursor --token -
    """
    if token == "-":
        token = sys.stdin.readline().strip()
    if token is not None and not token.startswith("orva_chn_"):
        raise click.BadParameter(
            "a channel token starts with orva_chn_ (printed by `orva channels create` or `orva channels rotate`)",
            param_hint="--token",
        )
    answer = app.get(f"/api/v1/channels/{quote(channel, safe='')}/client-config")
    if token:
        answer = fill(answer, token)
    if app.out.json:
        app.out.dump(answer)
        return
    if client:
        click.echo(snippet(answer, CLIENTS[client][0]))
    else:
        for field, heading in CLIENTS.values():
            click.echo(f"# {heading}")
            click.echo(snippet(answer, field))
            click.echo()
    if not token:
        app.out.note(
            f"The token is not in this config: set {answer['token_placeholder']} to the channel's token "
            "(Claude Desktop: its env entry; Cursor and the shell line: that environment variable), or run "
            "again with --token. `orva channels rotate` issues a new one if it is lost."
        )
    if client != "mcp-remote":
        app.out.note(WHERE)


commands = [mcp]
