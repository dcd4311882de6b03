"""What every operator tool is made of: its definition (``ToolDef``), the pieces its JSON Schema is built
from, the check of a call's arguments against that schema, and the rules the REST API applies beside its
services (an unsandboxed function needs ``admin``) restated for a tool's caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orvad.errors import Forbidden
from orvad.mcp.results import MAX_LIMIT, Caller, bad
from orvad.models import PERMISSIONS, Function

if TYPE_CHECKING:
    from orvad.daemon import Daemon

Handler = Callable[["Daemon", Caller, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class ToolDef:
    """One operator tool: ``target`` names the argument that identifies what it acts on (the audit
    row's target_id)."""

    name: str
    description: str
    input_schema: dict[str, Any]
    permission: str  # read, invoke, write or admin
    handler: Handler
    destructive: bool = False
    read_only: bool = True
    target: str | None = None

    def schema(self) -> dict[str, Any]:
        """The inputSchema: a destructive tool also takes the required ``confirm: true``."""
        if not self.destructive:
            return self.input_schema
        props = {**self.input_schema.get("properties", {}), "confirm": CONFIRM}
        required = [*self.input_schema.get("required", []), "confirm"]
        return {**self.input_schema, "properties": props, "required": required}


def tool(
    name: str,
    description: str,
    schema: dict[str, Any],
    permission: str,
    handler: Handler,
    *,
    destructive: bool = False,
    target: str | None = None,
) -> ToolDef:
    """A tool; every tool above ``read`` changes something (not read-only)."""
    assert permission in PERMISSIONS, permission
    return ToolDef(
        name,
        description,
        schema,
        permission,
        handler,
        destructive=destructive,
        read_only=permission == "read",
        target=target,
    )


CONFIRM = {"type": "boolean", "const": True, "description": "must be true: this tool cannot be undone"}


def obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def text(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


FUNCTION = text("the function's id or name")
LIMIT = {
    "type": "integer",
    "minimum": 1,
    "maximum": MAX_LIMIT,
    "description": "at most this many (default 50)",
}
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _fits(value: Any, kind: str | list[str] | None) -> bool:
    if kind is None:
        return True
    kinds = [kind] if isinstance(kind, str) else kind
    for k in kinds:
        if isinstance(value, bool) and k in ("integer", "number"):
            continue  # JSON true is not a number
        if isinstance(value, _TYPES[k]):
            return True
    return False


def check_args(tool_def: ToolDef, args: dict[str, Any]) -> None:
    """The arguments against the tool's schema: no unknown names, the required ones present, each of its
    declared type, enum and bounds (and so the items of a list and the values of a map); a VALIDATION
    error naming the argument and what fits."""
    schema = tool_def.schema()
    props: dict[str, Any] = schema.get("properties", {})
    unknown = sorted(set(args) - set(props))
    if unknown:
        raise bad(
            unknown[0],
            "is not an argument of " + tool_def.name,
            f"{tool_def.name} takes {', '.join(sorted(props)) or 'no arguments'}",
        )
    for name in schema.get("required", []):
        if args.get(name) is None and not (tool_def.destructive and name == "confirm"):
            raise bad(name, "is required", f"pass {name} in the arguments of {tool_def.name}")
    for name, value in args.items():
        if value is not None:  # null: an absent optional argument (or a nullable setting's null)
            _check(name, name, value, props[name])


def without_nulls(tool_def: ToolDef, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments a handler sees: a null stands for an absent argument, unless the schema allows null
    (a setting such as cors_origins, where null means something)."""
    props: dict[str, Any] = tool_def.schema().get("properties", {})

    def nullable(name: str) -> bool:
        kind = props.get(name, {}).get("type")
        return isinstance(kind, list) and "null" in kind

    return {k: v for k, v in args.items() if v is not None or nullable(k)}


def _check(field_name: str, where: str, value: Any, spec: dict[str, Any]) -> None:
    """One value against its (sub)schema: ``where`` names it for the agent (``files[...]``)."""
    kind = spec.get("type")
    if not _fits(value, kind):
        shown = kind if isinstance(kind, str) else " or ".join(kind or [])
        said = f" ({spec['description']})" if spec.get("description") else ""
        raise bad(
            field_name, f"{_at(field_name, where)}must be of type {shown}", f"pass {where} as {shown}{said}"
        )
    if "enum" in spec and value not in spec["enum"]:
        allowed = ", ".join(map(str, spec["enum"]))
        raise bad(
            field_name, f"{_at(field_name, where)}must be one of {allowed}", f"pick {where} from: {allowed}"
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = spec.get("minimum"), spec.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            span = (
                f"from {low}" if high is None else f"up to {high}" if low is None else f"from {low} to {high}"
            )
            raise bad(field_name, f"{_at(field_name, where)}must be {span}", f"pass {where} {span}")
    if isinstance(value, list):
        if len(value) > spec.get("maxItems", len(value)) or len(value) < spec.get("minItems", 0):
            raise bad(
                field_name,
                f"{_at(field_name, where)}has {len(value)} items",
                f"pass {spec.get('minItems', 0)} to {spec.get('maxItems', 'any number of')} items",
            )
        for i, item in enumerate(value):
            _check(field_name, f"{where}[{i}]", item, spec.get("items", {}))
    if isinstance(value, dict) and isinstance(spec.get("additionalProperties"), dict):
        for key, item in value.items():
            _check(field_name, f"{where}[{key[:100]!r}]", item, spec["additionalProperties"])


def _at(field_name: str, where: str) -> str:
    return "" if where == field_name else f"item {where[len(field_name) :]} "


def admin_for_unsandboxed(caller: Caller, fn: Function) -> None:
    """A function with csp_sandbox off serves pages that act as the operator who opens them: changing what
    it runs (code, rollback, settings, secrets) needs admin (as on the REST API)."""
    if fn.csp_sandbox or caller.can("admin"):
        return
    raise Forbidden(
        f"function {fn.name} runs unsandboxed (csp_sandbox false): changing what it runs needs the "
        "admin permission",
        details={"required": "admin", "field": "csp_sandbox"},
        hint="use an API key with admin, or have an admin set csp_sandbox back to true",
    )
