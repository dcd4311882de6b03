"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a real orvad.

One journey, as a new user would take it: onboarding -> create a Python function -> deploy with a
dependency while the build log streams -> test it -> find it in Invocations -> roll back -> create
and revoke an API key -> log out. Every view is screenshotted to test-artifacts/dashboard/.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("ORVA_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("ORVA_SCREENSHOTS", ROOT / "test-artifacts" / "dashboard"))
# Flags for a closed network and a root user (no background fetches, no setuid sandbox).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]
BUILD_DEADLINE_MS = 240_000  # a pip install inside the build jail

PASSWORD = "correct horse battery"
V1 = """import json

import six


def handler(event, context):
    name = json.loads(event["body"] or "{}").get("name", "world")
    print(f"greeting {name} with six {six.__version__}")
    return {"statusCode": 200, "body": {"hello": name, "six": six.__version__, "v": 1}}
"""
V2 = V1.replace('"v": 1', '"v": 2')


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: `make test` installs Debian's chromium (or set ORVA_CHROMIUM)"
    )
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # a refused fetch (401 before login, a 4xx the test provokes) is logged as "Failed to load resource"
    pg.on(
        "console",
        lambda m: (
            m.type == "error"
            and not m.text.startswith("Failed to load resource")
            and problems.append(f"console: {m.text}")
        ),
    )
    yield pg
    context.close()
    assert problems == [], problems  # script errors and CSP violations fail the test


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def replace_code(page: Page, code: str) -> None:
    """Put `code` into the CodeMirror editor as typed text (insert_text: no auto-indent)."""
    editor = page.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(code)
    expect(editor).to_contain_text("def handler")


def deploy(page: Page, version: int) -> None:
    """Press Deploy and watch build `version`: log lines must arrive before the build's end. (The
    previous build's log and "Deployed." stay on the page until the new deployment is answered, so
    the wait starts at this build's heading.)"""
    page.get_by_role("button", name="Deploy").click()
    expect(page.get_by_role("heading", name=f"Build v{version}")).to_be_visible()
    log = page.get_by_label("Build log")
    expect(log).to_contain_text("»", timeout=30_000)  # phases stream in while the build runs
    expect(page.get_by_text("Deployed. Try it in the Test tab.")).to_be_visible(timeout=BUILD_DEADLINE_MS)


