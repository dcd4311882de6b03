"""Functions and the dashboard's origin (issue 16): the Host check against DNS rebinding, the
separate functions origin, orvad's session cookie kept out of function replies, and function
pages sandboxed in a real browser (Debian's Chromium) so they cannot act as the logged-in operator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from orvad.http.origins import Origins
from tests.dashboard.test_dashboard import CHROMIUM, CHROMIUM_ARGS
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, free_port

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

ECHO = """
def handler(event, context):
    return {"path": event["path"], "cookie": event["headers"].get("cookie")}
"""
COOKIES = """
def handler(event, context):
    return {"statusCode": 200, "body": "ok", "headers": {"set-cookie": [
        "session_token=evil; Path=/", "__Host-orva_session=evil; Path=/; Secure", "SESSION_TOKEN=x", "theirs=1; Path=/"]}}
"""
ATTACK = r'''
PAGE = """<!doctype html><html><body><script>
(async () => {
  const out = {};
  try { document.cookie = "session_token=evil; path=/"; out.cookie = "written"; }
  catch (e) { out.cookie = "threw " + e.name; }
  try {
    const r = await fetch("/api/v1/keys", {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/json", "X-Orva-CSRF": "1"},
      body: JSON.stringify({name: "stolen", permissions: ["admin"]})});
    out.fetch = r.status;
  } catch (e) { out.fetch = "threw " + e.name; }
  try {
    await fetch("/api/v1/keys", {method: "POST", mode: "no-cors", credentials: "include",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({name: "stolen-simple"})});
    out.simple = "sent";
  } catch (e) { out.simple = "threw " + e.name; }
  document.body.dataset.done = JSON.stringify(out);
})();
</script></body></html>"""

def handler(event, context):
    return {"statusCode": 200, "headers": {"content-type": "text/html", "set-cookie": "session_token=evil; Path=/"},
            "body": PAGE}
'''


def _deploy(c: httpx.Client, name: str, code: str, **fields: object) -> dict:
    fn = create_function(c, name, **fields)
    assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
    return fn


def test_api_and_web_refuse_hosts_orvad_does_not_answer_for(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _deploy(c, "host-echo", ECHO)
        for host in (
            "evil.com",
            "evil.com:" + str(orvad.port),
            "127.0.0.1.evil.com",
            "10.0.0.5",
            "[fe80::1]:80",
            "localhost.evil.com",
        ):
            for path in ("/api/v1/system/health", "/web/", "/api/v1/keys"):
                r = c.get(path, headers={"Host": host})
                assert r.status_code == 400, (host, path, r.status_code)
                error = r.json()["error"]
                assert error["code"] == "BAD_REQUEST" and "ORVA_ALLOWED_HOSTS" in error["hint"], error
                assert r.headers["x-request-id"] == error["request_id"]
            invoked = c.get(f"/fn/{fn['name']}/x", headers={"Host": host})  # functions are not checked
            assert invoked.status_code == 200 and invoked.json()["path"] == "/x", (host, invoked.text)
        for host in (
            "127.0.0.1",
            f"127.0.0.1:{orvad.port}",
            "localhost",
            "LOCALHOST.:1",
            "[::1]",
            f"[::1]:{orvad.port}",
        ):
            assert c.get("/api/v1/system/health", headers={"Host": host}).status_code == 200, host
        c.delete(f"/api/v1/functions/{fn['id']}")


def test_allowed_hosts_and_public_url_replace_the_default(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(
        env={"ORVA_ALLOWED_HOSTS": "orva.test, [2001:db8::1]", "ORVA_PUBLIC_URL": "https://pub.test"}
    )
    with server.admin() as c:
        for host, status in (
            ("orva.test", 200),
            ("orva.test:8443", 200),
            ("pub.test", 200),
            ("[2001:db8::1]:9", 200),
            ("127.0.0.1", 400),
            ("localhost", 400),
            ("evil.test", 400),
        ):
            assert c.get("/api/v1/system/health", headers={"Host": host}).status_code == status, host


def test_the_host_rules_for_wildcard_binds_and_the_functions_origin() -> None:
    wild = Origins.from_settings(
        host="0.0.0.0", port=8443, public_url="", allowed_hosts="", functions_origin=""
    )
    for host, ok in (
        ("192.0.2.7:8443", True),
        ("[2001:db8::5]", True),
        ("localhost", True),
        ("evil.com", False),
        ("1.2.3.4.evil.com", False),
    ):
        assert wild.host_allowed({"headers": [(b"host", host.encode())]}) is ok, host
    listed = Origins.from_settings(
        host="0.0.0.0", port=8443, public_url="", allowed_hosts="orva.lan", functions_origin=""
    )
    assert not listed.host_allowed({"headers": [(b"host", b"192.0.2.7")]})  # a list is exactly what it says
    anything = Origins.from_settings(
        host="127.0.0.1", port=1, public_url="", allowed_hosts="*", functions_origin=""
    )
    assert anything.host_allowed({"headers": [(b"host", b"evil.com")]})
    same_port = Origins.from_settings(
        host="127.0.0.1",
        port=8443,
        public_url="https://orva.example.com",
        allowed_hosts="",
        functions_origin="https://fn.example.com",
    )
    assert same_port.functions_listener is None  # a proxy in front: told apart by Host
    fn_scope = {"headers": [(b"host", b"fn.example.com")], "server": ("127.0.0.1", 8443)}
    assert same_port.on_functions_origin(fn_scope) and not same_port.shares_cookies(fn_scope)
    dash_scope = {"headers": [(b"host", b"orva.example.com")], "server": ("127.0.0.1", 8443)}
    assert not same_port.on_functions_origin(dash_scope) and same_port.shares_cookies(dash_scope)


@pytest.mark.parametrize("server_kind", ["hypercorn", "uvicorn", "granian"])
def test_the_functions_origin_serves_functions_and_routes_only(
    make_orvad: Callable[..., Orvad], server_kind: str
) -> None:
    fn_port = free_port()
    server = make_orvad(
        env={"ORVA_SERVER": server_kind, "ORVA_FUNCTIONS_ORIGIN": f"http://localhost:{fn_port}"}, start=False
    )
    server.env["ORVA_ALLOWED_HOSTS"] = (
        "127.0.0.1"  # the dashboard is at 127.0.0.1 only, functions at localhost
    )
    server.start()
    functions = f"http://127.0.0.1:{fn_port}"
    with server.admin() as c:
        fn = _deploy(c, "origin-echo", ECHO)
        assert c.post("/api/v1/routes", json={"path": "/hooks/*", "function_id": fn["id"]}).status_code == 201
        on_dashboard = c.get(f"/fn/{fn['name']}/a")  # still served where it was, sandboxed there
        assert on_dashboard.status_code == 200 and on_dashboard.headers["content-security-policy"].startswith(
            "sandbox"
        )
    with httpx.Client(base_url=functions, headers={"Host": f"localhost:{fn_port}"}, timeout=30) as f:
        for path in (f"/fn/{fn['name']}/a", "/hooks/b"):
            r = f.get(path)
            assert r.status_code == 200 and r.json()["path"] in ("/a", "/b"), (path, r.text)
            # another host name than the dashboard's: no shared cookies, no sandbox needed
            assert "content-security-policy" not in r.headers
        for path in ("/api/v1/system/health", "/api/v1/keys", "/web/", "/", "/health/live", "/nothing"):
            r = f.get(path, headers={"X-Orva-API-Key": server.admin_key})
            assert r.status_code == 404, (path, r.status_code)
            error = r.json()["error"]
            assert error["code"] == "NOT_FOUND" and r.headers["x-request-id"] == error["request_id"]
        assert "functions origin" in f.get("/api/v1/keys").json()["error"]["message"]
    # the same host name on another port shares the dashboard's cookies: sandboxed as on the dashboard
    with httpx.Client(base_url=functions, timeout=30) as f:
        assert f.get(f"/fn/{fn['name']}").headers["content-security-policy"].startswith("sandbox")


ORIGIN_WIDE = """
def handler(event, context):
    return {"statusCode": 401, "body": "x", "headers": {
        "set-cookie": [f"b{i}=" + "x" * 4000 + "; Path=/; Max-Age=999999" for i in range(40)],
        "clear-site-data": '"cookies", "storage"', "nel": '{"report_to": "t", "max_age": 86400}',
        "report-to": '{"group": "t", "endpoints": [{"url": "https://collector.invalid/"}]}',
        "reporting-endpoints": 'default="https://collector.invalid/"',
        "strict-transport-security": "max-age=31536000; includeSubDomains",
        "service-worker-allowed": "/", "www-authenticate": 'Basic realm="orva dashboard: log in again"',
        "alt-svc": 'h2="attacker.invalid:443"; ma=86400',
        "x-theirs": "kept"}}
