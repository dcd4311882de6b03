"""`orva executions request|replay ID` (an execution's captured request, and running it again) and
`orva fixtures list|save|run|delete FUNCTION [NAME]` (a function's saved test requests), issue 23."""

from __future__ import annotations

import base64
import sys
from typing import Any
from urllib.parse import quote

import click
import httpx

from orva_cli.client import CliError, envelope_error
from orva_cli.commands.invoke import _body, _headers
from orva_cli.context import App, fn_path, json_option, pass_app
from orva_cli.output import Col

FIXTURE_COLUMNS = (
    Col("NAME", "name", flex=True),
    Col("METHOD", "method"),
    Col("PATH", "path"),
    Col("QUERY", "query"),
    Col("BODY", "size"),
    Col("UPDATED", "updated_at"),
)


def _bytes(answer: dict[str, Any]) -> bytes:
    body = str(answer.get("body", ""))
    return base64.b64decode(body) if answer.get("body_encoding") == "base64" else body.encode()


def _write_body(raw: bytes) -> None:
    sys.stdout.buffer.write(raw)
    if sys.stdout.isatty() and raw and not raw.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


@click.group()
def executions() -> None:
    """An execution's captured request, and replaying it.

    \b
    Examples:
      orva executions request 019df210-1234-7000-8000-deadbeef0001
      orva executions replay 019df210-1234-7000-8000-deadbeef0001
    """


@executions.command("request")
@click.argument("execution_id")
@json_option
@pass_app
def request_(app: App, execution_id: str) -> None:
    """Show the request EXECUTION_ID received (credentials redacted, the body up to 1 MiB).

    \b
    Example:
      orva executions request 019df210-1234-7000-8000-deadbeef0001
    """
    answer = app.get(f"/api/v1/executions/{quote(execution_id, safe='')}/request")
    if app.out.json:
        app.out.dump(answer)
        return
    target = answer["path"] + (f"?{answer['query']}" if answer["query"] else "")
    lines = [f"{answer['method']} {target}"]
    lines += [f"{name}: {value}" for name, value in answer["headers"]]
    app.out.text("\n".join(lines) + "\n")
    if answer["body_truncated"]:
        app.out.text(f"(body: the first 1 MiB of {answer['body_size']} bytes)", "yellow")
    _write_body(_bytes(answer))


@executions.command("replay")
@click.argument("execution_id")
@json_option
@pass_app
def replay(app: App, execution_id: str) -> None:
    """Run EXECUTION_ID's captured request again on the function's current version (trigger replay).

    Prints the new answer's body; the new execution's id goes to stderr. Needs the invoke permission;
    the replay runs as you (the captured credentials were redacted). A signed function cannot be
    replayed (NOT_REPLAYABLE).

    \b
    Example:
      orva executions replay 019df210-1234-7000-8000-deadbeef0001
    """
    answer = app.post(f"/api/v1/executions/{quote(execution_id, safe='')}/replay", {})
    if app.out.json:
        app.out.dump(answer)
        return
    click.echo(f"replayed as execution {answer['execution_id']} (status {answer['status']})", err=True)
    _write_body(_bytes(answer))


@click.group()
def fixtures() -> None:
    """A function's saved test requests (the dashboard's Test tab lists the same ones).

    \b
    Examples:
      orva fixtures save hello happy --data '{"name": "orva"}'
      orva fixtures list hello
      orva fixtures run hello happy
      orva fixtures delete hello happy
    """


def _fixture_path(function: str, name: str | None = None) -> str:
    return fn_path(function, "fixtures", *([quote(name, safe="")] if name else []))


@fixtures.command("list")
@click.argument("function")
@json_option
@pass_app
def list_fixtures(app: App, function: str) -> None:
    """List FUNCTION's fixtures.

    \b
    Example:
      orva fixtures list hello
    """
    items = app.get(_fixture_path(function))["fixtures"]
    rows = [{**f, "size": len(_bytes(f))} for f in items]
    app.out.show(items, lambda _: app.out.table(rows, FIXTURE_COLUMNS))


