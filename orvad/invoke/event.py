"""The event a handler receives, built from an HTTP request (CONTRACT.md), with the AWS aliases.

Pure: no I/O. Orva's own credentials (X-Orva-API-Key, an Orva key in Authorization, the
session cookie) are removed before the handler sees the headers, and a handler's Set-Cookie
for the session cookie is removed from its reply.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from orvad.auth.cookienames import NAMES as SESSION_COOKIE_NAMES

ORVA_KEY_PREFIX = "orva_"
# orvad's session cookie: its name over plain HTTP and over HTTPS (docs/API.md). A handler never
# sees it, and never sets it (a Set-Cookie of either name is dropped from its reply).
SESSION_COOKIES = frozenset(name.lower() for name in SESSION_COOKIE_NAMES)  # compared lower-cased


def _is_session_cookie(pair: str) -> bool:
    return pair.partition("=")[0].strip().lower() in SESSION_COOKIES


def _strip_session_cookie(value: str) -> str:
    kept = [part.strip() for part in value.split(";") if not _is_session_cookie(part)]
    return "; ".join(p for p in kept if p)


def handler_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-cased headers, repeated values joined (RFC 9110; cookies with '; '), credentials removed."""
    headers: dict[str, str] = {}
    for key_b, value_b in raw:
        key, value = key_b.decode("latin-1").lower(), value_b.decode("latin-1")
        if key == "x-orva-api-key":
            continue
        if key == "authorization" and value.split(" ", 1)[-1].strip().startswith(ORVA_KEY_PREFIX):
            continue
        if key == "cookie":
            value = _strip_session_cookie(value)
            if not value:
                continue
        if key in headers:
            headers[key] += ("; " if key == "cookie" else ", ") + value
        else:
            headers[key] = value
    return headers


def body_field(body: bytes) -> tuple[str, bool]:
    """(body, isBase64Encoded): text when the bytes are UTF-8, else base64."""
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def raw_subpath(raw_path: bytes | None, skip: int | None, decoded: str) -> str:
    """What follows the first ``skip`` segments of the request's raw (still %-encoded) path: the
    event's ``rawPath``, where an encoded slash stays ``%2F``. ``skip`` None (an exact route) or no
    raw path from the server: the decoded path."""
    if raw_path is None or skip is None:
        return decoded
    parts = raw_path.split(b"/", skip + 1)
    return "/" + (parts[skip + 1] if len(parts) > skip + 1 else b"").decode("latin-1")


def build_event(
    *,
    method: str,
    path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    request_context: dict[str, Any],
    raw_path: str | None = None,
) -> dict[str, Any]:
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        multi.setdefault(key, []).append(value)
    query = {key: values[-1] for key, values in multi.items()}
    text, is_b64 = body_field(body)
    context = {
        **request_context,
        "http": {"method": method, "path": path, "sourceIp": request_context.get("sourceIp", "")},
    }
    return {
        "method": method,
        "path": path,
        "query": query,
        "multiQuery": multi,
        "rawQuery": raw_query,
        "headers": headers,
        "body": text,
        "isBase64Encoded": is_b64,
        "requestContext": context,
        # AWS API Gateway v2 and v1 aliases, so Lambda HTTP handlers run unchanged
        "rawPath": path if raw_path is None else raw_path,
        "rawQueryString": raw_query,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi or None,
        "httpMethod": method,
        "version": "2.0",
        "routeKey": "$default",
    }


# Set by orvad on every response (X-Orva-*, X-Request-ID) or by the server (framing): a handler's
# value for one of these is dropped, so the ones a client reads are always orvad's.
# orvad sets these (traceparent and x-trace-id: the execution's span, orvad/traces): a handler's are dropped
RESERVED_RESPONSE_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "x-request-id", "traceparent", "x-trace-id"}
)
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")  # RFC 9110 field values: no controls but the tab
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


# A reply's headers in all: Chrome's limit (ERR_RESPONSE_HEADERS_TOO_BIG), so no page a browser shows loses by it.
# A handler's one header with 4,000,000 values (a 12 MB frame) held orvad's event loop, every function's
# requests and the API, for 25 s per reply while Hypercorn wrote 36 MB of head (found by attack-19).
MAX_HEADER_BYTES = 256 * 1024


