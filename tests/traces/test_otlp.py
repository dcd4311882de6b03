"""The optional OTLP/HTTP export (ORVA_OTLP_ENDPOINT) against a fake collector on 127.0.0.1 that decodes the
protobuf with opentelemetry-proto: executions, user spans and SDK call spans arrive with orvad's ids and links. Without the
setting, orvad does not load OpenTelemetry's SDK."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, free_port, wait_for

pytestmark = pytest.mark.sandbox

HANDLER = r"""
from orva import kv, trace

def handler(event, context):
    with trace.span("step", n=3):
        pass
    kv.get("user:someone")  # an SDK call: its span is exported too, without the key's text
    return {"ok": True}
"""


class Collector:
    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, Any], Any]] = []  # (resource attributes, span)
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.paths.append(self.path)
                for rs in request.resource_spans:
                    resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        collector.spans.extend((resource, s) for s in ss.spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.server.shutdown()
    c.server.server_close()


def _attrs(span: Any) -> dict[str, Any]:
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = getattr(v, v.WhichOneof("value"))
    return out


def test_spans_go_to_the_collector(make_orvad: Callable[..., Orvad], collector: Collector) -> None:
    orvad = make_orvad(env={"ORVA_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"})
    name = f"otlp-{uuid.uuid4().hex[:6]}"
    trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    with orvad.admin() as c:
        fn = create_function(c, name)
        assert wait_deployed(c, deploy_inline(c, name, HANDLER)["id"])["status"] == "succeeded"
        r = c.post(f"/fn/{name}", headers={"traceparent": f"00-{trace_id}-{parent}-01"})
        assert r.status_code == 200, r.text
    span_id = r.headers["traceparent"].split("-")[2]

    def arrived() -> bool:
        return {s.name for _, s in collector.spans if s.trace_id.hex() == trace_id} >= {
            name,
            "step",
            "kv.get",
        }

    wait_for(arrived, 15, "the execution, its user span and its SDK call's span at the collector")
    assert set(collector.paths) == {"/v1/traces"}
    by_name = {s.name: (res, s) for res, s in collector.spans if s.trace_id.hex() == trace_id}
    resource, execution = by_name[name]
    assert resource["service.name"] == "orva"
    assert execution.span_id.hex() == span_id and execution.parent_span_id.hex() == parent
    attrs = _attrs(execution)
    assert (
        attrs["orva.execution_id"] == r.headers["x-orva-execution-id"]
        and attrs["orva.function_id"] == fn["id"]
    )
    assert attrs["orva.trigger"] == "http" and attrs["http.response.status_code"] == 200
    assert execution.status.code == 1  # OK
    assert execution.end_time_unix_nano > execution.start_time_unix_nano
    _, step = by_name["step"]
    assert step.parent_span_id.hex() == span_id and _attrs(step)["n"] == 3
    assert _attrs(step)["orva.execution_id"] == r.headers["x-orva-execution-id"]
    _, call = by_name["kv.get"]
    assert call.parent_span_id.hex() == span_id and call.end_time_unix_nano >= call.start_time_unix_nano
    call_attrs = _attrs(call)
    assert call_attrs["orva.sdk.op"] == "kv.get" and call_attrs["orva.kv.keys"] == 1
    assert call_attrs["orva.kv.key_bytes"] == len("user:someone") and "someone" not in str(call_attrs)


def test_without_the_setting_opentelemetrys_sdk_is_not_loaded() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, orvad.daemon, orvad.http.app, orvad.traces.service;"
            "assert not [m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.exporter'))]",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
