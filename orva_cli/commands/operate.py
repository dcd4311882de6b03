"""Operating orvad (issue 24): `orva activity` (the audit log as a feed, --follow for live rows),
`orva system storage` and `orva system vacuum` (added to the `system` group of admin.py), `orva sessions`
(the dashboard's logins: list, revoke one, revoke all)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from typing import Any

import click

from orva_cli.client import CliError
from orva_cli.commands.admin import system
from orva_cli.context import App, json_option, pass_app
from orva_cli.output import Col

ACTIVITY_COLUMNS = (
    Col("TIME", "ts"),
    Col("SOURCE", "source"),
    Col("ACTOR", "actor"),
    Col("WHAT", "what", flex=True),
    Col("STATUS", "status"),
)
SOURCES = ("api", "mcp", "assistant", "cli", "webhook")
READ_METHODS = ("GET", "HEAD", "OPTIONS")  # the rows --hide-reads leaves out (orvad/store/audit.py)
TABLE_COLUMNS = (Col("TABLE", "name", flex=True), Col("ROWS", "rows"), Col("BYTES", "bytes"))
SESSION_COLUMNS = (
    Col("ID", "id", short=True),
    Col("USER", "username"),
    Col("DEVICE", "device", flex=True),
    Col("IP", "ip"),
    Col("CREATED", "created_at"),
    Col("LAST SEEN", "last_seen_at"),
)


def _activity_line(row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row,
        "actor": row.get("actor_name") or row.get("actor_id") or row["actor_kind"],
        "what": f"{row['method']} {row['path']}",
    }


def _print_row(app: App, row: dict[str, Any]) -> None:
    if app.out.json:
        click.echo(json.dumps(row))  # one object a line: a follower's output is read line by line
        return
    line = _activity_line(row)
    style = "red" if row["status"] >= 500 else "yellow" if row["status"] >= 400 else None
    app.out.text(f"{row['ts']}  {row['source']:<9} {line['actor']}  {line['what']}  {row['status']}", style)


@click.command()
@click.option("--source", type=click.Choice(SOURCES), help="Only rows of this source.")
@click.option(
    "--actor", "actor_id", metavar="ID", help="Only rows of this actor (a key, user, channel or webhook id)."
)
@click.option(
    "--query", "-q", "q", metavar="TEXT", help="Only rows whose path, method, actor or target contain TEXT."
)
@click.option("--since", help="Only rows at or after this RFC 3339 time.")
@click.option("--until", help="Only rows before this RFC 3339 time.")
@click.option(
    "--status-min",
    type=click.IntRange(0, 999),
    help="Only rows whose status is at least this (400: failures).",
)
@click.option(
    "--hide-reads",
    is_flag=True,
    help="Leave out the API calls that only read (GET, HEAD); changes and tool calls stay.",
)
@click.option(
    "--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="At most this many rows."
)
@click.option("--follow", "-f", is_flag=True, help="Then print new rows as they happen (Ctrl-C to stop).")
@json_option
@pass_app
def activity(
    app: App,
    source: str | None,
    actor_id: str | None,
    q: str | None,
    since: str | None,
    until: str | None,
    status_min: int | None,
    hide_reads: bool,
    limit: int,
    follow: bool,
) -> None:
    """What happened on orvad, newest first: every API call a key or a login made (reads too:
    --hide-reads leaves them out), MCP and assistant tool calls, webhook deliveries, host commands (the
    audit log; needs an admin key).

    With --follow the rows print oldest first, then new ones as they are recorded (--json: one JSON
    object a line).

    \b
    Examples:
      orva activity --source mcp --since 2026-01-01T00:00:00Z
      orva activity --status-min 400 -q functions
      orva activity --follow --hide-reads
    """
    params = {
        "source": source,
        "actor_id": actor_id,
        "q": q,
        "since": since,
        "until": until,
        "status_min": status_min,
        "hide_reads": "true" if hide_reads else None,
        "limit": limit,
    }
    rows = app.get("/api/v1/activity", **params)["activity"]
    if not follow:
        app.out.show(rows, lambda items: app.out.table([_activity_line(r) for r in items], ACTIVITY_COLUMNS))
        return
    if until is not None:
        raise click.UsageError("--until ends the list: leave it out with --follow")
    for row in reversed(rows):
        _print_row(app, row)
    sys.stdout.flush()
    seen = {r["id"] for r in rows}
    signal.signal(signal.SIGINT, _stop_following)
    for event, data in app.client.events("/api/v1/events", {"types": "activity"}):
        if event == "activity" and data["id"] not in seen and _matches(data, params):
            seen.add(data["id"])
            _print_row(app, data)
            sys.stdout.flush()
        elif event == "dropped":
            app.out.note(f"(missed {data.get('count', 'some')} rows: the terminal fell behind)")
    raise CliError(
        "STREAM_ENDED", "orvad closed the event stream", "orvad may be restarting; run the command again"
    )


def _matches(row: dict[str, Any], params: dict[str, Any]) -> bool:
    """The list's filters, applied to a live row."""
    if params["source"] and row["source"] != params["source"]:
        return False
    if params["actor_id"] and row["actor_id"] != params["actor_id"]:
        return False
    if params["status_min"] is not None and row["status"] < params["status_min"]:
        return False
    if params["hide_reads"] and row["method"] in READ_METHODS:
        return False
    if params["q"]:
        needle = params["q"].lower()
        fields = (row.get(k) or "" for k in ("path", "method", "actor_name", "target_id"))
        return any(needle in str(v).lower() for v in fields)
    return True