@pytest.mark.timeout(600)
def test_new_user_journey(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]
    server: Orvad = make_orvad()
    url = server.url

    # onboarding: / sends the browser to /web/, which asks for the first admin account
    page.goto(url + "/")
    assert page.url == f"{url}/web/"
    expect(page.get_by_text("Create the administrator account")).to_be_visible()
    expect(page.get_by_text("data/admin.key", exact=True)).to_be_visible()  # where the setup token is
    shot(page, "01-onboarding")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    # a wrong setup token is refused with the hint naming the key file; the right one claims the server
    page.get_by_label("Setup token").fill("orva_" + "0" * 64)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_contain_text("UNAUTHORIZED")
    expect(page.get_by_role("alert")).to_contain_text("admin.key")
    shot(page, "01b-onboarding-wrong-token")
    page.get_by_label("Setup token").fill(server.admin_key)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text("Invocations / s", exact=True)).to_be_visible()
    shot(page, "02-overview")

    # the name rule is checked before anything is sent; a value only orvad checks comes back as the
    # envelope's message and a hint, not raw JSON, with its field marked
    page.get_by_role("link", name="Create your first function").click()
    page.get_by_role("button", name="New function").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill("bad name!")
    dialog.get_by_role("button", name="Create").click()
    assert dialog.get_by_label("Name").evaluate("el => el.validity.patternMismatch")
    dialog.get_by_label("Name").fill("greeter")
    dialog.get_by_label("Memory (MB)").fill("99999")
    dialog.get_by_role("button", name="Create").click()
    expect(dialog.get_by_role("alert")).to_contain_text("VALIDATION")
    expect(dialog.get_by_role("alert")).to_contain_text("Hint:")
    expect(dialog.get_by_label("Memory (MB)")).to_have_attribute("aria-invalid", "true")
    shot(page, "03-create-error")
    dialog.get_by_label("Memory (MB)").fill("128")
    runtimes = dialog.get_by_label("Runtime").locator("option").evaluate_all("os => os.map(o => o.value)")
    dialog.get_by_label("Runtime").select_option(next(r for r in runtimes if r.startswith("python")))
    dialog.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="greeter")).to_be_visible()

    # deploy v1 with a dependency; the build log streams live
    replace_code(page, V1)
    page.get_by_label("Dependencies").fill("six==1.16.0")
    shot(page, "04-editor")
    deploy(page, 1)
    expect(page.get_by_label("Build log")).to_contain_text("six")
    shot(page, "05-build-log")

    # Test pane: status, body, cold start flag and the logs of exactly that execution
    page.get_by_role("tab", name="Test").click()
    page.get_by_label("Body").fill('{"name": "Ada"}')
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("status")).to_have_text("200")
    expect(page.get_by_test_id("response-body")).to_contain_text('"hello": "Ada"')
    expect(page.get_by_test_id("execution-logs")).to_contain_text("greeting Ada with six 1.16.0")
    shot(page, "06-test-pane")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("cold-start")).to_have_text("warm")

    # Invocations: the rows are there; a row opens the execution with its logs
    page.get_by_role("link", name="Invocations").click()
    rows = page.get_by_role("table", name="Executions").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(page.get_by_test_id("live")).to_have_text("● live")
    assert httpx.post(f"{url}/fn/greeter", json={"name": "Live"}).status_code == 200
    expect(rows).to_have_count(3)  # arrived over SSE, no reload
    shot(page, "07-invocations")
    rows.last.click()  # the oldest: the Test pane's first call
    expect(page.get_by_test_id("execution-logs")).to_contain_text("greeting Ada")
    shot(page, "08-execution")

    # v2, then roll back to v1 from the history; compare the two side by side
    page.get_by_role("link", name="Functions").click()
    page.get_by_role("link", name="greeter").click()
    replace_code(page, V2)
    deploy(page, 2)
    assert httpx.post(f"{url}/fn/greeter", json={}).json()["v"] == 2
    page.get_by_role("tab", name="Deployments").click()
    page.get_by_role("button", name="Roll back to v1").click()
    expect(page.get_by_role("table", name="Deployments").locator("tbody tr").first).to_contain_text(
        "rollback"
    )
    assert httpx.post(f"{url}/fn/greeter", json={}).json()["v"] == 1
    page.get_by_label("From", exact=True).select_option(label="v1")
    page.get_by_label("To", exact=True).select_option(label="v2")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator(".diff-table td.add")).to_contain_text('"v": 2')
    expect(page.locator(".diff-table td.del")).to_contain_text('"v": 1')
    shot(page, "09-deployments-diff")

    # the page sandbox is on by default; turning it off is a setting saved through the API
    page.get_by_role("tab", name="Settings").click()
    sandbox = page.get_by_label("Sandbox this function's pages", exact=False)
    expect(sandbox).to_be_checked()
    sandbox.uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.", exact=False)).to_be_visible()
    fn_key = {"X-Orva-API-Key": server.admin_key}
    assert httpx.get(f"{url}/api/v1/functions/greeter", headers=fn_key).json()["csp_sandbox"] is False
    sandbox.check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved.", exact=False)).to_be_visible()
    assert httpx.get(f"{url}/api/v1/functions/greeter", headers=fn_key).json()["csp_sandbox"] is True

    for tab in ("Settings", "Secrets", "Routes", "Executions"):
        page.get_by_role("tab", name=tab).click()
        shot(page, f"10-function-{tab.lower()}")

    # API keys: created with its plaintext shown once, works, then revoked and refused
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("ci")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-key").inner_text().strip()
    assert key.startswith("orva_")
    shot(page, "11-new-key")
    assert httpx.get(f"{url}/api/v1/functions", headers={"X-Orva-API-Key": key}).status_code == 200
    page.get_by_role("button", name="Done").click()
    row = page.get_by_role("row").filter(has_text="ci")
    row.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("row").filter(has_text="ci")).to_have_count(0)
    assert httpx.get(f"{url}/api/v1/functions", headers={"X-Orva-API-Key": key}).status_code == 401

    for view in ("Routes", "Settings", "Overview"):
        page.get_by_role("link", name=view).click()
        shot(page, f"12-{view.lower()}")
    expect(page.get_by_text("greeter")).to_be_visible()  # its warm pool

    # delete a function with confirmation
    with httpx.Client(base_url=url, headers={"X-Orva-API-Key": server.admin_key}) as c:
        assert c.post("/api/v1/functions", json={"name": "scratch", "runtime": "node"}).status_code == 201
    page.get_by_role("link", name="Functions").click()
    page.get_by_role("link", name="scratch").click()
    page.get_by_role("button", name="Delete function").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete function").click()
    expect(page.get_by_role("heading", name="Functions")).to_be_visible()
    expect(page.get_by_role("link", name="scratch")).to_have_count(0)
    expect(page.get_by_role("link", name="greeter")).to_be_visible()

    # log out: the login page, and the API refuses the old session
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "session_token")
    assert httpx.get(f"{url}/api/v1/auth/me", cookies={"session_token": token}).status_code == 200
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    shot(page, "13-logged-out")
    assert httpx.get(f"{url}/api/v1/auth/me", cookies={"session_token": token}).status_code == 401


