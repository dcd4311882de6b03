"""`orva invoke` calls a function over HTTP; `orva logs` shows its executions and what they printed."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click
import httpx

from orva_cli.client import CliError, envelope_error
from orva_cli.context import App, function_argument, json_option, pass_app
from orva_cli.ids import is_full_id, resolve_prefix

LOG_FETCH_DEADLINE_S = 5.0  # orvad writes execution rows a few ms after the answer, in batches


def _body(data: str | None) -> tuple[bytes | None, str | None]:
    """(bytes, content type) of --data: inline JSON, or @file / @- (stdin) sent as it is."""
    if data is None:
        return None, None
    if data.startswith("@"):
        source = data[1:]
        try:
            raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {source}: {exc.strerror}", param_hint="--data") from None
        try:
            json.loads(raw)
            return raw, "application/json"
        except ValueError:
            return raw, "application/octet-stream"
    try:
        json.loads(data)
    except ValueError as exc:
        raise click.BadParameter(
            f"not JSON ({exc}); use @FILE for other bodies", param_hint="--data"
        ) from None
    return data.encode(), "application/json"


def _headers(pairs: tuple[str, ...]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY:VALUE", param_hint="--header")
        headers[key.strip()] = value.strip()
    return headers


@click.command()
@function_argument
@click.option("--data", "-d", metavar="JSON|@FILE", help="Request body: JSON, @file, or @- for stdin.")
@click.option("--method", "-X", metavar="M", help="HTTP method [default: POST with --data, else GET].")
@click.option("--path", "-p", "path", default="/", metavar="P", help="Path (and ?query) after the function.")
@click.option("--header", "-H", multiple=True, metavar="K:V", help="A request header (repeatable).")
@click.option("--include", "-i", is_flag=True, help="Show the status line and the response headers too.")
@json_option
@pass_app
def invoke(
    app: App,
    name: str,
    data: str | None,
    method: str | None,
    path: str,
    header: tuple[str, ...],
    include: bool,
) -> None:
    """Call function NAME over HTTP and print the body it answers.

    Exits 1 when the answer's status is 400 or more; orvad's own errors (FUNCTION_ERROR,
    TIMEOUT, NOT_ACTIVE, ...) are printed as one `error:` line on stderr, which names the
    execution and the `orva logs NAME --execution ID` that shows its traceback.

    \b
    Examples:
      orva invoke hello --data '{"name": "orva"}'
      orva invoke hello -X GET --path '/users/7?full=1' -H 'Accept: text/plain' -i
      orva invoke hello --data @event.json --json
    """
    body, content_type = _body(data)
    headers = {**({"Content-Type": content_type} if content_type else {}), **_headers(header)}
    url = f"/fn/{name}/{path.lstrip('/')}"
    # no read timeout: the function's own timeout_ms (up to 15 minutes) decides how long a call may take
    response = app.client.send(
        (method or ("POST" if data is not None else "GET")).upper(),
        url,
        content=body,
        headers=headers,
        timeout=httpx.Timeout(30, read=None),
    )
    failed = response.status_code >= 400
    if app.out.json:
        app.out.dump(
            {"status": response.status_code, "headers": dict(response.headers), "body": _decoded(response)}
        )
    else:
        if include:
            _print_head(response)
        if not (failed and envelope_error(response)):
            sys.stdout.buffer.write(response.content)
            if sys.stdout.isatty() and response.content and not response.content.endswith(b"\n"):
                sys.stdout.buffer.write(b"\n")
            sys.stdout.flush()
    if failed:
        raise envelope_error(response) or CliError(
            f"HTTP_{response.status_code}", f"{name} answered {response.status_code} {_reason(response)}"
        )


def _decoded(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _reason(response: httpx.Response) -> str:
    return response.reason_phrase or httpx.codes.get_reason_phrase(
        response.status_code
    )  # hypercorn sends none


def _print_head(response: httpx.Response) -> None:
    lines = [f"{response.http_version} {response.status_code} {_reason(response)}"]
    lines += [f"{k}: {v}" for k, v in response.headers.multi_items()]
    sys.stdout.write("\n".join(lines) + "\n\n")
    sys.stdout.flush()


# --- logs ---


def _logs_of(app: App, execution_id: str) -> str:
    """An execution's output; it may be written a moment after the execution event is published."""
    deadline = time.monotonic() + LOG_FETCH_DEADLINE_S
    while True:
        answer = app.client.send("GET", f"/api/v1/executions/{execution_id}/logs")
        if answer.status_code == 200:
            return str(answer.json()["logs"])
        if answer.status_code != 404 or time.monotonic() > deadline:
            raise app.client.failure(answer)
        time.sleep(0.05)


