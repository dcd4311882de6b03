"""The execution record: what one invocation leaves in the store, on the bus and in the metrics.

Built when the call is admitted to the path (a function never deployed leaves none), changed only
by its outcome methods, and turned into the store's row by ``as_row()`` once it has settled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orvad.clock import now_iso
from orvad.errors import NotActive, OrvaError, ShuttingDown
from orvad.ids import uuid7
from orvad.models import Function
from orvad.store.paths import recorded_path
from orvad.traces.context import TraceContext, new_span_id

CUT_MESSAGE = "orvad shut down before the execution finished (its shutdown grace ended)"
MESSAGE_CHARS = 500  # error messages are cut to this in the row (and in the FunctionError text)
_STATUS_OF_CODE = {"FUNCTION_ERROR": "error", "TIMEOUT": "timeout", "WORKER_CRASHED": "crashed"}


class Killed(NotActive):
    """An operator killed the function while this request ran (409 NOT_ACTIVE, recorded as killed)."""


@dataclass(slots=True)
class ExecutionRecord:
    """One execution row in the making. ``status`` starts as ``rejected`` (refused before a handler
    ran); the outcome methods say what happened instead. ``logs`` and ``logs_truncated`` go to the
    log row, not the execution row."""

    id: str
    function_id: str
    function_name: str
    trigger: str
    method: str
    path: str
    started_at: str
    finished_at: str
    code_hash: str | None = None
    status: str = "rejected"
    status_code: int = 500
    cold_start: bool = False
    duration_ms: float = 0.0
    queue_ms: float = 0.0
    request_bytes: int = 0
    response_bytes: int = 0
    error_code: str | None = None
    error_message: str | None = None
    logs: str = ""
    logs_truncated: bool = False
    channel_id: str | None = None  # trigger mcp in channel mode: the channel that called
    # the execution's span (orvad/traces): its trace, its own id, the span that called it (None: it began
    # the trace); trace_root: it entered the trace from outside orvad (not F2F/jobs); the incoming flags
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str | None = None
    trace_root: bool = True
    trace_flags: str = "01"
    outlier: bool = False  # slower than twice the function's rolling p95 (orvad/traces/outliers.py)

    @classmethod
    def begin(
        cls,
        fn: Function,
        trigger: str,
        method: str,
        subpath: str,
        channel_id: str | None = None,
        parent: TraceContext | None = None,
        root: bool = True,
    ) -> ExecutionRecord:
        started_at = now_iso()
        ident = uuid7()
        record = cls(ident, fn.id, fn.name, trigger, method, recorded_path(subpath), started_at, started_at)
        if channel_id is not None:
            record.channel_id = channel_id
        record.span_id = new_span_id()
        if parent is None:  # a new trace, named by this execution's id (traces/context.py new_trace_id)
            record.trace_id = ident.replace("-", "")
        else:
            record.trace_id, record.parent_span_id, record.trace_flags = (
                parent.trace_id,
                parent.span_id,
                parent.flags,
            )
            record.trace_root = root
        return record

    # outcomes
    def leased(self, code_hash: str | None, cold: bool, queue_ms: float) -> None:
        """A worker of version ``code_hash`` took the call (``cold``: one started for it)."""
        self.code_hash, self.cold_start, self.queue_ms = code_hash, cold, round(queue_ms, 3)

    def answered(self, response_bytes: int) -> None:
        """The handler's whole reply was sent (its status code is set before the send)."""
        self.status, self.response_bytes = "success", response_bytes

    def streamed(self, end: dict[str, Any]) -> bool:
        """A stream was relayed to its end frame; False when that frame says it failed (a timeout
        or an error after the first bytes: the body stays cut)."""
        self.logs, self.logs_truncated = end.get("logs", ""), bool(end.get("logsTruncated"))
        failure = end.get("error")
        if failure is None:
            self.status = "success"
            return True
        timed_out = failure.get("kind") == "timeout"
        self.status, self.error_code = ("timeout", "TIMEOUT") if timed_out else ("error", "FUNCTION_ERROR")
        self.error_message = str(failure.get("message"))[:MESSAGE_CHARS]
        return False

    def failed(self, exc: OrvaError) -> None:
        """The call ended in an error answer: refused, the handler's error, a timeout, a crash, a kill."""
        self.status, self.status_code = status_of(exc), exc.status
        self.error_code, self.error_message = exc.code, exc.message[:MESSAGE_CHARS]

    def client_left(self) -> None:
        self.status, self.status_code, self.error_code = "killed", 499, "CLIENT_CLOSED"
        self.error_message = "the client disconnected"

    def killed(self) -> None:
        """An operator kill during a stream (its status code stays the stream's)."""
        self.status, self.error_code = "killed", "NOT_ACTIVE"
        self.error_message = "the execution was killed by an operator"

    def cut(self, answered: bool) -> None:
        """The shutdown grace ended first; ``answered``: a stream had started (its status code stays)."""
        self.status, self.error_code, self.error_message = "shutting_down", "SHUTTING_DOWN", CUT_MESSAGE
        if not answered:
            self.status_code = 503

    def finish(self, duration_s: float) -> None:
        self.duration_ms, self.finished_at = round(duration_s * 1000, 3), now_iso()

    def as_row(self) -> dict[str, object]:
        """The dict the execution store writes and the ``execution`` event carries (keys in this order)."""
        return {
            "id": self.id,
            "function_id": self.function_id,
            "function_name": self.function_name,
            "code_hash": self.code_hash,
            "trigger": self.trigger,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "status_code": self.status_code,
            "cold_start": self.cold_start,
            "duration_ms": self.duration_ms,
            "queue_ms": self.queue_ms,
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "channel_id": self.channel_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "trace_root": self.trace_root,
            "outlier": self.outlier,
        }


def status_of(exc: OrvaError) -> str:
    """The execution status an error answer is recorded with."""
    if isinstance(exc, Killed):
        return "killed"
    if isinstance(exc, ShuttingDown):
        return "shutting_down"
    return _STATUS_OF_CODE.get(exc.code, "rejected")
