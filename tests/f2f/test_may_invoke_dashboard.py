"""The function Settings tab shows and sets may_invoke (the functions it may call with orva.invoke)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function

pytestmark = [pytest.mark.sandbox, pytest.mark.browser]


def test_settings_show_and_set_may_invoke(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server = make_orvad()
    with server.client() as c:
        login = server.onboard(c, "admin", PASSWORD)
    page.context.add_cookies(
        [{"name": "session_token", "value": login.cookies["session_token"], "url": server.url}]
    )
    with server.admin() as c:
        fn = create_function(c, "caller", may_invoke=["resize", "notify"])
    page.goto(f"{server.url}/web/#/functions/{fn['id']}")
    page.get_by_role("tab", name="Settings").click()
    field = page.locator("textarea[name=may_invoke]")
    expect(field).to_have_value("resize\nnotify")

    # a bad name: orvad's refusal is shown, nothing is saved
    field.fill("resize\nNot A Name")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("alert")).to_contain_text("VALIDATION")
    with server.admin() as c:
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["may_invoke"] == ["resize", "notify"]

    field.fill("*")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Saved.", exact=False)).to_be_visible()
    with server.admin() as c:
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["may_invoke"] == ["*"]
    page.reload()
    page.get_by_role("tab", name="Settings").click()
    expect(field).to_have_value("*")
    field.fill("")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("Saved.", exact=False)).to_be_visible()
    with server.admin() as c:
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["may_invoke"] == []