"""


def test_function_replies_never_carry_or_receive_the_session_cookie(orvad: Orvad) -> None:
    with orvad.admin() as c:
        setter = _deploy(c, "cookie-setter", COOKIES)
        echo = _deploy(c, "cookie-echo", ECHO)
    with orvad.client() as c:
        r = c.get(f"/fn/{setter['name']}")  # sandboxed on the dashboard's origin: no cookie at all
        assert r.status_code == 200 and r.headers.get_list("set-cookie") == []
    with orvad.admin() as c:
        assert c.put(f"/api/v1/functions/{setter['id']}", json={"csp_sandbox": False}).status_code == 200
    with orvad.client() as c:
        r = c.get(f"/fn/{setter['name']}")  # trusted by the operator: its own cookies, never orvad's
        assert r.status_code == 200 and r.headers.get_list("set-cookie") == ["theirs=1; Path=/"]
        sent = c.get(
            f"/fn/{echo['name']}", headers={"Cookie": "session_token=a; __Host-orva_session=b; theirs=1"}
        )
        assert sent.json()["cookie"] == "theirs=1"


def test_replies_on_the_dashboards_origin_lose_the_headers_that_act_on_the_whole_origin(orvad: Orvad) -> None:
    """Found by the red team: a sandboxed page cannot touch cookies by script, but Set-Cookie headers
    (a 160 KB cookie bomb made every dashboard request 431), Clear-Site-Data (logged the operator out),
    reporting and HSTS headers and a Basic-auth prompt act on the whole origin. They are dropped where
    the reply shares the dashboard's cookies; the handler's other headers stay."""
    with orvad.admin() as c:
        fn = _deploy(c, "origin-wide", ORIGIN_WIDE)
    with orvad.client() as c:
        r = c.get(f"/fn/{fn['name']}")
    assert r.status_code == 401 and r.headers["x-theirs"] == "kept"
    for name in (
        "set-cookie",
        "clear-site-data",
        "nel",
        "report-to",
        "reporting-endpoints",
        "strict-transport-security",
        "service-worker-allowed",
        "www-authenticate",
        "alt-svc",
    ):
        assert name not in r.headers, name


def test_only_an_admin_may_turn_the_sandbox_off(orvad: Orvad) -> None:
    """Found by the red team: csp_sandbox false makes the function's pages act as the operator who opens
    them, so a write key could escalate to admin through the operator's browser."""
    with orvad.admin() as c:
        key = c.post(
            "/api/v1/keys", json={"name": "tenant", "permissions": ["read", "write", "invoke"]}
        ).json()
    with orvad.client(key["key"]) as tenant:
        r = tenant.post(
            "/api/v1/functions", json={"name": "unsandboxed", "runtime": "python", "csp_sandbox": False}
        )
        assert r.status_code == 403 and r.json()["error"]["details"] == {
            "required": "admin",
            "field": "csp_sandbox",
        }
        fn = create_function(tenant, "sandboxed-tenant")
        r = tenant.put(f"/api/v1/functions/{fn['id']}", json={"csp_sandbox": False})
        assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
        assert tenant.put(f"/api/v1/functions/{fn['id']}", json={"csp_sandbox": True}).status_code == 200
    with orvad.admin() as c:
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["csp_sandbox"] is True
        assert (
            c.put(f"/api/v1/functions/{fn['id']}", json={"csp_sandbox": False}).json()["csp_sandbox"] is False
        )


