"""W3C traceparent in and out on /fn and routes, through HTTP with real workers: a well-formed header is
honoured (the execution joins its trace, its parent linked), every response names the execution's span
(traceparent, X-Trace-Id), and a malformed header of any kind starts a new trace without an error."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

ECHO = r"""
import json, os

def handler(event, context):
    return {
        "context": [context.trace_id, context.span_id],
        "env": [os.environ.get("ORVA_TRACE_ID"), os.environ.get("ORVA_SPAN_ID")],
        "seen": event["headers"].get("traceparent"),
    }
"""
# a handler that tries to set orvad's trace headers itself
SPOOF = r"""
def handler(event, context):
    return {"statusCode": 200, "headers": {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01",
            "x-trace-id": "spoofed"}, "body": "ok"}
"""
FAIL = r"""
def handler(event, context):
    raise RuntimeError("boom")
"""
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
_OUT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


@pytest.fixture(scope="module")
def fns(orvad: Orvad) -> Iterator[dict[str, dict[str, Any]]]:
    tag = uuid.uuid4().hex[:6]
    names = {"echo": f"tp-echo-{tag}", "spoof": f"tp-spoof-{tag}", "fail": f"tp-fail-{tag}"}
    with orvad.admin() as c:
        made, deps = {}, {}
        for key, code in (("echo", ECHO), ("spoof", SPOOF), ("fail", FAIL)):
            made[key] = create_function(c, names[key])
            deps[key] = deploy_inline(c, names[key], code)
        for key, dep in deps.items():
            assert wait_deployed(c, dep["id"])["status"] == "succeeded", key
        route = c.post("/api/v1/routes", json={"path": f"/tp-{tag}/*", "function_id": made["echo"]["id"]})
        assert route.status_code == 201, route.text
        made["route"] = {"path": f"/tp-{tag}/x"}
    yield made
    with orvad.admin() as c:
        for key in ("echo", "spoof", "fail"):
            c.delete(f"/api/v1/functions/{made[key]['id']}")


def _out(r: httpx.Response) -> tuple[str, str, str]:
    match = _OUT.fullmatch(r.headers["traceparent"])
    assert match is not None, r.headers["traceparent"]
    assert r.headers["x-trace-id"] == match.group(1)
    return match.group(1), match.group(2), match.group(3)


def _execution(c: httpx.Client, execution_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def written() -> bool:
        r = c.get(f"/api/v1/executions/{execution_id}")
        found.update(r.json() if r.status_code == 200 else {})
        return r.status_code == 200

    wait_for(written, 10, f"execution {execution_id}")
    return found


def test_traceparent_in_joins_the_trace_and_comes_back_out(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        for url in (f"/fn/{fns['echo']['name']}", fns["route"]["path"]):
            r = c.post(url, json={}, headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
            assert r.status_code == 200, r.text
            trace_id, span_id, flags = _out(r)
            assert trace_id == TRACE and span_id != PARENT and flags == "01"
            body = r.json()
            assert body["context"] == [TRACE, span_id] and body["env"] == [TRACE, span_id]
            row = _execution(c, r.headers["x-orva-execution-id"])
            assert (row["trace_id"], row["span_id"], row["parent_span_id"]) == (TRACE, span_id, PARENT)
            assert row["outlier"] is False
        # the sampled flag is kept as sent
        r = c.post(f"/fn/{fns['echo']['name']}", json={}, headers={"traceparent": f"00-{TRACE}-{PARENT}-00"})
        assert _out(r)[0] == TRACE and _out(r)[2] == "00"


def test_no_traceparent_starts_a_trace_and_each_request_gets_its_own(
    orvad: Orvad, fns: dict[str, Any]
) -> None:
    with orvad.admin() as c:
        seen = set()
        for _ in range(3):
            r = c.post(f"/fn/{fns['echo']['name']}", json={})
            trace_id, span_id, flags = _out(r)
            assert flags == "01" and r.json()["context"] == [trace_id, span_id]
            seen.add(trace_id)
            row = _execution(c, r.headers["x-orva-execution-id"])
            assert row["trace_id"] == trace_id and row["parent_span_id"] is None
        assert len(seen) == 3


MALFORMED = [
    f"00-{TRACE.upper()}-{PARENT}-01",  # upper case
    f"00-{TRACE}-{PARENT.upper()}-01",
    f"00-{TRACE[:-1]}-{PARENT}-01",  # wrong lengths
    f"00-{TRACE}0-{PARENT}-01",
    f"00-{TRACE}-{PARENT[:-1]}-01",
    f"00-{TRACE}-{PARENT}-1",
    f"00-{'0' * 32}-{PARENT}-01",  # all-zero ids
    f"00-{TRACE}-{'0' * 16}-01",
    f"ff-{TRACE}-{PARENT}-01",  # version ff, and a future version
    f"01-{TRACE}-{PARENT}-01",
    f"00-{TRACE}-{PARENT}-01-extra",  # extra fields
    f"00-{TRACE}-{PARENT}-01-",
    f"0-{TRACE}-{PARENT}-01",
    f"00_{TRACE}_{PARENT}_01",
    f"00-{TRACE}-{PARENT}-0g",
    "00-" + "a" * 6000 + f"-{PARENT}-01",  # huge
    "",
]


def test_a_malformed_traceparent_starts_a_new_trace_never_an_error(orvad: Orvad, fns: dict[str, Any]) -> None:
    with orvad.admin() as c:
        for value in MALFORMED:
            r = c.post(f"/fn/{fns['echo']['name']}", json={}, headers={"traceparent": value})
            assert r.status_code == 200, (value, r.text)
            trace_id, span_id, _ = _out(r)
            assert (
                trace_id != TRACE and trace_id != TRACE.lower() and r.json()["context"] == [trace_id, span_id]
            )
            assert r.json()["seen"] == value or value == ""
            row = _execution(c, r.headers["x-orva-execution-id"])
            assert row["trace_id"] == trace_id and row["parent_span_id"] is None, value
        # two traceparent headers: neither is trusted
        r = c.post(
            f"/fn/{fns['echo']['name']}",
            json={},
            headers=[("traceparent", f"00-{TRACE}-{PARENT}-01"), ("traceparent", f"00-{TRACE}-{PARENT}-01")],
        )
        assert r.status_code == 200 and _out(r)[0] != TRACE


def test_the_handler_cannot_set_orvads_trace_headers_and_errors_carry_them(
    orvad: Orvad, fns: dict[str, Any]
) -> None:
    with orvad.admin() as c:
        r = c.post(f"/fn/{fns['spoof']['name']}", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        assert r.status_code == 200 and r.text == "ok"
        assert r.headers.get_list("traceparent") == [r.headers["traceparent"]]
        assert _out(r)[0] == TRACE and _out(r)[1] != "cd" * 8 and r.headers["x-trace-id"] == TRACE
        # an error answer names its span too
        r = c.post(f"/fn/{fns['fail']['name']}", headers={"traceparent": f"00-{TRACE}-{PARENT}-01"})
        assert r.status_code >= 500 and r.json()["error"]["code"] == "FUNCTION_ERROR"
        trace_id, span_id, _ = _out(r)
        assert trace_id == TRACE
        row = _execution(c, r.headers["x-orva-execution-id"])
        assert row["span_id"] == span_id and row["status"] == "error"
