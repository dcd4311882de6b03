"""The function page's Webhooks tab (issue 24) in a real browser against a real orvad: create an inbound
webhook (its secret shown once, with copy buttons, and gone once dismissed), the list with its URL, disable
and enable, rotate (a new secret shown once), delete. Nothing is deployed: the `browser` marker (from the
fixtures) keeps it out of `make test-fast`."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function
from tests.helpers import Orvad


def test_webhooks_tab(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    with server.admin() as admin:
        fn = create_function(admin, "receiver")
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])

    page.goto(f"{server.url}/web/#/functions/{fn['id']}")
    page.get_by_role("tab", name="Webhooks").click()
    expect(page.get_by_text("No inbound webhooks yet.")).to_be_visible()
    page.get_by_role("button", name="New webhook").click()
    form = page.get_by_role("region", name="New webhook")
    form.get_by_label("Name").fill("gh")
    form.get_by_label("Sender").select_option("hmac_sha256_hex")
    form.get_by_label("Signature header").fill("X-Sig")
    form.get_by_label("Prefix").fill("sha256=")
    form.get_by_role("button", name="Create webhook").click()

    once = page.get_by_role("region", name="Webhook secret")
    secret = once.get_by_test_id("webhook-secret").inner_text()
    assert secret.startswith("whsec_")
    expect(once.get_by_role("button", name="Copy")).to_have_count(2)  # the URL and the secret
    expect(once).to_contain_text("X-Sig")
    table = page.get_by_role("table", name="Inbound webhooks")
    expect(table.get_by_role("row")).to_have_count(2)
    expect(table).to_contain_text("/webhook/iwh_")
    expect(table).to_contain_text("hmac_sha256_hex")
    shot(page, "webhooks-01-created")
    once.get_by_role("button", name="I have stored it").click()
    expect(page.get_by_role("region", name="Webhook secret")).to_have_count(0)
    assert secret not in page.content()  # gone from the page once dismissed
    with server.admin() as admin:
        hooks = admin.get(f"/api/v1/functions/{fn['id']}/inbound-webhooks").json()["webhooks"]
        assert [h["header"] for h in hooks] == ["X-Sig"] and hooks[0]["prefix"] == "sha256="

        # disable, enable
        table.get_by_role("button", name="Disable").click()
        expect(table.get_by_role("button", name="Enable")).to_be_visible()
        assert (
            admin.get(f"/api/v1/functions/{fn['id']}/inbound-webhooks").json()["webhooks"][0]["enabled"]
            is False
        )
        table.get_by_role("button", name="Enable").click()
        expect(table.get_by_role("button", name="Disable")).to_be_visible()

        # rotate: a new secret, shown once
        table.get_by_role("button", name="Rotate secret").click()
        page.get_by_role("dialog").get_by_role("button", name="Rotate secret").click()
        rotated = page.get_by_role("region", name="Webhook secret").get_by_test_id("webhook-secret")
        expect(rotated).to_be_visible()
        assert rotated.inner_text() not in (secret, "")
        shot(page, "webhooks-02-rotated")

        # delete
        table.get_by_role("button", name="Delete").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        expect(page.get_by_text("No inbound webhooks yet.")).to_be_visible()
        assert admin.get(f"/api/v1/functions/{fn['id']}/inbound-webhooks").json()["webhooks"] == []