def _show_execution(app: App, record: dict[str, Any]) -> None:
    record = {**record, "logs": _logs_of(app, record["id"])}
    if app.out.json:
        app.out.line(record)
        return
    ok = record["status"] == "success"
    head = [
        (record["started_at"][:23].replace("T", " "), "dim"),
        ("  ", ""),
        (f"{record['status']:<8}", "green" if ok else "red"),
        (f" {record['status_code'] or '-':>3}  ", ""),
        (f"{record['duration_ms']:.1f} ms", ""),
        ("  cold" if record["cold_start"] else "", "yellow"),
        (f"  {record['id']}", "dim"),
    ]
    if record.get("error_code"):
        head.append((f"  {record['error_code']}: {record.get('error_message') or ''}", "red"))
    app.out.parts(head)
    for line in record["logs"].splitlines():
        app.out.text(f"    {line}")
    sys.stdout.flush()


def _execution(app: App, name: str, ref: str) -> dict[str, Any]:
    """One execution of NAME by its id, or a unique prefix of the id of one of its last 500."""
    if not is_full_id(ref):
        recent = app.get("/api/v1/executions", function_id=name, limit=500)["executions"]
        ref = resolve_prefix(
            ref,
            (r["id"] for r in recent),
            "execution",
            f"`orva logs {name}` shows their ids",
            of=f" of {name}",
        )
    record: dict[str, Any] = app.get(f"/api/v1/executions/{ref}")
    return record


@click.command()
@function_argument
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, 500),
    default=10,
    show_default=True,
    help="How many recent executions to show.",
)
@click.option(
    "--follow", "-f", is_flag=True, help="Then keep showing new executions as they happen (Ctrl-C ends)."
)
@click.option(
    "--execution",
    "-e",
    "execution_ref",
    metavar="ID",
    help="Show only this execution: its id (as an error names it) or a unique prefix of one.",
)
@json_option
@pass_app
def logs(app: App, name: str, limit: int, follow: bool, execution_ref: str | None) -> None:
    """Show the recent executions of NAME and their logs.

    Oldest first, each with what the handler printed.

    With --json, one JSON object per execution per line (with its `logs`).

    \b
    Examples:
      orva logs hello -n 20
      orva logs hello --follow
      orva logs hello --execution 019df210-1234-7000-8000-deadbeef0001
    """
    if execution_ref is not None:
        if follow:
            raise click.UsageError("--execution shows one execution: leave out --follow")
        _show_execution(app, _execution(app, name, execution_ref))
        return
    recent = app.get("/api/v1/executions", function_id=name, limit=limit)["executions"]
    for record in reversed(recent):
        _show_execution(app, record)
    if not follow:
        return
    app.out.note(f"following {name} (Ctrl-C to stop)")
    seen = {r["id"] for r in recent}
    signal.signal(signal.SIGINT, _stop_following)
    try:
        for event, data in app.client.events("/api/v1/events", {"types": "execution", "function_id": name}):
            if event == "execution" and data["id"] not in seen:
                seen.add(data["id"])
                _show_execution(app, data)
            elif event == "dropped":
                app.out.note(f"(missed {data.get('count', 'some')} executions: the terminal fell behind)")
    except KeyboardInterrupt:
        return
    raise CliError(
        "STREAM_ENDED", "orvad closed the event stream", "orvad may be restarting; run the command again"
    )


def _stop_following(signum: int, frame: Any) -> None:
    """Ctrl-C ends a follow at once, wherever the stream or a log fetch stands: unwinding out of
    an HTTP call half done can wait on the connection it leaves behind."""
    with contextlib.suppress(Exception):  # stdout may be mid-write in the interrupted code
        sys.stdout.flush()
    os._exit(0)


commands = [invoke, logs]
