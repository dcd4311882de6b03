"""orva.trace: user spans inside the invocation's span (docs/SDK.md, Traces).

    from orva import trace

    with trace.span("load-user", user_id=42) as s:        # sync
        s.set("rows", 3)
        with trace.span("query"):                          # nested: a child of load-user
            ...
    async with trace.span("fetch", url=url):               # async handlers
        ...

A span measures the block it wraps; an exception leaving it marks it ``error`` (and goes on up). Spans
nest through contextvars (each asyncio task and thread has its own current span). Nothing is sent while
a span tree is open: when its outermost span ends, the whole tree goes to orvad in one call, so a handler
pays one round trip per top-level span, not one per span. The trace is always the invocation's own
(orvad takes it from its own records); ``trace.trace_id()``/``trace.span_id()`` name it and the
invocation's span (also ORVA_TRACE_ID / ORVA_SPAN_ID, and ``context.trace_id`` / ``context.span_id``).

Attributes: at most 32, names up to 128 characters, values str (up to 1024 characters), int, float, bool
or None. A span that cannot be recorded (too many: 256 per invocation) is dropped with one line on stderr;
it never fails the handler.
"""

from __future__ import annotations

import contextvars
import os
import sys
import time

from orva import _channel

__all__ = ["span", "Span", "trace_id", "span_id"]

MAX_PER_CALL = 64  # spans one trace.span call carries (orvad's bound)
_current = contextvars.ContextVar("orva_trace_span", default=None)
_warned = []


def trace_id():
    """The invocation's trace id (32 hex), or None outside an invocation."""
    return os.environ.get("ORVA_TRACE_ID") or None


def span_id():
    """The invocation's own span id (16 hex): the parent of its top-level user spans."""
    return os.environ.get("ORVA_SPAN_ID") or None


def _new_id():
    value = os.urandom(8).hex()
    return value if value != "0" * 16 else _new_id()


class Span:
    """One user span: a context manager (``with`` or ``async with``)."""

    __slots__ = ("name", "attributes", "span_id", "parent", "status", "start", "_token", "_tree", "_open")

    def __init__(self, name, attributes=None):
        if not isinstance(name, str) or not name:
            raise TypeError("trace.span(name): name is a non-empty string")
        self.name = name[:200]
        self.attributes = dict(attributes or {})
        self.span_id = _new_id()
        self.parent = None
        self.status = "ok"
        self.start = None
        self._token = None
        self._tree = None  # the outermost span only: finished spans of its tree, waiting for it to end
        self._open = False

    def set(self, key, value):
        """Set an attribute (str, int, float, bool or None)."""
        self.attributes[str(key)] = value
        return self

    set_attribute = set

    def set_status(self, status):
        """``ok`` or ``error``."""
        self.status = "error" if status == "error" else "ok"
        return self

    # sync
    def __enter__(self):
        self._begin()
        return self

    def __exit__(self, exc_type, exc, tb):
        batch = self._end(exc_type)
        if batch:
            try:
                for chunk in _chunks(batch):
                    _channel.call("trace.span", {"spans": chunk})
            except _channel.OrvaError as err:
                _warn(err)
        return False

    # async
    async def __aenter__(self):
        self._begin()
        return self

    async def __aexit__(self, exc_type, exc, tb):
        batch = self._end(exc_type)
        if batch:
            try:
                for chunk in _chunks(batch):
                    await _channel.acall("trace.span", {"spans": chunk})
            except _channel.OrvaError as err:
                _warn(err)
        return False

    def _begin(self):
        if self._open or self.start is not None:
            raise RuntimeError(f"span {self.name!r} was already used; make a new trace.span(...)")
        self.parent = _current.get()
        self.start = time.time() * 1000
        self._open = True
        self._token = _current.set(self)
        if self.parent is None:
            self._tree = []

    def _end(self, exc_type):
        """This span's record added to its tree; the tree's spans when this span ends it (else None)."""
        end = time.time() * 1000
        self._open = False
        try:
            _current.reset(self._token)
        except ValueError:  # ended in another context (a task that outlived its parent's block)
            pass
        if exc_type is not None:
            self.status = "error"
            self.attributes.setdefault("error.type", getattr(exc_type, "__name__", str(exc_type))[:200])
        record = {
            "name": self.name,
            "span_id": self.span_id,
            "start": round(self.start, 3),
            "end": round(max(end, self.start), 3),
            "status": self.status,
        }
        if self.attributes:
            record["attributes"] = _clean(self.attributes)
        if self.parent is not None:
            record["parent_span_id"] = self.parent.span_id
        root = self
        while root.parent is not None and root._tree is None:
            root = root.parent
        if root is not self and root._open and root._tree is not None:
            root._tree.append(record)  # sent with the tree's outermost span
            return None
        batch = (self._tree or []) + [record]
        self._tree = None
        return batch


def _clean(attributes):
    out = {}
    for key, value in list(attributes.items())[:32]:
        if not (value is None or isinstance(value, (bool, int, float))):
            value = str(value)[:1024]
        out[str(key)[:128]] = value
    return out


def _chunks(batch):
    """Parents before their children (a parent starts first), at most MAX_PER_CALL spans a call."""
    by_id = {r["span_id"]: r for r in batch}

    def depth(record):
        n = 0
        while record.get("parent_span_id") in by_id and n <= len(batch):
            record, n = by_id[record["parent_span_id"]], n + 1
        return n

    ordered = sorted(batch, key=depth)
    return [ordered[i : i + MAX_PER_CALL] for i in range(0, len(ordered), MAX_PER_CALL)]


def _warn(err):
    if not _warned:
        _warned.append(True)
        print(f"orva.trace: spans dropped: {err.code}: {err.message}", file=sys.stderr)


def span(name, attributes=None, **attrs):
    """A user span named ``name`` with attributes (keyword arguments, or a dict for names that are not
    identifiers): ``with trace.span("step", n=1):`` or ``async with trace.span("step"):``."""
    return Span(name, {**(attributes or {}), **attrs})
