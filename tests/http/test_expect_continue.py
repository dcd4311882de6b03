"""`Expect: 100-continue` (issue 19): a body over the cap that announces its Content-Length gets the 413
envelope as the first and only answer, never a `100 Continue` first (the client would send the whole body
for nothing); a body within the cap gets the 100, then its answer; a chunked body over the cap is still
refused with the 413 once it passes the cap. On every HTTP server, on /fn, custom routes and the API."""

from __future__ import annotations

import io
import json
import shutil
import socket
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, free_port

LIMIT = 64 * 1024  # ORVA_MAX_BODY_BYTES
ARCHIVE_LIMIT = 128 * 1024  # ORVA_MAX_ARCHIVE_BYTES: the cap of archive deploys
ECHO = "def handler(event, context):\n    return {'got': len(event['body'] or '')}\n"


@pytest.fixture(params=["hypercorn", "uvicorn", "granian"], scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[Orvad]:
    base = Path(tempfile.mkdtemp(prefix=f"orva-expect-{request.param}-"))
    base.chmod(0o711)  # the jail traverses it (pytest's own base is 0700)
    orvad = Orvad(
        base / "data",
        free_port(),
        {
            "ORVA_SERVER": request.param,
            "ORVA_MAX_BODY_BYTES": str(LIMIT),
            "ORVA_MAX_ARCHIVE_BYTES": str(ARCHIVE_LIMIT),
        },
    ).start()
    try:
        with orvad.admin() as c:
            fn = create_function(c, "echo_sink")
            assert wait_deployed(c, deploy_inline(c, fn["id"], ECHO)["id"])["status"] == "succeeded"
            r = c.post("/api/v1/routes", json={"path": "/hooks/upload", "function_id": fn["id"]})
            assert r.status_code == 201, r.text
        yield orvad
    finally:
        orvad.stop()
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def _connection(orvad: Orvad) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", orvad.port), timeout=10) as sock:
        yield sock


def _head(orvad: Orvad, path: str, framing: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Orva-API-Key: %s\r\nContent-Type: %s\r\n%s\r\n"
        b"Expect: 100-continue\r\n\r\n"
        % (path.encode(), orvad.port, orvad.admin_key.encode(), content_type, framing)
    )


class Reader:
    """Reads HTTP/1.1 responses off a socket, one at a time (an interim 100 is a response without a body)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def response(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if status < 200:
            return status, headers, b""
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def _more(self) -> None:
        data = self.sock.recv(65536)
        assert data, f"the connection closed; read so far: {self.buffer[:200]!r}"
        self.buffer += data


def _assert_413(status: int, body: bytes, limit: int) -> None:
    assert status == 413, (status, body[:200])  # the first status line: no 100 Continue before it
    error = json.loads(body)["error"]
    assert error["code"] == "PAYLOAD_TOO_LARGE" and error["details"]["limit_bytes"] == limit
    assert error["hint"] and error["request_id"]


@pytest.mark.parametrize(
    ("path", "content_type", "limit"),
    [
        ("/fn/echo_sink", b"application/json", LIMIT),
        ("/hooks/upload", b"application/json", LIMIT),
        ("/api/v1/functions", b"application/json", LIMIT),
        ("/api/v1/functions/echo_sink/deploy", b"application/gzip", ARCHIVE_LIMIT),
    ],
)
def test_an_announced_body_over_the_cap_gets_the_413_first(
    server: Orvad, path: str, content_type: bytes, limit: int
) -> None:
    with _connection(server) as sock:
        sock.sendall(
            _head(server, path, b"Content-Length: %d" % (limit + 1), content_type)
        )  # the body never comes
        status, headers, body = Reader(sock).response()
        _assert_413(status, body, limit)
        assert headers.get("connection", "").lower() == "close"
    with _connection(server) as sock:  # far over it, as a big upload would be
        sock.sendall(_head(server, path, b"Content-Length: %d" % (1 << 33), content_type))
        status, _, body = Reader(sock).response()
        _assert_413(status, body, limit)


@pytest.mark.parametrize("path", ["/fn/echo_sink", "/hooks/upload"])
@pytest.mark.sandbox
def test_a_body_within_the_cap_gets_100_then_its_answer(server: Orvad, path: str) -> None:
    payload = b"x" * (LIMIT // 2)
    with _connection(server) as sock:
        reader = Reader(sock)
        for _ in range(2):  # twice on one connection: keep-alive survives the 100
            sock.sendall(_head(server, path, b"Content-Length: %d" % len(payload)))
            assert reader.response()[0] == 100  # the client is told to send only now
            sock.sendall(payload)
            status, _, body = reader.response()
            assert status == 200 and json.loads(body) == {"got": len(payload)}, body[:200]


def test_an_api_request_within_the_cap_gets_100_then_its_answer(server: Orvad) -> None:
    payload = json.dumps({"name": "made_after_100", "runtime": "python"}).encode()
    with _connection(server) as sock:
        reader = Reader(sock)
        sock.sendall(_head(server, "/api/v1/functions", b"Content-Length: %d" % len(payload)))
        assert reader.response()[0] == 100
        sock.sendall(payload)
        status, _, body = reader.response()
        assert status == 201 and json.loads(body)["name"] == "made_after_100", body[:300]


def _tgz(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_an_archive_deploy_within_the_cap_gets_100_then_202(server: Orvad) -> None:
    """As `curl -F code=@fn.tar.gz` sends a large upload: the multipart body only after the 100."""
    archive = _tgz({"handler.py": ECHO})
    boundary = b"orva-expect-boundary"
    payload = (
        b'--%s\r\nContent-Disposition: form-data; name="code"; filename="fn.tar.gz"\r\n'
        b"Content-Type: application/gzip\r\n\r\n%s\r\n--%s--\r\n" % (boundary, archive, boundary)
    )
    with _connection(server) as sock:
        reader = Reader(sock)
        sock.sendall(
            _head(
                server,
                "/api/v1/functions/echo_sink/deploy",
                b"Content-Length: %d" % len(payload),
                b"multipart/form-data; boundary=" + boundary,
            )
        )
        assert reader.response()[0] == 100
        sock.sendall(payload)
        status, _, body = reader.response()
        assert status == 202 and json.loads(body)["status"] in ("queued", "building", "succeeded"), body[:300]


def test_an_answer_given_without_reading_comes_without_100(server: Orvad) -> None:
    """Refused before the body is read (an unknown function): the 404 is the only answer."""
    with _connection(server) as sock:
        sock.sendall(_head(server, "/fn/no_such_fn", b"Content-Length: 10"))
        status, _, body = Reader(sock).response()
        assert status == 404 and json.loads(body)["error"]["code"] == "NOT_FOUND", body[:200]


@pytest.mark.parametrize("path", ["/fn/echo_sink", "/api/v1/functions"])
def test_a_chunked_body_over_the_cap_is_still_refused(server: Orvad, path: str) -> None:
    """No length announced: orvad cannot refuse before reading, so it says 100 and counts what arrives."""
    with _connection(server) as sock:
        reader = Reader(sock)
        sock.sendall(_head(server, path, b"Transfer-Encoding: chunked"))
        assert reader.response()[0] == 100
        piece = b"y" * 16384
        for _ in range(LIMIT // len(piece) + 2):
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        sock.sendall(b"0\r\n\r\n")
        status, _, body = reader.response()
        _assert_413(status, body, LIMIT)
