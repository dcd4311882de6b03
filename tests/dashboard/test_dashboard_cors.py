"""The function Settings tab shows and sets cors_origins (issue 19), in the same one-request save."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Request, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)


def test_settings_show_and_set_the_cors_origins(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server = make_orvad()
    with server.client() as c:
        login = server.onboard(c, "admin", PASSWORD)
    page.context.add_cookies(
        [{"name": "session_token", "value": login.cookies["session_token"], "url": server.url}]
    )
    with server.admin() as c:
        fn = create_function(c, "corsy", cors_origins=["https://app.example.com", "http://127.0.0.1:3000"])
    puts: list[str] = []

    def record(req: Request) -> None:
        if req.method in ("PUT", "POST", "PATCH") and "/api/v1/" in req.url:
            puts.append(f"{req.method} {req.url.removeprefix(server.url)}")

    page.on("request", record)
    page.goto(f"{server.url}/web/#/functions/{fn['id']}")
    page.get_by_role("tab", name="Settings").click()
    mode = page.locator("select[name=cors_mode]")
    origins = page.locator("textarea[name=cors_origins]")
    expect(mode).to_have_value("list")
    expect(origins).to_have_value("https://app.example.com\nhttp://127.0.0.1:3000")

    # a bad origin: the server's refusal names the form to write, the field is marked, nothing is saved
    origins.fill("https://App.example.com/")
    page.get_by_label("Description").fill("changed too")
    page.get_by_role("button", name="Save settings").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("VALIDATION")
    expect(alert).to_contain_text("write https://app.example.com")
    expect(origins).to_have_attribute("aria-invalid", "true")
    with server.admin() as c:
        kept = c.get(f"/api/v1/functions/{fn['id']}").json()
    assert (
        kept["cors_origins"] == ["https://app.example.com", "http://127.0.0.1:3000"]
        and kept["description"] == ""
    )

    # corrected: one PUT saves the list with the other fields
    origins.fill("https://app.example.com\n*")
    page.get_by_role("button", name="Save settings").click()
    expect(alert).to_contain_text("* only on its own")
    origins.fill("https://app.example.com")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Saved.", exact=False)).to_be_visible()
    with server.admin() as c:
        saved = c.get(f"/api/v1/functions/{fn['id']}").json()
    assert saved["cors_origins"] == ["https://app.example.com"] and saved["description"] == "changed too"

    # off ([]) and back to the server's setting (null); the tab shows what was saved after a reload
    mode.select_option("off")
    expect(origins).to_have_count(0)
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Saved.", exact=False)).to_be_visible()
    with server.admin() as c:
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["cors_origins"] == []
    page.reload()
    page.get_by_role("tab", name="Settings").click()
    expect(mode).to_have_value("off")
    mode.select_option("inherit")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Saved.", exact=False)).to_be_visible()
    with server.admin() as c:
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["cors_origins"] is None
    assert puts == [f"PUT /api/v1/functions/{fn['id']}"] * 5, puts
