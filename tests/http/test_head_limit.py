"""Attack on the 16 KiB request-head limit (attack-19): under Hypercorn, h11 refused only a head still incomplete
after a read, so one arriving whole in a read (up to 64 KiB) was served. Each server now refuses it with the
envelope."""

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


@pytest.mark.parametrize("server_kind", ["hypercorn", "uvicorn"])
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
