"""The Activity view and Settings → Storage / Sessions (issue 24) in a real browser (Debian's Chromium) against a
real orvad: rows listed and filtered, a new row arriving live, Load more; the storage figures and the Vacuum
button; two sessions listed, the other one logged out (its cookie refused at once), then log out everywhere.
Nothing is deployed: the `browser` marker (from the fixtures) keeps it out of `make test-fast`."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests import databases
from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.helpers import Orvad, wait_for


def test_activity_storage_and_sessions(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    with server.client(headers={"User-Agent": "curl/8.4.0"}) as c:
        other = c.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).cookies[
            "session_token"
        ]
    with server.admin() as admin:
        for i in range(55):  # more than a page (50)
            assert admin.delete(f"/api/v1/functions/gone-{i}").status_code == 404
        # reads are rows too (issue 24): these are the changes (onboard, login, 55 deletes)
        changes = {"limit": 500, "hide_reads": "true"}
        wait_for(
            lambda: len(admin.get("/api/v1/activity", params=changes).json()["activity"]) >= 57,
            10,
            "the rows",
        )
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])

    # Activity: the nav item, a page of rows, Load more, filters
    page.goto(f"{server.url}/web/#/")
    page.get_by_role("link", name="Activity").click()
    expect(page.get_by_role("heading", name="Activity", exact=True)).to_be_visible()
    table = page.get_by_role("table", name="Activity")
    expect(table.get_by_text("DELETE /api/v1/functions/gone-54", exact=True)).to_be_visible()
    expect(page.get_by_test_id("live")).to_have_text("● live")
    # this page's own reads are rows too: Hide reads leaves the 57 changes
    page.get_by_label("Hide reads").check()
    expect(page).to_have_url(re.compile(r"hide_reads=1"))
    expect(table.locator("tbody tr").first).to_contain_text("DELETE /api/v1/functions/gone-54")
    assert table.locator("tbody tr").count() == 50
    page.get_by_role("button", name="Load more").click()
    expect(table.locator("tbody tr")).to_have_count(57)
    page.get_by_label("Search").fill("gone-7")
    page.get_by_role("button", name="Search").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("404")
    # a new matching row arrives live, above the loaded ones
    with server.admin() as admin:
        assert admin.delete("/api/v1/functions/gone-77").status_code == 404
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").first).to_contain_text("gone-77")
    page.get_by_label("Source").select_option("mcp")
    expect(page.get_by_text("Nothing matches these filters.")).to_be_visible()
    page.get_by_label("Source").select_option("api")
    page.get_by_label("Search").fill("auth/login")
    page.get_by_role("button", name="Search").click()
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("POST /api/v1/auth/login")
    shot(page, "operate-01-activity")

    # Settings → Storage: real figures and a vacuum
    page.get_by_role("link", name="Settings").click()
    storage = page.get_by_role("region", name="Storage")
    expect(storage.get_by_test_id("executions")).to_contain_text("0 rows")
    if databases.driver() == databases.SQLITE:
        expect(storage.get_by_test_id("last-vacuum")).to_have_text("None since orvad started.")
        storage.get_by_role("button", name="Vacuum").click()
        expect(storage.get_by_test_id("last-vacuum")).to_contain_text("Incremental vacuum")
        storage.get_by_label("Full (rebuild the file)").check()
        storage.get_by_role("button", name="Vacuum").click()
        expect(storage.get_by_test_id("last-vacuum")).to_contain_text("Full vacuum")
    else:  # no file of orvad's: the server's figures, no vacuum control (its API answers SQLITE_ONLY)
        expect(storage.get_by_test_id("storage")).to_contain_text("PostgreSQL")
        expect(storage.get_by_test_id("vacuum-postgresql")).to_contain_text("autovacuum")
        expect(storage.get_by_role("button", name="Vacuum")).to_have_count(0)
        expect(storage).not_to_contain_text("undefined")
    shot(page, "operate-02-storage")

    # Settings → Sessions: two, this browser marked; log the other out, then everywhere
    sessions = page.get_by_role("region", name="Sessions")
    rows = sessions.get_by_role("table", name="Sessions").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(sessions.get_by_test_id("current-session")).to_have_count(1)
    curl_row = rows.filter(has_text="curl")
    expect(curl_row).to_contain_text("127.0.0.1")
    shot(page, "operate-03-sessions")
    curl_row.get_by_role("button", name="Log out").click()
    page.get_by_role("dialog").get_by_role("button", name="Log out").click()
    expect(sessions.get_by_text("Logged out curl.")).to_be_visible()
    expect(rows).to_have_count(1)
    with server.session_client(other) as c:
        assert c.get("/api/v1/auth/me").status_code == 401
    sessions.get_by_role("button", name="Log out everywhere").click()
    page.get_by_role("dialog").get_by_role("button", name="Log out everywhere").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    with server.session_client(session) as c:
        assert c.get("/api/v1/auth/me").status_code == 401
