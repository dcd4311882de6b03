"""Every error answers with the envelope, the request id and a hint."""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from orvad.errors import OrvaError, PoolAtCapacity
from orvad.http.middleware import RequestContext
from tests.helpers import Orvad

ROOT = Path(__file__).resolve().parent.parent


def _envelope(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code
    assert err["message"]
    assert err["request_id"] == r.headers["x-request-id"]
    return err


def test_not_found_method_not_allowed_and_bad_json(orvad: Orvad) -> None:
    with orvad.admin() as c:
        _envelope(c.get("/no/such/thing"), 404, "NOT_FOUND")
        _envelope(c.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
        err = _envelope(c.delete("/api/v1/auth/status"), 405, "METHOD_NOT_ALLOWED")
        assert "GET" in err["hint"]
        assert "GET" in c.delete("/api/v1/auth/status").headers["allow"]
        err = _envelope(
            c.post("/api/v1/keys", content=b"{not json", headers={"content-type": "application/json"}),
            400,
            "INVALID_JSON",
        )
        assert err["hint"]
        _envelope(c.post("/api/v1/keys", json=["a", "list"]), 400, "INVALID_JSON")
        err = _envelope(c.post("/api/v1/keys", json={"name": 42}), 400, "VALIDATION")
        assert err["details"]["field"] == "name"


def test_unauthenticated_and_forbidden(orvad: Orvad) -> None:
    with orvad.client() as c:
        err = _envelope(c.get("/api/v1/keys"), 401, "UNAUTHORIZED")
        assert "X-Orva-API-Key" in err["hint"]
    with orvad.admin() as admin:
        key = admin.post("/api/v1/keys", json={"name": "r", "permissions": ["read"]}).json()["key"]
    with orvad.client(key) as c:
        err = _envelope(c.post("/api/v1/keys", json={"name": "x"}), 403, "FORBIDDEN")
        assert err["hint"]


def test_payload_too_large_by_header_and_by_stream(orvad: Orvad) -> None:
    big = b"x" * (6 * 1024 * 1024 + 1)
    with orvad.client() as c:
        err = _envelope(c.post("/api/v1/auth/login", content=big), 413, "PAYLOAD_TOO_LARGE")
        assert err["details"]["limit_bytes"] == 6 * 1024 * 1024

        def chunks():  # no Content-Length: the cap is applied while the body streams in
            for _ in range(7):
                yield b"y" * (1024 * 1024)

        _envelope(c.post("/api/v1/auth/login", content=chunks()), 413, "PAYLOAD_TOO_LARGE")


def _h2_post(port: int, path: str, body_bytes: int, deadline_s: float = 30) -> tuple[int, bytes]:
    """POST over cleartext HTTP/2 (prior knowledge) with no content-length, sending as fast as flow
    control allows and reading as it goes, as browsers and curl do: the status and body answered."""
    import socket
    import time

    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.send_headers(
        1, [(":method", "POST"), (":path", path), (":scheme", "http"), (":authority", f"127.0.0.1:{port}")]
    )  # a Host /api answers
    status, body, sent, ended = 0, b"", 0, False
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.05)
        end = time.monotonic() + deadline_s
        while not ended and time.monotonic() < end:
            while sent < body_bytes and status == 0 and conn.local_flow_control_window(1) > 0:
                chunk = min(
                    conn.local_flow_control_window(1), conn.max_outbound_frame_size, body_bytes - sent
                )
                conn.send_data(1, b"b" * chunk, end_stream=sent + chunk == body_bytes)
                sent += chunk
            sock.sendall(conn.data_to_send())
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
    assert ended, f"no complete answer within {deadline_s} s (status {status}, {sent} bytes sent)"
    return status, body


@pytest.mark.sandbox
def test_http2_bodies_without_a_length_are_capped_as_they_stream(orvad: Orvad) -> None:
    """HTTP/2 sends no Content-Length for a streamed body: the same cap applies while it arrives."""
    import json

    status, body = _h2_post(orvad.port, "/api/v1/auth/login", 7 * 1024 * 1024)
    assert status == 413 and json.loads(body)["error"]["code"] == "PAYLOAD_TOO_LARGE"
    status, body = _h2_post(orvad.port, "/api/v1/auth/login", 1024)  # under the cap: read, and judged as JSON
    assert status == 400 and json.loads(body)["error"]["code"] == "INVALID_JSON"


def test_request_id_is_echoed_when_sane(orvad: Orvad) -> None:
    with orvad.client() as c:
        r = c.get("/api/v1/keys", headers={"X-Request-ID": "trace-abc.123"})
        assert r.headers["x-request-id"] == "trace-abc.123"
        assert r.json()["error"]["request_id"] == "trace-abc.123"
        r = c.get("/api/v1/keys", headers={"X-Request-ID": "bad id <script>"})
        assert r.headers["x-request-id"].startswith("req_")
        ok = c.get("/api/v1/system/health")
        assert ok.headers["x-request-id"].startswith("req_")


async def _boom(request):  # type: ignore[no-untyped-def]
    raise RuntimeError("secret internals: /etc/orva")


async def _busy(request):  # type: ignore[no-untyped-def]
    raise PoolAtCapacity("pool full", retry_after_s=5, hint="raise max_warm")


@pytest.fixture
def unit_app() -> Starlette:
    """The real error middleware around routes that fail (in-process: this is a unit test)."""
    return Starlette(
        routes=[Route("/boom", _boom), Route("/busy", _busy)], middleware=[Middleware(RequestContext)]
    )


async def test_unhandled_exception_is_an_opaque_500_with_a_logged_traceback(
    unit_app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=unit_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with caplog.at_level(logging.ERROR, logger="orvad.errors"):
            r = await c.get("/boom")
    err = _envelope(r, 500, "INTERNAL")
    assert "secret internals" not in r.text and "Traceback" not in r.text
    assert err["request_id"] in err["hint"]
    logged = [rec for rec in caplog.records if rec.name == "orvad.errors"]
    assert logged and logged[0].exc_info and "secret internals" in str(logged[0].exc_info[1])


async def test_retry_after_accompanies_retry_after_s(unit_app: Starlette) -> None:
    transport = httpx.ASGITransport(app=unit_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/busy")
    err = _envelope(r, 503, "POOL_AT_CAPACITY")
    assert r.headers["retry-after"] == "5" and err["retry_after_s"] == 5 and err["hint"] == "raise max_warm"


def test_every_error_class_renders_a_complete_envelope() -> None:
    def subclasses(cls: type[OrvaError]) -> list[type[OrvaError]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    for cls in subclasses(OrvaError):
        env = cls("m").envelope("req_1")["error"]
        assert env["code"] == cls.code and env["request_id"] == "req_1" and 400 <= cls.status < 600


def _error_classes() -> dict[str, type[OrvaError]]:
    """Every OrvaError subclass orvad defines, by name (importing every module registers them all)."""
    for module in sorted((ROOT / "orvad").rglob("*.py")):
        name = ".".join(module.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        # the starter templates' handlers run in sandboxes (they import `orva`, the SDK), not in orvad
        if name != "orvad.__main__" and not (name.startswith("orvad.templates.") and name.count(".") > 2):
            importlib.import_module(name)
    found: dict[str, type[OrvaError]] = {}
    todo: list[type[OrvaError]] = [OrvaError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo += cls.__subclasses__()
    return found


def test_a_code_is_a_class_and_no_raise_site_overrides_it() -> None:
    """One failure vocabulary: every code has its class (and one status), no call passes ``code=`` to an
    error, and nothing raises the 503 family's base itself (each 503 says which one it is)."""
    classes = _error_classes()
    statuses: dict[str, set[int]] = {}
    for cls in classes.values():
        statuses.setdefault(cls.code, set()).add(cls.status)
    assert {code: s for code, s in statuses.items() if len(s) > 1} == {}, "a code answers with two statuses"
    assert statuses["PAYLOAD_TOO_LARGE"] == {413}
    assert "code" not in inspect.signature(OrvaError.__init__).parameters
    offences = []
    for module in sorted([*(ROOT / "orvad").rglob("*.py"), *(ROOT / "orva_cli").rglob("*.py")]):
        for node in ast.walk(ast.parse(module.read_text(), str(module))):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            where = f"{module.relative_to(ROOT)}:{node.lineno} {callee}"
            if callee in classes and any(k.arg == "code" for k in node.keywords):
                offences.append(f"{where}(code=...): give the code its class in orvad/errors.py")
            if callee == "Unavailable":
                offences.append(f"{where}(...): raise the 503 subclass that names the reason")
    assert offences == []


def test_the_ast_walk_finds_an_override() -> None:
    """The walk above is not vacuous: the offence it looks for is found where it exists."""
    tree = ast.parse('raise NotFound("x", code="VERSION_NOT_FOUND")')
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [k.arg for c in calls for k in c.keywords] == ["code"] and _error_classes()["NotFound"]
    with pytest.raises(TypeError):
        _error_classes()["NotFound"]("x", code="VERSION_NOT_FOUND")  # type: ignore[call-arg]


def test_a_malformed_multipart_upload_is_400_and_405_lists_every_method(orvad: Orvad) -> None:
    """Starlette's own 4xx (a multipart body without a boundary) is a 4xx envelope, not 500 INTERNAL
    (found by schemathesis); a 405 names every method the path serves, not one route's."""
    with orvad.admin() as c:
        c.post("/api/v1/functions", json={"name": "multipart-probe", "runtime": "python"})
        r = c.post(
            "/api/v1/functions/multipart-probe/deploy",
            content=b"x",
            headers={"Content-Type": "multipart/form-data"},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION", r.text
        assert r.json()["error"]["request_id"] == r.headers["x-request-id"]
        r = c.request("PATCH", "/api/v1/functions")
        assert r.status_code == 405
        assert set(r.headers["allow"].split(", ")) >= {"GET", "POST"}, r.headers["allow"]
        c.delete("/api/v1/functions/multipart-probe")
