"""A function's configuration beside its code: secrets (names out, values only in), custom routes and
warm-pool settings. The services the REST API's secrets, routes and pools modules call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orvad.errors import Forbidden
from orvad.mcp.catalog.base import FUNCTION, admin_for_unsandboxed, obj, text, tool
from orvad.mcp.catalog.functions import settled
from orvad.mcp.results import Caller, bad, string_arg
from orvad.services.poolconfigs import FIELDS, LIMITS
from orvad.services.routing import RouteEntry
from orvad.services.serialisers import pool_config_json, route_json

if TYPE_CHECKING:
    from orvad.daemon import Daemon


async def list_secrets(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = daemon.functions.resolve(string_arg(args, "function", required=True) or "")
    return {"function_id": fn.id, "secrets": await daemon.secrets.names(fn.id)}


async def set_secret(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = daemon.functions.resolve(string_arg(args, "function", required=True) or "")
    admin_for_unsandboxed(caller, fn)
    await daemon.secrets.upsert(fn.id, args.get("key"), args.get("value"))
    await settled(daemon, fn, f"secret {args['key']}")
    return {"function_id": fn.id, "key": args["key"], "stored": True}


async def delete_secret(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = daemon.functions.resolve(string_arg(args, "function", required=True) or "")
    admin_for_unsandboxed(caller, fn)
    key = string_arg(args, "key", required=True) or ""
    await daemon.secrets.delete(fn.id, key)
    await settled(daemon, fn, f"removal of secret {key}")
    return {"function_id": fn.id, "key": key, "deleted": True}


def _route_json(daemon: Daemon, entry: RouteEntry) -> dict[str, Any]:
    fn = daemon.functions.get(entry.function_id)
    return route_json(entry, fn.name if fn else None)


async def list_routes(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    wanted = string_arg(args, "function")
    function_id = daemon.functions.resolve(wanted).id if wanted else None
    entries = [e for e in daemon.routes.table.all() if function_id is None or e.function_id == function_id]
    return {"routes": [_route_json(daemon, e) for e in entries]}


async def set_route(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = daemon.functions.resolve(string_arg(args, "function", required=True) or "")
    path = string_arg(args, "path", required=True) or ""
    if path.lower().startswith("/.well-known") and not caller.can("admin"):
        raise Forbidden(
            "routes under /.well-known/ speak for the whole host name (certificates, app links): "
            "they need the admin permission",
            details={"required": "admin", "field": "path"},
            hint="use an API key with admin to create this route",
        )
    entry, replaced = await daemon.routes.create(path, fn.id, args.get("methods", "*"), replace=True)
    return {**_route_json(daemon, entry), "replaced": replaced}


async def delete_route(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    path = string_arg(args, "path", required=True)
    await daemon.routes.delete(path)
    return {"path": path, "deleted": True}


async def get_pool_config(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = daemon.functions.resolve(string_arg(args, "function", required=True) or "")
    return {"function_id": fn.id, **pool_config_json(daemon.pool_configs.get(fn.id))}


async def set_pool_config(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = daemon.functions.resolve(string_arg(args, "function", required=True) or "")
    changes = {k: v for k, v in args.items() if k in FIELDS}
    if not changes:
        raise bad("function", "needs at least one pool setting to change", f"pass any of {', '.join(FIELDS)}")
    config = await daemon.pool_configs.update(fn.id, changes)
    return {"function_id": fn.id, **pool_config_json(config)}


_KEY = text("an environment variable name (letters, digits, _), not ORVA_*")
_POOL_SAYS = {
    "min_warm": "workers kept warm at all times",
    "max_warm": "at most this many workers",
    "idle_ttl_seconds": "an idle worker stops after this many seconds",
    "target_concurrency": "requests per worker before another starts",
}
_PATH = text("'/exact' or '/prefix/*'")
_POOL: dict[str, Any] = {
    **{
        name: {"type": "integer", "minimum": lo, "maximum": hi, "description": _POOL_SAYS[name]}
        for name, (lo, hi) in LIMITS.items()
    },
    "scale_to_zero": {"type": "boolean", "description": "stop every worker when idle"},
}
assert set(_POOL) == set(FIELDS), "a pool setting is missing from the operator tools' schema"

TOOLS = (
    tool(
        "list_secrets",
        "The names of a function's secrets (never their values) with when each was set.",
        obj({"function": FUNCTION}, ("function",)),
        "read",
        list_secrets,
        target="function",
    ),
    tool(
        "set_secret",
        "Create or replace one secret of a function (an environment variable its handler sees, stored "
        "encrypted; never shown again). Answers once the next invocation sees it.",
        obj(
            {"function": FUNCTION, "key": _KEY, "value": text("the secret's value")},
            ("function", "key", "value"),
        ),
        "write",
        set_secret,
        target="function",
    ),
    tool(
        "delete_secret",
        "Remove one secret from a function; its value is gone for good.",
        obj({"function": FUNCTION, "key": _KEY}, ("function", "key")),
        "write",
        delete_secret,
        destructive=True,
        target="function",
    ),
    tool(
        "list_routes",
        "Every custom route (a URL path that reaches a function), optionally of one function.",
        obj({"function": FUNCTION}),
        "read",
        list_routes,
        target="function",
    ),
    tool(
        "set_route",
        "Map a path ('/exact' or '/prefix/*') and methods ('*' or 'GET,POST') to a function; a route "
        "already at that path is replaced. Routes under /.well-known/ need admin.",
        obj(
            {
                "function": FUNCTION,
                "path": _PATH,
                "methods": text("'*' (default) or a comma list like GET,POST"),
            },
            ("function", "path"),
        ),
        "write",
        set_route,
        target="path",
    ),
    tool(
        "delete_route",
        "Remove the custom route at a path; requests to it then reach no function.",
        obj({"path": _PATH}, ("path",)),
        "write",
        delete_route,
        destructive=True,
        target="path",
    ),
    tool(
        "get_pool_config",
        "A function's warm-pool settings (defaults until changed).",
        obj({"function": FUNCTION}, ("function",)),
        "read",
        get_pool_config,
        target="function",
    ),
    tool(
        "set_pool_config",
        "Change a function's warm-pool settings (only the ones passed); applied live.",
        obj({"function": FUNCTION, **_POOL}, ("function",)),
        "write",
        set_pool_config,
        target="function",
    ),
)
