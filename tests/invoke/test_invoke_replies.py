"""What a handler answers that HTTP cannot carry, a stream cut at its deadline, and whose headers win."""

from __future__ import annotations

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

ODD_REPLIES = """
import base64

REPLIES = {
    "/status99": {"statusCode": 99, "body": "x"},
    "/status1000": {"statusCode": 1000},
    "/status-text": {"statusCode": "abc"},
    "/status101": {"statusCode": 101},
    "/bad-base64": {"statusCode": 200, "body": "not base64!!", "isBase64Encoded": True},
    "/bad-name": {"statusCode": 200, "headers": {"bad name": "x"}, "body": "x"},
    "/line-break": {"statusCode": 200, "headers": {"x-a": "1\\r\\nx-injected: 1"}, "body": "x"},
    "/body-on-204": {"statusCode": 204, "body": "not allowed"},
    "/empty-204": {"statusCode": 204, "body": ""},
    "/values": {"statusCode": 200, "headers": {"x-bool": True, "x-null": None, "x-num": 5, "x-obj": {"a": 1},
                                               "X-Request-ID": "mine", "X-Orva-Execution-Id": "fake"},
                "body": "ok"},
}

def handler(event, context):
    return REPLIES[event["path"]]
"""

STREAM = """
import threading

def handler(event, context):
    if event["path"] == "/slow":
        for i in range(20):
            yield f"chunk{i};"
            threading.Event().wait()  # never set: the stream runs until its deadline cuts it
    elif event["path"] == "/raises":
        yield "before;"
        raise RuntimeError("broke mid-stream")
    else:
        yield "quick"
"""


def _deploy(c: httpx.Client, name: str, code: str, **fields: object) -> dict:
    fn = create_function(c, name, **fields)
    assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
    return fn


def _execution(c: httpx.Client, execution_id: str) -> dict:
    wait_for(lambda: c.get(f"/api/v1/executions/{execution_id}").status_code == 200, 10, "the execution row")
    return c.get(f"/api/v1/executions/{execution_id}").json()


