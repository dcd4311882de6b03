"""`orva functions ...`, and a function's versions: `deployments`, `rollback`, `diff`."""

from __future__ import annotations

import sys
from typing import Any

import click

from orva_cli.client import CliError
from orva_cli.context import App, fn_path, function_argument, json_option, pass_app

FUNCTION_COLUMNS = (("NAME", "name"), ("RUNTIME", "runtime"), ("STATUS", "status"), ("ENTRYPOINT", "entrypoint"),
                    ("MEMORY_MB", "memory_mb"), ("AUTH", "auth_mode"), ("UPDATED", "updated_at"), ("ID", "id"))
DEPLOYMENT_COLUMNS = (("ID", "id"), ("VERSION", "version"), ("STATUS", "status"), ("SOURCE", "source"),
                      ("CODE_HASH", "code_hash"), ("SUBMITTED", "submitted_at"), ("MS", "duration_ms"),
                      ("ERROR", "error_message"))


def _env_pairs(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        pairs[name] = value
    return pairs


def function_options(f: Any) -> Any:
    """The settable fields of a function, shared by `create` and `update` (None: not given)."""
    options = [
        click.option("--runtime", help="python, node, or a versioned id such as python3.11 (see /api/v1/runtimes)."),
        click.option("--entrypoint", help="The handler file [default: handler.py / handler.js]."),
        click.option("--description"),
        click.option("--memory-mb", type=int, help="Memory limit, 16..4096 [default 128]."),
        click.option("--cpus", type=float, help="CPU share [default 1]."),
        click.option("--timeout-ms", type=int, help="Per-request time limit [default 30000]."),
        click.option("--env", "env_vars", multiple=True, metavar="KEY=VALUE", callback=_env_pairs,
                     help="An environment variable (repeatable)."),
        click.option("--network-mode", type=click.Choice(["none", "egress"])),
        click.option("--auth-mode", type=click.Choice(["none", "api_key", "signed"])),
        click.option("--max-concurrency", type=int, help="0 = no limit beyond the pool."),
        click.option("--concurrency-policy", type=click.Choice(["queue", "reject"])),
        click.option("--rate-limit-per-min", type=int, help="Per client address; 0 = none."),
        click.option("--signature-version", type=click.IntRange(1, 2),
                     help="Signed form: 2 covers method and path [default for new functions], 1 the old one."),
        click.option("--csp-sandbox/--no-csp-sandbox", default=None,
                     help="Sandbox replies on the dashboard's origin [default: on]."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def show_function(app: App, fn: dict[str, Any]) -> None:
    app.out.show(fn, app.out.record)


@click.group("functions")
def functions_group() -> None:
    """List, inspect, create, change and delete functions.

    \b
    Example:
      orva functions create hello --runtime python --memory-mb 256
    """


@functions_group.command("list")
@click.option("--status", type=click.Choice(["created", "building", "active", "inactive", "error"]))
@click.option("--runtime")
@json_option
@pass_app
def list_functions(app: App, status: str | None, runtime: str | None) -> None:
    """List every function, newest first.

    \b
    Example:
      orva functions list --status active
    """
    params = {k: v for k, v in (("status", status), ("runtime", runtime)) if v}
    items = list(app.client.pages("/api/v1/functions", "functions", params))
    app.out.show(items, lambda rows: app.out.table(rows, FUNCTION_COLUMNS))


@functions_group.command("get")
@function_argument
@json_option
@pass_app
def get_function(app: App, name: str) -> None:
    """Show one function (by name or id).

    \b
    Example:
      orva functions get hello --json
    """
    show_function(app, app.get(fn_path(name)))


@functions_group.command("create")
@click.argument("name")
@function_options
@json_option
@pass_app
def create_function(app: App, name: str, **fields: Any) -> None:
    """Create a function record (deploy code into it with `orva deploy`).

    \b
    Example:
      orva functions create hello --runtime python --env GREETING=hi
    """
    if not fields["runtime"]:
        raise click.UsageError("--runtime is required to create a function")
    show_function(app, app.post("/api/v1/functions", {"name": name, **_given(fields)}))


@functions_group.command("update")
@function_argument
@function_options
@click.option("--rename", metavar="NEW_NAME", help="Give the function a new name.")
@click.option("--status", type=click.Choice(["active", "inactive"]), help="inactive stops serving it.")
@click.option("--unset-env", multiple=True, metavar="KEY", help="Remove an environment variable (repeatable).")
@json_option
@pass_app
def update_function(app: App, name: str, rename: str | None, unset_env: tuple[str, ...], **fields: Any) -> None:
    """Change some fields of a function.

    --env adds to its variables and --unset-env removes one; other fields keep their values.

    \b
    Example:
      orva functions update hello --memory-mb 512 --env LOG_LEVEL=debug --status active
    """
    body = _given(fields)
    if rename:
        body["name"] = rename
    if body.get("env_vars") or unset_env:  # the server replaces env_vars whole; merge with what is there
        current = dict(app.get(fn_path(name))["env_vars"])
        current.update(body.get("env_vars", {}))
        body["env_vars"] = {k: v for k, v in current.items() if k not in unset_env}
    if not body:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    show_function(app, app.put(fn_path(name), body))


@functions_group.command("delete")
@function_argument
@click.option("--yes", "-y", is_flag=True, help="Do not ask (needed when not on a terminal).")
@json_option
@pass_app
def delete_function(app: App, name: str, yes: bool) -> None:
    """Delete a function and everything it has. Irreversible.

    Its versions, secrets, routes, pool settings and executions go with it.

    \b
    Example:
      orva functions delete hello --yes
    """
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("deleting needs --yes when not on a terminal")
        click.confirm(f"delete function {name} and everything it has?", abort=True)
    answer = app.delete(fn_path(name))
    app.out.show(answer, lambda d: app.out.text(f"deleted function {name}"))


def deployment_id(app: App, name: str, ref: str) -> str:
    """A deployment id, or the id of version N when ref is a number (the VERSION column of `deployments`)."""
    if not ref.isdigit():
        return ref
    for dep in app.client.pages(fn_path(name, "deployments"), "deployments", {"limit": 500}):
        if dep["version"] == int(ref):
            return str(dep["id"])
    raise CliError("VERSION_NOT_FOUND", f"{name} has no version {ref}", f"list them with `orva deployments {name}`")


def _given(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None and v != {}}


@click.command()
@function_argument
@click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
@json_option
@pass_app
def deployments(app: App, name: str, limit: int) -> None:
    """List a function's deployments, newest first.

    Their ids are what `orva rollback` and `orva diff` take.

    \b
    Example:
      orva deployments hello --limit 5
    """
    items = app.get(fn_path(name, "deployments"), limit=limit)["deployments"]
    app.out.show(items, lambda rows: app.out.table(
        [{**d, "code_hash": (d["code_hash"] or "")[:12]} for d in rows], DEPLOYMENT_COLUMNS))


@click.command()
@function_argument
@click.argument("deployment_ref", metavar="[DEPLOYMENT_ID]", required=False)
@click.option("--hash", "code_hash", metavar="H", help="Roll back to the version with this code hash instead.")
@json_option
@pass_app
def rollback(app: App, name: str, deployment_ref: str | None, code_hash: str | None) -> None:
    """Make an earlier successful version of NAME active again.

    DEPLOYMENT_ID is a deployment's id or its version number (see `orva deployments NAME`).

    \b
    Examples:
      orva rollback hello 019df210-1234-7000-8000-deadbeef0001
      orva rollback hello 3
      orva rollback hello --hash 3f2a...
    """
    if (deployment_ref is None) == (code_hash is None):
        raise click.UsageError("give a DEPLOYMENT_ID or --hash H (one of them)")
    body = {"deployment_id": deployment_id(app, name, deployment_ref)} if deployment_ref else {"code_hash": code_hash}
    dep = app.post(fn_path(name, "rollback"), body)
    app.out.show(dep, lambda d: app.out.text(
        f"rolled back {name} to {d['parent_deployment_id']} (code hash {d['code_hash'][:12]})"))


@click.command()
@function_argument
@click.argument("from_id", metavar="FROM")
@click.argument("to_id", metavar="TO")
@json_option
@pass_app
def diff(app: App, name: str, from_id: str, to_id: str) -> None:
    """Diff the code of two deployments of a function.

    Compares the handler and the dependency manifest (requirements.txt / package.json).

    FROM and TO are deployment ids or version numbers (see `orva deployments NAME`). The diff is
    unified, and coloured on a terminal.

    \b
    Examples:
      orva diff hello 1 2
      orva diff hello 019df210-...-0001 019df210-...-0002 | less -R
    """
    params = {"from": deployment_id(app, name, from_id), "to": deployment_id(app, name, to_id)}
    if app.out.json:
        app.out.dump(app.get(fn_path(name, "diff"), **params))
        return
    text = app.client.text(fn_path(name, "diff"), params={**params, "format": "unified"})
    styles = (("+++", "bold"), ("---", "bold"), ("+", "green"), ("-", "red"), ("@@", "cyan"))
    for line in text.splitlines():
        style = next((s for prefix, s in styles if line.startswith(prefix)), "")
        app.out.text(line, style)


commands = [functions_group, deployments, rollback, diff]
