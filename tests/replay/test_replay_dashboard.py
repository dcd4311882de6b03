"""The Test tab's saved requests and an execution's Replay (issue 23) in a real browser (Debian's Chromium)
against a real orvad with real workers: save the panel's request under a name, list it, load it back after the
panel changed, send it; a credential header refused on the page; the execution page shows the captured request
redacted, Replay runs it on the current version (the new execution linked), and Save makes it a fixture."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.browser]

ECHO = """
def handler(event, context):
    return {"v": %d, "method": event["method"], "path": event["path"], "query": event["rawQuery"],
            "body": event["body"], "trigger": event["requestContext"]["trigger"]}
"""


def test_test_tab_fixtures_and_replay(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    with server.admin() as admin:
        fn = create_function(admin, "echo")
        wait_deployed(admin, deploy_inline(admin, "echo", ECHO % 1)["id"])
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])

    page.goto(f"{server.url}/web/#/functions/{fn['id']}")
    page.get_by_role("tab", name="Test").click()
    saved = page.get_by_role("region", name="Saved requests")
    expect(saved.get_by_test_id("no-fixtures")).to_be_visible()
    # the panel's request, saved under a name
    page.get_by_label("Method").select_option("PUT")
    page.get_by_label("Path").fill("/orders/7?full=1")
    page.get_by_label("Headers").fill("X-Trace: abc")
    page.get_by_label("Body").fill('{"order": 7}')
    saved.get_by_label("Save the request below as").fill("order seven")
    saved.get_by_role("button", name="Save request").click()
    expect(saved.get_by_test_id("fixture-saved")).to_have_text("Saved as order seven.")
    expect(saved.get_by_test_id("fixture")).to_have_count(1)
    expect(saved.get_by_test_id("fixture")).to_contain_text("PUT /orders/7?full=1")
    with server.admin() as admin:
        stored = admin.get("/api/v1/functions/echo/fixtures/order%20seven").json()
    assert (stored["method"], stored["path"], stored["query"], stored["body"]) == (
        "PUT",
        "/orders/7",
        "full=1",
        '{"order": 7}',
    )
    assert stored["headers"] == {"x-trace": "abc"}
    shot(page, "replay-01-saved")

    # a credential header is refused, in the page's words, and nothing is saved
    page.get_by_label("Headers").fill("Authorization: Bearer nope")
    saved.get_by_label("Save the request below as").fill("with creds")
    saved.get_by_role("button", name="Save request").click()
    expect(saved.get_by_role("alert")).to_contain_text("credential")
    expect(saved.get_by_test_id("fixture")).to_have_count(1)

    # the panel changes; loading the fixture puts it back; Send runs it
    page.get_by_label("Method").select_option("GET")
    page.get_by_label("Path").fill("/elsewhere")
    page.get_by_label("Body").fill("")
    saved.get_by_role("button", name="order seven").click()
    expect(page.get_by_label("Method")).to_have_value("PUT")
    expect(page.get_by_label("Path")).to_have_value("/orders/7?full=1")
    expect(page.get_by_label("Headers")).to_have_value("x-trace: abc")
    expect(page.get_by_label("Body")).to_have_value('{"order": 7}')
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_test_id("status")).to_have_text("200")
    expect(page.get_by_test_id("response-body")).to_contain_text('"path": "/orders/7"')

    # the execution's page: its captured request, Replay on the current version
    with server.admin() as admin:
        wait_deployed(admin, deploy_inline(admin, "echo", ECHO % 2)["id"])
    r = httpx.post(
        f"{server.url}/fn/echo/from-outside?token=tok-secret&a=1",
        headers={"X-Api-Key": "key-secret"},
        content=b"outside body",
        timeout=30,
    )
    execution_id = r.headers["x-orva-execution-id"]
    with server.admin() as admin:
        wait_for(
            lambda: admin.get(f"/api/v1/executions/{execution_id}/request").status_code == 200, 10, "capture"
        )
    page.goto(f"{server.url}/web/#/invocations/{execution_id}")
    captured = page.get_by_test_id("captured-request")
    expect(captured).to_contain_text("POST /from-outside?token=%5Bredacted%5D&a=1")
    expect(captured).to_contain_text("x-api-key: [redacted]")
    expect(captured).to_contain_text("outside body")
    expect(captured).not_to_contain_text("secret")
    page.get_by_test_id("replay").click()
    replayed = page.get_by_test_id("replayed")
    expect(replayed).to_contain_text("Replayed: status 200")
    expect(page.get_by_test_id("replay-body")).to_contain_text('"v": 2')
    expect(page.get_by_test_id("replay-body")).to_contain_text('"trigger": "replay"')
    shot(page, "replay-02-replayed")
    # save it as a fixture: it shows on the Test tab
    page.get_by_label("Save as a saved request named").fill("from outside")
    page.get_by_role("form", name="Save as saved request").get_by_role("button", name="Save").click()
    expect(page.get_by_text("Saved as from outside")).to_be_visible()
    replayed.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Execution")).to_be_visible()
    expect(page.get_by_test_id("captured-request")).to_contain_text("POST /from-outside?a=1")
    page.goto(f"{server.url}/web/#/functions/{fn['id']}")
    page.get_by_role("tab", name="Test").click()
    expect(page.get_by_role("region", name="Saved requests").get_by_test_id("fixture")).to_have_count(2)
