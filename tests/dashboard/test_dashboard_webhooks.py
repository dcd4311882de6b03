"""The Webhooks page (issue 24, outbound webhooks) in a real browser against a real orvad and a 127.0.0.1
receiver: a webhook added from the page shows its signing secret once, its test ping reaches the receiver
signed, and the webhook's deliveries list it as delivered; a URL orvad refuses is shown with its reason."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.helpers import Orvad
from tests.webhooks.receiver import Receiver


def test_outbound_webhooks_page(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    receiver = Receiver().start()
    try:
        page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])
        page.goto(f"{server.url}/web/#/webhooks")
        expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()

        page.get_by_role("button", name="New webhook").click()
        form = page.get_by_role("form", name="Add an outbound webhook")
        form.get_by_label("Receiver URL").fill("ftp://127.0.0.1/x")
        form.get_by_role("button", name="Create webhook").click()
        expect(page.get_by_role("region", name="New webhook").get_by_role("alert")).to_contain_text("http")

        form.get_by_label("Receiver URL").fill(receiver.url)
        form.get_by_role("button", name="Create webhook").click()
        secret = page.get_by_test_id("outbound-secret")
        expect(secret).to_contain_text("whsec_")
        shown = secret.inner_text()
        shot(page, "webhooks-01-secret-once")
        page.get_by_role("button", name="I have stored it").click()
        expect(page.get_by_test_id("outbound-secret")).to_have_count(0)
        assert shown not in page.content()  # shown once, then never again

        table = page.get_by_role("table", name="Outbound webhooks")
        expect(table).to_contain_text(receiver.url)
        table.get_by_role("button", name="Send test").click()
        [ping] = receiver.wait("ping")
        assert ping.headers["webhook-signature"].startswith("v1,")

        table.get_by_text(receiver.url, exact=True).click()
        deliveries = page.get_by_role("region", name="Deliveries")
        # a pending delivery is followed (reloaded each second) until it settles
        expect(deliveries.get_by_role("table", name="Webhook deliveries")).to_contain_text(
            "delivered", timeout=30_000
        )
        expect(deliveries).to_contain_text("ping")
        shot(page, "webhooks-02-deliveries")
    finally:
        receiver.stop()
