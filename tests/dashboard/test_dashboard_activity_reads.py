"""The Activity view with reads as rows (issue 24) in a real browser against a real orvad: the page's own reads
are listed (its list, its event stream opening, live), a live row is shown without reading again (no row
feeds another: the session's rows stay the same while writes arrive live), and "Hide reads" leaves the reads
out of the list and of the live rows, kept in the address. Nothing is deployed (marker `browser`)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.helpers import Orvad, wait_for


def _marker(server: Orvad) -> None:
    """A keyed write, waited for in the feed: the batched writer is FIFO, so every row queued before it is in."""
    with server.admin() as admin:
        name = f"marker-{uuid.uuid4().hex[:8]}"
        assert admin.delete(f"/api/v1/functions/{name}").status_code == 404
        wait_for(
            lambda: bool(admin.get("/api/v1/activity", params={"q": name}).json()["activity"]),
            10,
            "the marker",
        )


def _rows_of(server: Orvad, actor_id: str) -> list[dict[str, Any]]:
    with server.admin() as admin:
        r = admin.get("/api/v1/activity", params={"actor_id": actor_id, "limit": 500})
    assert r.status_code == 200, r.text
    return r.json()["activity"]  # type: ignore[no-any-return]


def test_activity_lists_its_own_reads_without_feeding_itself_and_hides_reads(  # noqa: F811
    make_orvad: Any,
    page: Page,  # noqa: F811
) -> None:
    server: Orvad = make_orvad()
    with server.client() as c:
        onboarded = server.onboard(c, "admin", PASSWORD)
        session = onboarded.cookies["session_token"]
    with server.session_client(session) as s:
        user_id = s.get("/api/v1/auth/me").json()["user"]["id"]
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])

    # the overview's reads (the login check, the metrics, its event stream) are rows of this session
    page.goto(f"{server.url}/web/#/")
    expect(page.get_by_role("link", name="Activity")).to_be_visible()
    wait_for(
        lambda: (
            {"/api/v1/auth/me", "/api/v1/system/metrics.json", "/api/v1/events"}
            <= {r["path"] for r in _rows_of(server, user_id)}
        ),
        10,
        "the overview's reads",
    )
    page.get_by_role("link", name="Activity").click()
    table = page.get_by_role("table", name="Activity")
    expect(page.get_by_test_id("live")).to_have_text("● live")
    for read in ("GET /api/v1/auth/me", "GET /api/v1/system/metrics.json", "GET /api/v1/events"):
        row = table.locator("tbody tr").filter(has=page.get_by_text(read, exact=True)).first
        expect(row).to_contain_text("admin")  # the session's user
        expect(row).to_contain_text("200")

    # showing a live row is not a read: the session's rows stay as they are while five writes arrive live
    _marker(server)
    before = [r["id"] for r in _rows_of(server, user_id)]
    assert before, "the page's reads are rows"
    with server.admin() as admin:
        for i in range(5):
            assert admin.delete(f"/api/v1/functions/live-{i}").status_code == 404
    for i in range(5):
        expect(table.get_by_text(f"DELETE /api/v1/functions/live-{i}", exact=True)).to_be_visible()
    _marker(server)
    assert [r["id"] for r in _rows_of(server, user_id)] == before
    shot(page, "activity-reads-01-shown")

    # Hide reads: the list is read again without them, live reads are left out, live writes still come
    page.get_by_label("Hide reads").check()
    expect(page).to_have_url(re.compile(r"hide_reads=1"))
    expect(table.locator("tbody tr").first).to_contain_text("DELETE /api/v1/functions/marker-")
    expect(table.locator("tbody tr").filter(has_text=re.compile(r"\bGET /"))).to_have_count(0)
    with server.admin() as admin:
        assert admin.get("/api/v1/functions").status_code == 200  # a read: not shown
        assert admin.delete("/api/v1/functions/after-hiding").status_code == 404  # a write: shown
    expect(table.get_by_text("DELETE /api/v1/functions/after-hiding", exact=True)).to_be_visible()
    expect(table.locator("tbody tr").filter(has_text=re.compile(r"\bGET /"))).to_have_count(0)
    expect(table.locator("tbody tr").filter(has_text="POST /api/v1/auth/onboard")).to_have_count(1)
    shot(page, "activity-reads-02-hidden")

    # and back: the reads are listed again, the admin key's read among them
    page.get_by_label("Hide reads").uncheck()
    expect(page).not_to_have_url(re.compile(r"hide_reads"))
    expect(table.get_by_text("GET /api/v1/functions", exact=True).first).to_be_visible()
