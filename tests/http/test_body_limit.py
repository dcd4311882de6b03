"""Over-limit bodies always get the 413 envelope, never a TCP reset, on every HTTP server.

A client sends its whole body and only then reads the answer (as curl and most HTTP libraries do).
If the server answered early and closed with body bytes still unread, the kernel would send a reset,
which throws away the answer waiting in the client's socket: orvad reads and discards the rest of an
over-limit body (up to a bound) before it answers.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

LIMIT = 64 * 1024
# More than the kernel's socket buffers take in (12-20 MiB on loopback here, the receiver's buffer
# growing to 32 MiB): much of the body is still to be sent when orvad decides, so a server that
# answers and closes breaks every upload (orvad did: 16 of 16 at 20 MiB, none at 12 MiB).
BODY = 24 * 1024 * 1024
PIECE = 64 * 1024
SERVERS = ["hypercorn", "uvicorn", "granian"]


def _upload(port: int, path: str, *, chunked: bool) -> tuple[int, dict[str, object], str]:
    """Send a POST with an over-limit body in full, then read the answer: (status, envelope, error)."""
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % BODY
    head = (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\nContent-Type: application/octet-stream\r\n\r\n"
        % (path.encode(), port, framing)
    )
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, PIECE)  # keep what is in flight small
        sock.settimeout(30)
        sock.connect(("127.0.0.1", port))
        try:
            sock.sendall(head)
            for _ in range(BODY // PIECE):
                piece = b"x" * PIECE
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError as exc:  # the server went away while we sent: what a reset looks like first
            return 0, {}, f"send: {exc!r}"
        answer = b""
        try:
            while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except OSError as exc:
            return 0, {}, f"recv: {exc!r} after {answer[:80]!r}"
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    status = int(head_bytes.split(b" ", 2)[1]) if head_bytes else 0
    try:
        return status, json.loads(body), ""
    except ValueError:
        return status, {}, f"not an envelope: {answer[:200]!r}"


def _length(answer: bytes) -> int:
    for line in answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def _assert_all_refused(results: list[tuple[int, dict[str, object], str]]) -> None:
    bad = [r for r in results if r[0] != 413 or not r[1] or r[1]["error"]["code"] != "PAYLOAD_TOO_LARGE"]  # type: ignore[index]
    assert not bad, f"{len(bad)} of {len(results)} did not get the 413 envelope: {bad[:3]}"


@pytest.fixture(params=SERVERS)
def small_limit_orvad(request: pytest.FixtureRequest, make_orvad: Callable[..., Orvad]) -> Orvad:
    """An orvad with a 64 KiB body limit and an active function `sink`."""
    server = make_orvad(env={"ORVA_SERVER": request.param, "ORVA_MAX_BODY_BYTES": str(LIMIT)})
    with server.admin() as c:
        fn = create_function(c, "sink")
        assert (
            wait_deployed(c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return 'ok'\n")["id"])[
                "status"
            ]
            == "succeeded"
        )
    return server


def _in_a_row_and_at_once(server: Orvad, path: str, count: int, *, chunked: bool) -> None:
    _assert_all_refused([_upload(server.port, path, chunked=chunked) for _ in range(count)])
    with ThreadPoolExecutor(count) as pool:
        _assert_all_refused(
            list(pool.map(lambda p: _upload(server.port, p, chunked=chunked), [path] * count))
        )


def test_sixteen_over_limit_chunked_uploads_in_a_row_and_at_once_get_the_413_envelope(
    small_limit_orvad: Orvad,
) -> None:
    _in_a_row_and_at_once(
        small_limit_orvad, "/api/v1/auth/login", 16, chunked=True
    )  # the API's handlers answer
    _in_a_row_and_at_once(small_limit_orvad, "/fn/sink", 4, chunked=True)  # the invoke path


def test_over_limit_uploads_with_a_length_get_the_413_envelope(small_limit_orvad: Orvad) -> None:
    _in_a_row_and_at_once(small_limit_orvad, "/fn/sink", 4, chunked=False)  # refused before any is read


def test_a_body_past_the_drain_bound_is_still_refused_quickly(make_orvad: Callable[..., Orvad]) -> None:
    """A client that never stops sending is not read forever: orvad answers and closes within the bound."""
    server = make_orvad(env={"ORVA_MAX_BODY_BYTES": str(LIMIT)})
    head = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nTransfer-Encoding: chunked\r\n\r\n"
        % server.port
    )
    piece = b"%x\r\n%s\r\n" % (PIECE, b"x" * PIECE)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head)
        try:
            while time.monotonic() - started < 60:
                sock.sendall(piece)
        except OSError:
            pass  # orvad closed the connection: what this test waits for
    assert time.monotonic() - started < 30


def test_an_answer_before_the_body_is_read_closes_the_connection_and_the_client_goes_on(orvad: Orvad) -> None:
    """A refusal given before the request body was read (the key lacks the permission) says
    Connection: close: the server drops that connection after the answer, and a client that kept it
    would send its next request into a closing socket (4 in 400 did, RemoteProtocolError)."""
    with orvad.admin() as admin:
        key = admin.post("/api/v1/keys", json={"name": "reader", "permissions": ["read"]}).json()["key"]
    with orvad.client(key) as c:
        for _ in range(300):
            refused = c.post("/api/v1/keys", json={"name": "nope"})
            assert refused.status_code == 403 and refused.headers["connection"] == "close"
            assert c.get("/api/v1/functions").status_code == 200
        read = c.post("/api/v1/functions/no-such-function/deploy", json={"code": "x"})
        assert read.status_code in (403, 404)
        bodyless = c.get("/api/v1/keys")
        assert bodyless.status_code == 403 and bodyless.headers.get("connection") != "close"
