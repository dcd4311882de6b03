"""The function page's Cron tab and the Schedules page (issue 23) in a real browser (Debian's Chromium) against a
real orvad with a test clock: add a schedule (a 6-field expression and an unknown timezone refused on the
page, the field marked), its next run in UTC and in its timezone (New York's spring-forward night), disable
and enable, run now (the job's status linked), every function's schedules with a filter, delete. Nothing is
deployed: the `browser` marker (from the fixtures) keeps it out of `make test-fast`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.cron.conftest import clocked_orvad
from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function
from tests.helpers import wait_for


def test_cron_tab_and_schedules_page(fresh_base: Path, page: Page) -> None:  # noqa: F811
    server, clock = clocked_orvad(fresh_base)
    clock.set(datetime(2026, 3, 8, 6, 0, tzinfo=UTC))
    server.start()
    try:
        with server.client() as c:
            session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
        with server.admin() as admin:
            fn = create_function(admin, "reports")
            other = create_function(admin, "poller")
            admin.post(
                "/api/v1/functions/poller/cron",
                json={"name": "feed", "expression": "*/5 * * * *", "enabled": False},
            ).raise_for_status()
        page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])

        page.goto(f"{server.url}/web/#/functions/{fn['id']}")
        page.get_by_role("tab", name="Cron").click()
        expect(page.get_by_text("No schedules yet.")).to_be_visible()
        page.get_by_role("button", name="New schedule").click()
        new = page.get_by_role("region", name="New schedule")
        new.get_by_label("Name").fill("nightly")
        new.get_by_label("Expression").fill("30 2 * * * *")
        new.get_by_label("Timezone").fill("America/New_York")
        new.get_by_label("Payload (JSON)").fill('{"report": "daily"}')
        new.get_by_role("button", name="Add schedule").click()
        expect(new.get_by_role("alert")).to_contain_text("6 fields")
        expect(new.get_by_label("Expression")).to_have_attribute("aria-invalid", "true")
        shot(page, "cron-01-refused")
        new.get_by_label("Expression").fill("30 2 * * *")
        new.get_by_label("Payload (JSON)").fill("{not json")
        new.get_by_role("button", name="Add schedule").click()
        expect(new.get_by_role("alert")).to_contain_text("not JSON")
        new.get_by_label("Payload (JSON)").fill('{"report": "daily"}')
        new.get_by_role("button", name="Add schedule").click()
        editor = page.get_by_role("region", name="Schedule nightly")
        # 02:30 does not exist in New York that night: 03:30 EDT, 07:30 UTC
        expect(editor.get_by_test_id("cron-meta")).to_contain_text("2026-03-08 07:30 UTC")
        expect(editor.get_by_test_id("cron-meta")).to_contain_text("03:30 America/New_York")
        table = page.get_by_role("table", name="Schedules")
        expect(table.get_by_role("row")).to_have_count(2)
        row = table.get_by_role("row").nth(1)
        expect(row).to_contain_text("never run")
        shot(page, "cron-02-added")
        # an unknown timezone is refused, the field marked
        editor.get_by_label("Timezone").fill("Mars/Olympus")
        editor.get_by_role("button", name="Save").click()
        expect(editor.get_by_role("alert")).to_contain_text("unknown timezone")
        expect(editor.get_by_label("Timezone")).to_have_attribute("aria-invalid", "true")
        editor.get_by_label("Timezone").fill("America/New_York")
        editor.get_by_role("button", name="Close").click()
        # disable and enable from the row
        row.get_by_role("button", name="Disable").click()
        expect(row).to_contain_text("disabled")
        with server.admin() as admin:
            assert admin.get("/api/v1/functions/reports/cron/nightly").json()["enabled"] is False
        row.get_by_role("button", name="Enable").click()
        expect(row).to_contain_text("2026-03-08 07:30 UTC")
        # run now: a job, its status linked from the row
        row.get_by_role("button", name="Run now").click()
        expect(row.locator("[data-status]")).to_have_count(1)
        with server.admin() as admin:
            job_id = admin.get("/api/v1/functions/reports/cron/nightly").json()["last_job_id"]
            assert admin.get(f"/api/v1/jobs/{job_id}").json()["trigger"] == "cron"
        expect(row.get_by_role("link")).to_have_attribute("href", f"#/jobs/{job_id}")
        # the tick itself: the clock moves to 07:30 UTC, the list shows the next night's run after a reload
        clock.set(datetime(2026, 3, 8, 7, 30, tzinfo=UTC))
        with server.admin() as admin:
            wait_for(
                lambda: (
                    admin.get("/api/v1/functions/reports/cron/nightly").json()["next_run_at"]
                    == "2026-03-09T06:30:00.000Z"
                ),
                30,
                "the tick to run",
            )
        page.reload()
        expect(page.get_by_role("table", name="Schedules").get_by_role("row").nth(1)).to_contain_text(
            "2026-03-09 06:30 UTC"
        )
        shot(page, "cron-03-ran")

        # every function's schedules, filtered
        page.get_by_role("link", name="Schedules", exact=True).click()
        everything = page.get_by_role("table", name="All schedules")
        expect(everything.get_by_role("row")).to_have_count(3)
        expect(everything).to_contain_text("poller")
        expect(everything).to_contain_text("reports")
        page.get_by_label("Show").select_option("false")
        expect(everything.get_by_role("row")).to_have_count(2)
        expect(everything).to_contain_text("feed")
        shot(page, "cron-04-schedules")
        everything.get_by_role("link", name="poller").click()
        expect(page.get_by_role("table", name="Schedules")).to_contain_text("feed")
        assert f"/functions/{other['id']}" in page.url

        # delete
        page.get_by_role("table", name="Schedules").get_by_text("feed").click()
        page.get_by_role("region", name="Schedule feed").get_by_role("button", name="Delete schedule").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete schedule").click()
        expect(page.get_by_text("No schedules yet.")).to_be_visible()
        with server.admin() as admin:
            assert admin.get("/api/v1/functions/poller/cron").json()["schedules"] == []
    finally:
        server.stop()
