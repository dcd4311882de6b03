"""`orva webhooks inbound`: a function's inbound webhooks (issue 24): GitHub, Stripe, Slack or any HMAC sender
delivers to the webhook's URL with no Orva key; orvad checks the signature before the function runs.

The group is attached under `orva webhooks` by ``attach`` (the outbound webhooks' group when it exists,
else a `webhooks` group of its own), so the two pieces of work need not edit one module.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from orva_cli.client import CliError
from orva_cli.context import App, fn_path, json_option, pass_app, read_secret
from orva_cli.output import Col

FORMATS = ("github", "stripe", "slack", "hmac_sha256_hex", "hmac_sha256_base64")
COLUMNS = (
    Col("NAME", "name"),
    Col("FORMAT", "format"),
    Col("MODE", "mode"),
    Col("ENABLED", "enabled"),
    Col("DELIVERIES", "deliveries"),
    Col("LAST_STATUS", "last_status"),
    Col("URL", "url", flex=True),
    Col("ID", "id"),
)


def _path(function: str, webhook: str | None = None, *rest: str) -> str:
    if webhook is None:
        return fn_path(function, "inbound-webhooks")
    return fn_path(function, "inbound-webhooks", quote(webhook, safe=""), *rest)


def _resolve(app: App, function: str, webhook: str) -> str:
    """A webhook's id from its id or its name (names are unique per function)."""
    if webhook.startswith("iwh_"):
        return webhook
    hooks = app.get(_path(function))["webhooks"]
    for hook in hooks:
        if hook["name"] == webhook:
            return str(hook["id"])
    raise CliError(
        "NOT_FOUND",
        f"function {function} has no inbound webhook named {webhook!r}",
        hint=f"list them with `orva webhooks inbound list {function}`",
    )


def _line(h: dict[str, Any]) -> str:
    state = "" if h["enabled"] else ", disabled"
    return f"{h['name']} ({h['format']}, {h['mode']}{state}): POST {h['url']}"


def _shown_once(h: dict[str, Any]) -> str:
    headers = ", ".join(h["signature_headers"])
    return (
        f"{_line(h)}\nsecret: {h['secret']}\n"
        f"(shown this once: give it to the sender now; the sender signs with it in {headers})"
    )


def _fields(
    header: str | None,
    prefix: str | None,
    tolerance: int | None,
    mode: str | None,
    secret_stdin: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if header is not None:
        body["header"] = header
    if prefix is not None:
        body["prefix"] = prefix
    if tolerance is not None:
        body["tolerance_s"] = tolerance
    if mode is not None:
        body["mode"] = mode
    if secret_stdin:
        secret = read_secret("the sender's secret").strip()
        if not secret:
            raise click.UsageError("--secret-stdin read nothing: type or pipe the sender's secret in")
        body["secret"] = secret
    return body


_header = click.option(
    "--header", help="hmac_* formats: the header carrying the signature (default X-Signature)."
)
_prefix = click.option("--prefix", help="hmac_* formats: text before the signature, e.g. sha256=.")
_tolerance = click.option(
    "--tolerance",
    type=click.IntRange(10, 86400),
    help="Seconds a signed timestamp may be from orvad's clock (stripe, slack); deliveries are remembered "
    "this long to refuse replays (default 300).",
)
_mode = click.option(
    "--mode",
    type=click.Choice(["sync", "async"]),
    help="sync: the function's reply goes back to the sender; async: a job, 202 at once (default sync).",
)
_secret = click.option(
    "--secret-stdin",
    is_flag=True,
    help="Read the sender's secret (Stripe's whsec_..., Slack's signing secret) from stdin instead of "
    "having orvad generate one.",
)


@click.group()
def inbound() -> None:
    """Inbound webhooks: GitHub, Stripe, Slack or any HMAC sender runs a function.

    Each webhook has a public URL (POST, no Orva key) and a secret; orvad checks the sender's
    signature before the function runs and refuses replays.

    \b
    Examples:
      orva webhooks inbound create deployer github-push --format github
      orva webhooks inbound create billing stripe --format stripe --secret-stdin < stripe-secret.txt
      orva webhooks inbound list deployer
    """


@inbound.command("list")
@click.argument("function")
@json_option
@pass_app
def list_webhooks(app: App, function: str) -> None:
    """List FUNCTION's inbound webhooks with their URLs (never their secrets).

    \b
    Example:
      orva webhooks inbound list deployer
    """
    rows = app.get(_path(function))["webhooks"]
    app.out.show(rows, lambda items: app.out.table(items, COLUMNS))


@inbound.command("get")
@click.argument("function")
@click.argument("webhook")
@json_option
@pass_app
def get(app: App, function: str, webhook: str) -> None:
    """Show one inbound webhook (WEBHOOK: its name or id).

    \b
    Example:
      orva webhooks inbound get deployer github-push
    """
    answer = app.get(_path(function, _resolve(app, function, webhook)))
    app.out.show(answer, lambda a: app.out.dump(a))


@inbound.command("create")
@click.argument("function")
@click.argument("name")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="How the sender signs.")
@_header
@_prefix
@_tolerance
@_mode
@_secret
@click.option(
    "--disabled", is_flag=True, help="Create it disabled (enable with `orva webhooks inbound update`)."
)
@json_option
@pass_app
def create(
    app: App,
    function: str,
    name: str,
    fmt: str,
    header: str | None,
    prefix: str | None,
    tolerance: int | None,
    mode: str | None,
    secret_stdin: bool,
    disabled: bool,
) -> None:
    """Give FUNCTION an inbound webhook NAME; prints its URL and its secret, shown this once.

    \b
    Examples:
      orva webhooks inbound create deployer github-push --format github
      orva webhooks inbound create shop orders --format hmac_sha256_base64 --header X-Shopify-Hmac-Sha256
      orva webhooks inbound create slackbot events --format slack --mode async --secret-stdin
    """
    body = {"name": name, "format": fmt, **_fields(header, prefix, tolerance, mode, secret_stdin)}
    if disabled:
        body["enabled"] = False
    answer = app.post(_path(function), body)
    app.out.show(answer, lambda a: app.out.text(_shown_once(a)))


