"""`orva oauth`: the apps (claude.ai, ChatGPT, ...) connected to /mcp through OAuth, and cutting one off (issue 21)."""

from __future__ import annotations

from typing import Any

import click

from orva_cli.context import App, json_option, pass_app
from orva_cli.output import Col

APPS = "/api/v1/oauth/connected-apps"
APP_COLUMNS = (
    Col("NAME", "client_name", flex=True),
    Col("SCOPES", "scopes_text"),
    Col("CONNECTED", "created_at"),
    Col("LAST_USED", "last_used_at"),
    Col("CLIENT_ID", "client_id"),
)


@click.group()
def oauth() -> None:
    """Apps connected to /mcp with OAuth (remote MCP connectors; needs an admin key).

    \b
    Examples:
      orva oauth apps
      orva oauth revoke 0c6f2c1e-...
    """


@oauth.command("apps")
@json_option
@pass_app
def apps(app: App) -> None:
    """List the apps holding a live OAuth grant to /mcp and what they may do (--json: their redirect URIs too).

    \b
    Example:
      orva oauth apps
    """
    answer = app.get(APPS)

    def render(found: dict[str, Any]) -> None:
        rows = [{**a, "scopes_text": " ".join(a["scopes"])} for a in found["apps"]]
        if not rows:
            app.out.text(
                "no connected apps (connect one from an MCP client such as claude.ai: docs/MCP.md, OAuth)"
            )
            return
        app.out.table(rows, APP_COLUMNS)

    app.out.show(answer, render)


@oauth.command("revoke")
@click.argument("client_id")
@json_option
@pass_app
def revoke(app: App, client_id: str) -> None:
    """Cut app CLIENT_ID off: its tokens stop working at once and its registration is removed
    (it must connect, and be approved, again).

    \b
    Example:
      orva oauth revoke 0c6f2c1e-...
    """
    response = app.client.send("DELETE", f"{APPS}/{client_id}")
    if response.status_code >= 400:
        raise app.client.failure(response)
    app.out.show(
        {"client_id": client_id, "revoked": True}, lambda _: app.out.text(f"revoked app {client_id}")
    )


commands = [oauth]
