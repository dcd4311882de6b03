"""W3C trace context: the ``traceparent`` header parsed strictly, written back, and new ids.

Only version ``00`` in its exact form is honoured: ``00-<32 hex>-<16 hex>-<2 hex>``, lower-case, neither id
all zeros, nothing after the flags. Anything else (upper case, other lengths, version ``ff`` or a future
one, extra fields, several ``traceparent`` headers) is ignored and the execution begins a new trace: a
malformed header is never an error, and a well-formed one is trusted only as ids (a caller may name any
trace it likes: it only links its own executions to it).

New ids come from a PRNG seeded from ``os.urandom`` (ids must be unique, not secret: a caller may name any
trace it likes), not a ``getrandom`` system call each. A new trace id is a UUIDv7's 32 hex (an execution
that begins a trace is named by its own id's: ``ExecutionRecord.begin``): it begins with the time in
milliseconds, so the ``executions(trace_id)`` index takes new traces in order, at its right edge, instead
of one random leaf page per execution for the batched writer to write back (measured: the writer thread's
CPU per warm invoke 30 -> 21 us, bench/HISTORY.md 2026-12-05).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from orvad.ids import uuid7

HEADER = b"traceparent"
_FORM = re.compile(rb"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_LENGTH = 55
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
# seeded from os.urandom at import (orvad never forks a child that makes ids: workers are exec'd)
_random = random.Random()


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A parent: the trace to join and the span that called (another execution's, or a caller's over HTTP)."""

    trace_id: str
    span_id: str
    flags: str = "01"


def parse(value: bytes | str | None) -> TraceContext | None:
    """A ``traceparent`` value as a parent, or None when it is absent or not exactly version 00's form."""
    if value is None or len(value) != _LENGTH:
        return None
    raw = value.encode("latin-1") if isinstance(value, str) else value
    match = _FORM.fullmatch(raw)
    if match is None:
        return None
    trace_id, span_id, flags = (part.decode() for part in match.groups())
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, flags)


def from_headers(headers: list[tuple[bytes, bytes]]) -> TraceContext | None:
    """The parent an HTTP request names: its one ``traceparent`` header (two or more: none)."""
    found: bytes | None = None
    for name, value in headers:
        if name == HEADER:
            if found is not None:
                return None
            found = value
    return parse(found) if found is not None else None


def new_trace_id() -> str:
    """32 hex: a UUIDv7 (the time in milliseconds, then random bits; never all zeros: the time is not)."""
    return uuid7().replace("-", "")


def new_span_id() -> str:
    """16 random hex, never all zeros."""
    return f"{_random.getrandbits(64) or 1:016x}"


def header(trace_id: str, span_id: str, flags: str = "01") -> bytes:
    """A ``traceparent`` value naming ``span_id`` as the parent of whatever it is sent to."""
    return f"00-{trace_id}-{span_id}-{flags}".encode()


def is_span_id(value: object) -> bool:
    return isinstance(value, str) and _SPAN_ID.fullmatch(value) is not None and value != _ZERO_SPAN


def is_trace_id(value: object) -> bool:
    return isinstance(value, str) and _TRACE_ID.fullmatch(value) is not None and value != _ZERO_TRACE
