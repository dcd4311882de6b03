"""The overview's spare jails figure (issue 26): how many wait, and how many cold starts they served."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for


def test_the_overview_shows_spare_jails(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    with server.admin() as c:
        for name in ("first", "second"):  # the first starts the usual way, the second takes Python's spare
            if name == "second":
                wait_for(
                    lambda: c.get("/api/v1/system/metrics.json").json()["spare_jails"]["waiting"] == 1,
                    30,
                    "a spare jail to be waiting",
                )
            fn = create_function(c, name)
            assert (
                wait_deployed(c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return {}\n")["id"])[
                    "status"
                ]
                == "succeeded"
            )
            assert c.get(f"/fn/{fn['id']}").status_code == 200
        wait_for(
            lambda: (
                c.get("/api/v1/system/metrics.json").json()["spare_jails"]
                == {
                    "enabled": True,
                    "waiting": 1,
                    "used": {"python": 1},
                }
            ),
            30,
            "the next spare to be waiting",
        )
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])
    page.goto(f"{server.url}/web/#/")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    stat = page.locator(".stat", has_text="Spare jails waiting / cold starts served")
    expect(stat.locator(".stat-value")).to_have_text("1 / 1")
    shot(page, "overview-spare-jails")