def test_expired_session_returns_to_the_same_page(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]
    server: Orvad = make_orvad()
    with server.client() as c:
        assert server.onboard(c, "admin", PASSWORD).status_code == 201
    # A slow page, as under a loaded CI run (the old wait for the heading alone failed 4 times in 6 here).
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 10})
    page.goto(f"{server.url}/web/#/keys")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    # The heading renders before the view's effect sends its request: wait for the list itself, or the
    # cookie cleared below makes that request a 401 and login takes the user back to /keys, not /settings
    # (the flake under load: the Settings link was detached by that redirect).
    expect(page.get_by_role("table", name="API keys")).to_contain_text("bootstrap-admin")

    # the session ends behind the page's back; the next API call sends the user to login
    page.context.clear_cookies()
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_text("Your session ended")).to_be_visible()
    assert "next=%2Fsettings" in page.url
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Settings")).to_be_visible()
    expect(page.get_by_test_id("version")).not_to_be_empty()

    # change the password; the new one is the one that works from now on
    new_password = PASSWORD + " staple"
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("Confirm new password").fill(new_password)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Password changed.")).to_be_visible()
    old = httpx.post(f"{server.url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    assert old.status_code == 401

    # wrong password: a readable message with the hint, never raw JSON (Settings lists sessions with Log out
    # buttons of their own: the one in the navigation)
    page.get_by_role("navigation", name="Main").get_by_role("button", name="Log out").click()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("INVALID_CREDENTIALS")
    assert "{" not in alert.inner_text()


def test_long_lists_are_paged_not_cut(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]
    server: Orvad = make_orvad()
    with server.client() as c:
        login = server.onboard(c, "admin", PASSWORD)
    page.context.add_cookies(
        [{"name": "session_token", "value": login.cookies["session_token"], "url": server.url}]
    )
    with httpx.Client(base_url=server.url, headers={"X-Orva-API-Key": server.admin_key}) as c:
        for i in range(55):  # more than one page of 50
            assert (
                c.post("/api/v1/functions", json={"name": f"fn-{i:02d}", "runtime": "python"}).status_code
                == 201
            )
    page.goto(f"{server.url}/web/#/functions")
    rows = page.get_by_role("table", name="Functions").locator("tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_role("button", name="Load more").click()
    expect(rows).to_have_count(55)
    expect(page.get_by_role("button", name="Load more")).to_have_count(0)
    expect(page.get_by_role("link", name="fn-00")).to_be_visible()  # the oldest, from the second page


ATTACKER_PAGE = """<!doctype html><title>prize</title><pre id="out"></pre><iframe name="sink"></iframe>
<form id="form" method="post" action="TARGET/api/v1/keys" enctype="text/plain" target="sink">
<input name='{"name":"form-stolen","x":"' value='"}'></form>
<script>
const target = "TARGET", out = {};
const body = JSON.stringify({name: "fetch-stolen", permissions: ["admin"]});
async function attempt(label, init) {
  try {
    const r = await fetch(target + "/api/v1/keys", {method: "POST", credentials: "include", body, ...init});
    out[label] = r.type === "opaque" ? "opaque" : r.status + " " + await r.text();
  } catch (e) { out[label] = "blocked: " + e.name; }
}
(async () => {
  await attempt("with_header", {headers: {"Content-Type": "application/json", "X-Orva-CSRF": "1"}});
  await attempt("no_cors", {mode: "no-cors", headers: {"Content-Type": "text/plain"}});
  document.getElementById("form").submit();
  document.getElementById("out").textContent = JSON.stringify(out);
  document.title = "done";
})();
</script>"""


@contextmanager
def attacker_site(target: str) -> Iterator[str]:
    """A page on another origin of the same host (another port: same site, so the Lax cookie travels)."""
    page = ATTACKER_PAGE.replace("TARGET", target).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/prize.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.browser
def test_another_origin_cannot_mint_a_key_with_the_session(make_orvad, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    """An operator logged in to the dashboard visits a page of another origin (here another port of the
    same host, so the SameSite=Lax cookie is sent): no fetch, no-cors fetch or form can create a key, because
    X-Orva-CSRF cannot be added cross-origin without a CORS grant orvad never gives."""
    server: Orvad = make_orvad()
    with server.client() as c:
        token = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    context = browser.new_context()
    context.set_default_timeout(20_000)
    context.add_cookies([{"name": "session_token", "value": token, "url": server.url}])
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: m.type == "error" and console.append(m.text))
    page.on("pageerror", lambda exc: console.append(f"page error: {exc}"))
    # control: the dashboard's own origin, same cookie, can (the header is all it adds)
    page.goto(f"{server.url}/web/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    status = page.evaluate("""async () => (await fetch('/api/v1/keys', {method: 'POST', credentials: 'same-origin',
        headers: {'Content-Type': 'application/json', 'X-Orva-CSRF': '1'}, body: '{"name": "own-origin"}'})).status""")
    assert status == 201

    with attacker_site(server.url) as evil:
        page.goto(evil)
        expect(page).to_have_title("done")
        out = json.loads(page.locator("#out").inner_text())
        assert out == {"with_header": "blocked: TypeError", "no_cors": "opaque"}, out
        sink = page.frame(name="sink")
        assert sink is not None
        expect(sink.locator("body")).to_contain_text("FORBIDDEN")  # the form POST's answer
    context.close()
    # the browser itself says why the fetch with the header never left: the preflight found no CORS grant
    assert any("has been blocked by CORS policy" in line for line in console), console
    assert not any(line.startswith("page error") for line in console), console

    with server.admin() as admin:
        names = sorted(k["name"] for k in admin.get("/api/v1/keys").json()["keys"])
        assert names == ["bootstrap-admin", "own-origin"]
        # the cookie did travel with the no-cors fetch and the form: refused as the session, not as anonymous
        entries = admin.get("/api/v1/audit-log", params={"path_prefix": "/api/v1/keys"}).json()["entries"]
        refused = [e for e in entries if e["status"] == 403]
        assert len(refused) == 2 and all(e["actor_kind"] == "session" for e in refused), entries
    with server.session_client(token) as still:
        assert still.get("/api/v1/auth/me").status_code == 200