def test_a_trusted_function_is_changed_only_by_an_admin(orvad: Orvad) -> None:
    """Found by the red-team pass (a variant of the above): a write key could no longer unsandbox a
    function, but could redeploy, roll back, reconfigure or re-secret one an admin had unsandboxed."""
    with orvad.admin() as c:
        key = c.post(
            "/api/v1/keys", json={"name": "tenant2", "permissions": ["read", "write", "invoke"]}
        ).json()
        fn = _deploy(c, "trusted-page", ECHO)
        first = c.get(f"/api/v1/functions/{fn['id']}/deployments").json()["deployments"][0]
        assert c.put(f"/api/v1/functions/{fn['id']}", json={"csp_sandbox": False}).status_code == 200
    base = f"/api/v1/functions/{fn['id']}"
    with orvad.client(key["key"]) as tenant:
        for method, path, body in (
            ("POST", f"{base}/deploy-inline", {"code": "def handler(e, c):\n    return 'mine'\n"}),
            ("POST", f"{base}/rollback", {"deployment_id": first["id"]}),
            ("PUT", base, {"env_vars": {"MODE": "x"}}),
            ("PUT", base, {"entrypoint": "other.py"}),
            ("POST", f"{base}/secrets", {"key": "K", "value": "v"}),
        ):
            r = tenant.request(method, path, json=body)
            assert r.status_code == 403 and r.json()["error"]["details"]["required"] == "admin", (
                path,
                r.text,
            )
        r = tenant.post(f"{base}/deploy", content=b"x", headers={"content-type": "application/zip"})
        assert r.status_code == 403, r.text
        r = tenant.delete(f"{base}/secrets/K")
        assert r.status_code == 403, r.text
        # sandboxing it again is always allowed, and then the tenant may change it as before
        assert tenant.put(base, json={"csp_sandbox": True}).status_code == 200
        assert tenant.put(base, json={"env_vars": {"MODE": "x"}}).status_code == 200


