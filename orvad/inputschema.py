"""A function's ``input_schema``: the JSON Schema of its MCP tool's arguments (docs/MCP.md, Channel mode).

Null (the default) means the tool takes the request's parts: the ``DEFAULT`` schema below (``body``,
``query``, ``headers``, ``method``, ``path``). A declared schema is a JSON Schema object whose top-level
``type`` is ``"object"``, valid against its metaschema (``$schema``, else draft 2020-12); a tool call's
arguments are checked against it before the function runs, and become the JSON body of a POST.
A leaf: jsonschema (imported at the first schema checked, ``ready()``), orvad.errors and orvad.imports only.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from orvad.errors import ValidationError
from orvad.imports import imported

FIELD = "input_schema"
MAX_BYTES = 64 * 1024  # as JSON: a tool's schema is read by an agent on every tools/list
EXAMPLE = '{"input_schema": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}'

DEFAULT: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [],
    "properties": {
        "body": {"description": "the request body: a string as is, anything else as JSON"},
        "query": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "method": {"type": "string", "description": "HTTP method the handler sees (default POST)"},
        "path": {"type": "string", "description": "the path after the function's own (default /)"},
    },
}


async def ready() -> None:
    """jsonschema imported off the event loop (about 0.2 s the first time; orvad/imports.py), before a
    schema is checked on it."""
    await imported("jsonschema.validators")


@cache
def _drafts() -> tuple[Any, ...]:
    """jsonschema's validators, imported at the first schema checked (about 7 MB: not at orvad's start)."""
    from jsonschema import validators  # type: ignore[import-untyped]  # noqa: PLC0415

    return (
        validators.Draft202012Validator,  # the default, when no $schema is named
        validators.Draft201909Validator,
        validators.Draft7Validator,
        validators.Draft6Validator,
        validators.Draft4Validator,
    )


@cache
def _by_id() -> dict[str, Any]:
    return {str(cls.ID_OF(cls.META_SCHEMA)).rstrip("#"): cls for cls in _drafts()}


def _validator_class(schema: dict[str, Any]) -> Any:
    """The draft a schema's ``$schema`` names (draft 2020-12 when it names none); None: unknown."""
    named = schema.get("$schema")
    if named is None:
        return _drafts()[0]
    return _by_id().get(named.rstrip("#")) if isinstance(named, str) else None


def _bad(message: str, **details: Any) -> ValidationError:
    return ValidationError(
        f"{FIELD} {message}",
        hint=f"send a JSON Schema object whose top-level type is object, for example {EXAMPLE}; "
        "null uses the default (body, query, headers, method, path)",
        details={"field": FIELD, **details},
    )


def validate_field(value: Any) -> dict[str, Any] | None:
    """A function's ``input_schema`` from an API body: null, or a valid JSON Schema of an object."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad("must be a JSON Schema object or null")
    if value.get("type") != "object":
        raise _bad('must have "type": "object" at the top (an MCP tool takes an object of arguments)')
    size = len(json.dumps(value).encode())
    if size > MAX_BYTES:
        raise _bad(f"is {size} bytes as JSON; at most {MAX_BYTES}", max_bytes=MAX_BYTES)
    validator = _validator_class(value)
    if validator is None:
        raise _bad(f"names an unknown $schema {value.get('$schema')!r}", allowed=sorted(_by_id()))
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]  # noqa: PLC0415

    try:
        validator.check_schema(value)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise _bad(f"is not a valid JSON Schema at {where}: {exc.message}", at=where) from None
    return dict(value)


class Unusable(Exception):
    """The schema cannot be applied to the arguments (a $ref that does not resolve, ...)."""


def first_error(schema: dict[str, Any], args: Any) -> tuple[str, str] | None:
    """The first place the arguments do not match the schema, and why; None when they match.
    Raises Unusable when the schema cannot be applied. Unbounded in time for a costly schema: orvad
    runs it in a checker process (orvad/mcp/schemacheck.py), never on its event loop."""
    # only the schema itself and the drafts' metaschemas resolve: jsonschema would otherwise fetch a
    # remote $ref (from orvad's host, outside every sandbox) on the owner's say
    from jsonschema.exceptions import best_match  # noqa: PLC0415
    from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]  # noqa: PLC0415

    validator = (_validator_class(schema) or _drafts()[0])(schema, registry=REGISTRY)
    try:
        error = best_match(validator.iter_errors(args))
    except Exception as exc:  # a $ref that does not resolve (a remote one is never fetched), ...
        raise Unusable(str(exc)) from None
    if error is None:
        return None
    return "/".join(str(p) for p in error.absolute_path) or "(top)", str(error.message)


def check_arguments(schema: dict[str, Any], args: dict[str, Any]) -> None:
    """A tool call's arguments against the function's declared schema (first error, with its place)."""
    try:
        found = first_error(schema, args)
    except Unusable as exc:
        raise unusable(str(exc)) from None
    if found is not None:
        raise mismatch(*found)


def unusable(why: str) -> ValidationError:
    return ValidationError(
        f"the function's input_schema cannot be applied: {why}"[:500],
        hint='its owner can fix the schema with PUT /api/v1/functions/NAME {"input_schema": ...}',
        details={"field": "input_schema"},
    )


def mismatch(where: str, message: str) -> ValidationError:
    if len(message) > 500:  # jsonschema's message may repeat the whole value
        message = message[:500] + "..."
    return ValidationError(
        f"the arguments do not match the tool's input schema at {where}: {message}",
        hint="list the tools with tools/list and send arguments that match the tool's inputSchema",
        details={"field": "arguments", "at": where},
    )