@inbound.command("update")
@click.argument("function")
@click.argument("webhook")
@click.option("--rename", help="A new name.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Another signing format.")
@_header
@_prefix
@_tolerance
@_mode
@_secret
@click.option("--enable/--disable", "enabled", default=None, help="Accept deliveries, or refuse them (403).")
@json_option
@pass_app
def update(
    app: App,
    function: str,
    webhook: str,
    rename: str | None,
    fmt: str | None,
    header: str | None,
    prefix: str | None,
    tolerance: int | None,
    mode: str | None,
    secret_stdin: bool,
    enabled: bool | None,
) -> None:
    """Change WEBHOOK (a name or id) of FUNCTION; what is not given stays.

    \b
    Examples:
      orva webhooks inbound update deployer github-push --disable
      orva webhooks inbound update billing stripe --secret-stdin < new-stripe-secret.txt
    """
    body = _fields(header, prefix, tolerance, mode, secret_stdin)
    if rename is not None:
        body["name"] = rename
    if fmt is not None:
        body["format"] = fmt
    if enabled is not None:
        body["enabled"] = enabled
    if not body:
        raise click.UsageError(
            "give at least one of --rename, --format, --header, --prefix, --tolerance, --mode, "
            "--secret-stdin, --enable/--disable"
        )
    answer = app.put(_path(function, _resolve(app, function, webhook)), body)
    app.out.show(answer, lambda a: app.out.text(_line(a)))


@inbound.command("rotate")
@click.argument("function")
@click.argument("webhook")
@json_option
@pass_app
def rotate(app: App, function: str, webhook: str) -> None:
    """A new secret for WEBHOOK, generated by orvad and shown this once; the old one stops working now.

    \b
    Example:
      orva webhooks inbound rotate deployer github-push
    """
    answer = app.client.call("POST", _path(function, _resolve(app, function, webhook), "rotate"))
    app.out.show(answer, lambda a: app.out.text(_shown_once(a)))


@inbound.command("delete")
@click.argument("function")
@click.argument("webhook")
@json_option
@pass_app
def delete(app: App, function: str, webhook: str) -> None:
    """Delete WEBHOOK: its URL answers 404 from now on.

    \b
    Example:
      orva webhooks inbound delete deployer github-push
    """
    answer = app.delete(_path(function, _resolve(app, function, webhook)))
    app.out.show(answer, lambda a: app.out.text(f"deleted inbound webhook {a['name']} of {function}"))


@click.group()
def webhooks() -> None:
    """Webhooks: inbound (senders run functions)."""


def attach(cli: click.Group) -> None:
    """`orva webhooks inbound`: under the outbound webhooks' `webhooks` group when there is one, else under a
    `webhooks` group of this module."""
    group = cli.commands.get("webhooks")
    if not isinstance(group, click.Group):
        group = webhooks
        cli.add_command(group)
    group.add_command(inbound)