def test_replies_http_cannot_carry_are_function_errors_with_the_envelope(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _deploy(c, "odd-replies", ODD_REPLIES)
        for path, says in (
            ("/status99", "statusCode"),
            ("/status1000", "statusCode"),
            ("/status-text", "statusCode"),
            ("/status101", "interim"),
            ("/bad-base64", "base64"),
            ("/bad-name", "field name"),
            ("/line-break", "line break"),
            ("/body-on-204", "no body"),
        ):
            r = c.get(f"/fn/{fn['id']}{path}")
            assert r.status_code == 500, (path, r.status_code, r.text)
            error = r.json()["error"]
            assert error["code"] == "FUNCTION_ERROR" and says in error["message"] and error["hint"], (
                path,
                error,
            )
            assert r.headers["x-request-id"] == error["request_id"] and "x-injected" not in r.headers
            execution = _execution(c, r.headers["x-orva-execution-id"])
            assert execution["status"] == "error" and execution["error_code"] == "FUNCTION_ERROR", (
                path,
                execution,
            )
        empty = c.get(f"/fn/{fn['id']}/empty-204")
        assert empty.status_code == 204 and empty.content == b"" and "content-length" not in empty.headers


def test_header_values_as_json_spells_them_and_orvas_own_headers_win(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _deploy(c, "header-values", ODD_REPLIES)
        r = c.get(f"/fn/{fn['id']}/values")
        assert r.status_code == 200 and r.text == "ok"
        assert (r.headers["x-bool"], r.headers["x-num"], r.headers["x-obj"]) == ("true", "5", '{"a":1}')
        assert "x-null" not in r.headers
        assert r.headers.get_list("x-request-id") == [r.headers["x-request-id"]] != ["mine"]
        assert r.headers.get_list("x-orva-execution-id") == [r.headers["x-orva-execution-id"]] != ["fake"]
        assert _execution(c, r.headers["x-orva-execution-id"])["status"] == "success"


def test_a_stream_cut_at_its_deadline_is_cut_recorded_as_timeout_and_takes_its_worker(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _deploy(c, "stream-deadline", STREAM, timeout_ms=1000)
        assert (
            c.put(
                "/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 1, "max_warm": 1}
            ).status_code
            == 200
        )
        received = b""
        with pytest.raises(httpx.RemoteProtocolError):  # never a complete-looking body
            with c.stream("GET", f"/fn/{fn['id']}/slow") as r:
                assert r.status_code == 200
                execution_id = r.headers["x-orva-execution-id"]
                for piece in r.iter_bytes():
                    received += piece
        assert received.startswith(b"chunk0;") and b"chunk19;" not in received
        execution = _execution(c, execution_id)
        assert execution["status"] == "timeout" and execution["error_code"] == "TIMEOUT", execution
        after = c.get(f"/fn/{fn['id']}/quick")  # a fresh worker, not the one being killed
        assert after.status_code == 200 and after.text == "quick", after.text


def test_node_replies_get_the_same_checks(orvad: Orvad) -> None:
    code = (
        "exports.handler = async (event) => event.path === '/bad'\n"
        "  ? { statusCode: 'abc', body: 'x' }\n"
        "  : { statusCode: 201, headers: { 'x-bool': true, 'x-null': null, 'x-obj': { a: 1 } }, body: 'ok' };\n"
    )
    with orvad.admin() as c:
        fn = _deploy(c, "node-replies", code, runtime="node")
        bad = c.get(f"/fn/{fn['id']}/bad")
        assert bad.status_code == 500 and bad.json()["error"]["code"] == "FUNCTION_ERROR"
        assert "statusCode" in bad.json()["error"]["message"] and "abc" in bad.json()["error"]["message"]
        good = c.get(f"/fn/{fn['id']}/good")
        assert good.status_code == 201 and good.text == "ok" and "x-null" not in good.headers
        assert (good.headers["x-bool"], good.headers["x-obj"]) == ("true", '{"a":1}')


def test_a_stream_whose_handler_raises_midway_is_cut_and_recorded_as_an_error(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _deploy(c, "stream-raises", STREAM)
        received = b""
        with pytest.raises(httpx.RemoteProtocolError):
            with c.stream("GET", f"/fn/{fn['id']}/raises") as r:
                execution_id = r.headers["x-orva-execution-id"]
                for piece in r.iter_bytes():
                    received += piece
        assert received == b"before;"
        execution = _execution(c, execution_id)
        assert execution["status"] == "error" and execution["error_code"] == "FUNCTION_ERROR"
        assert "broke mid-stream" in execution["error_message"]
        assert c.get(f"/fn/{fn['id']}/quick").text == "quick"  # the worker lives on


def test_non_finite_floats_become_null_in_json_bodies(orvad: Orvad) -> None:
    code = (
        "def handler(event, context):\n"
        "    return {'nan': float('nan'), 'list': [float('inf'), -float('inf'), 1.5], 'ok': 2}\n"
    )
    with orvad.admin() as c:
        fn = _deploy(c, "nan-body", code)
        r = c.get(f"/fn/{fn['id']}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.json() == {
            "nan": None,
            "list": [None, None, 1.5],
            "ok": 2,
        }  # strict JSON, as JSON.stringify writes


def test_raw_path_keeps_the_percent_encoding_the_path_decodes(orvad: Orvad) -> None:
    code = "def handler(event, context):\n    return {'path': event['path'], 'rawPath': event['rawPath']}\n"
    with orvad.admin() as c:
        fn = _deploy(c, "raw-path", code)
        assert c.get(f"/fn/{fn['name']}/a%2Fb%3Fc/d%20e").json() == {
            "path": "/a/b?c/d e",
            "rawPath": "/a%2Fb%3Fc/d%20e",
        }
        assert c.get(f"/fn/{fn['name']}").json() == {"path": "/", "rawPath": "/"}
        assert (
            c.post("/api/v1/routes", json={"path": "/raw/deep/*", "function_id": fn["id"]}).status_code == 201
        )
        assert (
            c.post("/api/v1/routes", json={"path": "/raw-exact", "function_id": fn["id"]}).status_code == 201
        )
        assert c.get("/raw/deep/x%2Fy").json() == {"path": "/x/y", "rawPath": "/x%2Fy"}
        assert c.get("/raw-exact").json() == {"path": "/", "rawPath": "/"}
        for path in ("/raw/deep/*", "/raw-exact"):
            c.delete("/api/v1/routes", params={"path": path})
