"""The function pages of the dashboard in a real browser against a real orvad (issue 18, items 4, 6-10).

- drafts: code, dependencies and the Test request survive tab switches, leaving and coming back, and
  a reload; undeployed edits are marked and guarded; Ctrl+S deploys, Ctrl+Enter sends a test; the
  Test panel sits beside the editor on a wide screen; a never-deployed function says "deploy first"
  and records nothing;
- History: every deployment row (failed, old, rolled back to) opens its build log;
- Settings: one PUT carries the function fields and the pool, all or nothing; the field the API names
  is highlighted and the hint speaks of the page, not of API paths;
- orvad stopped under the page: a banner says so, the live badge stops saying live, and both recover
  by themselves when orvad is back on the same port and data dir.
Screenshots go to test-artifacts/dashboard/ with the other dashboard tests'.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import Dialog, Page, Request, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, replace_code, shot  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

BUILD_DEADLINE_MS = 120_000

DRAFT = """import json


def handler(event, context):
    name = json.loads(event["body"] or "{}").get("name", "world")
    print(f"drafted for {name}")
    return {"statusCode": 200, "body": {"hello": name, "draft": True}}
"""

VERSION = """def handler(event, context):
    return {"statusCode": 200, "body": {"v": %d}}
"""


def signed_in_with(make_orvad, pg: Page, name: str) -> tuple[Orvad, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """A fresh orvad with one Python function `name`; onboarded through the API, the session handed to the browser."""
    server: Orvad = make_orvad()
    with server.client() as c:
        login = server.onboard(c, "admin", PASSWORD)
    assert login.status_code == 201, login.text
    pg.context.add_cookies(
        [{"name": "session_token", "value": login.cookies["session_token"], "url": server.url}]
    )
    with server.admin() as c:
        return server, create_function(c, name)


def executions_of(server: Orvad, function_id: str) -> list[dict[str, object]]:
    with server.admin() as c:
        r = c.get("/api/v1/executions", params={"function_id": function_id})
        assert r.status_code == 200, r.text
        return list(r.json()["executions"])


@pytest.mark.timeout(300)
def test_drafts_survive_and_shortcuts_deploy_and_test(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server, fn = signed_in_with(make_orvad, page, "drafty")
    page.goto(f"{server.url}/web/#/functions/{fn['id']}")
    expect(page.get_by_role("heading", name="drafty")).to_be_visible()
    panel = page.get_by_role("region", name="Test panel")  # on the Code tab, under or beside the editor

    # 18.10: a function never deployed: Send says "deploy first", no error alert, nothing recorded
    expect(panel.get_by_test_id("not-deployed-yet")).to_be_visible()
    panel.get_by_role("button", name="Send").click()
    expect(panel.get_by_test_id("deploy-first")).to_contain_text("Deploy first")
    expect(page.get_by_role("alert")).to_have_count(0)
    expect(panel.get_by_test_id("status")).to_have_count(0)
    assert executions_of(server, fn["id"]) == []
    shot(page, "20-test-never-deployed")

    # 18.4: an edit is marked on the Code tab and by Deploy
    editor = page.locator(".cm-content")
    unsaved = page.get_by_test_id("unsaved")
    code_tab = page.get_by_role("tab", name="Code")
    expect(unsaved).to_have_count(0)
    replace_code(page, DRAFT)
    page.get_by_label("Dependencies").fill("# nothing needed yet")
    panel.get_by_label("Body").fill('{"name": "Grace"}')
    panel.get_by_label("Headers").fill("Content-Type: application/json\nAuthorization: Bearer s3cret-token")
    expect(unsaved).to_be_visible()
    expect(code_tab).to_contain_text("●")
    expect(code_tab).to_have_accessible_name(re.compile("undeployed changes"))
    shot(page, "21-draft-unsaved")

    # tab switches keep the code, the dependencies and the Test request
    page.get_by_role("tab", name="Settings").click()
    expect(page.get_by_role("button", name="Save settings")).to_be_visible()
    page.get_by_role("tab", name="Test").click()
    expect(page.get_by_label("Body")).to_have_value('{"name": "Grace"}')
    expect(page.get_by_label("Headers")).to_have_value(re.compile("s3cret-token"))
    page.get_by_role("tab", name="Code").click()
    expect(editor).to_contain_text("drafted for")
    expect(page.get_by_label("Dependencies")).to_have_value("# nothing needed yet")

    # leaving through the dashboard's links asks first; Stay stays, Leave leaves, the draft waits
    page.get_by_role("link", name="Invocations").click()
    leave = page.get_by_role("dialog", name="Leave with undeployed changes?")
    expect(leave).to_be_visible()
    shot(page, "22-leave-guard")
    leave.get_by_role("button", name="Stay").click()
    expect(leave).to_be_hidden()
    expect(page.get_by_role("heading", name="drafty")).to_be_visible()
    page.get_by_role("link", name="Invocations").click()
    leave.get_by_role("button", name="Leave").click()
    expect(page.get_by_role("heading", name="Invocations")).to_be_visible()
    page.get_by_role("link", name="Functions").click()  # not on a function page: no question
    page.get_by_role("link", name="drafty").click()
    expect(editor).to_contain_text("drafted for")
    expect(unsaved).to_be_visible()
    expect(panel.get_by_label("Body")).to_have_value('{"name": "Grace"}')

    # a reload: the browser asks first (beforeunload), and the draft is still there afterwards
    asked: list[str] = []

    def answer(dialog: Dialog) -> None:
        asked.append(dialog.type)
        dialog.accept()

    page.on("dialog", answer)
    page.reload()
    page.remove_listener("dialog", answer)
    assert asked == ["beforeunload"]
    expect(editor).to_contain_text("drafted for")
    expect(unsaved).to_be_visible()
    expect(panel.get_by_label("Body")).to_have_value('{"name": "Grace"}')
    # header values (they may carry credentials) were kept in memory only, never in the browser's storage
    expect(panel.get_by_label("Headers")).to_have_value("Content-Type: application/json")
    assert "s3cret" not in page.evaluate("() => JSON.stringify(sessionStorage)")

    # Ctrl+S deploys (and the browser's own "save page" is prevented); the marker goes
    editor.click()
    page.evaluate(
        "() => addEventListener('keydown', (e) => { if (e.key === 's') window.saveBlocked = e.defaultPrevented; })"
    )
    page.keyboard.press("Control+s")
    expect(page.get_by_text("Deployed. Try it in the Test tab.")).to_be_visible(timeout=BUILD_DEADLINE_MS)
    assert page.evaluate("window.saveBlocked") is True
    expect(unsaved).to_have_count(0)
    expect(code_tab).not_to_contain_text("●")
    with server.admin() as c:
        source = c.get(f"/api/v1/functions/{fn['id']}/source").json()
    assert "drafted for" in source["code"]

    # Ctrl+Enter in the editor sends the test (and inserts no line: still nothing undeployed)
    editor.click()
    page.keyboard.press("Control+Enter")
    expect(panel.get_by_test_id("status")).to_have_text("200")
    expect(panel.get_by_test_id("response-body")).to_contain_text('"hello": "Grace"')
    expect(panel.get_by_test_id("execution-logs")).to_contain_text("drafted for Grace")
    expect(unsaved).to_have_count(0)
    # ... and from the Test tab's body
    page.get_by_role("tab", name="Test").click()
    page.get_by_label("Body").fill('{"name": "Hopper"}')
    page.get_by_label("Body").press("Control+Enter")
    expect(page.get_by_test_id("response-body")).to_contain_text('"hello": "Hopper"')
    assert len(executions_of(server, fn["id"])) == 2

    # a wide screen: the Test panel stands beside the editor on the Code tab
    page.set_viewport_size({"width": 1600, "height": 900})
    page.get_by_role("tab", name="Code").click()
    code_box, test_box = page.locator(".editor").bounding_box(), panel.bounding_box()
    assert code_box is not None and test_box is not None
    assert test_box["x"] >= code_box["x"] + code_box["width"], (code_box, test_box)
    shot(page, "23-code-and-test-wide")


@pytest.mark.timeout(300)
def test_history_rows_open_logs_and_settings_save_in_one_request(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server, fn = signed_in_with(make_orvad, page, "historian")
    with server.admin() as c:
        v1 = wait_deployed(c, deploy_inline(c, fn["id"], VERSION % 1)["id"])
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("x.tgz", b"not an archive")})
        assert r.status_code == 202, r.text
        failed = wait_deployed(c, r.json()["id"])
        v3 = wait_deployed(c, deploy_inline(c, fn["id"], VERSION % 3)["id"])
        assert [v1["status"], failed["status"], v3["status"]] == ["succeeded", "failed", "succeeded"]
        rolled = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": v1["id"]})
        assert rolled.status_code == 200, rolled.text
    url = server.url

    # 18.7: every row opens its own build log: the rollback, the one it replaced, the failed one, the oldest
    page.goto(f"{url}/web/#/functions/{fn['id']}?tab=deployments")
    rows = page.get_by_role("table", name="Deployments").locator("tbody tr")
    expect(rows).to_have_count(4)
    log = page.get_by_test_id("deployment-log")
    # each log names its own build (code hash); a rollback built nothing and names the version it activated
    expected = [
        ("v4", v1["code_hash"][:12]),
        ("v3", f"code hash {v3['code_hash']}"),
        ("v2", "not a readable"),
        ("v1", f"code hash {v1['code_hash']}"),
    ]
    for index, (version, text) in enumerate(expected):
        rows.nth(index).click()
        expect(page.get_by_role("heading", name=f"Build log of {version}")).to_be_visible()
        expect(page.locator(".deployment-log")).to_contain_text(text)
        expect(log).not_to_contain_text("loading the log")
    shot(page, "24-history-old-log")
    rows.nth(2).press("Enter")  # the keyboard opens a row too
    expect(page.get_by_role("heading", name="Build log of v2")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)

    # 18.6 and 18.8: an env change and a bad pool field in one save: one PUT, refused as a whole,
    # the pool field highlighted and focused, a hint without API paths
    puts: list[str] = []

    def record(req: Request) -> None:
        if req.method in ("PUT", "POST") and "/api/v1/" in req.url:
            puts.append(f"{req.method} {req.url.removeprefix(url)}")

    page.on("request", record)
    page.get_by_role("tab", name="Settings").click()
    page.get_by_label("Environment variables").fill("GREETING=hi")
    max_warm = page.locator("input[name=max_warm]")
    max_warm.fill("-1")
    page.get_by_role("button", name="Save settings").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("VALIDATION")
    expect(alert).to_contain_text("Hint:")
    expect(max_warm).to_have_attribute("aria-invalid", "true")
    expect(max_warm).to_have_class(re.compile(r"\bfield-invalid\b"))
    expect(max_warm).to_be_focused()
    expect(alert).to_contain_text("Correct the highlighted field (pool max warm)")
    text = alert.inner_text()
    assert not any(api_talk in text for api_talk in ("/api/v1", "{id}", "details.field")), text
    shot(page, "25-settings-pool-field")
    assert puts == [f"PUT /api/v1/functions/{fn['id']}"], puts
    with server.admin() as c:
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["env_vars"] == {}  # nothing was saved

    # corrected: the mark goes as the field changes, and one PUT saves both
    max_warm.fill("3")
    expect(max_warm).not_to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Saved.", exact=False)).to_be_visible()
    assert puts == [f"PUT /api/v1/functions/{fn['id']}"] * 2, puts
    with server.admin() as c:
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["env_vars"] == {"GREETING": "hi"}
        pool = c.get("/api/v1/pool/config", params={"function_id": fn["id"]}).json()
        assert pool["max_warm"] == 3, pool

    # a function field named by the API is highlighted the same way
    memory = page.locator("input[name=memory_mb]")
    memory.fill("1")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("alert")).to_contain_text("memory_mb")
    expect(memory).to_have_attribute("aria-invalid", "true")
    expect(memory).to_be_focused()
    assert "/api/v1" not in page.get_by_role("alert").inner_text()


@pytest.mark.timeout(300)
def test_orvad_unreachable_banner_comes_and_goes(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server, _ = signed_in_with(make_orvad, page, "survivor")
    banner = page.get_by_test_id("connection-lost")
    live = page.get_by_test_id("live")

    # on a live view: orvad stops, the banner comes and the badge stops saying live
    page.goto(f"{server.url}/web/#/invocations")
    expect(live).to_have_text("● live")
    expect(banner).to_have_count(0)
    server.stop()
    expect(banner).to_contain_text("Cannot reach orvad, retrying")
    expect(live).not_to_have_text("● live")
    shot(page, "26-orvad-unreachable")

    # the same orvad (port, data dir) comes back: the banner goes and the stream is live again
    server.start()
    expect(banner).to_have_count(0)
    expect(live).to_have_text("● live")
    assert httpx.get(f"{server.url}/health/live").status_code == 200

    # a view opened while orvad is away says why it is empty, and fills itself once orvad is back
    server.stop()
    expect(banner).to_be_visible()
    page.get_by_role("link", name="Functions").click()
    expect(page.get_by_role("alert").filter(has_text="UNREACHABLE")).to_be_visible()
    expect(page.get_by_role("link", name="survivor")).to_have_count(0)
    server.start()
    expect(page.get_by_role("link", name="survivor")).to_be_visible()
    expect(banner).to_have_count(0)
    expect(page.get_by_role("alert")).to_have_count(0)
