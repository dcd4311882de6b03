"""Helpers every API module uses: the daemon accessor, JSON in and out, field checks, paging."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from orvad.auth.guard import Principal
from orvad.clock import iso, parse_iso
from orvad.errors import Forbidden, InvalidJSON, ValidationError

if TYPE_CHECKING:
    from orvad.daemon import Daemon


def daemon_of(request: Request) -> Daemon:
    return request.app.state.daemon  # type: ignore[no-any-return]


def principal_of(request: Request) -> Principal | None:
    principal: Principal | None = request.scope.get("state", {}).get("principal")
    return principal


def _lone_surrogate(body: dict[str, Any]) -> str | None:
    """The top-level field whose key or value holds half a surrogate pair (only a \\u escape makes one): no
    UTF-8 encoder (the database's, a worker's environment) takes it. None when every string is text."""
    for key, value in body.items():
        try:
            json.dumps({key: value}, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            return key.encode("utf-8", "backslashreplace").decode()
    return None


async def read_object(request: Request, allowed: Iterable[str]) -> dict[str, Any]:
    """The body as a JSON object whose keys are all in ``allowed`` (unknown fields are refused)."""
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJSON(f"request body is not valid JSON: {exc}") from None
    except RecursionError:  # the parser recurses per level: 100,000 nested arrays exhaust the stack
        raise InvalidJSON(
            "request body is nested too deeply to parse",
            hint="send a flatter JSON object (a few hundred levels at most)",
        ) from None
    if not isinstance(body, dict):
        raise InvalidJSON("request body must be a JSON object")
    if b"\\u" in raw and (field := _lone_surrogate(body)) is not None:
        raise ValidationError(
            f"{field} holds a lone surrogate (half of a UTF-16 pair, \\ud800-\\udfff), which is not text",
            hint="send the character itself in UTF-8, or both halves of its surrogate pair",
            details={"field": field},
        )
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ValidationError(
            f"unknown field(s): {', '.join(unknown)}",
            hint=f"allowed fields: {', '.join(sorted(allowed))}",
            details={"fields": unknown},
        )
    return body


def require_str(body: dict[str, Any], field: str, *, max_len: int = 256, required: bool = True) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        raise ValidationError(
            f"{field} must be a string of 1..{max_len} characters", details={"field": field}
        )
    return value


def int_param(request: Request, field: str, default: int, lo: int, hi: int, hint: str | None = None) -> int:
    """?field= as an integer in lo..hi; ASCII digits only (str.isdigit also passes '²', which int() refuses),
    and no more of them than hi has (int() of thousands of digits is refused, or slow)."""
    raw = request.query_params.get(field, str(default))
    if (
        not (raw.isascii() and raw.isdigit())
        or len(raw.lstrip("0")) > len(str(hi))
        or not lo <= int(raw) <= hi
    ):
        raise ValidationError(
            f"{field} must be an integer in {lo}..{hi}",
            hint=hint or f"send ?{field}= as a whole number from {lo} to {hi}",
            details={"field": field, "min": lo, "max": hi},
        )
    return int(raw)


def moment_param(request: Request, field: str) -> str | None:
    """?field= as an RFC 3339 timestamp, normalised to the stored form (UTC, milliseconds); None when absent."""
    raw = request.query_params.get(field)
    if raw is None:
        return None
    try:
        return iso(parse_iso(raw))
    except (ValueError, OverflowError):  # OverflowError: an offset moving year 1 or 9999 out of range
        raise ValidationError(
            f"{field} must be an RFC 3339 timestamp",
            hint="for example 2024-05-01T12:00:00Z",
            details={"field": field},
        ) from None


def page_params(request: Request, *, default: int = 50, maximum: int = 500) -> tuple[int, str | None]:
    """(limit, cursor) from ?limit=&cursor=; ids are UUIDv7 so the cursor is the last id seen."""
    return int_param(request, "limit", default, 1, maximum), request.query_params.get("cursor") or None


MAX_PAGE = 1000  # the Go original's ceiling for ?limit= on the function and execution lists
MAX_OFFSET = 1_000_000  # deeper than this, OFFSET costs a walk over every skipped row: page with the cursor


@dataclass(frozen=True)
class Page:
    """Where a counted list starts: after ``cursor`` (an id; the last one seen) or ``offset`` rows in, never both."""

    limit: int
    cursor: str | None
    offset: int


def paging(request: Request, path: str, *, default: int = 50, maximum: int = MAX_PAGE) -> Page:
    """?limit= with ?cursor= (next_cursor of the previous page) or ?offset= (rows to skip, the Go original's
    paging); ``path`` names the list in the hints."""
    limit = int_param(request, "limit", default, 1, maximum)
    cursor = request.query_params.get("cursor") or None
    if "offset" not in request.query_params:
        return Page(limit, cursor, 0)
    offset = int_param(
        request,
        "offset",
        0,
        0,
        MAX_OFFSET,
        hint=f"send ?offset= as a whole number from 0 to {MAX_OFFSET}; to page deeper, follow "
        f"next_cursor with GET {path}?cursor=",
    )
    if cursor is not None:
        raise ValidationError(
            "send ?cursor= or ?offset=, not both",
            details={"field": "offset"},
            hint=f"to go on from a page, send GET {path}?cursor= with its next_cursor alone; "
            "to jump to a row number, send ?offset= alone",
        )
    return Page(limit, None, offset)


def listing(name: str, items: list[dict[str, Any]], limit: int, total: int | None = None) -> JSONResponse:
    """A newest-first page: ``{name: [...], "next_cursor": id|null}`` given up to limit+1 items, and
    ``total`` (how many match the filters, whatever the page) when given."""
    more = len(items) > limit
    items = items[:limit]
    answer: dict[str, Any] = {name: items, "next_cursor": items[-1]["id"] if more and items else None}
    if total is not None:
        answer["total"] = total
    return JSONResponse(answer)


def trusted_needs_admin(request: Request, fn: Any) -> None:
    """A function with csp_sandbox off serves pages that act as the operator who opens them: changing
    what it runs (code, rollback, settings, secrets) needs admin, as turning the sandbox off did."""
    if fn.csp_sandbox:
        return
    principal = principal_of(request)
    if principal is None or not principal.can("admin"):
        raise Forbidden(
            f"function {fn.name} runs unsandboxed (csp_sandbox false): changing what it runs needs "
            "the admin permission",
            details={"required": "admin", "field": "csp_sandbox"},
            hint="ask an operator with an admin key, or have an admin set csp_sandbox back to true",
        )
