"""What every MCP tool call shares: who is calling (``Caller``), the result handed back (``ToolReply``),
the checks on a tool's arguments, and a function's reply or an ``OrvaError`` shaped as a tool result."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orvad.errors import OrvaError, ValidationError
from orvad.services.oauth import looks_like_access_token

MAX_LIMIT = 200


@dataclass(frozen=True)
class Caller:
    """Who is calling /mcp in operator mode: an API key, its permissions, and the key itself (an
    ``api_key`` function invoked through ``invoke_function`` is admitted with it)."""

    key_id: str  # the API key's id, or the channel's in channel mode
    key_name: str
    permissions: frozenset[str]  # none in channel mode
    token: str
    channel_id: str | None = None  # channel mode: the channel's tools only
    client: str = ""  # the /mcp request's client address (as /fn computes it): the rate limit's key

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def actor_kind(self) -> str:
        """Who this is in the audit log (orvad/auth/audit.py ``record_mcp``): a channel, an OAuth client
        (its client_id is ``key_id``) or an API key."""
        if self.channel_id is not None:
            return "channel"
        return "oauth_client" if looks_like_access_token(self.token) else "key"


@dataclass
class ToolReply:
    """A tool result other than plain JSON: text, optional structured content, error or not."""

    text: str
    structured: dict[str, Any] | None = None
    is_error: bool = False
    status: int = 200  # the HTTP status it stands for (the audit row's): the error's, or the reply's


def bad(field_name: str, message: str, hint: str) -> ValidationError:
    return ValidationError(f"{field_name} {message}", hint=hint, details={"field": field_name})


def string_arg(args: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = args.get(name)
    if value is None:
        if required:
            raise bad(name, "is required", f"pass {name} in the tool's arguments")
        return None
    if not isinstance(value, str) or not value:
        raise bad(name, "must be a non-empty string", f"pass {name} as a string")
    return value


def limit_arg(args: dict[str, Any]) -> int:
    value = args.get("limit", 50)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise bad(
            "limit", f"must be an integer from 1 to {MAX_LIMIT}", f"pass limit between 1 and {MAX_LIMIT}"
        )
    return value


def reply_result(status: int, content_type: str | None, body: bytes, complete: bool) -> ToolReply:
    """A function's reply as a tool result: JSON as text plus structuredContent (an object as is,
    anything else under ``result``), other text as text; a status of 400 or more is an error result,
    and when its body is an error envelope (``{"error": {"code", "message", ...}}``, Orva's shape) the
    text is ``CODE: message (hint: ...)`` as for orvad's own errors, the envelope its structuredContent."""
    text = body.decode("utf-8", errors="replace")
    structured: dict[str, Any] | None = None
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "" or media.endswith("json"):  # a handler's dict body may come without a content-type
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        else:
            if media or isinstance(parsed, (dict, list)):
                structured = parsed if isinstance(parsed, dict) else {"result": parsed}
    is_error = status >= 400 or not complete
    envelope = structured.get("error") if structured is not None else None
    if status >= 400 and complete and isinstance(envelope, dict):
        code, message, hint = envelope.get("code"), envelope.get("message"), envelope.get("hint")
        if isinstance(code, str) and isinstance(message, str):
            text = f"{code}: {message}" + (f" (hint: {hint})" if isinstance(hint, str) and hint else "")
    if not complete:
        text += "\n[the reply was cut: the function's stream failed after its first bytes]"
    return ToolReply(text=text, structured=structured, is_error=is_error, status=status if complete else 502)


def error_reply(exc: OrvaError) -> ToolReply:
    """An OrvaError as an error result: ``CODE: message (hint: ...)`` and the envelope's fields."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.hint:
        error["hint"] = exc.hint
    if exc.details:
        error["details"] = exc.details
    text = f"{exc.code}: {exc.message}" + (f" (hint: {exc.hint})" if exc.hint else "")
    return ToolReply(text=text, structured={"error": error}, is_error=True, status=exc.status)
