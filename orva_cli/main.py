"""The `orva` command: global options, `login`, `completion`, and the command groups of the other modules."""

from __future__ import annotations

import click

from orva_cli.client import Client
from orva_cli.commands import (
    admin,
    ai,
    backup,
    channels,
    cluster,
    cron,
    deploy,
    firewall,
    functions,
    inbound_webhooks,
    init,
    invoke,
    jobs,
    kv,
    mcp,
    oauth,
    operate,
    replay,
    traces,
    webhooks,
)
from orva_cli.config import Settings, save
from orva_cli.context import App, json_option, pass_app, read_secret


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--endpoint", metavar="URL", help="orvad's base URL [env ORVA_ENDPOINT; default http://127.0.0.1:8443]."
)
@click.option("--api-key", metavar="KEY", help="API key [env ORVA_API_KEY].")
@click.option(
    "--json", "json_", is_flag=True, help="Print JSON for scripts (also accepted after any command)."
)
@click.version_option(package_name="orva", prog_name="orva")
@click.pass_context
def cli(ctx: click.Context, endpoint: str | None, api_key: str | None, json_: bool) -> None:
    """Manage and call the functions of an Orva server.

    Settings come from flags, then the environment (ORVA_ENDPOINT, ORVA_API_KEY), then
    ~/.orva/config.yaml (written by `orva login`). Exit codes: 0 success, 1 API error (one line
    on stderr: `error: CODE: message (hint: ...)`), 2 usage error, 3 orvad cannot be reached.

    \b
    Examples:
      orva login --endpoint http://127.0.0.1:8443 --api-key "$(cat data/admin.key)"
      orva init hello
      orva deploy ./hello --name hello --runtime python
      orva invoke hello --path '/?name=orva'
      orva functions list --json
    """
    app = ctx.obj = App(endpoint, api_key)
    app.out.json = json_
    ctx.call_on_close(app.close)


@cli.command()
@click.option("--endpoint", metavar="URL", help="orvad's base URL [default: the current setting].")
@click.option("--api-key", metavar="KEY", help="The API key to save [prompted for, hidden, when left out].")
@json_option
@pass_app
def login(app: App, endpoint: str | None, api_key: str | None) -> None:
    """Check an API key and save it with the endpoint.

    The file is ~/.orva/config.yaml, mode 0600 in a 0700 folder. A key orvad refuses is not saved.

    \b
    Example:
      orva login --endpoint https://orva.example.com --api-key "$ORVA_DEPLOY_KEY"
    """
    endpoint = (endpoint or app.settings.endpoint).rstrip("/")
    key = (api_key or app.api_key_flag or read_secret("API key")).strip()
    if not key:
        raise click.UsageError("no API key given: pass --api-key KEY or type it at the prompt")
    checker = Client(Settings(endpoint, key, "flag", "flag"))
    try:
        with app.out.spinner(f"checking the key against {endpoint}"):
            # any authenticated route: 401 means a bad key, 403 a good key without `read`
            answer = checker.send("GET", "/api/v1/functions", params={"limit": 1})
        if answer.status_code not in (200, 403):
            raise checker.failure(answer)
    finally:
        checker.close()
    path = save(endpoint, key)
    app.out.show(
        {"endpoint": endpoint, "config": str(path), "can_read": answer.status_code == 200},
        lambda d: app.out.text(f"logged in to {endpoint}; saved to {path}"),
    )


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the tab-completion script for SHELL.

    \b
    Examples:
      orva completion bash > ~/.local/share/bash-completion/completions/orva
      orva completion zsh > "${fpath[1]}/_orva"
      orva completion fish > ~/.config/fish/completions/orva.fish
    """
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    assert complete is not None  # the three choices are click's built-ins
    click.echo(complete(cli, {}, "orva", "_ORVA_COMPLETE").source())


for module in (
    init,
    functions,
    deploy,
    invoke,
    admin,
    channels,
    mcp,
    oauth,
    ai,
    kv,
    traces,
    jobs,
    cron,
    replay,
    backup,
    operate,  # issue 24: activity, sessions (and `system storage|vacuum` on admin's group)
    firewall,  # issue 24: egress rules, resolve, DNS servers
    webhooks,  # issue 24: outbound webhooks (inbound ones attach to its group below)
    cluster,  # issue 25: the node registry
):
    for command in module.commands:
        cli.add_command(command)
# issue 24: `orva webhooks inbound`, under the outbound work's `webhooks` group when it is registered
inbound_webhooks.attach(cli)


def main() -> None:
    cli(prog_name="orva")
