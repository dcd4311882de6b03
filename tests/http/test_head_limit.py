"""Attack on the 16 KiB request-head limit (attack-19): under Hypercorn, h11 refused only a head still incomplete
after a read, so one arriving whole in a read (up to 64 KiB) was served. Each server now refuses it with the
envelope. Granian's parser (hyper) answers what it refuses itself, bare: a head past its read buffer or with
more than 100 header fields (orvad/http/granian_server.py)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

import pytest

from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox


def _exchange(server: Orvad, request: bytes) -> tuple[bytes, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {k.decode().lower(): v.decode().strip() for k, _, v in (ln.partition(b":") for ln in lines[1:])}
    return lines[0], headers, body


@pytest.mark.parametrize("server_kind", ["hypercorn", "uvicorn", "granian"])
def test_a_head_past_16_kib_is_refused_even_when_it_arrives_in_one_read(
    make_orvad: Callable[..., Orvad], server_kind: str
) -> None:
    server = make_orvad(env={"ORVA_SERVER": server_kind})
    for path, big in (("/api/v1/system/health", 40 * 1024), ("/fn/anything", 17 * 1024), ("/", 60 * 1024)):
        request = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\nConnection: close\r\n\r\n" % (
            path.encode(),
            b"x" * big,
        )
        status, headers, body = _exchange(server, request)
        assert status.split()[1] == b"431", (path, status)
        error = json.loads(body)["error"]
        assert error["code"] == "HEADERS_TOO_LARGE" and headers["x-request-id"] == error["request_id"]
    ok = b"GET /api/v1/system/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\nConnection: close\r\n\r\n"
    assert _exchange(server, ok % (b"x" * 12 * 1024))[0].split()[1] != b"431"


@pytest.mark.parametrize("server_kind", ["hypercorn", "uvicorn", "granian"])
def test_what_each_server_answers_past_its_parser_limits(
    make_orvad: Callable[..., Orvad], server_kind: str
) -> None:
    """A head far past 16 KiB (past twice Granian's 128 KiB read buffer: hyper reads up to that much before
    it looks at the buffer's size), and many small header fields. Hypercorn and Uvicorn answer the first
    with the envelope and serve the second; Granian's hyper refuses both itself, with a bare 431 (an empty
    body, no X-Request-ID: Granian has no hook for its refusals)."""
    from orvad.http.granian_server import READ_BUFFER_BYTES

    server = make_orvad(env={"ORVA_SERVER": server_kind})
    huge = (
        b"GET /api/v1/system/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\nConnection: close\r\n\r\n"
        % (b"x" * (2 * READ_BUFFER_BYTES + 64 * 1024))
    )
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(120))  # under 2 KiB in all
    many = b"GET /api/v1/system/health HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n" % fields
    status, headers, body = _exchange(server, huge)
    assert status.split()[1] == b"431", status
    if server_kind == "granian":
        assert body == b"" and "x-request-id" not in headers and headers["connection"] == "close"
        status, headers, body = _exchange(server, many)
        assert status.split()[1] == b"431" and body == b"" and "x-request-id" not in headers, status
    else:
        assert json.loads(body)["error"]["code"] == "HEADERS_TOO_LARGE"
        assert _exchange(server, many)[0].split()[1] == b"200"
