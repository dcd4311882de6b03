"""CORS (issue 19): ORVA_CORS_ORIGINS for /api/v1, /fn and custom routes, per-function cors_origins,
and the attacks on both: look-alike origins, Origin: null, and the dashboard's session from a listed page.

Every check goes through a real orvad; the browser test drives Chromium from pages on other ports.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from orvad.config import ConfigError, load_settings
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, free_port, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

APP = "https://app.example.com"
LOCAL = "http://127.0.0.1:5173"
OTHER = "https://other.example"
# the handler sets its own CORS headers (which orvad's list overrides) and one of its own
HANDLER = """def handler(event, context):
    return {"statusCode": 200, "body": event["method"],
            "headers": {"Access-Control-Allow-Origin": "https://evil.test", "Access-Control-Allow-Credentials": "true",
                        "Access-Control-Allow-Methods": "TRACE", "X-Custom": "yes"}}
"""
SECRET = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'secret-reply'}\n"
STREAM = "def handler(event, context):\n    yield 'a'\n    yield 'b'\n"
LOOK_ALIKES = (
    "null",
    "https://app.example.com.evil.test",
    "https://evil.test.app.example.com",
    "https://xapp.example.com",
    "https://app.example.co",
    "https://APP.EXAMPLE.COM",
    "https://app.example.com/",
    "https://app.example.com:443",
    "http://app.example.com",
    "https://app.example.com:8443",
    "https://evil.test/https://app.example.com",
    "https://app.example.com, https://evil.test",
    "https://app.example.com\t.evil.test",
    "",
)


def preflight(
    c: httpx.Client, path: str, origin: str, method: str = "POST", headers: str | None = None
) -> httpx.Response:
    sent = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        sent["Access-Control-Request-Headers"] = headers
    return c.options(path, headers=sent)


def cors_headers(r: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in r.headers.items() if k.startswith("access-control-")}


def listed(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",")]


def deploy_all(c: httpx.Client, functions: dict[str, tuple[str, dict[str, object]]]) -> dict[str, dict]:
    """Create and deploy several functions, the builds running side by side."""
    made = {name: create_function(c, name, **fields) for name, (_, fields) in functions.items()}
    deps = {name: deploy_inline(c, made[name]["id"], code)["id"] for name, (code, _) in functions.items()}
    for name, dep in deps.items():
        assert wait_deployed(c, dep)["status"] == "succeeded", name
    return made


@pytest.fixture(scope="module")
def server() -> Iterator[Orvad]:
    """One orvad with ORVA_CORS_ORIGINS set and functions inheriting, narrowing, widening and opting out."""
    import shutil
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp(prefix="orva-cors-"))
    base.chmod(0o711)
    orvad = Orvad(
        base / "data",
        free_port(),
        env={"ORVA_CORS_ORIGINS": f"{APP}, {LOCAL}", "ORVA_MAX_BODY_BYTES": "65536"},
    ).start()
    with orvad.admin() as c:
        deploy_all(
            c,
            {
                "inherit": (HANDLER, {}),
                "narrow": (HANDLER, {"cors_origins": [APP]}),
                "other": (HANDLER, {"cors_origins": [OTHER]}),
                "wide": (HANDLER, {"cors_origins": ["*"]}),
                "own": (HANDLER, {"cors_origins": []}),
                "keyed": (SECRET, {"auth_mode": "api_key"}),
                "streamer": (STREAM, {}),
            },
        )
        assert (
            c.post("/api/v1/routes", json={"path": "/hooks/*", "function_id": "inherit"}).status_code == 201
        )
        assert (
            c.post(
                "/api/v1/routes", json={"path": "/only-post", "function_id": "inherit", "methods": "POST"}
            ).status_code
            == 201
        )
        assert (
            c.post("/api/v1/routes", json={"path": "/narrow/*", "function_id": "narrow"}).status_code == 201
        )
    yield orvad
    orvad.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_without_the_setting_no_response_carries_cors_headers(orvad: Orvad) -> None:
    """The default (today's behaviour): no CORS header anywhere, OPTIONS on /api/v1 is guarded as before,
    and a preflight on /fn reaches the handler, whose own CORS headers pass unchanged. A function's
    cors_origins still applies to that function alone (wider than the empty setting)."""
    with orvad.admin() as c:
        deploy_all(c, {"cors-default": (HANDLER, {}), "cors-only-me": (HANDLER, {"cors_origins": [APP]})})
        assert c.get("/api/v1/functions/cors-default").json()["cors_origins"] is None
    with orvad.client() as c:
        api = preflight(c, "/api/v1/functions", APP)
        assert api.status_code == 401 and cors_headers(api) == {}, api.text
        listing = c.get("/api/v1/functions", headers={"Origin": APP, "X-Orva-API-Key": orvad.admin_key})
        assert (
            listing.status_code == 200
            and cors_headers(listing) == {}
            and "origin" not in listed(listing.headers.get("vary", "origin-free"))
        )
        fn = preflight(c, "/fn/cors-default", APP)
        assert fn.status_code == 200 and fn.text == "OPTIONS"  # the handler answered it
        assert fn.headers["access-control-allow-origin"] == "https://evil.test"  # its own, untouched
        got = c.get("/fn/cors-default", headers={"Origin": APP})
        assert got.headers["access-control-allow-credentials"] == "true" and got.text == "GET"
        # the function that set its own list: orvad's CORS for it alone
        mine = preflight(c, "/fn/cors-only-me", APP)
        assert mine.status_code == 204 and mine.headers["access-control-allow-origin"] == APP
        mine_get = c.get("/fn/cors-only-me", headers={"Origin": APP})
        assert mine_get.headers["access-control-allow-origin"] == APP
        assert "access-control-allow-credentials" not in mine_get.headers


def test_a_listed_origin_gets_preflights_and_grants_on_the_api(server: Orvad) -> None:
    with server.client() as c:
        for origin in (APP, LOCAL):
            r = preflight(c, "/api/v1/functions", origin, "POST", "content-type, x-orva-api-key")
            assert r.status_code == 204 and r.content == b"", r.text
            assert r.headers["access-control-allow-origin"] == origin
            assert "origin" in listed(r.headers["vary"])
            assert {"post", "put", "patch", "delete", "get"} <= set(
                listed(r.headers["access-control-allow-methods"])
            )
            assert {"content-type", "authorization", "x-orva-api-key"} <= set(
                listed(r.headers["access-control-allow-headers"])
            )
            assert "x-orva-csrf" not in listed(r.headers["access-control-allow-headers"])
            assert r.headers["access-control-max-age"] == "600"
            assert "access-control-allow-credentials" not in r.headers
            assert r.headers["x-request-id"]
        # the actual request: a key, never the cookie
        ok = c.get("/api/v1/functions", headers={"Origin": APP, "X-Orva-API-Key": server.admin_key})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == APP
        assert "x-request-id" in listed(ok.headers["access-control-expose-headers"])
        assert "origin" in listed(ok.headers["vary"]) and "access-control-allow-credentials" not in ok.headers
        created = c.post(
            "/api/v1/functions",
            json={"name": "made-cross-origin", "runtime": "python", "cors_origins": [OTHER]},
            headers={"Origin": APP, "X-Orva-API-Key": server.admin_key},
        )
        assert created.status_code == 201 and created.headers["access-control-allow-origin"] == APP
        assert "location" in listed(created.headers["access-control-expose-headers"])
        assert created.json()["cors_origins"] == [OTHER]
        # errors are readable by the page too (the envelope says what is wrong)
        refused = c.get("/api/v1/functions", headers={"Origin": APP})
        assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == APP
        # a request without Origin still says the answer depends on it (for caches)
        plain = c.get("/api/v1/functions", headers={"X-Orva-API-Key": server.admin_key})
        assert cors_headers(plain) == {} and "origin" in listed(plain.headers["vary"])
        # the dashboard and the probes are not part of it
        assert cors_headers(c.get("/web/", headers={"Origin": APP})) == {}
        assert cors_headers(c.get("/health/live", headers={"Origin": APP})) == {}


def test_an_origin_not_listed_gets_a_403_preflight_and_no_grant(server: Orvad) -> None:
    with server.client() as c:
        for path in ("/api/v1/functions", "/fn/inherit", "/hooks/x"):
            r = preflight(c, path, "https://evil.test")
            assert r.status_code == 403, (path, r.text)
            error = r.json()["error"]
            assert error["code"] == "FORBIDDEN" and error["details"] == {
                "origin": "https://evil.test",
                "reason": "cors",
            }
            assert "ORVA_CORS_ORIGINS" in error["hint"]
            assert cors_headers(r) == {} and "origin" in listed(r.headers["vary"])
        assert (
            "cors_origins (PUT /api/v1/functions/inherit"
            in preflight(c, "/fn/inherit", OTHER).json()["error"]["hint"]
        )
        got = c.get("/fn/inherit", headers={"Origin": "https://evil.test"})
        assert got.status_code == 200 and got.text == "GET"
        assert cors_headers(got) == {}  # the handler's own grant is dropped too: the operator's list wins
        api = c.get(
            "/api/v1/functions", headers={"Origin": "https://evil.test", "X-Orva-API-Key": server.admin_key}
        )
        assert api.status_code == 200 and cors_headers(api) == {}


def test_functions_and_routes_get_orvads_grant_over_the_handlers(server: Orvad) -> None:
    with server.admin() as admin:
        fn_id = admin.get("/api/v1/functions/inherit").json()["id"]
    with server.client() as c:
        r = preflight(c, "/fn/inherit/deep/path", APP, "PATCH", "X-Custom, X-Orva-CSRF, content-type")
        assert r.status_code == 204 and r.content == b""
        assert r.headers["access-control-allow-origin"] == APP
        assert "patch" in listed(r.headers["access-control-allow-methods"])
        granted = listed(r.headers["access-control-allow-headers"])
        assert {"x-custom", "content-type", "authorization", "x-orva-api-key"} <= set(granted)
        assert "x-orva-csrf" not in granted  # the dashboard's CSRF proof is never granted to another origin
        assert {"origin", "access-control-request-headers"} <= set(listed(r.headers["vary"]))
        for path in (f"/fn/{fn_id}", "/fn/inherit", "/hooks/a/b"):
            got = c.get(path, headers={"Origin": LOCAL})
            assert got.status_code == 200 and got.text == "GET", path
            assert got.headers.get_list("access-control-allow-origin") == [LOCAL], (
                path
            )  # the handler's is gone
            assert "access-control-allow-credentials" not in got.headers
            assert "access-control-allow-methods" not in got.headers
            exposed = listed(got.headers["access-control-expose-headers"])
            assert {"x-orva-execution-id", "x-orva-duration-ms", "x-request-id", "x-custom"} <= set(exposed)
        # a route limited to POST offers POST; the handler never sees a preflight
        route = preflight(c, "/only-post", APP, "POST")
        assert route.status_code == 204 and listed(route.headers["access-control-allow-methods"]) == ["post"]
        assert preflight(c, "/hooks/x", APP, "PUT").headers["access-control-allow-origin"] == APP
        posted = c.post("/only-post", headers={"Origin": APP}, content=b"x")
        assert posted.status_code == 200 and posted.headers["access-control-allow-origin"] == APP
        wrong = c.get("/only-post", headers={"Origin": APP})  # its 405 is readable too
        assert wrong.status_code == 405 and wrong.headers["access-control-allow-origin"] == APP
        # errors of /fn: an unknown function (the setting applies) and a missing key
        missing = c.get("/fn/no-such-function", headers={"Origin": APP})
        assert missing.status_code == 404 and missing.headers["access-control-allow-origin"] == APP
        keyed = c.get("/fn/keyed", headers={"Origin": APP})
        assert keyed.status_code == 401 and keyed.headers["access-control-allow-origin"] == APP
        with_key = c.get("/fn/keyed", headers={"Origin": APP, "X-Orva-API-Key": server.admin_key})
        assert with_key.text == "secret-reply" and with_key.headers["access-control-allow-origin"] == APP
    # preflights are answered by orvad alone: none was recorded as an execution of the function
    with server.admin() as admin:

        def rows() -> list[dict]:
            return admin.get("/api/v1/executions", params={"function_id": "inherit", "limit": 500}).json()[
                "executions"
            ]

        wait_for(lambda: len(rows()) >= 4, 10.0, "the invocations to be recorded")
        assert "OPTIONS" not in {row["method"] for row in rows()}, rows()


def test_per_function_lists_narrow_widen_or_turn_off_the_setting(server: Orvad) -> None:
    with server.client() as c:
        # narrower: only APP, not LOCAL (which the setting lists)
        assert preflight(c, "/fn/narrow", APP).headers["access-control-allow-origin"] == APP
        assert preflight(c, "/fn/narrow", LOCAL).status_code == 403
        assert cors_headers(c.get("/fn/narrow", headers={"Origin": LOCAL})) == {}
        assert preflight(c, "/narrow/x", LOCAL).status_code == 403  # its routes follow it
        assert c.get("/narrow/x", headers={"Origin": APP}).headers["access-control-allow-origin"] == APP
        # another list: OTHER only (not in the setting at all)
        assert preflight(c, "/fn/other", OTHER).headers["access-control-allow-origin"] == OTHER
        assert preflight(c, "/fn/other", APP).status_code == 403
        # wider: any origin, null included, as * (never with credentials)
        for origin in (APP, "https://anyone.test", "null"):
            r = preflight(c, "/fn/wide", origin, "DELETE", "x-custom")
            assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "*"
            got = c.get("/fn/wide", headers={"Origin": origin})
            assert got.headers.get_list("access-control-allow-origin") == ["*"]
            assert "access-control-allow-credentials" not in got.headers
        # turned off: the handler answers OPTIONS and its own headers pass
        own = preflight(c, "/fn/own", APP)
        assert own.status_code == 200 and own.text == "OPTIONS"
        assert own.headers["access-control-allow-origin"] == "https://evil.test"
        assert c.get("/fn/own", headers={"Origin": APP}).headers["access-control-allow-credentials"] == "true"
    with server.admin() as admin:  # a change applies to the next request
        answer = admin.put("/api/v1/functions/narrow", json={"cors_origins": None})
        assert answer.status_code == 200 and answer.json()["cors_origins"] is None
        assert admin.get("/api/v1/functions/other").json()["cors_origins"] == [OTHER]
        listing = admin.get("/api/v1/functions", params={"q": "wide"}).json()["functions"]
        assert [f["cors_origins"] for f in listing] == [["*"]]
    with server.client() as c:
        assert preflight(c, "/fn/narrow", LOCAL).headers["access-control-allow-origin"] == LOCAL
    with server.admin() as admin:
        assert admin.put("/api/v1/functions/narrow", json={"cors_origins": [APP]}).status_code == 200


@pytest.mark.parametrize("origin", LOOK_ALIKES)
def test_look_alike_origins_get_nothing(server: Orvad, origin: str) -> None:
    """Prefixes and suffixes of a listed origin, case, trailing slash, default port, scheme and the
    null origin of sandboxed pages: compared exactly, none is granted anywhere."""
    with server.client() as c:
        for path in ("/api/v1/functions", "/fn/inherit", "/fn/narrow", "/hooks/x"):
            r = preflight(c, path, origin)
            assert r.status_code == 403 and cors_headers(r) == {}, (path, origin, r.status_code)
            got = c.get(path, headers={"Origin": origin, "X-Orva-API-Key": server.admin_key})
            assert got.status_code == 200 and cors_headers(got) == {}, (path, origin)


def test_the_session_cookie_from_a_listed_origin_still_cannot_write(server: Orvad) -> None:
    """A listed origin is trusted to call with keys, not to act as the logged-in operator: no grant
    carries Access-Control-Allow-Credentials or X-Orva-CSRF, and the server refuses cookie writes
    without the CSRF header or from another site whatever ORVA_CORS_ORIGINS says."""
    with server.client() as c:
        token = server.onboard(c).cookies["session_token"]
    cookie = {"session_token": token}
    body = {"name": "stolen", "permissions": ["admin"]}
    with server.client(cookies=cookie) as c:
        # as a browser would send it from the listed page (same site: the Lax cookie travels)
        for site in ("same-site", "cross-site"):
            no_csrf = c.post("/api/v1/keys", json=body, headers={"Origin": LOCAL, "Sec-Fetch-Site": site})
            assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "FORBIDDEN"
            assert "access-control-allow-credentials" not in no_csrf.headers
            # even with the header (which no browser lets the page add: it is never granted)
            with_csrf = c.post(
                "/api/v1/keys",
                json=body,
                headers={"Origin": LOCAL, "Sec-Fetch-Site": site, "X-Orva-CSRF": "1"},
            )
            assert with_csrf.status_code == 403, with_csrf.text
        # without a browser's Sec-Fetch-Site, the Origin check and the CSRF header still hold
        assert c.post("/api/v1/keys", json=body, headers={"Origin": LOCAL}).status_code == 403
        assert (
            c.post("/api/v1/keys", json=body, headers={"Origin": LOCAL, "X-Orva-CSRF": "1"}).status_code
            == 403
        )
        # an api_key function invoked with the cookie but without the header
        fn = c.get("/fn/keyed", headers={"Origin": LOCAL, "Sec-Fetch-Site": "same-site"})
        assert fn.status_code == 403 and fn.json()["error"]["details"]["required"] == "X-Orva-CSRF"
        pre = preflight(c, "/api/v1/keys", LOCAL, "POST", "content-type, x-orva-csrf")
        assert pre.status_code == 204 and "x-orva-csrf" not in listed(
            pre.headers["access-control-allow-headers"]
        )
        assert "access-control-allow-credentials" not in pre.headers
    with server.admin() as admin:
        assert "stolen" not in {k["name"] for k in admin.get("/api/v1/keys").json()["keys"]}


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("https://app.example.com/", "write https://app.example.com"),
        ("https://App.Example.com", "write https://app.example.com"),
        ("https://app.example.com:443", "write https://app.example.com"),
        ("null", "real origins"),
        ("https://*.example.com", "list each origin"),
        ("app.example.com", "scheme://host[:port]"),
        ("ftp://app.example.com", "scheme://host[:port]"),
        ("https://user@app.example.com", "scheme://host[:port]"),
        ("https://app.example.com:70000", "1..65535"),
        ("https://app.example.com/path", "write https://app.example.com"),
        ("https://[:0]", "scheme://host[:port]"),  # urlsplit raises on it (schemathesis found a 500)
        (17, "scheme://host[:port]"),
    ],
)
def test_bad_origins_are_refused_with_the_form_to_write(server: Orvad, value: object, hint: str) -> None:
    with server.admin() as c:
        for body in ({"cors_origins": [APP, value]}, {"cors_origins": value}):
            r = c.put("/api/v1/functions/other", json=body)
            assert r.status_code == 400, (body, r.text)
            error = r.json()["error"]
            assert error["code"] == "VALIDATION" and error["details"]["field"] == "cors_origins"
            assert error["message"].startswith("cors_origins")
            if isinstance(body["cors_origins"], list):
                assert hint in error["hint"], error
                assert error["details"]["index"] == 1
        for body in ({"cors_origins": ["*", APP]}, {"cors_origins": "*"}, {"cors_origins": [APP] * 65}):
            r = c.put("/api/v1/functions/other", json=body)
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "cors_origins", r.text
        created = c.post(
            "/api/v1/functions", json={"name": "bad-cors", "runtime": "python", "cors_origins": ["x"]}
        )
        assert created.status_code == 400 and c.get("/api/v1/functions/bad-cors").status_code == 404
        assert c.get("/api/v1/functions/other").json()["cors_origins"] == [OTHER]  # unchanged


def test_the_setting_is_checked_at_start() -> None:
    assert (
        load_settings(environ={"ORVA_CORS_ORIGINS": f" {APP} ,{LOCAL},{APP}"}).cors_origins
        == f"{APP},{LOCAL}"
    )
    assert load_settings(environ={"ORVA_CORS_ORIGINS": "*"}).cors_origins == "*"
    assert load_settings(environ={}).cors_origins == ""
    for bad, said in (
        ("https://app.example.com/", "write https://app.example.com"),
        ("null", "null"),
        (f"*,{APP}", "* only on its own"),
        ("https://a.example:443", "write https://a.example"),
    ):
        with pytest.raises(ConfigError, match="ORVA_CORS_ORIGINS") as info:
            load_settings(environ={"ORVA_CORS_ORIGINS": bad})
        assert said in str(info.value)


def test_a_bad_setting_stops_orvad_with_the_reason(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_CORS_ORIGINS": "https://App.example.com"}, start=False)
    server.start(wait=False)
    assert server.proc is not None and server.proc.wait(timeout=30) == 2
    assert "write https://app.example.com" in server.stderr()


PAGE = """<!doctype html><title>page</title><pre id="out"></pre>
<script>
const target = "TARGET", key = "KEY", out = {};
async function attempt(label, path, init) {
  try {
    const r = await fetch(target + path, init);
    out[label] = r.status + " " + (await r.text()).slice(0, 40);
  } catch (e) { out[label] = "blocked: " + e.name; }
}
(async () => {
  await attempt("fn", "/fn/keyed", {headers: {"X-Orva-API-Key": key}});
  await attempt("fn_simple", "/fn/wide");
  await attempt("api_key", "/api/v1/functions", {headers: {"X-Orva-API-Key": key}});
  await attempt("session_read", "/api/v1/functions", {credentials: "include"});
  await attempt("session_write", "/api/v1/keys", {method: "POST", credentials: "include",
    headers: {"Content-Type": "application/json", "X-Orva-CSRF": "1"}, body: '{"name": "stolen"}'});
  document.getElementById("out").textContent = JSON.stringify(out);
  document.title = "done";
})();
</script>"""


@contextmanager
def page_server(port: int, html: str) -> Iterator[str]:
    body = html.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/page.html"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.mark.browser
def test_in_a_browser_a_listed_page_calls_with_keys_and_never_as_the_operator(
    make_orvad: Callable[..., Orvad],
) -> None:
    """Chromium: a page on a listed origin (another port of 127.0.0.1) reads a function and the API with
    a key, but cannot read or write with the operator's session cookie; a page on an unlisted port
    reads nothing (the browser blocks each fetch)."""
    from tests.dashboard.test_dashboard import CHROMIUM, CHROMIUM_ARGS

    pytest.importorskip("playwright")
    from playwright.sync_api import sync_playwright

    listed_port, unlisted_port = free_port(), free_port()
    server = make_orvad(env={"ORVA_CORS_ORIGINS": f"http://127.0.0.1:{listed_port}"})
    with server.client() as c:
        token = server.onboard(c).cookies["session_token"]
    with server.admin() as c:
        deploy_all(
            c, {"keyed": (SECRET, {"auth_mode": "api_key"}), "wide": (SECRET, {"cors_origins": ["*"]})}
        )
        key = c.post("/api/v1/keys", json={"name": "page", "permissions": ["invoke", "read"]}).json()["key"]
    html = PAGE.replace("TARGET", server.url).replace("KEY", key)
    results = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for name, port in (("listed", listed_port), ("unlisted", unlisted_port)):
                context = browser.new_context()
                context.set_default_timeout(20_000)
                context.add_cookies([{"name": "session_token", "value": token, "url": server.url}])
                page = context.new_page()
                with page_server(port, html) as url:
                    page.goto(url)
                    page.wait_for_function("document.title === 'done'")
                    results[name] = json.loads(page.locator("#out").inner_text())
                context.close()
        finally:
            browser.close()
    listed_out, unlisted_out = results["listed"], results["unlisted"]
    assert listed_out["fn"] == "200 secret-reply", listed_out
    assert listed_out["fn_simple"] == "200 secret-reply", listed_out
    assert listed_out["api_key"].startswith("200 "), listed_out
    # the cookie went along with the credentialed GET, but the answer has no credentials grant: unreadable
    assert listed_out["session_read"] == "blocked: TypeError", listed_out
    assert listed_out["session_write"] == "blocked: TypeError", listed_out
    assert unlisted_out == {
        "fn": "blocked: TypeError",
        "fn_simple": "200 secret-reply",
        "api_key": "blocked: TypeError",
        "session_read": "blocked: TypeError",
        "session_write": "blocked: TypeError",
    }, unlisted_out
    with server.admin() as admin:
        assert "stolen" not in {k["name"] for k in admin.get("/api/v1/keys").json()["keys"]}


def test_the_cli_shows_and_sets_cors_origins(server: Orvad, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.cli.test_cli import error_line, logged_in

    with logged_in(server, tmp_path, "cli-cors") as cli:
        made = cli.json("functions", "create", "cli-cors", "--runtime", "python", "--cors-origin", APP)
        assert made["cors_origins"] == [APP]
        both = cli.json("functions", "update", "cli-cors", "--cors-origin", APP, "--cors-origin", LOCAL)
        assert both["cors_origins"] == [APP, LOCAL]
        shown = cli.ok("functions", "get", "cli-cors").stdout
        assert f"{APP},{LOCAL}" in shown
        assert cli.json("functions", "update", "cli-cors", "--no-cors")["cors_origins"] == []
        assert "off (orvad adds no CORS headers)" in cli.ok("functions", "get", "cli-cors").stdout
        assert cli.json("functions", "update", "cli-cors", "--inherit-cors")["cors_origins"] is None
        assert "inherit (the server's ORVA_CORS_ORIGINS)" in cli.ok("functions", "get", "cli-cors").stdout
        assert cli.json("functions", "update", "cli-cors", "--cors-origin", "*")["cors_origins"] == ["*"]
        line = error_line(
            cli.fails(1, "functions", "update", "cli-cors", "--cors-origin", f"{APP}/"), "VALIDATION"
        )
        assert f"write {APP}" in line
        assert "give one of" in cli.fails(
            2, "functions", "update", "cli-cors", "--no-cors", "--cors-origin", APP
        )
        assert cli.json("functions", "get", "cli-cors")["cors_origins"] == [
            "*"
        ]  # the refusals changed nothing


def test_streams_oversized_bodies_and_foreign_hosts(server: Orvad) -> None:
    """The grant rides on a streamed reply and on the 413 of a body over the cap (API and /fn);
    a preflight to /api with a Host orvad does not answer for gets the Host refusal, not a grant."""
    with server.client() as c:
        with c.stream("GET", "/fn/streamer", headers={"Origin": APP}) as r:
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == APP
            assert r.read() == b"ab"
        big = b"x" * 70_000
        for path in ("/fn/inherit", "/api/v1/functions"):
            refused = c.post(path, content=big, headers={"Origin": APP, "X-Orva-API-Key": server.admin_key})
            assert refused.status_code == 413 and refused.headers["access-control-allow-origin"] == APP, path
        rebound = c.options(
            "/api/v1/functions",
            headers={"Origin": APP, "Access-Control-Request-Method": "GET", "Host": "rebound.evil.test"},
        )
        assert rebound.status_code == 400 and cors_headers(rebound) == {}, rebound.text
        assert "ORVA_ALLOWED_HOSTS" in rebound.json()["error"]["hint"]


def test_the_functions_origin_grants_for_functions_and_routes_only(make_orvad: Callable[..., Orvad]) -> None:
    """With ORVA_FUNCTIONS_ORIGIN, /fn and custom routes there answer CORS like on the main port; the API
    is not served there, so its preflight is the functions origin's 404, never a grant."""
    fn_port = free_port()
    server = make_orvad(
        env={"ORVA_CORS_ORIGINS": APP, "ORVA_FUNCTIONS_ORIGIN": f"http://127.0.0.1:{fn_port}"}
    )
    with server.admin() as c:
        deploy_all(c, {"fo": (SECRET, {})})
        assert c.post("/api/v1/routes", json={"path": "/fo/*", "function_id": "fo"}).status_code == 201
    with httpx.Client(base_url=f"http://127.0.0.1:{fn_port}", timeout=30) as c:
        for path in ("/fn/fo", "/fo/x"):
            assert preflight(c, path, APP).headers["access-control-allow-origin"] == APP, path
            got = c.get(path, headers={"Origin": APP})
            assert got.text == "secret-reply" and got.headers["access-control-allow-origin"] == APP, path
        api = preflight(c, "/api/v1/functions", APP)
        assert api.status_code == 404 and cors_headers(api) == {}, api.text
