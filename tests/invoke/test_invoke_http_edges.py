"""HTTP edges on every server (Hypercorn, Uvicorn, Granian): what a handler's header values may hold,
ambiguous request framing, odd request targets and headers. Every refusal is the envelope, except those
Granian's parser (hyper) answers itself, which are bare (orvad/http/granian_server.py)."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, free_port, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

CONTROL = """
def handler(event, context):
    char = chr(int(event["query"].get("c", "0")))
    return {"statusCode": 200, "headers": {"x-a": "before" + char + "after"}, "body": "x"}
"""
ECHO = """
def handler(event, context):
    return {"path": event["path"], "body": event["body"], "cookie": event["headers"].get("cookie")}
"""


@pytest.fixture(scope="module", params=["hypercorn", "uvicorn", "granian"])
def server(request: pytest.FixtureRequest) -> Iterator[Orvad]:
    base = Path(tempfile.mkdtemp(prefix="orva-edges-"))
    base.chmod(0o711)
    orvad = Orvad(base / "data", free_port(), env={"ORVA_SERVER": request.param}).start()
    with orvad.admin() as c:
        for name, code in (("control", CONTROL), ("echo", ECHO)):
            fn = create_function(c, name)
            assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
    yield orvad
    orvad.stop()
    shutil.rmtree(base, ignore_errors=True)


def raw_exchange(orvad: Orvad, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; (status, headers, body) of the answer (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", orvad.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_header_values_with_control_characters_are_function_errors(server: Orvad) -> None:
    with server.client() as c:
        for char in (0, 0x0B, 0x1F, 0x7F, 0x0C, 0x08):
            r = c.get("/fn/control", params={"c": str(char)})
            assert r.status_code == 500, (char, r.status_code, r.text)
            error = r.json()["error"]
            assert error["code"] == "FUNCTION_ERROR" and f"\\x{char:02x}" in error["message"], (char, error)
            assert r.headers["x-request-id"] == error["request_id"] and "x-a" not in r.headers
        tab = c.get("/fn/control", params={"c": "9"})  # a tab is allowed inside a field value
        assert tab.status_code == 200 and tab.headers["x-a"] == "before\tafter"


def test_content_length_with_transfer_encoding_is_refused(server: Orvad) -> None:
    """Refused with the envelope; Granian (hyper) instead serves it by its chunked framing, without the
    Content-Length, and closes the connection after the answer (RFC 9112, 6.3): nothing is smuggled."""
    smuggled = b"GET /fn/echo HTTP/1.1\r\nHost: x\r\n\r\n"
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)
    for path in (b"/fn/echo", b"/api/v1/system/health"):
        status, headers, body = raw_exchange(
            server,
            b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"
            + (b"" if server.env["ORVA_SERVER"] == "granian" else b"Connection: close\r\n")
            + b"\r\n"
            + chunk,
        )
        if server.env["ORVA_SERVER"] == "granian":
            assert headers["connection"] == "close" and len(body) == int(headers["content-length"]), body
            if path == b"/fn/echo":  # the chunk is the body, not a second request
                assert status == 200 and httpx.Response(200, content=body).json()["body"] == smuggled.decode()
            continue
        assert status == 400, (path, status, body)
        error = httpx.Response(400, content=body).json()["error"]
        assert error["code"] == "BAD_REQUEST" and "Transfer-Encoding" in error["message"], error
        assert headers["x-request-id"] == error["request_id"]
    assert httpx.get(f"{server.url}/fn/echo").status_code == 200  # and the server is fine
    with server.client() as c:
        wait_for(lambda: c.get("/fn/echo").status_code == 200, 5, "the function to answer")


def test_an_absolute_form_request_target_is_routed(server: Orvad) -> None:
    for target in (
        b"http://127.0.0.1/fn/echo/x?q=1",
        b"http://localhost:1/fn/echo",
        b"HTTP://127.0.0.1/api/v1/system/health",
    ):
        status, _, body = raw_exchange(
            server, b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        assert status == 200, (target, status, body)
    status, _, body = raw_exchange(
        server, b"GET http://127.0.0.1/fn/echo/a%2Fb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 200 and httpx.Response(200, content=body).json()["path"] == "/a/b"


def test_oversized_headers_are_refused_with_the_envelope(server: Orvad) -> None:
    big = b"x" * (80 * 1024)
    long_target = b"GET /fn/echo?" + big + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    if server.env["ORVA_SERVER"] == "granian":  # hyper refuses a request target past 64 KiB itself: bare
        status, headers, body = raw_exchange(server, long_target)
        assert (status, body, headers["connection"]) == (414, b"", "close"), (status, body)
    for request in (
        b"GET /fn/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + big + b"\r\nConnection: close\r\n\r\n",
        b"GET /fn/echo?" + b"x" * (40 * 1024) + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        *([] if server.env["ORVA_SERVER"] == "granian" else [long_target]),
    ):
        status, headers, body = raw_exchange(server, request)
        assert status == 431, (status, body)
        error = httpx.Response(status, content=body).json()["error"]
        assert error["code"] == "HEADERS_TOO_LARGE" and headers["x-request-id"] == error["request_id"], (
            headers,
            error,
        )
    with server.client() as c:  # just under the limit: served
        assert c.get("/fn/echo", headers={"X-Big": "x" * (12 * 1024)}).status_code == 200


def test_a_malformed_request_is_refused_and_the_connection_closed(server: Orvad) -> None:
    """The parser's own refusal: the envelope on Hypercorn and Uvicorn, a bare 400 on Granian (no hook)."""
    for request in (
        b"GET /fn/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: x\r\n\r\n",
        b"GE T /fn/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ):
        status, headers, body = raw_exchange(server, request)  # it returns once the server closes
        assert status == 400 and headers["connection"] == "close", (request, status, body)
        if server.env["ORVA_SERVER"] == "granian":
            assert body == b"" and "x-request-id" not in headers
        else:
            error = httpx.Response(400, content=body).json()["error"]
            assert error["code"] == "BAD_REQUEST" and headers["x-request-id"] == error["request_id"]


def test_malformed_cookie_headers_do_not_break_invocations(server: Orvad) -> None:
    with server.client() as c:
        for cookie in ("a=b; $yk=1", "=; ;;", '"x', "a=b; session_token"):
            r = c.get("/fn/echo", headers={"Cookie": cookie})
            assert r.status_code == 200, (cookie, r.text)
        seen = c.get("/fn/echo", headers={"Cookie": "a=b; $yk=1; session_token=s"}).json()["cookie"]
        assert seen == "a=b; $yk=1"
        for cookie in ("a=b; $yk=1", "a=b; $Version=1; session_token"):  # SimpleCookie raised on these
            r = c.get("/api/v1/functions", headers={"Cookie": cookie, "X-Orva-API-Key": server.admin_key})
            assert r.status_code == 200, r.text
            r = c.get("/api/v1/functions", headers={"Cookie": cookie})
            assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED", r.text


def test_deeply_nested_json_is_invalid_json(server: Orvad) -> None:
    with server.admin() as c:
        r = c.post(
            "/api/v1/functions",
            content=b"[" * 100_000 + b"]" * 100_000,
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_JSON", r.text