def _stop_following(signum: int, frame: Any) -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os._exit(0)


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1048576:.1f} MiB"


@system.command("storage")
@json_option
@pass_app
def storage(app: App) -> None:
    """What orvad keeps on disk: the database (file, WAL, free space, rows and bytes per table), the
    version trees, the build cache, and the last vacuum.

    \b
    Example:
      orva system storage
    """

    def render(data: dict[str, Any]) -> None:
        db = data["database"]
        app.out.record(
            {
                "database": f"{db['path']}  {_mib(db['bytes'])} (+ WAL {_mib(db['wal_bytes'])})",
                "free in the file": f"{_mib(db['free_bytes'])} ({db['free_pages']} pages)",
                "auto_vacuum": db["auto_vacuum"],
                "executions": f"{data['executions']['rows']} rows, {_mib(data['executions']['bytes'])}",
                "logs": f"{data['logs']['rows']} rows, {_mib(data['logs']['bytes'])}",
                "versions": _mib(data["versions_bytes"]),
                "build cache": _mib(data["build_cache_bytes"]),
                "data dir": _mib(data["data_dir_bytes"]),
                "last vacuum": _vacuum_summary(data["vacuum"]) if data["vacuum"] else "none since start",
            }
        )
        app.out.table(db["tables"], TABLE_COLUMNS, title="tables")

    app.out.show(app.get("/api/v1/system/storage"), render)


def _vacuum_summary(run: dict[str, Any]) -> str:
    if run["running"]:
        return f"{run['mode']} vacuum running since {run['started_at']}"
    if run["error"]:
        return f"{run['mode']} vacuum at {run['started_at']} failed: {run['error']}"
    return (
        f"{run['mode']} at {run['started_at']}: reclaimed {_mib(run['reclaimed_bytes'])} in "
        f"{run['duration_ms']:.0f} ms (writes waited at most {run['longest_lock_ms']:.0f} ms)"
    )


@system.command("vacuum")
@click.option("--full", is_flag=True, help="Rebuild the whole file (writes wait for all of it).")
@click.option("--no-wait", is_flag=True, help="Start it and return at once.")
@json_option
@pass_app
def vacuum(app: App, full: bool, no_wait: bool) -> None:
    """Give the database's free pages back to the disk (needs an admin key).

    Without --full orvad frees pages in short steps where the file allows it (writes wait a few ms
    each); invocations go on either way.

    \b
    Examples:
      orva system vacuum
      orva system vacuum --full --no-wait && orva system storage
    """
    params = {"mode": "full" if full else None, "wait": "false" if no_wait else None}
    run = app.client.call(
        "POST", "/api/v1/system/vacuum", params={k: v for k, v in params.items() if v is not None}
    )
    app.out.show(run, lambda r: app.out.text(_vacuum_summary(r)))


@click.group()
def sessions() -> None:
    """The dashboard's logins: list them, end one, end all (an admin key sees every user's).

    \b
    Examples:
      orva sessions list
      orva sessions revoke 01a24803-af26-7761-9f8b-0174cae73b05
    """


@sessions.command("list")
@json_option
@pass_app
def list_sessions(app: App) -> None:
    """List the live dashboard sessions, newest first: user, device, IP, created, last seen.

    \b
    Example:
      orva sessions list
    """
    rows = app.get("/api/v1/auth/sessions")["sessions"]
    app.out.show(rows, lambda items: app.out.table(items, SESSION_COLUMNS))


@sessions.command("revoke")
@click.argument("session_id")
@json_option
@pass_app
def revoke(app: App, session_id: str) -> None:
    """End the session SESSION_ID: its browser is logged out on its next request.

    \b
    Example:
      orva sessions revoke 01a24803-af26-7761-9f8b-0174cae73b05
    """
    answer = app.delete(f"/api/v1/auth/sessions/{session_id}")
    app.out.show(answer, lambda d: app.out.text(f"session {session_id} ended"))


@sessions.command("revoke-all")
@click.option("--yes", is_flag=True, help="Do it without asking.")
@json_option
@pass_app
def revoke_all(app: App, yes: bool) -> None:
    """Log every user out of the dashboard everywhere.

    \b
    Example:
      orva sessions revoke-all --yes
    """
    if not yes and not click.confirm("end every dashboard session of every user?", err=True):
        raise click.Abort()
    answer = app.delete("/api/v1/auth/sessions")
    app.out.show(answer, lambda d: app.out.text(f"{d['revoked']} session(s) ended"))


commands = [activity, sessions]
