"""`orva channels`: bundles of functions offered to AI agents as MCP tools at /mcp (issue 21)."""

from __future__ import annotations

from typing import Any

import click

from orva_cli.client import CliError
from orva_cli.context import App, json_option, pass_app
from orva_cli.output import Col

CHANNEL_COLUMNS = (
    Col("NAME", "name", flex=True),
    Col("PREFIX", "prefix"),
    Col("FUNCTIONS", "function_count"),
    Col("EXPIRES", "expires_at"),
    Col("LAST_USED", "last_used_at"),
    Col("ID", "id", short=True),
)
TOOL_COLUMNS = (
    Col("TOOL", "tool_name", flex=True),
    Col("FUNCTION", "name", flex=True),
    Col("DESCRIPTION", "shown", flex=True, wrap=True),
)


def _path(channel: str) -> str:
    return f"/api/v1/channels/{channel}"


def _describe(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        fn, sep, text = pair.partition("=")
        if not sep or not fn:
            raise CliError(
                "VALIDATION",
                f"--describe takes FUNCTION=TEXT, not {pair!r}",
                hint="e.g. `orva channels set-functions bot -f add --describe add='Adds two numbers'`",
            )
        out[fn] = text
    return out


def _token(app: App, answer: dict[str, Any], what: str) -> None:
    if app.out.json:
        app.out.dump(answer)
        return
    app.out.note(
        f"{what} channel {answer['name']} ({answer['id']}, {answer['function_count']} tool(s)); "
        "save the token now, it is not shown again. Give it to an MCP client for /mcp; it never works on /api/v1",
        None,
    )
    click.echo(answer["token"])


@click.group()
def channels() -> None:
    """Bundle functions as MCP tools for AI agents, behind one token (needs an admin key).

    \b
    Example:
      orva channels create support-bot -f lookup-order -f refund --expires-in-days 30
    """


@channels.command("create")
@click.argument("channel")
@click.option("--function", "-f", "functions", multiple=True, help="A function name or id; repeatable.")
@click.option("--description", "-d", default=None, help="What the channel is for.")
@click.option("--expires-in-days", type=click.IntRange(1, 3650))
@json_option
@pass_app
def create(
    app: App, channel: str, functions: tuple[str, ...], description: str | None, expires_in_days: int | None
) -> None:
    """Create channel CHANNEL. Its token is printed once, on stdout; orvad cannot show it again.

    \b
    Examples:
      orva channels create support-bot -f lookup-order -f refund
      TOKEN=$(orva channels create bot -f hello --expires-in-days 30)
    """
    body: dict[str, Any] = {"name": channel, "function_ids": list(functions)}
    if description is not None:
        body["description"] = description
    if expires_in_days:
        body["expires_in_days"] = expires_in_days
    _token(app, app.post("/api/v1/channels", body), "created")


@channels.command("list")
@json_option
@pass_app
def list_channels(app: App) -> None:
    """List channels (never their tokens).

    \b
    Example:
      orva channels list
    """
    items = list(app.client.pages("/api/v1/channels", "channels"))
    app.out.show(items, lambda rows: app.out.table(rows, CHANNEL_COLUMNS))


@channels.command("show")
@click.argument("channel")
@json_option
@pass_app
def show(app: App, channel: str) -> None:
    """Show CHANNEL (a name or id): its tools and their descriptions.

    \b
    Example:
      orva channels show support-bot
    """
    answer = app.get(_path(channel))

    def render(c: dict[str, Any]) -> None:
        app.out.text(
            f"{c['name']} ({c['id']}) prefix {c['prefix']}, expires {c['expires_at'] or 'never'}, "
            f"last used {c['last_used_at'] or 'never'}"
        )
        rows = [
            {**f, "shown": f["description"] if f["description"] is not None else f["function_description"]}
            for f in c["functions"]
        ]
        app.out.table(rows, TOOL_COLUMNS)

    app.out.show(answer, render)


@channels.command("set-functions")
@click.argument("channel")
@click.option("--function", "-f", "functions", multiple=True, help="A function name or id; repeatable.")
@click.option(
    "--describe",
    multiple=True,
    metavar="FUNCTION=TEXT",
    help="A tool description override for one of the functions; repeatable. Others keep theirs.",
)
@json_option
@pass_app
def set_functions(app: App, channel: str, functions: tuple[str, ...], describe: tuple[str, ...]) -> None:
    """Replace CHANNEL's functions with the -f ones (none: empty it).

    \b
    Examples:
      orva channels set-functions support-bot -f lookup-order -f refund
      orva channels set-functions bot -f add --describe add='Adds two numbers'
    """
    body: dict[str, Any] = {"function_ids": list(functions)}
    if describe:
        body["descriptions"] = _describe(describe)
    answer = app.put(f"{_path(channel)}/functions", body)
    app.out.show(answer, lambda c: app.out.text(f"channel {c['name']}: {c['function_count']} tool(s)"))


@channels.command("rotate")
@click.argument("channel")
@json_option
@pass_app
def rotate(app: App, channel: str) -> None:
    """Issue CHANNEL a new token (printed once); the old one stops working at once.

    \b
    Example:
      orva channels rotate support-bot
    """
    _token(app, app.post(f"{_path(channel)}/rotate", {}), "rotated")


@channels.command("delete")
@click.argument("channel")
@json_option
@pass_app
def delete(app: App, channel: str) -> None:
    """Delete CHANNEL; its token stops working at once (the functions stay).

    \b
    Example:
      orva channels delete support-bot
    """
    answer = app.delete(_path(channel))
    app.out.show(answer, lambda _: app.out.text(f"deleted channel {channel}"))


commands = [channels]
