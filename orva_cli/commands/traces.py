"""`orva traces`: traces (issue 23): every execution is a span; handlers add their own (orva.trace.span)."""

from __future__ import annotations

from typing import Any

import click

from orva_cli.context import App, json_option, pass_app
from orva_cli.output import Col

TRACE_COLUMNS = (
    Col("TRACE", "trace_id"),
    Col("FUNCTION", "function_name", flex=True),
    Col("STATUS", "status"),
    Col("SPANS", "span_count"),
    Col("DURATION MS", "duration_ms"),
    Col("STARTED", "started_at"),
)


@click.group()
def traces() -> None:
    """Follow requests across functions: traces and their span trees.

    \b
    Examples:
      orva traces list --function hello --status error
      orva traces get 4bf92f3577b34da6a3ce929d0e0e4736
    """


@traces.command("list")
@click.option("--function", "function", help="Only traces that entered this function (name or id).")
@click.option("--status", type=click.Choice(["ok", "error"]), help="error: something in the trace failed.")
@click.option("--since", help="Only traces that began at or after this RFC 3339 time.")
@click.option("--until", help="Only traces that began before this RFC 3339 time.")
@click.option(
    "--limit", type=click.IntRange(1, 500), default=50, show_default=True, help="At most this many."
)
@json_option
@pass_app
def list_traces(
    app: App, function: str | None, status: str | None, since: str | None, until: str | None, limit: int
) -> None:
    """List traces, newest first: the function each entered, status, span count and duration.

    \b
    Example:
      orva traces list --function hello --limit 10
    """
    params: dict[str, Any] = {"limit": limit}
    for key, value in (("function_id", function), ("status", status), ("since", since), ("until", until)):
        if value is not None:
            params[key] = value
    rows = app.get("/api/v1/traces", **params)["traces"]
    app.out.show(rows, lambda items: app.out.table(items, TRACE_COLUMNS))


def _line(span: dict[str, Any]) -> str:
    indent = "  " * span["depth"]
    if span["kind"] == "execution":
        what = f"{span['function_name']} [{span['trigger']}] {span['status']}"
        if span.get("outlier"):
            what += " outlier"
        ident = f"execution {span['execution_id']}"
    else:
        what = f"{span['name']}" + (" error" if span["status"] == "error" else "")
        ident = f"span {span['span_id']}"
    return f"{indent}{what}  {span['duration_ms']:.1f} ms  (+{span['offset_ms']:.1f} ms, {ident})"


@traces.command("get")
@click.argument("trace_id")
@json_option
@pass_app
def get(app: App, trace_id: str) -> None:
    """Print TRACE_ID's span tree: each execution and user span, indented under its parent, with its
    duration and its start offset from the trace's start.

    \b
    Example:
      orva traces get 4bf92f3577b34da6a3ce929d0e0e4736
    """
    tree = app.get(f"/api/v1/traces/{trace_id}")
    if app.out.json:
        app.out.dump(tree)
        return
    click.echo(
        f"trace {tree['trace_id']}  {tree['status']}  {tree['span_count']} spans  {tree['duration_ms']:.1f} ms"
    )
    for span in tree["spans"]:
        click.echo(_line(span))
    if tree["truncated"]:
        click.echo("(the trace has more spans than are shown: 1000 executions and 5000 user spans at most)")


commands = [traces]
