"""What every command shares: the App (settings, client, output) and the options each command accepts."""

from __future__ import annotations

import sys
from typing import Any

import click

from orva_cli.client import Client, CliError
from orva_cli.config import ConfigError, Settings, resolve
from orva_cli.output import Output


class App:
    def __init__(self, endpoint: str | None, api_key: str | None) -> None:
        self.endpoint_flag, self.api_key_flag = endpoint, api_key
        self.out = Output()
        self._client: Client | None = None

    @property
    def settings(self) -> Settings:
        try:
            return resolve(self.endpoint_flag, self.api_key_flag)
        except ConfigError as exc:
            raise CliError("CONFIG", str(exc), "fix the file or run `orva login` again") from None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.settings)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # the calls nearly every command makes
    def get(self, path: str, /, **params: Any) -> Any:
        return self.client.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.call("POST", path, json=body)

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.client.call("PUT", path, json=body)

    def delete(self, path: str, /, **params: Any) -> Any:
        return self.client.call("DELETE", path, params=params or None)


pass_app = click.make_pass_decorator(App)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    app = ctx.find_object(App)
    if value and app is not None:
        app.out.json = True


def json_option(f: Any) -> Any:
    """`--json` on every command (and before it, on `orva` itself) prints JSON for scripts."""
    return click.option(
        "--json",
        "json_",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print JSON for scripts instead of a table.",
    )(f)


def function_argument(f: Any) -> Any:
    return click.argument("name", metavar="NAME")(f)


def read_secret(what: str) -> str:
    """A secret typed at a hidden prompt, or piped in on stdin (kept out of argv and shell history)."""
    if sys.stdin.isatty():
        return str(click.prompt(what, hide_input=True))
    return sys.stdin.read().removesuffix("\n")


def fn_path(name: str, *rest: str) -> str:
    """/api/v1/functions/NAME[/...]: the server takes a function's name or id alike."""
    return "/".join(("/api/v1/functions", name, *rest))
