"""Operator commands: `secrets`, `routes`, `keys`, `pool` and `system`."""

from __future__ import annotations

import sys
from typing import Any

import click

from orva_cli.client import CliError
from orva_cli.context import App, fn_path, function_argument, json_option, pass_app, read_secret
from orva_cli.ids import is_full_id, resolve_prefix
from orva_cli.output import Col

SECRET_COLUMNS = (Col("KEY", "key", flex=True), Col("CREATED", "created_at"), Col("UPDATED", "updated_at"))
ROUTE_COLUMNS = (
    Col("PATH", "path", flex=True),
    Col("FUNCTION", "function_name", flex=True),
    Col("METHODS", "methods", flex=True),
    Col("CREATED", "created_at"),
    Col("ID", "id", short=True),
)
KEY_COLUMNS = (
    Col("NAME", "name", flex=True),
    Col("PREFIX", "prefix"),
    Col("PERMISSIONS", "permissions", flex=True),
    Col("EXPIRES", "expires_at"),
    Col("LAST_USED", "last_used_at"),
    Col("ID", "id", short=True),
)
HEALTH_COLUMNS = (Col("CHECK", "check"), Col("OK", "ok"), Col("DETAIL", "detail", flex=True, wrap=True))
POOL_COLUMNS = (
    Col("FUNCTION", "function", flex=True),
    Col("WORKERS", "workers"),
    Col("IDLE", "idle"),
    Col("BUSY", "busy"),
    Col("QUEUE", "queue_depth"),
    Col("SPAWNED", "spawned"),
    Col("KILLED", "killed"),
    Col("COLD", "cold_starts"),
)
PERMISSIONS = ("invoke", "read", "write", "admin")


def _done(app: App, answer: Any, message: str) -> None:
    app.out.show(answer, lambda _: app.out.text(message))


# --- secrets ---


@click.group()
def secrets() -> None:
    """Set, list and delete a function's secrets.

    Values are write-only: orvad never returns them.

    \b
    Example:
      printf %s "$STRIPE_KEY" | orva secrets set billing STRIPE_KEY
    """


@secrets.command("set")
@function_argument
@click.argument("key")
@click.argument("value", required=False)
@json_option
@pass_app
def set_secret(app: App, name: str, key: str, value: str | None) -> None:
    """Store secret KEY for function NAME.

    Without VALUE it is read from stdin (prompted for, hidden, on a terminal), which keeps it
    out of shell history and the process list.

    \b
    Examples:
      orva secrets set billing STRIPE_KEY < stripe.key
      orva secrets set billing STRIPE_KEY sk_test_123
    """
    if value is None:
        value = read_secret(f"value of {key}")
    answer = app.post(fn_path(name, "secrets"), {"key": key, "value": value})
    _done(app, answer, f"stored secret {key} of {name}")


@secrets.command("list")
@function_argument
@json_option
@pass_app
def list_secrets(app: App, name: str) -> None:
    """List the secret names of NAME (never their values).

    \b
    Example:
      orva secrets list billing
    """
    items = app.get(fn_path(name, "secrets"))["secrets"]
    app.out.show(items, lambda rows: app.out.table(rows, SECRET_COLUMNS))


@secrets.command("delete")
@function_argument
@click.argument("key")
@json_option
@pass_app
def delete_secret(app: App, name: str, key: str) -> None:
    """Remove secret KEY from NAME.

    \b
    Example:
      orva secrets delete billing STRIPE_KEY
    """
    _done(app, app.delete(fn_path(name, "secrets", key)), f"deleted secret {key} of {name}")


# --- routes ---


@click.group()
def routes() -> None:
    """Map custom URL paths to functions.

    \b
    Example:
      orva routes set /hooks/stripe billing --methods POST
    """


@routes.command("set")
@click.argument("path")
@click.argument("function")
@click.option("--methods", default="*", show_default=True, help="'*' or a comma list such as GET,POST.")
@json_option
@pass_app
def set_route(app: App, path: str, function: str, methods: str) -> None:
    """Send requests for PATH to FUNCTION.

    PATH is exact ('/hooks/stripe') or a prefix ('/shop/*'); a route already at PATH is replaced.

    \b
    Examples:
      orva routes set /hooks/stripe billing --methods POST
      orva routes set '/shop/*' shop
    """
    # PUT creates the route or replaces the one at PATH in one step (no moment without a route)
    route = app.put("/api/v1/routes", {"path": path, "function_id": function, "methods": methods})
    _done(app, route, f"{route['path']} -> {route['function_name']} ({route['methods']})")


@routes.command("list")
@click.option("--function", help="Only the routes of this function (name or id).")
@json_option
@pass_app
def list_routes(app: App, function: str | None) -> None:
    """List the custom routes.

    \b
    Example:
      orva routes list --function billing
    """
    items = app.get("/api/v1/routes", function_id=function)["routes"]
    app.out.show(items, lambda rows: app.out.table(rows, ROUTE_COLUMNS))


@routes.command("delete")
@click.argument("path")
@json_option
@pass_app
def delete_route(app: App, path: str) -> None:
    """Remove the route at PATH.

    \b
    Example:
      orva routes delete /hooks/stripe
    """
    _done(app, app.delete("/api/v1/routes", path=path), f"deleted route {path}")


