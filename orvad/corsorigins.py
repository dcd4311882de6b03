"""The origin grammar of CORS settings (``ORVA_CORS_ORIGINS``, a function's ``cors_origins``).

Origins are compared exactly as browsers send them (``https://app.example.com``: lower case, no default
port, no path), so only that form is accepted (anything else is refused with the form to write). A leaf:
the setting parser (orvad/config.py) and the function field's validation use it without the web layer;
the middleware that applies the lists is orvad/http/cors.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from orvad.errors import ValidationError

FIELD = "cors_origins"
MAX_ORIGINS = 64
MAX_ORIGIN_CHARS = 300
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# what the OpenAPI schema promises; the checks below also refuse a default port and ports past 65535
ORIGIN_PATTERN = rf"^https?://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\])(?::[1-9][0-9]{{0,4}})?$"
_ORIGIN_RE = re.compile(ORIGIN_PATTERN)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginError(ValueError):
    def __init__(self, message: str, hint: str, index: int | None = None) -> None:
        super().__init__(message)
        self.message, self.hint, self.index = message, hint, index


def check_origin(value: Any) -> str:
    """One origin exactly as a browser sends it in ``Origin``; OriginError says what is wrong and what to write."""
    form = "scheme://host[:port], e.g. https://app.example.com or http://127.0.0.1:3000"
    if not isinstance(value, str) or not value:
        raise OriginError("must be a non-empty string", f"write each origin as {form}")
    if len(value) > MAX_ORIGIN_CHARS:
        raise OriginError(f"is longer than {MAX_ORIGIN_CHARS} characters", f"write each origin as {form}")
    if value.strip().lower() == "null":
        raise OriginError(
            "may not be null: sandboxed pages, file: URLs and redirected requests all send "
            "Origin: null, so allowing it would allow any of them",
            "list the real origins of the pages that call orvad",
        )
    if "*" in value:
        raise OriginError(
            "may not contain a wildcard: only a whole list of * is allowed (any origin)",
            "list each origin, e.g. https://app.example.com,https://admin.example.com, or use * alone",
        )
    try:
        parts = urlsplit(value.strip())
    except ValueError:  # e.g. a bracketed host that is no IPv6 address: https://[:0]
        raise OriginError(f"{value!r} is not a valid origin", f"write each origin as {form}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.netloc:
        raise OriginError(f"{value!r} is not an http(s) origin", f"write each origin as {form}")
    if "@" in parts.netloc:
        raise OriginError(f"{value!r} carries user information (user@)", f"write each origin as {form}")
    try:
        port = parts.port
        host = parts.hostname or ""
    except ValueError:
        raise OriginError(f"{value!r} has an invalid port", "a port is a number in 1..65535") from None
    shown_host = f"[{host}]" if ":" in host else host
    canonical = f"{scheme}://{shown_host}" + (
        f":{port}" if port is not None and port != _DEFAULT_PORTS[scheme] else ""
    )
    if parts.path or parts.query or parts.fragment or value.endswith(("?", "#")):
        raise OriginError(
            f"{value!r} has a path, query or fragment: an origin is {form}",
            f"write {canonical}" if _ORIGIN_RE.fullmatch(canonical) else f"write it as {form}",
        )
    if port == 0 or not _ORIGIN_RE.fullmatch(canonical):
        raise OriginError(f"{value!r} is not a valid origin", f"write each origin as {form}")
    if value != canonical:
        raise OriginError(
            f"{value!r} is not written as browsers send it (lower case, no default port)",
            f"write {canonical} (orvad compares origins exactly as browsers send them)",
        )
    return canonical


def check_origins(values: Iterable[Any]) -> list[str]:
    """A whole list: origins (duplicates dropped, order kept), or ``["*"]``; OriginError for the first bad one."""
    out: list[str] = []
    values = list(values)
    if "*" in values:
        if len(values) != 1:
            raise OriginError(
                "may hold * only on its own: * already allows every origin",
                'send ["*"], or list the origins without *',
            )
        return ["*"]
    if len(values) > MAX_ORIGINS:
        raise OriginError(
            f"may hold at most {MAX_ORIGINS} origins", "list only the pages that call orvad, or use *"
        )
    for index, value in enumerate(values):
        try:
            origin = check_origin(value)
        except OriginError as exc:
            raise OriginError(f"[{index}] {exc.message}", exc.hint, index) from None
        if origin not in out:
            out.append(origin)
    return out


def parse_setting(raw: Any) -> str:
    """``ORVA_CORS_ORIGINS``: a comma list of origins, or ``*``; empty = no CORS. Answers the checked list
    joined by commas; ValueError names the bad origin and the form to write."""
    parts = raw if isinstance(raw, list | tuple) else str(raw).split(",")  # a YAML list, or the comma list
    listed = [str(part).strip() for part in parts if str(part).strip()]
    try:
        return ",".join(check_origins(listed))
    except OriginError as exc:
        raise ValueError(
            f"{'origin ' if exc.index is not None else 'the list '}{exc.message}; {exc.hint}"
        ) from None


def validate_field(value: Any, field: str = FIELD) -> list[str] | None:
    """A function's ``cors_origins`` from an API body: null (inherit ORVA_CORS_ORIGINS), [] (off) or a list."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValidationError(
            f'{field} must be a list of origins, ["*"] or null',
            hint='for example {"cors_origins": ["https://app.example.com"]}; null inherits '
            "ORVA_CORS_ORIGINS, [] turns orvad's CORS off for this function",
            details={"field": field},
        )
    try:
        return check_origins(value)
    except OriginError as exc:
        details: dict[str, Any] = (
            {"field": field} if exc.index is None else {"field": field, "index": exc.index}
        )
        raise ValidationError(
            f"{field}{' ' if exc.index is None else ''}{exc.message}", hint=exc.hint, details=details
        ) from None


def setting_list(setting: str) -> tuple[str, ...]:
    return tuple(part for part in setting.split(",") if part)
