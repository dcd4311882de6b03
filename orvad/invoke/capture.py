"""Request capture (issue 23, replay): what an execution received, kept beside its row for
``GET /api/v1/executions/{id}/request`` and ``POST .../replay``.

Pure and cheap: no I/O. When the execution settles, the event loop queues a ``CapturedRow`` holding
what the request already had in memory (its headers, query and body, none of them copied) with the
execution's own row (orvad/store/executions.py); the batched writer's thread makes its values (the
redaction, the headers' JSON, the body cut to ``MAX_BODY``) when it writes the batch. Credentials never
reach the row:

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

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

import orjson

from orvad.invoke.request import InvokeRequest
from orvad.store.batch import DeferredRow

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


# header names already judged (raw bytes as sent -> lower-cased text, credential?): the same few names
# come with every request. Bounded: a client inventing names empties it, never grows it past _KNOWN_MAX.
_known: dict[bytes, tuple[str, bool]] = {}
_KNOWN_MAX = 4096


def _judged(name_b: bytes) -> tuple[str, bool]:
    known = _known.get(name_b)
    if known is None:
        name = name_b.decode("latin-1").lower()
        known = (name, is_credential(name))
        if len(_known) >= _KNOWN_MAX:
            _known.clear()
        _known[name_b] = known
    return known


def redact_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[list[str]]:
    """[[name, value], ...] in the order sent, repeats kept, names lower-cased, credentials' values REDACTED."""
    out: list[list[str]] = []
    for name_b, value_b in raw:
        name, secret = _judged(name_b)
        out.append([name, REDACTED if secret else value_b.decode("latin-1")])
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


class CapturedRow(DeferredRow):
    """A request's execution_requests row (orvad/store/captures.py COLUMNS), its values made by the
    batched writer's thread (``make``): the event loop only keeps references to what the request holds."""

    __slots__ = ("execution_id", "method", "subpath", "query", "headers", "body", "held_bytes")

    def __init__(
        self,
        execution_id: str,
        method: str,
        subpath: str,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> None:
        self.execution_id, self.method, self.subpath = execution_id, method, subpath
        self.query, self.headers, self.body = query, headers, body
        # what the queued row will hold: the body kept, the query, the headers with their JSON's framing
        self.held_bytes = min(len(body), MAX_BODY) + len(query) + 64 * (8 + 2 * len(headers))
        for name, value in headers:
            self.held_bytes += len(name) + len(value)

    def make(self) -> tuple[Any, ...]:
        body, size = self.body, len(self.body)
        return (
            self.execution_id,
            self.method,
            self.subpath,
            redact_query(self.query.decode("latin-1")),
            orjson.dumps(redact_headers(self.headers)).decode(),
            body if size <= MAX_BODY else body[:MAX_BODY],
            size,
            int(size > MAX_BODY),
        )


def capture_row(request: InvokeRequest, execution_id: str) -> CapturedRow | None:
    """The execution_requests row of a request, or None when nothing is kept: the function's capture is
    off, or its body was never read (refused before it)."""
    body = request.body
    if body is None or not request.function.capture_requests:
        return None
    return CapturedRow(execution_id, request.method, request.subpath, request.query, request.headers, body)