@fixtures.command("save")
@click.argument("function")
@click.argument("name")
@click.option("--data", "-d", metavar="JSON|@FILE", help="Request body: JSON, @file, or @- for stdin.")
@click.option("--method", "-X", metavar="M", help="HTTP method [default: POST with --data, else GET].")
@click.option("--path", "-p", "path", default="/", metavar="P", help="Path (and ?query) after the function.")
@click.option("--header", "-H", multiple=True, metavar="K:V", help="A request header (repeatable).")
@click.option("--description", default="", help="What the request tests.")
@click.option("--from-execution", metavar="ID", help="Save the request execution ID received instead.")
@json_option
@pass_app
def save(
    app: App,
    function: str,
    name: str,
    data: str | None,
    method: str | None,
    path: str,
    header: tuple[str, ...],
    description: str,
    from_execution: str | None,
) -> None:
    """Save a request as FUNCTION's fixture NAME (replacing one of that name).

    Takes the options of `orva invoke`, or --from-execution ID (its captured request, its redacted
    credentials left out).

    \b
    Examples:
      orva fixtures save hello happy --data '{"name": "orva"}'
      orva fixtures save hello list -X GET --path '/users?page=2' -H 'Accept: text/plain'
      orva fixtures save hello bug-42 --from-execution 019df210-1234-7000-8000-deadbeef0001
    """
    if from_execution is not None:
        captured = app.get(f"/api/v1/executions/{quote(from_execution, safe='')}/request")
        fields: dict[str, Any] = {
            "method": captured["method"],
            "path": captured["path"],
            "query": "&".join(
                part for part in captured["query"].split("&") if part and not part.endswith("=%5Bredacted%5D")
            ),
            "headers": {
                k: v
                for k, v in captured["headers"]
                if v != "[redacted]" and k not in ("host", "content-length", "connection", "user-agent")
            },
            "body": captured["body"],
            "body_encoding": captured["body_encoding"],
        }
    else:
        raw, content_type = _body(data)
        target, _, query = path.partition("?")
        headers = {**({"content-type": content_type} if content_type else {}), **_headers(header)}
        fields = {
            "method": (method or ("POST" if data is not None else "GET")).upper(),
            "path": "/" + target.lstrip("/"),
            "query": query,
            "headers": headers,
            "body": base64.b64encode(raw or b"").decode(),
            "body_encoding": "base64",
        }
    body = {"name": name, "description": description, **fields}
    response = app.client.send("PUT", _fixture_path(function, name), json=body)
    error = envelope_error(response) if response.status_code == 404 else None
    if error is not None and error.code == "NOT_FOUND" and "fixture" in str(error):
        answer = app.post(_fixture_path(function), body)
    elif response.status_code >= 400:
        raise app.client.failure(response)
    else:
        answer = response.json()
    app.out.show(answer, lambda a: app.out.text(f"saved fixture {a['name']} of {function}"))


@fixtures.command("run")
@click.argument("function")
@click.argument("name")
@click.option("--include", "-i", is_flag=True, help="Show the status line and the response headers too.")
@json_option
@pass_app
def run(app: App, function: str, name: str, include: bool) -> None:
    """Send FUNCTION's fixture NAME to /fn/FUNCTION and print the answer (as `orva invoke` does).

    \b
    Example:
      orva fixtures run hello happy
    """
    fixture = app.get(_fixture_path(function, name))
    url = f"/fn/{function}/{fixture['path'].lstrip('/')}" + (
        f"?{fixture['query']}" if fixture["query"] else ""
    )
    response = app.client.send(
        fixture["method"],
        url,
        content=_bytes(fixture),
        headers=fixture["headers"],
        timeout=httpx.Timeout(30, read=None),
    )
    failed = response.status_code >= 400
    if app.out.json:
        try:
            decoded: Any = response.json()
        except ValueError:
            decoded = response.text
        app.out.dump({"status": response.status_code, "headers": dict(response.headers), "body": decoded})
    else:
        if include:
            head = [f"{response.http_version} {response.status_code}"]
            head += [f"{k}: {v}" for k, v in response.headers.multi_items()]
            sys.stdout.write("\n".join(head) + "\n\n")
        if not (failed and envelope_error(response)):
            _write_body(response.content)
    if failed:
        raise envelope_error(response) or CliError(
            f"HTTP_{response.status_code}", f"{function} answered {response.status_code}"
        )


@fixtures.command("delete")
@click.argument("function")
@click.argument("name")
@json_option
@pass_app
def delete(app: App, function: str, name: str) -> None:
    """Delete FUNCTION's fixture NAME.

    \b
    Example:
      orva fixtures delete hello happy
    """
    answer = app.delete(_fixture_path(function, name))
    app.out.show(answer, lambda _: app.out.text(f"deleted fixture {name} of {function}"))


commands = [executions, fixtures]
