"""Traces (issue 23): every execution is a span of a W3C trace, handlers add user spans.

- ``context``: the ``traceparent`` header parsed strictly and written back; new ids (imported by the
  invoke path: nothing heavy here)
- ``outliers``: the ``outlier`` flag (slower than twice the function's rolling p95)
- ``service``: ``TraceService``: the ``trace.span`` SDK operation, the trace list and the span tree
- ``otlp``: the optional OTLP/HTTP export (``ORVA_OTLP_ENDPOINT``; OpenTelemetry imported only then)
"""
