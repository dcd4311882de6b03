"""Traces: the ``trace.span`` SDK operation (user spans), the list of traces and one trace's span tree.

A user span is a finished span a handler reports (``orva.trace.span``). Orvad takes from the sandbox only
the span's name, times, status, attributes, its id and which span it hangs under; the trace, the
execution and the function are the caller's (``Caller``, orvad's own record). Its parent must be the
invocation's span or a user span of the same execution (sent before it, or in the same call): a handler
can neither join another trace nor hang spans under another execution. The SDK sends a span tree when its
outermost span ends (children end before their parents), so one call usually carries a whole tree.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

from orvad.errors import NotFound, RateLimited, ValidationError
from orvad.sdk.calls import Caller
from orvad.store.traces import TraceStore
from orvad.traces.context import is_span_id, is_trace_id

MAX_SPANS_PER_CALL = 64
MAX_SPANS_PER_EXECUTION = 256
MAX_NAME = 200
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_KEY = 128
MAX_ATTRIBUTE_VALUE = 1024  # characters of a string value
MAX_ATTRIBUTES_BYTES = 8 * 1024  # the attributes' JSON
MAX_SPAN_MS = 24 * 3600 * 1000.0  # a span's duration, and how far in the past it may start
CLOCK_SLACK_MS = 1000.0  # how far past orvad's clock a span may end (the sandbox shares the host's clock)
TREE_EXECUTIONS = 1000  # GET /api/v1/traces/{id}: the executions and user spans it shows at most
TREE_SPANS = 5000
STATUSES = ("ok", "error")
_KEEP_EXECUTIONS = 8192  # executions whose user span ids are remembered (to check later parents)
_FIELDS = frozenset(
    {"name", "span_id", "parent_span_id", "start", "end", "duration_ms", "status", "attributes"}
)


class TooManySpans(RateLimited):
    """An execution reported more than MAX_SPANS_PER_EXECUTION user spans."""

    code = "TOO_MANY_SPANS"


def _invalid(message: str, field: str) -> ValidationError:
    return ValidationError(
        f"trace.span: {message}",
        details={"field": field},
        hint="see docs/SDK.md, Traces: orva.trace.span(name, **attributes)",
    )


def _number(span: dict[str, Any], key: str, index: int) -> float | None:
    value = span.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(f"{key} must be a number of milliseconds", f"spans[{index}].{key}")
    return float(value)


def _attributes(raw: Any, index: int) -> str:
    field = f"spans[{index}].attributes"
    if raw is None:
        return "{}"
    if not isinstance(raw, dict):
        raise _invalid("attributes must be an object", field)
    if len(raw) > MAX_ATTRIBUTES:
        raise _invalid(f"at most {MAX_ATTRIBUTES} attributes", field)
    for key, value in raw.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_ATTRIBUTE_KEY:
            raise _invalid(f"attribute names are 1 to {MAX_ATTRIBUTE_KEY} characters", field)
        if isinstance(value, str):
            if len(value) > MAX_ATTRIBUTE_VALUE:
                raise _invalid(f"attribute {key}: at most {MAX_ATTRIBUTE_VALUE} characters", field)
        elif value is not None and not isinstance(value, bool | int | float):
            raise _invalid(f"attribute {key}: a string, number, boolean or null", field)
        elif isinstance(value, float) and not math.isfinite(value):
            raise _invalid(f"attribute {key}: a finite number", field)
    text = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > MAX_ATTRIBUTES_BYTES:
        raise _invalid(f"the attributes take more than {MAX_ATTRIBUTES_BYTES} bytes as JSON", field)
    return text


def _epoch_ms(text: str) -> float:
    return datetime.fromisoformat(text).timestamp() * 1000


class TraceService:
    def __init__(self, store: TraceStore, sdk_spans: int = 64) -> None:
        self._store = store
        self.sdk_spans = sdk_spans  # SDK calls recorded as spans per execution (ORVA_TRACE_SDK_SPANS)
        self._sdk_counts: OrderedDict[str, list[float]] = OrderedDict()  # execution -> [keep until, count]
        self.sdk_spans_skipped = 0  # calls past the per-execution limit (not recorded)
        # execution id -> (its deadline on the loop's clock, the user span ids it reported)
        self._known: OrderedDict[str, tuple[float, set[str]]] = OrderedDict()
        self.exporter: Any = None  # orvad/traces/otlp.py when ORVA_OTLP_ENDPOINT is set

    # the SDK operation
    async def sdk_span(self, caller: Caller, args: dict[str, Any]) -> Any:
        """``trace.span``: ``{"spans": [span, ...]}`` or one span's fields; a span is ``{name, span_id,
        parent_span_id?, start, end | duration_ms, status?, attributes?}`` (times in Unix ms)."""
        raw = args.get("spans") if "spans" in args else [args]
        if "spans" in args and len(args) != 1:
            raise _invalid("send {spans: [...]} alone", "spans")
        if not isinstance(raw, list) or not 0 < len(raw) <= MAX_SPANS_PER_CALL:
            raise _invalid(f"spans must be a list of 1 to {MAX_SPANS_PER_CALL} spans", "spans")
        known = self._spans_of(caller)
        if len(known) + len(raw) > MAX_SPANS_PER_EXECUTION:
            raise TooManySpans(
                f"trace.span: an execution may report at most {MAX_SPANS_PER_EXECUTION} spans",
                hint="make fewer spans per invocation (one per step, not one per item)",
            )
        now = time.time() * 1000
        rows, parents, ids = [], {}, set()
        for index, span in enumerate(raw):
            row = self._row(caller, span, index, now)
            span_id = row[1]
            if span_id in known or span_id in ids or span_id == caller.span_id:
                raise _invalid(
                    f"span id {span_id} is already used in this execution", f"spans[{index}].span_id"
                )
            ids.add(span_id)
            parents[span_id] = row[2]
            rows.append(row)
        # every parent must be the invocation's span, an earlier user span, or one sent here that hangs
        # (at last) from one of those: no cycles, no other execution's spans, no other trace
        reached = {caller.span_id, *known}
        pending = dict(parents)
        while pending:
            ready = [s for s, p in pending.items() if p in reached]
            if not ready:
                span_id, parent = next(iter(pending.items()))
                index = next(i for i, r in enumerate(rows) if r[1] == span_id)
                raise _invalid(
                    f"parent {parent} is neither this invocation's span nor one of its spans",
                    f"spans[{index}].parent_span_id",
                )
            for span_id in ready:
                reached.add(span_id)
                del pending[span_id]
        known.update(ids)
        self._store.record_spans(rows)
        if self.exporter is not None:
            self.exporter.user_spans(rows)
        return {"recorded": len(rows)}

    def sdk_call(
        self,
        caller: Caller,
        op: str,
        span_id: str,
        start_ms: float,
        duration_ms: float,
        error_code: str | None,
        attributes: dict[str, Any],
    ) -> None:
        """One SDK call's span (SdkRouter.on_span): a child of the invocation's span, queued on the batched
        writer (one append, no database work here); the first ``sdk_spans`` calls of each execution."""
        counts = self._sdk_counts.get(caller.execution_id)
        if counts is None:
            now = asyncio.get_running_loop().time()
            while self._sdk_counts and (
                len(self._sdk_counts) >= _KEEP_EXECUTIONS or next(iter(self._sdk_counts.values()))[0] < now
            ):
                self._sdk_counts.popitem(last=False)
            counts = self._sdk_counts[caller.execution_id] = [caller.deadline + 1.0, 0]
        if counts[1] >= self.sdk_spans:
            self.sdk_spans_skipped += 1
            return
        counts[1] += 1
        if error_code is not None:
            attributes = {**attributes, "error.code": error_code}
        row = [
            caller.trace_id,
            span_id,
            caller.span_id,
            caller.execution_id,
            caller.function_id,
            op,
            round(start_ms, 3),
            round(duration_ms, 3),
            "ok" if error_code is None else "error",
            json.dumps(attributes, separators=(",", ":")),
        ]
        self._store.record_sdk_span(row)
        if self.exporter is not None:
            self.exporter.user_spans([row])

    def _spans_of(self, caller: Caller) -> set[str]:
        """The user span ids this execution has reported (remembered while it may still run)."""
        entry = self._known.get(caller.execution_id)
        if entry is not None:
            return entry[1]
        now = asyncio.get_running_loop().time()
        while self._known and (
            len(self._known) >= _KEEP_EXECUTIONS or next(iter(self._known.values()))[0] < now
        ):
            self._known.popitem(last=False)
        spans: set[str] = set()
        self._known[caller.execution_id] = (caller.deadline + 1.0, spans)
        return spans

    def _row(self, caller: Caller, span: Any, index: int, now: float) -> list[Any]:
        if not isinstance(span, dict):
            raise _invalid("each span is an object", f"spans[{index}]")
        unknown = set(span) - _FIELDS
        if unknown:
            raise _invalid(
                f"unknown fields {sorted(unknown)} (the trace and execution are the invocation's own)",
                f"spans[{index}]",
            )
        name = span.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not name.isprintable():
            raise _invalid(f"name must be 1 to {MAX_NAME} printable characters", f"spans[{index}].name")
        span_id = span.get("span_id")
        if not is_span_id(span_id):
            raise _invalid(
                "span_id must be 16 lower-case hex digits, not all zero", f"spans[{index}].span_id"
            )
        parent = span.get("parent_span_id")
        if parent is None:
            parent = caller.span_id
        elif not is_span_id(parent):
            raise _invalid(
                "parent_span_id must be 16 lower-case hex digits", f"spans[{index}].parent_span_id"
            )
        start = _number(span, "start", index)
        end = _number(span, "end", index)
        duration = _number(span, "duration_ms", index)
        if start is None:
            raise _invalid("start (Unix ms) is required", f"spans[{index}].start")
        if duration is None:
            if end is None:
                raise _invalid("send end or duration_ms", f"spans[{index}].end")
            duration = end - start
        if not 0 <= duration <= MAX_SPAN_MS:
            raise _invalid("a span lasts from 0 to 24 hours (end >= start)", f"spans[{index}].duration_ms")
        if start < now - MAX_SPAN_MS or start + duration > now + CLOCK_SLACK_MS:
            raise _invalid("the span's times are not around now (Unix ms)", f"spans[{index}].start")
        status = span.get("status", "ok")
        if status not in STATUSES:
            raise _invalid("status is ok or error", f"spans[{index}].status")
        attributes = _attributes(span.get("attributes"), index)
        return [
            caller.trace_id,
            span_id,
            parent,
            caller.execution_id,
            caller.function_id,
            name,
            round(start, 3),
            round(duration, 3),
            status,
            attributes,
        ]

    # reads
    async def page(
        self,
        *,
        function_id: str | None,
        status: str | None,
        since: str | None,
        until: str | None,
        cursor: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Up to ``limit + 1`` traces, newest first, keyed ``id`` by the execution that entered them (the
        page's cursor); a trace entered twice from outside in one page is listed once."""
        entries = await self._store.entries(
            function_id=function_id, status=status, since=since, until=until, cursor=cursor, limit=limit + 1
        )
        seen: set[str] = set()
        firsts = []
        for entry in entries:
            if entry["trace_id"] not in seen:
                seen.add(entry["trace_id"])
                firsts.append(entry)
        summaries = await self._store.summaries([e["trace_id"] for e in firsts])
        out = []
        for entry in firsts:
            summary = summaries[entry["trace_id"]]
            starts, ends, failed = [], [], summary["span_errors"]
            for started_at, duration_ms, status_ in summary["executions"]:
                start = _epoch_ms(started_at)
                starts.append(start)
                ends.append(start + duration_ms)
                failed += status_ != "success"
            if summary["span_start"] is not None:
                starts.append(summary["span_start"])
                ends.append(summary["span_end"])
            first = min(starts) if starts else _epoch_ms(entry["started_at"])
            last = max(ends) if ends else first + entry["duration_ms"]
            out.append(
                {
                    "id": entry["id"],
                    "trace_id": entry["trace_id"],
                    "root": {
                        "execution_id": entry["id"],
                        "function_id": entry["function_id"],
                        "function_name": entry["function_name"],
                        "trigger": entry["trigger"],
                        "status": entry["status"],
                    },
                    "function_id": entry["function_id"],
                    "function_name": entry["function_name"],
                    "started_at": entry["started_at"],
                    "duration_ms": round(last - first, 3),
                    "executions": len(summary["executions"]),
                    "span_count": len(summary["executions"]) + summary["spans"],
                    "errors": failed,
                    "status": "error" if failed else "ok",
                }
            )
        return out

    async def tree(self, trace_id: str) -> dict[str, Any]:
        """The trace's spans (its executions and their user spans) in tree order: each with its depth,
        its offset from the trace's start and its duration."""
        if not is_trace_id(trace_id):
            raise NotFound(
                f"no trace {trace_id[:64]!r}: a trace id is 32 lower-case hex digits",
                hint="take trace ids from GET /api/v1/traces or an execution's trace_id",
            )
        executions = await self._store.executions(trace_id, TREE_EXECUTIONS + 1)
        spans = await self._store.spans(trace_id, TREE_SPANS + 1)
        if not executions and not spans:
            raise NotFound(
                f"no trace {trace_id}",
                hint="executions are written a few milliseconds after the response; retry shortly, "
                "or list traces with GET /api/v1/traces",
            )
        truncated = len(executions) > TREE_EXECUTIONS or len(spans) > TREE_SPANS
        executions, spans = executions[:TREE_EXECUTIONS], spans[:TREE_SPANS]
        nodes: dict[tuple[str, ...], dict[str, Any]] = {}
        by_span: dict[str, tuple[str, ...]] = {}  # an execution's span id -> its node
        for e in executions:
            start = _epoch_ms(e["started_at"])
            key: tuple[str, ...] = ("e", e["id"])
            nodes[key] = {
                "kind": "execution",
                "span_id": e["span_id"],
                "parent_span_id": e["parent_span_id"],
                "name": e["function_name"],
                "execution_id": e["id"],
                "function_id": e["function_id"],
                "function_name": e["function_name"],
                "trigger": e["trigger"],
                "method": e["method"],
                "path": e["path"],
                "status": e["status"],
                "status_code": e["status_code"],
                "error_code": e["error_code"],
                "cold_start": bool(e["cold_start"]),
                "outlier": bool(e["outlier"]),
                "started_at": e["started_at"],
                "duration_ms": e["duration_ms"],
                "_start": start,
            }
            by_span.setdefault(e["span_id"], key)
        user: dict[tuple[str, str], tuple[str, ...]] = {}  # (execution, span id) -> its node
        for s in spans:
            key = ("s", s["execution_id"], s["span_id"])
            if key in nodes:
                continue
            nodes[key] = {
                "kind": "sdk" if s.get("kind") == "sdk" else "span",
                "span_id": s["span_id"],
                "parent_span_id": s["parent_span_id"],
                "name": s["name"],
                "execution_id": s["execution_id"],
                "function_id": s["function_id"],
                "status": s["status"],
                "attributes": json.loads(s["attributes"]),
                "duration_ms": s["duration_ms"],
                "_start": s["start_ms"],
            }
            user[(s["execution_id"], s["span_id"])] = key
        any_user = {span_id: key for (_, span_id), key in user.items()}
        children: dict[tuple[str, ...] | None, list[tuple[str, ...]]] = {}
        for key, node in nodes.items():
            parent_id = node["parent_span_id"]
            parent: tuple[str, ...] | None
            if node["kind"] != "execution":  # a user or SDK call span: only within its own execution
                own = ("e", node["execution_id"])
                parent = user.get((node["execution_id"], parent_id), own if own in nodes else None)
            else:  # another execution's span, else a user span that called it (over HTTP), else a root
                parent = by_span.get(parent_id) or any_user.get(parent_id) if parent_id else None
            children.setdefault(parent, []).append(key)
        first = min(node["_start"] for node in nodes.values())
        last = max(node["_start"] + node["duration_ms"] for node in nodes.values())
        out: list[dict[str, Any]] = []
        visited: set[tuple[str, ...]] = set()

        def walk(key: tuple[str, ...], depth: int) -> None:
            stack = [(key, depth)]
            while stack:
                current, level = stack.pop()
                if current in visited:
                    continue
                visited.add(current)
                node = dict(nodes[current])
                node["offset_ms"] = round(node.pop("_start") - first, 3)
                node["depth"] = level
                out.append(node)
                for child in sorted(
                    children.get(current, ()), key=lambda k: nodes[k]["_start"], reverse=True
                ):
                    stack.append((child, level + 1))

        for root in sorted(children.get(None, ()), key=lambda k: nodes[k]["_start"]):
            walk(root, 0)
        for key in sorted(nodes, key=lambda k: nodes[k]["_start"]):  # a cycle nothing reached
            if key not in visited:
                walk(key, 0)
        failed = sum(1 for n in out if n["status"] not in ("success", "ok"))
        return {
            "trace_id": trace_id,
            "started_at": min((n["started_at"] for n in out if n["kind"] == "execution"), default=None),
            "duration_ms": round(last - first, 3),
            "span_count": len(out),
            "executions": len(executions),
            "errors": failed,
            "status": "error" if failed else "ok",
            "truncated": truncated,
            "spans": out,
        }
