"""Attacks on the ASGI/WSGI and fetch bridges' replies (attack-19): an app's reply gets the same checks and
limits a plain handler's does (tests/invoke/test_invoke_replies.py), and a body bigger than one frame is
carried in pieces, not refused."""

from __future__ import annotations

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(300)]

BIG = 20 * 1024 * 1024  # past the 16 MiB frame cap

ASGI_APP = r"""
import asyncio

BIG = 20 * 1024 * 1024

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    async def start(status=200, headers=()):
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    if path == "/big":
        await start(200, [(b"content-type", b"application/octet-stream")])
        await send({"type": "http.response.body", "body": b"a" * BIG})
    elif path == "/big-stream":
        await start(200, [(b"content-type", b"application/octet-stream")])
        await send({"type": "http.response.body", "body": b"b" * BIG, "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})
    elif path == "/crlf":
        await start(200, [(b"x-a", b"1\r\nx-injected: 1")])
        await send({"type": "http.response.body", "body": b"x"})
    elif path == "/nul-name":
        await start(200, [(b"x\x00a", b"1")])
        await send({"type": "http.response.body", "body": b"x"})
    elif path == "/status99":
        await start(99)
        await send({"type": "http.response.body", "body": b"x"})
    elif path == "/status-text":
        await start("abc")
        await send({"type": "http.response.body", "body": b"x"})
    elif path == "/cookies":
        await start(200, [(b"set-cookie", b"a=1; Domain=example.com"), (b"set-cookie", b"b=2"),
                          (b"set-cookie", b"session_token=x"), (b"clear-site-data", b'"*"')])
        await send({"type": "http.response.body", "body": b"x"})
    elif path == "/length-lie":
        await start(200, [(b"content-length", b"5")])
        await send({"type": "http.response.body", "body": b"0123456789" * 10})
    elif path == "/many-headers":  # 300,000 headers: past the 256 KiB every reply's headers get
        await start(200, [(b"x-j", b"1")] * 300_000)
        await send({"type": "http.response.body", "body": b"x"})
    elif path == "/big-headers":  # 50 headers of 1 KiB: served (httpx reads at most 64 KiB of head)
        await start(200, [(b"x-h%d" % i, b"v" * 1024) for i in range(50)])
        await send({"type": "http.response.body", "body": b"x"})
    elif path == "/hang":
        await start(200)
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await asyncio.Event().wait()
    else:
        await start(200)
        await send({"type": "http.response.body", "body": b"ok"})
"""

WSGI_APP = r"""
BIG = 20 * 1024 * 1024

def application(environ, start_response):
    write = start_response("200 OK", [("content-type", "application/octet-stream")])
    if environ["PATH_INFO"] == "/write":
        write(b"w" * BIG)
        return []
    return [b"c" * BIG]
"""

FETCH_APP = r"""
const BIG = 20 * 1024 * 1024;
export default {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === '/big') return new Response(new Uint8Array(BIG).fill(97));
    if (path === '/cookies') {
      const h = new Headers();
      h.append('set-cookie', 'a=1; Domain=example.com');
      h.append('set-cookie', 'b=2');
      h.append('set-cookie', 'session_token=x');
      h.append('clear-site-data', '"*"');
      return new Response('x', { headers: h });
    }
    if (path === '/status1000') return { status: 1000, headers: new Headers(), arrayBuffer: async () => new ArrayBuffer(0), body: null };
    if (path === '/hang') return new Response(new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('part')); } }));
    return new Response('ok');
  },
};
"""


PLAIN_FLOOD = """
def handler(event, context):
    return {"statusCode": 200, "body": "x", "headers": {"x-j": [[]] * 300_000}}
"""


def _deploy(c: httpx.Client, name: str, code: str, **fields: object) -> dict:
    fn = create_function(c, name, **fields)
    assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
    return fn


def _function_error(r: httpx.Response, says: str) -> None:
    assert r.status_code == 500, r.text[:300]
    error = r.json()["error"]
    assert error["code"] == "FUNCTION_ERROR" and says in error["message"], error
    assert "x-injected" not in r.headers


