"""The optional OTLP/HTTP export of traces (``ORVA_OTLP_ENDPOINT``): the same spans orvad stores, executions
and user spans, sent to an OpenTelemetry collector.

OpenTelemetry is imported only when this module is, and orvad imports it only when the setting is set, so
``make run`` without it loads nothing of it. Spans are handed to the SDK's ``BatchSpanProcessor``: on the
event loop that is a queue append; its own thread batches them (512 a request, every 2 s) and posts them as
protobuf. A collector that is down or slow costs dropped spans (the queue holds 2,048), never a request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from orvad import __version__

log = logging.getLogger(__name__)

_SCOPE = InstrumentationScope("orvad", __version__)
_SERVER_TRIGGERS = ("http", "route", "mcp")


def _context(trace_id: str, span_id: str, remote: bool = False) -> SpanContext:
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=remote, trace_flags=TraceFlags(1))


def _ns(epoch_ms: float) -> int:
    return int(epoch_ms * 1_000_000)


class OtlpExport:
    def __init__(self, endpoint: str, exporter: SpanExporter | None = None) -> None:
        self._resource = Resource.create({"service.name": "orva", "service.version": __version__})
        self._processor = BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=endpoint, timeout=10))
        log.info("traces are exported over OTLP/HTTP", extra={"endpoint": endpoint})

    def execution(self, row: dict[str, Any]) -> None:
        """An execution's row, once it settled (orvad/invoke/settle.py)."""
        trace_id, span_id = row.get("trace_id"), row.get("span_id")
        if not trace_id or not span_id:
            return
        start = datetime.fromisoformat(row["started_at"]).timestamp() * 1000
        parent = row.get("parent_span_id")
        failed = row["status"] != "success"
        attributes: dict[str, Any] = {
            "orva.execution_id": row["id"],
            "orva.function_id": row["function_id"],
            "orva.function": row["function_name"],
            "orva.trigger": row["trigger"],
            "orva.status": row["status"],
            "orva.cold_start": bool(row["cold_start"]),
            "orva.outlier": bool(row.get("outlier")),
            "http.request.method": row["method"],
            "url.path": row["path"],
            "http.response.status_code": int(row["status_code"]),
        }
        if row.get("error_code"):
            attributes["error.type"] = row["error_code"]
        self._end(
            ReadableSpan(
                row["function_name"],
                _context(trace_id, span_id),
                _context(trace_id, parent, remote=bool(row.get("trace_root"))) if parent else None,
                self._resource,
                attributes,
                kind=SpanKind.SERVER if row["trigger"] in _SERVER_TRIGGERS else SpanKind.INTERNAL,
                status=Status(StatusCode.ERROR, row.get("error_code") or row["status"])
                if failed
                else Status(StatusCode.OK),
                start_time=_ns(start),
                end_time=_ns(start + float(row["duration_ms"])),
                instrumentation_scope=_SCOPE,
            )
        )

    def user_spans(self, rows: Sequence[Sequence[Any]]) -> None:
        """User spans as TraceStore.record_spans takes them (SPAN_COLUMNS' order)."""
        for (
            trace_id,
            span_id,
            parent,
            execution_id,
            function_id,
            name,
            start,
            duration,
            status,
            attrs,
        ) in rows:
            attributes = {
                k: v for k, v in json.loads(attrs).items() if v is not None
            }  # OTLP has no null attribute
            attributes.update({"orva.execution_id": execution_id, "orva.function_id": function_id})
            self._end(
                ReadableSpan(
                    name,
                    _context(trace_id, span_id),
                    _context(trace_id, parent),
                    self._resource,
                    attributes,
                    kind=SpanKind.INTERNAL,
                    status=Status(StatusCode.ERROR) if status == "error" else Status(StatusCode.UNSET),
                    start_time=_ns(start),
                    end_time=_ns(start + duration),
                    instrumentation_scope=_SCOPE,
                )
            )

    def _end(self, span: ReadableSpan) -> None:
        try:
            self._processor.on_end(span)
        except Exception:  # an exporter's trouble never reaches the request
            log.exception("a span could not be queued for OTLP export")

    def shutdown(self) -> None:
        """Send what is queued (blocking: call it off the event loop) and stop the exporter's thread."""
        self._processor.shutdown()  # type: ignore[no-untyped-call]