# --- keys ---


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (needs an admin key).

    \b
    Example:
      orva keys create ci-deployer --permission read --permission write
    """


@keys.command("create")
@click.argument("name")
@click.option(
    "--permission",
    "-p",
    "permissions",
    multiple=True,
    type=click.Choice(PERMISSIONS),
    help="Repeatable [default: all four].",
)
@click.option("--expires-in-days", type=click.IntRange(1, 3650))
@json_option
@pass_app
def create_key(app: App, name: str, permissions: tuple[str, ...], expires_in_days: int | None) -> None:
    """Mint an API key. The key is printed once, on stdout; orvad cannot show it again.

    \b
    Examples:
      DEPLOY_KEY=$(orva keys create ci-deployer -p read -p write --expires-in-days 90)
      orva keys create ci --json | jq -r .key
    """
    body: dict[str, Any] = {"name": name}
    if permissions:
        body["permissions"] = list(permissions)
    if expires_in_days:
        body["expires_in_days"] = expires_in_days
    created = app.post("/api/v1/keys", body)
    if app.out.json:
        app.out.dump(created)
        return
    app.out.note(
        f"created key {created['name']} ({created['id']}, {','.join(created['permissions'])}); "
        "save it now, it is not shown again",
        None,
    )
    click.echo(created["key"])


@keys.command("list")
@json_option
@pass_app
def list_keys(app: App) -> None:
    """List API keys (never the keys themselves).

    Names, prefixes, permissions, expiry and last use.

    \b
    Example:
      orva keys list
    """
    items = list(app.client.pages("/api/v1/keys", "keys"))
    app.out.show(
        items,
        lambda rows: app.out.table(
            [
                {**k, "permissions": "all" if set(k["permissions"]) == set(PERMISSIONS) else k["permissions"]}
                for k in rows
            ],
            KEY_COLUMNS,
        ),
    )


@keys.command("revoke")
@click.argument("key_id", metavar="ID")
@json_option
@pass_app
def revoke_key(app: App, key_id: str) -> None:
    """Revoke key ID; it fails from its next request on.

    ID is the id column of `orva keys list` (a unique prefix of an id is enough).

    \b
    Examples:
      orva keys revoke 019df210-1234-7000-8000-deadbeef0001
      orva keys revoke 019df210-12
    """
    if not is_full_id(key_id):
        key_id = resolve_prefix(
            key_id,
            (k["id"] for k in app.client.pages("/api/v1/keys", "keys")),
            "key",
            "`orva keys list` shows their ids",
        )
    _done(app, app.delete(f"/api/v1/keys/{key_id}"), f"revoked key {key_id}")


# --- pool ---


@click.group()
def pool() -> None:
    """Read and tune a function's warm pool.

    \b
    Example:
      orva pool set hello --min-warm 2 --max-warm 8
    """


@pool.command("get")
@function_argument
@json_option
@pass_app
def get_pool(app: App, name: str) -> None:
    """Show the pool settings of NAME.

    \b
    Example:
      orva pool get hello
    """
    app.out.show(app.get("/api/v1/pool/config", function_id=name), app.out.record)


@pool.command("set")
@function_argument
@click.option("--min-warm", type=int, help="Workers kept started, 0..256.")
@click.option("--max-warm", type=int, help="Most workers at once, 1..256.")
@click.option("--idle-ttl-seconds", type=int, help="Idle time before the pool shrinks.")
@click.option("--target-concurrency", type=int, help="Requests one worker serves at once.")
@click.option(
    "--scale-to-zero/--no-scale-to-zero", default=None, help="May an idle pool drop below --min-warm?"
)
@json_option
@pass_app
def set_pool(app: App, /, name: str, **fields: Any) -> None:
    """Change some pool settings of NAME.

    Settings not given keep their values. Needs an admin key.

    \b
    Example:
      orva pool set hello --min-warm 2 --max-warm 8 --no-scale-to-zero
    """
    changes = {k: v for k, v in fields.items() if v is not None}
    if not changes:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    app.out.show(app.put("/api/v1/pool/config", {"function_id": name, **changes}), app.out.record)


# --- system ---


@click.group()
def system() -> None:
    """Server health and metrics.

    \b
    Example:
      orva system health
    """


@system.command("health")
@json_option
@pass_app
def health(app: App) -> None:
    """Show orvad's health checks.

    Exits 1 when orvad reports itself unhealthy.

    \b
    Example:
      orva system health || alert "orva is down"
    """
    answer = app.client.send("GET", "/api/v1/system/health")
    body = answer.json() if answer.status_code in (200, 503) else None
    if body is None or "checks" not in body:
        raise app.client.failure(answer)

    def render(data: dict[str, Any]) -> None:
        app.out.text(
            f"{data['status']}  (orvad {data['version']}, up {data['uptime_s']:.0f} s)",
            "green" if data["status"] == "ok" else "red",
        )
        rows = [{"check": k, **v} for k, v in data["checks"].items()]
        app.out.table(rows, HEALTH_COLUMNS)

    app.out.show(body, render)
    if answer.status_code != 200:
        failing = [k for k, v in body["checks"].items() if not v["ok"]]
        raise CliError("UNHEALTHY", f"orvad is unhealthy: {', '.join(failing)} failing")


@system.command("metrics")
@click.option("--prometheus", is_flag=True, help="The raw Prometheus text exposition.")
@json_option
@pass_app
def metrics(app: App, prometheus: bool) -> None:
    """Show invocation totals, rates, latency and pools.

    \b
    Examples:
      orva system metrics
      orva system metrics --prometheus | grep orva_invocations
    """
    if prometheus:
        sys.stdout.write(app.client.text("/api/v1/system/metrics"))
        return

    def render(data: dict[str, Any]) -> None:
        app.out.record(_flattened({k: v for k, v in data.items() if k != "pools"}))
        if data["pools"]:
            app.out.table(data["pools"], POOL_COLUMNS, title="pools")

    app.out.show(app.get("/api/v1/system/metrics.json"), render)


def _flattened(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects (host, totals, sandbox, ...) as one dotted line per value: every line fits 80 columns."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict) and value:
            out.update(_flattened(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


commands = [secrets, routes, keys, pool, system]