def test_well_known_routes_service_workers_and_domain_cookies(orvad: Orvad) -> None:
    """Found by the red-team pass: a write key routed /.well-known/acme-challenge/* on the dashboard's host
    name (a certificate for the operator's domain where orvad answers port 80), a route at /sw.js could
    become a service worker over /web/, and a functions origin on a sibling host name could bomb the
    dashboard with a Domain= cookie."""
    with orvad.admin() as c:
        key = c.post(
            "/api/v1/keys", json={"name": "tenant3", "permissions": ["read", "write", "invoke"]}
        ).json()
        fn = _deploy(c, "well-known", ECHO)
        _deploy(
            c,
            "domain-cookie",
            """
def handler(event, context):
    return {"statusCode": 200, "body": "ok", "headers": {"set-cookie": [
        "b=1; Domain=example.test; Path=/", "c=2;domain =.example.test", "mine=3; Path=/"]}}
""",
            csp_sandbox=False,
        )
    with orvad.client(key["key"]) as tenant:
        for path in ("/.well-known/acme-challenge/*", "/.Well-Known/security.txt"):
            r = tenant.post("/api/v1/routes", json={"path": path, "function_id": fn["id"]})
            assert r.status_code == 403 and r.json()["error"]["details"]["required"] == "admin", (
                path,
                r.text,
            )
        assert (
            tenant.post("/api/v1/routes", json={"path": "/sw.js", "function_id": fn["id"]}).status_code == 201
        )
    with orvad.admin() as c:
        assert (
            c.post(
                "/api/v1/routes", json={"path": "/.well-known/acme-challenge/*", "function_id": fn["id"]}
            ).status_code
            == 201
        )
    with orvad.client() as anyone:
        assert anyone.get("/sw.js").status_code == 200
        worker = anyone.get("/sw.js", headers={"Service-Worker": "script"})
        assert worker.status_code == 403 and "service worker" in worker.json()["error"]["message"]
        assert anyone.get(f"/fn/{fn['name']}/", headers={"Service-Worker": "script"}).status_code == 403
        assert anyone.get("/fn/domain-cookie").headers.get_list("set-cookie") == ["mine=3; Path=/"]
        r = anyone.get(f"/fn/{fn['name']}/", headers={"Service-Worker": "script", "Host": "127.0.0.1"})
        assert r.status_code == 403