class BadResponse(ValueError):
    """The handler's response cannot be sent as HTTP (the message says what to change)."""


def _header_text(value: Any) -> str | None:
    """A header value as text: JSON's spelling for true/false, null dropped, objects as JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


# Reply headers that act on the whole origin of the response's URL, not on the page: on the dashboard's
# origin a function could set or bomb its cookies, wipe its session (Clear-Site-Data), have the operator's
# browser report every dashboard URL to the function's collector (NEL, Report-To, Reporting-Endpoints),
# pin HSTS on its host, widen a service worker's scope, or show a native login prompt that looks like the
# dashboard's. A CSP sandbox confines the page, not these; they are dropped where the reply shares the
# dashboard's cookies (docs/SECURITY.md).
ORIGIN_WIDE_HEADERS = frozenset(
    {
        b"set-cookie",
        b"clear-site-data",
        b"nel",
        b"report-to",
        b"reporting-endpoints",
        b"strict-transport-security",
        b"service-worker-allowed",
        b"origin-agent-cluster",
        b"www-authenticate",
        b"proxy-authenticate",
        b"alt-svc",
    }
)


def confined(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` without the ones that act on the whole origin (for replies on the dashboard's origin)."""
    return [pair for pair in headers if pair[0] not in ORIGIN_WIDE_HEADERS]


# A cookie with a Domain attribute reaches sibling host names (fn.example.com setting a cookie for
# example.com bombs the dashboard at orva.example.com): handlers may set host-only cookies only.
_DOMAIN_ATTRIBUTE = re.compile(r";\s*domain\s*=", re.IGNORECASE)


def response_headers(headers: dict[str, Any] | None) -> list[tuple[bytes, bytes]]:
    """A handler's headers as ASGI pairs; a list value becomes repeated headers (e.g. Set-Cookie).
    Raises BadResponse for a name HTTP cannot carry or a value with a control character (a line
    break would inject headers; a NUL or \\x0b is refused by the server mid-response)."""
    out: list[tuple[bytes, bytes]] = []
    if headers is None:
        return out
    if not isinstance(headers, dict):
        raise BadResponse(f"headers must be an object of name: value, not {type(headers).__name__}")
    size = 0
    for key, value in headers.items():
        name = str(key).lower()
        if not name or not _TOKEN.issuperset(name):
            raise BadResponse(f"header name {str(key)!r} is not a valid HTTP field name")
        if name in RESERVED_RESPONSE_HEADERS or name.startswith("x-orva-"):
            continue
        for item in value if isinstance(value, list) else [value]:
            text = _header_text(item)
            if text is None or (
                name == "set-cookie"
                and (_is_session_cookie(text.partition(";")[0]) or _DOMAIN_ATTRIBUTE.search(text))
            ):
                continue
            if (bad := _CONTROL.search(text)) is not None:
                char = bad.group()
                what = "a line break" if char in "\r\n" else "a control character"
                raise BadResponse(
                    f"header {name} has {what} ({char!r}, \\x{ord(char):02x}) in its value; "
                    "only tabs and visible characters are allowed"
                )
            size += len(name) + len(text) + 4  # as sent: "name: value\r\n"
            if size > MAX_HEADER_BYTES:
                raise BadResponse(
                    f"the headers add up to more than {MAX_HEADER_BYTES // 1024} KiB; "
                    "browsers refuse a reply whose headers are larger"
                )
            out.append((name.encode("latin-1", "replace"), text.encode("latin-1", "replace")))
    return out


def status_code(raw: Any) -> int:
    """The handler's statusCode as a final HTTP status (200..599)."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise BadResponse(f"statusCode must be an integer from 200 to 599, not {raw!r}")
    try:
        code = int(raw)
    except ValueError:
        raise BadResponse(f"statusCode must be an integer from 200 to 599, not {raw!r}") from None
    if not 200 <= code <= 599:
        raise BadResponse(
            f"statusCode must be an integer from 200 to 599, not {code}"
            + (" (1xx are interim responses, not answers)" if 100 <= code < 200 else "")
        )
    return code
