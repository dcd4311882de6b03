"""The Jobs view (issue 23) in a real browser (Debian's Chromium) against a real orvad with real workers: the
list filtered by status, the dead-letter list, a job's attempts linking to their executions, Retry and Cancel."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.sandbox]

FAILING = """
def handler(event, context):
    return {"statusCode": 503, "body": "not now"}
"""


def test_jobs_view(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad(env={"ORVA_JOBS_BACKOFF_BASE_S": "0.05", "ORVA_JOBS_BACKOFF_MAX_S": "0.1"})
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    with server.admin() as admin:
        create_function(admin, "flaky", entrypoint="handler.py")
        assert wait_deployed(admin, deploy_inline(admin, "flaky", FAILING)["id"])["status"] == "succeeded"
        dead = admin.post(
            "/api/v1/jobs", json={"function": "flaky", "payload": {"n": 1}, "max_attempts": 2}
        ).json()
        later = admin.post(
            "/api/v1/jobs",
            json={"function": "flaky", "payload": {"n": 2}, "scheduled_at": "2035-01-01T00:00:00Z"},
        ).json()
        wait_for(
            lambda: admin.get(f"/api/v1/jobs/{dead['id']}").json()["status"] == "dead", 60, "the job to die"
        )
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])

    page.goto(f"{server.url}/web/#/jobs")
    table = page.get_by_role("table", name="Jobs")
    expect(table.get_by_role("row")).to_have_count(3)  # a header and two jobs
    shot(page, "jobs-01-list")
    # the dead-letter list
    page.get_by_test_id("dead-letters").click()
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    expect(table.get_by_role("row")).to_have_count(2)
    # a status filter
    page.get_by_label("Status").select_option("pending")
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table.get_by_text(later["id"][:16])).to_be_visible()

    # the dead job: its attempts link to their executions; Retry puts it back (it dies again)
    page.goto(f"{server.url}/web/#/jobs/{dead['id']}")
    attempts = page.get_by_role("table", name="Attempts")
    expect(attempts.get_by_role("row")).to_have_count(3)
    expect(page.get_by_test_id("last-error")).to_contain_text("HANDLER_5XX")
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    shot(page, "jobs-02-dead")
    page.get_by_role("button", name="Retry").click()
    with server.admin() as admin:
        wait_for(
            lambda: admin.get(f"/api/v1/jobs/{dead['id']}").json()["tries"] == 4, 60, "the retried attempts"
        )
    page.reload()
    expect(attempts.get_by_role("row")).to_have_count(5)
    link = attempts.get_by_role("link").first
    href = link.get_attribute("href") or ""
    assert href.startswith("#/invocations/"), href
    link.click()
    page.wait_for_url(f"**/web/{href}")

    # cancel the pending one (a confirmation first)
    page.goto(f"{server.url}/web/#/jobs/{later['id']}")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Retry")).to_be_enabled()
