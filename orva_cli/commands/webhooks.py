"""`orva webhooks`: outbound webhooks (issue 24): Orva POSTs what happened (deployments, functions, failed
executions, jobs, schedules) to a receiver's URL, signed, from an outbox that keeps each delivery until it is
delivered or its retry window has passed. `orva webhooks inbound` (senders running functions) is attached
here by orva_cli/commands/inbound_webhooks.py."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from orva_cli.context import App, json_option, pass_app
from orva_cli.output import Col

EVENTS = (
    "deployment.succeeded",
    "deployment.failed",
    "function.created",
    "function.updated",
    "function.deleted",
    "execution.error",
    "job.succeeded",
    "job.failed",
    "cron.failed",
    "*",
)
COLUMNS = (
    Col("ID", "id"),
    Col("ENABLED", "enabled"),
    Col("EVENTS", "events"),
    Col("URL", "url", flex=True),
)
DELIVERY_COLUMNS = (
    Col("ID", "id"),
    Col("EVENT", "event_type"),
    Col("STATUS", "status"),
    Col("ATTEMPTS", "attempts"),
    Col("LAST", "last_status_code"),
    Col("ERROR", "last_error", flex=True),
    Col("CREATED", "created_at"),
)


def _path(webhook: str | None = None, *rest: str) -> str:
    base = "/api/v1/webhooks"
    return base if webhook is None else "/".join((base, quote(webhook, safe=""), *rest))


def _shown_once(h: dict[str, Any]) -> str:
    return (
        f"{h['id']}: POST {h['url']} on {', '.join(h['events'])}\nsecret: {h['secret']}\n"
        "(shown this once: the receiver checks each delivery's webhook-signature with it; see docs/WEBHOOKS.md)"
    )


def _rows(hooks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [h | {"events": ",".join(h["events"])} for h in hooks]


@click.group()
def webhooks() -> None:
    """Outbound webhooks: Orva tells another system what happened, signed, retried for 24 h.

    \b
    Examples:
      orva webhooks create https://ci.example.com/orva --event deployment.failed --event execution.error
      orva webhooks list
      orva webhooks deliveries wh_0123 --status failed
    """


@webhooks.command("list")
@json_option
@pass_app
def list_webhooks(app: App) -> None:
    """List the outbound webhooks (never their secrets).

    \b
    Example:
      orva webhooks list
    """
    rows = app.get(_path())["webhooks"]
    app.out.show(rows, lambda items: app.out.table(_rows(items), COLUMNS))


@webhooks.command("get")
@click.argument("webhook")
@json_option
@pass_app
def get(app: App, webhook: str) -> None:
    """Show one outbound webhook with its delivery counts.

    \b
    Example:
      orva webhooks get wh_0123
    """
    answer = app.get(_path(webhook))
    app.out.show(answer, lambda a: app.out.dump(a))


_events = click.option(
    "--event",
    "events",
    multiple=True,
    type=click.Choice(EVENTS),
    help="An event to send (repeat the option; * for every event).",
)
_function = click.option("--function", help="Only events of this function (name or id).")
_description = click.option("--description", help="What the receiver is.")


@webhooks.command("create")
@click.argument("url")
@_events
@_function
@_description
@json_option
@pass_app
def create(
    app: App, url: str, events: tuple[str, ...], function: str | None, description: str | None
) -> None:
    """Send events to URL; prints the signing secret, shown this once.

    \b
    Example:
      orva webhooks create https://ci.example.com/orva --event deployment.failed --event execution.error
    """
    if not events:
        raise click.UsageError("name at least one --event (or --event '*')")
    body: dict[str, Any] = {"url": url, "events": list(events)}
    if function is not None:
        body["function"] = function
    if description is not None:
        body["description"] = description
    answer = app.post(_path(), body)
    app.out.show(answer, lambda a: app.out.text(_shown_once(a)))


@webhooks.command("update")
@click.argument("webhook")
@click.option("--url", help="The new receiver URL.")
@_events
@_function
@_description
@click.option("--enable/--disable", default=None, help="Send deliveries again, or hold them.")
@json_option
@pass_app
def update(
    app: App,
    webhook: str,
    url: str | None,
    events: tuple[str, ...],
    function: str | None,
    description: str | None,
    enable: bool | None,
) -> None:
    """Change an outbound webhook (only the options given).

    \b
    Example:
      orva webhooks update wh_0123 --disable
    """
    body: dict[str, Any] = {}
    if url is not None:
        body["url"] = url
    if events:
        body["events"] = list(events)
    if function is not None:
        body["function"] = function
    if description is not None:
        body["description"] = description
    if enable is not None:
        body["enabled"] = enable
    if not body:
        raise click.UsageError(
            "nothing to change: give --url, --event, --function, --description or --enable"
        )
    answer = app.put(_path(webhook), body)
    app.out.show(answer, lambda a: app.out.dump(a))


@webhooks.command("delete")
@click.argument("webhook")
@json_option
@pass_app
def delete(app: App, webhook: str) -> None:
    """Delete an outbound webhook and its deliveries.

    \b
    Example:
      orva webhooks delete wh_0123
    """
    app.delete(_path(webhook))
    app.out.show({"id": webhook, "deleted": True}, lambda a: app.out.text(f"deleted webhook {webhook}"))


@webhooks.command("rotate")
@click.argument("webhook")
@json_option
@pass_app
def rotate(app: App, webhook: str) -> None:
    """A new signing secret (shown this once); the old one signs nothing from now on.

    \b
    Example:
      orva webhooks rotate wh_0123
    """
    answer = app.post(_path(webhook, "rotate"), {})
    app.out.show(answer, lambda a: app.out.text(_shown_once(a)))


@webhooks.command("test")
@click.argument("webhook")
@json_option
@pass_app
def test(app: App, webhook: str) -> None:
    """Queue a `ping` delivery to the receiver (follow it with `orva webhooks deliveries`).

    \b
    Example:
      orva webhooks test wh_0123
    """
    answer = app.post(_path(webhook, "test"), {})
    app.out.show(
        answer,
        lambda a: app.out.text(f"queued ping {a['id']}; follow it with `orva webhooks deliveries {webhook}`"),
    )


@webhooks.command("deliveries")
@click.argument("webhook")
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]), help="Only these.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@json_option
@pass_app
def deliveries(app: App, webhook: str, status: str | None, limit: int) -> None:
    """A webhook's deliveries, newest first, with their attempts (in --json).

    \b
    Example:
      orva webhooks deliveries wh_0123 --status failed
    """
    params: dict[str, Any] = {"limit": limit}
    if status is not None:
        params["status"] = status
    answer = app.get(_path(webhook, "deliveries"), **params)
    app.out.show(answer, lambda a: app.out.table(a["deliveries"], DELIVERY_COLUMNS))


@webhooks.command("retry")
@click.argument("delivery")
@json_option
@pass_app
def retry(app: App, delivery: str) -> None:
    """Send a delivery again now, with a fresh retry window (receivers dedupe by its webhook-id).

    \b
    Example:
      orva webhooks retry msg_0123
    """
    answer = app.post(f"/api/v1/webhooks/deliveries/{quote(delivery, safe='')}/retry", {})
    app.out.show(answer, lambda a: app.out.text(f"delivery {delivery} is {a['status']} again"))


commands = (webhooks,)