def test_csp_sandbox_is_a_per_function_boolean(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = _deploy(c, "csp-flag", ECHO)
        assert fn["csp_sandbox"] is True
        assert c.get(f"/fn/{fn['id']}").headers["content-security-policy"].startswith("sandbox")
        for bad in ("false", 0, None):
            r = c.put(f"/api/v1/functions/{fn['id']}", json={"csp_sandbox": bad})
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "csp_sandbox"
        assert (
            c.put(f"/api/v1/functions/{fn['id']}", json={"csp_sandbox": False}).json()["csp_sandbox"] is False
        )
        assert "content-security-policy" not in c.get(f"/fn/{fn['id']}").headers


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.mark.timeout(300)
@pytest.mark.browser
def test_a_function_page_cannot_act_as_the_logged_in_operator(
    make_orvad: Callable[..., Orvad], browser: Browser
) -> None:
    """A logged-in operator opens a function's page on the dashboard's origin. The page tries to
    mint an admin key (with the CSRF header the dashboard sends, and as a simple no-cors POST) and
    to overwrite the session cookie, by script and by Set-Cookie. Sandboxed, its origin is opaque:
    the browser refuses the cross-origin preflight, sends no SameSite=Lax cookie with the simple
    POST, and document.cookie throws. The same page with csp_sandbox off mints the key: the
    sandbox is what stops it, not the CSRF header."""
    server = make_orvad()
    with server.client() as c:
        token = server.onboard(c).cookies["session_token"]
    with server.admin() as c:
        fn = _deploy(c, "attack-page", ATTACK)
        keys_before = {k["id"] for k in c.get("/api/v1/keys").json()["keys"]}
    context = browser.new_context()
    context.add_cookies(
        [{"name": "session_token", "value": token, "url": server.url, "httpOnly": True, "sameSite": "Lax"}]
    )
    page = context.new_page()

    def attack() -> dict[str, object]:
        page.goto(f"{server.url}/fn/{fn['name']}")
        page.wait_for_selector("body[data-done]", state="attached", timeout=20_000)
        return dict(json.loads(page.get_attribute("body", "data-done") or "{}"))

    seen = attack()
    assert str(seen["fetch"]).startswith("threw") and str(seen["cookie"]).startswith("threw"), seen
    assert seen["simple"] == "sent", seen  # it went out: without the cookie (and without the CSRF header)
    with server.admin() as c:
        assert {k["id"] for k in c.get("/api/v1/keys").json()["keys"]} == keys_before  # no key minted
    assert [(k["name"], k["value"]) for k in context.cookies() if "session" in k["name"].lower()] == [
        ("session_token", token)
    ]  # neither the script nor the reply's Set-Cookie changed it

    with server.admin() as c:  # the control: the operator opts the function out of the sandbox
        assert c.put(f"/api/v1/functions/{fn['id']}", json={"csp_sandbox": False}).status_code == 200
    seen = attack()
    assert seen["fetch"] == 201, (
        seen
    )  # same origin, the cookie and the CSRF header: the attack the sandbox stops
    with server.admin() as c:
        assert "stolen" in {k["name"] for k in c.get("/api/v1/keys").json()["keys"]}
    context.close()
