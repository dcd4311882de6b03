"""`orva kv`: a function's KV state (issue 23), as its handlers see it through `orva.kv`."""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import quote

import click

from orva_cli.client import CliError
from orva_cli.context import App, fn_path, json_option, pass_app
from orva_cli.output import Col

KEY_COLUMNS = (
    Col("KEY", "key", flex=True),
    Col("TYPE", "type"),
    Col("SIZE", "size"),
    Col("VERSION", "version"),
    Col("EXPIRES", "expires_at"),
    Col("UPDATED", "updated_at"),
)


def _key_path(function: str, key: str) -> str:
    # every character but letters and digits escaped: a key `..` or `a/b` stays one path segment
    return fn_path(function, "kv", quote(key, safe="").replace(".", "%2E"))


@click.group()
def kv() -> None:
    """Read and change a function's KV state (its handlers use it through orva.kv).

    \b
    Examples:
      orva kv list hello --prefix users/
      orva kv put hello greeting '"hi"' --ttl 3600
      orva kv get hello greeting
    """


@kv.command("list")
@click.argument("function")
@click.option("--prefix", default="", help="Only keys starting with this.")
@json_option
@pass_app
def list_keys(app: App, function: str, prefix: str) -> None:
    """List FUNCTION's keys (all pages), in byte order, with type, size, version and expiry.

    \b
    Example:
      orva kv list hello --prefix users/
    """
    params: dict[str, Any] = {"limit": 1000}
    if prefix:
        params["prefix"] = prefix
    items = list(app.client.pages(fn_path(function, "kv"), "keys", params))
    app.out.show(items, lambda rows: app.out.table(rows, KEY_COLUMNS))


@kv.command("get")
@click.argument("function")
@click.argument("key")
@json_option
@pass_app
def get(app: App, function: str, key: str) -> None:
    """Print the value of KEY: JSON as JSON, bytes as they are (redirect them to a file).

    With --json: the whole record (value, type, size, version, expires_at).

    \b
    Examples:
      orva kv get hello greeting
      orva kv get hello avatar > avatar.png
    """
    answer = app.get(_key_path(function, key))
    if app.out.json:
        app.out.dump(answer)
    elif answer["type"] == "bytes":
        raw = app.client.send(
            "GET", _key_path(function, key), headers={"Accept": "application/octet-stream"}
        ).content
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
    else:
        click.echo(json.dumps(answer["value"], indent=2, ensure_ascii=False))


@kv.command("put")
@click.argument("function")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--string", "as_string", is_flag=True, help="Store VALUE as a JSON string, as typed.")
@click.option(
    "--file",
    "path",
    type=click.File("rb"),
    help="Store this file's bytes as a bytes value (- for stdin) instead of VALUE.",
)
@click.option("--ttl", type=click.FloatRange(0.001, 315_360_000), help="Seconds until the key expires.")
@click.option("--if-version", type=click.IntRange(0), help="Only if KEY is at this version (0: absent).")
@json_option
@pass_app
def put(
    app: App,
    function: str,
    key: str,
    value: str | None,
    as_string: bool,
    path: Any,
    ttl: float | None,
    if_version: int | None,
) -> None:
    """Set KEY to VALUE (JSON: '"text"', 42, '{"a": 1}'), to a string with --string, or to a file's bytes.

    \b
    Examples:
      orva kv put hello greeting '"hi there"'
      orva kv put hello greeting 'hi there' --string --ttl 3600
      orva kv put hello config '{"mode": "fast"}' --if-version 0
      orva kv put hello avatar --file avatar.png
    """
    if (value is None) == (path is None):
        raise click.UsageError("give a VALUE or --file PATH (one of them)")
    if path is not None:
        params: dict[str, Any] = {}
        if ttl is not None:
            params["ttl_s"] = ttl
        if if_version is not None:
            params["if_version"] = if_version
        answer = app.client.call(
            "PUT",
            _key_path(function, key),
            content=path.read(),
            params=params,
            headers={"Content-Type": "application/octet-stream"},
        )
    else:
        assert value is not None
        if as_string:
            parsed: Any = value
        else:
            try:
                parsed = json.loads(value)
            except ValueError:
                raise CliError(
                    "VALIDATION",
                    f"VALUE is not JSON: {value[:80]!r}",
                    hint=f"quote a string as JSON ('\"{value[:20]}\"') or add --string",
                ) from None
        body: dict[str, Any] = {"value": parsed}
        if ttl is not None:
            body["ttl_s"] = ttl
        if if_version is not None:
            body["if_version"] = if_version
        answer = app.put(_key_path(function, key), body)
    app.out.show(
        answer,
        lambda a: app.out.text(
            f"{key}: version {a['version']}, {a['size']} bytes"
            + (f", expires {a['expires_at']}" if a.get("expires_at") else "")
        ),
    )


@kv.command("delete")
@click.argument("function")
@click.argument("key")
@json_option
@pass_app
def delete(app: App, function: str, key: str) -> None:
    """Delete KEY.

    \b
    Example:
      orva kv delete hello greeting
    """
    answer = app.delete(_key_path(function, key))
    app.out.show(answer, lambda _: app.out.text(f"deleted {key}"))


commands = [kv]
