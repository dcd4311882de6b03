"""Request capture (issue 23, replay): what an execution received, kept beside its row for
``GET /api/v1/executions/{id}/request`` and ``POST .../replay``.

Pure and cheap: no I/O. The row is built when the execution settles and goes to the batched writer
with the execution's own row (orvad/store/executions.py); the body is the bytes already in memory
(not copied unless it is cut). Credentials never reach the row:

- a header is a credential when ``is_credential(name)``: ``authorization``, ``proxy-authorization``,
  ``cookie``, every ``x-orva-*`` (``X-Orva-API-Key``, ``X-Orva-Signature``, ``X-Orva-Timestamp``), and any
  name holding one of ``CREDENTIAL_WORDS`` (``x-api-key``, ``api-key``, ``x-hub-signature-256``,
  ``stripe-signature``, ``x-auth-token``, ``x-amz-security-token``, ...), in any case. Its value is
  replaced by ``REDACTED``; the name stays (what was sent, not what it held).
- a query parameter whose name is a credential by the same rule (``?api_key=``, ``?token=``) keeps its
  name and loses its value the same way.

This is the one list of credential names for stored requests; docs/OPERATIONS.md ("Request capture").
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

from orvad.invoke.request import InvokeRequest

MAX_BODY = 1 << 20  # bytes of a request body kept; a longer one keeps its first MAX_BODY, flagged
REDACTED = "[redacted]"
REDACTED_QUERY = "%5Bredacted%5D"  # REDACTED, %-encoded in a query string
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
CREDENTIAL_PREFIX = "x-orva-"  # orvad's own: the API key, the signature and its timestamp
CREDENTIAL_WORDS = (
    "auth",
    "token",
    "secret",
    "signature",
    "api-key",
    "api_key",
    "apikey",
    "password",
    "passwd",
    "session",
    "credential",
    "cookie",
)


def is_credential(name: str) -> bool:
    """Whether a header (or query parameter) of this name may carry a credential (any case)."""
    lower = name.lower()
    return (
        lower in CREDENTIAL_HEADERS
        or lower.startswith(CREDENTIAL_PREFIX)
        or any(word in lower for word in CREDENTIAL_WORDS)
    )


def redact_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[list[str]]:
    """[[name, value], ...] in the order sent, repeats kept, names lower-cased, credentials' values REDACTED."""
    out: list[list[str]] = []
    for name_b, value_b in raw:
        name = name_b.decode("latin-1").lower()
        out.append([name, REDACTED if is_credential(name) else value_b.decode("latin-1")])
    return out


def redact_query(query: str) -> str:
    """The raw query with the values of credential parameters replaced (the rest byte for byte)."""
    if not query:
        return query
    parts = query.split("&")
    changed = False
    for index, part in enumerate(parts):
        name = part.partition("=")[0]
        if is_credential(unquote_plus(name)):
            parts[index] = f"{name}={REDACTED_QUERY}"
            changed = True
    return "&".join(parts) if changed else query


def capture_row(request: InvokeRequest, execution_id: str) -> tuple[Any, ...] | None:
    """The execution_requests row of a request (orvad/store/captures.py COLUMNS), or None when nothing is
    kept: the function's capture is off, or its body was never read (refused before it)."""
    body = request.body
    if body is None or not request.function.capture_requests:
        return None
    size = len(body)
    return (
        execution_id,
        request.method,
        request.subpath,
        redact_query(request.query.decode("latin-1")),
        json.dumps(redact_headers(request.headers)),
        body if size <= MAX_BODY else body[:MAX_BODY],
        size,
        int(size > MAX_BODY),
    )