def test_an_asgi_apps_odd_replies_get_the_plain_handlers_answers(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _deploy(c, "asgi-odd", ASGI_APP, timeout_ms=500)
        base = f"/fn/{fn['id']}"
        for path, says in (
            ("/crlf", "line break"),
            ("/nul-name", "field name"),
            ("/status99", "statusCode"),
            ("/status-text", "statusCode"),
        ):
            _function_error(c.get(base + path), says)
        r = c.get(base + "/cookies")  # on the dashboard's origin: no cookie and no origin-wide header at all
        assert r.status_code == 200 and "set-cookie" not in r.headers and "clear-site-data" not in r.headers
        trusted = _deploy(
            c, "asgi-cookies", ASGI_APP, csp_sandbox=False
        )  # cookies pass: Domain= ones still not
        r = c.get(f"/fn/{trusted['id']}/cookies")
        assert r.status_code == 200 and r.headers.get_list("set-cookie") == ["b=2"], r.headers
        r = c.get(base + "/length-lie")
        assert (
            r.status_code == 200 and r.content == b"0123456789" * 10 and r.headers["content-length"] == "100"
        )
        with pytest.raises(httpx.RemoteProtocolError):  # streamed (more_body): cut at its 0.5 s deadline
            with c.stream("GET", base + "/hang", timeout=30) as r:
                assert r.status_code == 200
                r.read()
        assert c.get(base + "/", timeout=30).text == "ok"  # the worker was replaced, the next request served


def test_an_asgi_or_wsgi_body_past_the_frame_cap_is_carried_in_pieces(orvad: Orvad) -> None:
    with orvad.admin() as c:
        asgi = _deploy(c, "asgi-big", ASGI_APP, memory_mb=256)
        for path, byte, tail in (("/big", b"a", b""), ("/big-stream", b"b", b"end")):
            r = c.get(f"/fn/{asgi['id']}{path}", timeout=60)
            assert r.status_code == 200, r.text[:300]
            assert (
                len(r.content) == BIG + len(tail)
                and r.content[:1] == byte
                and r.content.endswith(tail or byte)
            )
        wsgi = _deploy(c, "wsgi-big", WSGI_APP, memory_mb=256)
        for path, byte in (("/write", b"w"), ("/list", b"c")):
            r = c.get(f"/fn/{wsgi['id']}{path}", timeout=60)
            assert r.status_code == 200, r.text[:300]
            assert len(r.content) == BIG and r.content[:1] == byte


def test_a_fetch_handlers_replies_get_the_same_filters_and_big_bodies(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _deploy(c, "fetch-odd", FETCH_APP, runtime="node", memory_mb=256, timeout_ms=500)
        base = f"/fn/{fn['id']}"
        r = c.get(base + "/cookies")  # on the dashboard's origin: no cookie and no origin-wide header at all
        assert r.status_code == 200 and "set-cookie" not in r.headers and "clear-site-data" not in r.headers
        trusted = _deploy(c, "fetch-cookies", FETCH_APP, runtime="node", csp_sandbox=False)
        r = c.get(f"/fn/{trusted['id']}/cookies")
        assert r.status_code == 200 and r.headers.get_list("set-cookie") == ["b=2"], r.headers
        _function_error(c.get(base + "/status1000"), "statusCode")
        r = c.get(base + "/big", timeout=60)
        assert r.status_code == 200 and len(r.content) == BIG
        with pytest.raises(httpx.RemoteProtocolError):  # a body that never ends: cut at its 0.5 s deadline
            with c.stream("GET", base + "/hang", timeout=30) as r:
                assert r.status_code == 200
                r.read()
        assert c.get(base + "/", timeout=30).text == "ok"  # the worker was replaced, the next request served


def test_a_flood_of_reply_headers_is_a_function_error_for_handlers_and_apps(orvad: Orvad) -> None:
    """Found by attack-19: one header with 4,000,000 values held orvad's event loop (every function and the
    API) for 25 s per reply while the server wrote a 36 MB head; now past 256 KiB of headers it is refused."""
    with orvad.admin() as c:
        app = _deploy(c, "asgi-flood", ASGI_APP)
        plain = _deploy(c, "plain-flood", PLAIN_FLOOD)
        for path in (f"/fn/{app['id']}/many-headers", f"/fn/{plain['id']}/"):
            _function_error(c.get(path), "256 KiB")
        r = c.get(f"/fn/{app['id']}/big-headers")
        assert r.status_code == 200 and r.headers["x-h49"] == "v" * 1024
