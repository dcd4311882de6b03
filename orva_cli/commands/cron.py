"""`orva cron`: a function's schedules (issue 23); each run is a job with trigger `cron`."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click

from orva_cli.client import CliError
from orva_cli.context import App, fn_path, json_option, pass_app
from orva_cli.output import Col

COLUMNS = (
    Col("FUNCTION", "function_name", flex=True),
    Col("NAME", "name", flex=True),
    Col("EXPRESSION", "expression"),
    Col("TIMEZONE", "timezone"),
    Col("ENABLED", "enabled"),
    Col("NEXT_RUN", "next_run_at"),
    Col("LAST_RUN", "last_run_at"),
    Col("LAST_STATUS", "last_status"),
    Col("ID", "id", short=True),
)


def _path(function: str, schedule: str | None = None) -> str:
    if schedule is None:
        return fn_path(function, "cron")
    return fn_path(function, "cron", quote(schedule, safe=""))


def _payload(raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise CliError(
            "VALIDATION",
            f"--payload is not JSON: {raw[:80]!r}",
            hint="""give JSON, e.g. --payload '{"report": "daily"}'""",
        ) from None


def _fields(
    expression: str | None, timezone: str | None, payload: str | None, catch_up: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if expression is not None:
        body["expression"] = expression
    if timezone is not None:
        body["timezone"] = timezone
    if payload is not None:
        body["payload"] = _payload(payload)
    if catch_up is not None:
        body["catch_up"] = catch_up
    return body


def _line(s: dict[str, Any]) -> str:
    state = f"next run {s['next_run_at']}" if s["enabled"] else "disabled"
    return f"{s['function_name']}/{s['name']}: {s['expression']} ({s['timezone']}), {state}"


_timezone = click.option("--timezone", "--tz", "timezone", help="IANA timezone of the times (default UTC).")
_payload_opt = click.option("--payload", help="JSON given to each run as the event's body.")
_catch_up = click.option(
    "--catch-up",
    type=click.Choice(["once", "skip"]),
    help="A tick missed while orvad was down: run once at start (once, the default) or not (skip).",
)


@click.group()
def cron() -> None:
    """Run functions on schedules: cron expressions in a timezone, each run a job.

    \b
    Examples:
      orva cron create report nightly "30 2 * * *" --timezone Europe/Berlin
      orva cron list
      orva cron disable report nightly
    """


@cron.command("list")
@click.argument("function", required=False)
@click.option("--enabled/--disabled", "enabled", default=None, help="Only enabled (or disabled) schedules.")
@json_option
@pass_app
def list_schedules(app: App, function: str | None, enabled: bool | None) -> None:
    """List the schedules of FUNCTION, or of every function, with their next and last runs.

    \b
    Examples:
      orva cron list
      orva cron list report
    """
    params: dict[str, Any] = {"limit": 1000}
    if function:
        params["function_id"] = function
    if enabled is not None:
        params["enabled"] = "true" if enabled else "false"
    rows = list(app.client.pages("/api/v1/cron", "schedules", params))
    app.out.show(rows, lambda items: app.out.table(items, COLUMNS))


@cron.command("get")
@click.argument("function")
@click.argument("schedule")
@json_option
@pass_app
def get(app: App, function: str, schedule: str) -> None:
    """Show one schedule (by name or id), its payload included.

    \b
    Example:
      orva cron get report nightly
    """
    answer = app.get(_path(function, schedule))
    app.out.show(answer, lambda a: app.out.dump(a))


@cron.command("create")
@click.argument("function")
@click.argument("name")
@click.argument("expression")
@_timezone
@_payload_opt
@_catch_up
@click.option("--disabled", is_flag=True, help="Create it disabled (enable it with `orva cron enable`).")
@json_option
@pass_app
def create(
    app: App,
    function: str,
    name: str,
    expression: str,
    timezone: str | None,
    payload: str | None,
    catch_up: str | None,
    disabled: bool,
) -> None:
    """Schedule FUNCTION as NAME on EXPRESSION (5 fields or @hourly, @daily, ...).

    A NAME the function already has is changed instead (the options given replace its values).

    \b
    Examples:
      orva cron create report nightly "30 2 * * *" --timezone Europe/Berlin
      orva cron create poller every-5 "*/5 * * * *" --payload '{"source": "feed"}' --catch-up skip
    """
    body = {"name": name, **_fields(expression, timezone, payload, catch_up)}
    if disabled:
        body["enabled"] = False
    answer = app.post(_path(function), body)
    app.out.show(answer, lambda a: app.out.text(_line(a)))


@cron.command("update")
@click.argument("function")
@click.argument("schedule")
@click.option("--expression", help="A new cron expression.")
@_timezone
@_payload_opt
@_catch_up
@click.option("--rename", help="A new name.")
@json_option
@pass_app
def update(
    app: App,
    function: str,
    schedule: str,
    expression: str | None,
    timezone: str | None,
    payload: str | None,
    catch_up: str | None,
    rename: str | None,
) -> None:
    """Change SCHEDULE (a name or id) of FUNCTION; what is not given stays.

    \b
    Examples:
      orva cron update report nightly --expression "0 3 * * *"
      orva cron update report nightly --payload '{"full": true}' --rename nightly-full
    """
    body = _fields(expression, timezone, payload, catch_up)
    if rename is not None:
        body["name"] = rename
    if not body:
        raise click.UsageError(
            "give at least one of --expression, --timezone, --payload, --catch-up, --rename"
        )
    answer = app.put(_path(function, schedule), body)
    app.out.show(answer, lambda a: app.out.text(_line(a)))


def _toggle(app: App, function: str, schedule: str, enabled: bool) -> None:
    answer = app.put(_path(function, schedule), {"enabled": enabled})
    app.out.show(answer, lambda a: app.out.text(_line(a)))


@cron.command("enable")
@click.argument("function")
@click.argument("schedule")
@json_option
@pass_app
def enable(app: App, function: str, schedule: str) -> None:
    """Enable SCHEDULE: it runs from its next tick after now (ticks while disabled never run).

    \b
    Example:
      orva cron enable report nightly
    """
    _toggle(app, function, schedule, True)


@cron.command("disable")
@click.argument("function")
@click.argument("schedule")
@json_option
@pass_app
def disable(app: App, function: str, schedule: str) -> None:
    """Disable SCHEDULE: it keeps its settings and runs no more until enabled.

    \b
    Example:
      orva cron disable report nightly
    """
    _toggle(app, function, schedule, False)


@cron.command("run")
@click.argument("function")
@click.argument("schedule")
@json_option
@pass_app
def run(app: App, function: str, schedule: str) -> None:
    """Run SCHEDULE once now, as a job with its payload (its next tick stays).

    \b
    Example:
      orva cron run report nightly
    """
    answer = app.client.call("POST", _path(function, schedule) + "/run")
    app.out.show(answer, lambda a: app.out.text(f"enqueued job {a['job_id']} (orva jobs get {a['job_id']})"))


@cron.command("delete")
@click.argument("function")
@click.argument("schedule")
@json_option
@pass_app
def delete(app: App, function: str, schedule: str) -> None:
    """Delete SCHEDULE (runs already enqueued still run).

    \b
    Example:
      orva cron delete report nightly
    """
    answer = app.delete(_path(function, schedule))
    app.out.show(answer, lambda a: app.out.text(f"deleted schedule {a['name']} of {function}"))


commands = [cron]
