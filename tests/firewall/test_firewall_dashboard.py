"""The Firewall view and the function settings' egress allow list in a real browser against a real orvad:
rules listed, added (a refused target shown in words), deleted; the resolve box; the DNS servers. Only
addresses are used, so nothing is looked up in DNS; no worker starts."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function
from tests.helpers import Orvad


def test_firewall_view_and_the_egress_allow_list(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    with server.admin() as admin:
        admin.post("/api/v1/firewall/rules", json={"target": "198.18.0.0/15", "description": "benchmarks"})
        fn = create_function(admin, "fw-web", network_mode="egress")
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])

    page.goto(f"{server.url}/web/#/")
    page.get_by_role("link", name="Firewall").click()
    expect(page.get_by_role("heading", name="Firewall", exact=True)).to_be_visible()
    table = page.get_by_role("table", name="Deny rules")
    expect(table).to_contain_text("198.18.0.0/15")
    expect(table).to_contain_text("benchmarks")

    # add: a refused target is shown in words, a good one appears with its ports
    form = page.get_by_role("form", name="Add a rule")
    form.get_by_label("Deny").fill("1.2.3.4; flush ruleset")
    form.get_by_role("button", name="Add rule").click()
    expect(form).to_contain_text("not an IPv4/IPv6 address")
    form.get_by_label("Deny").fill("203.0.113.0/24")
    form.get_by_label("Ports").fill("25, 587")
    form.get_by_label("Description").fill("no mail")
    form.get_by_role("button", name="Add rule").click()
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text("25, 587")
    with server.admin() as admin:
        targets = [r["target"] for r in admin.get("/api/v1/firewall/rules").json()["rules"]]
    assert targets == ["198.18.0.0/15", "203.0.113.0/24"]

    # resolve: an address and the rules that match it
    box = page.get_by_role("search", name="Resolve")
    box.get_by_label("Name or address").fill("198.18.3.4")
    box.get_by_role("button", name="Resolve").click()
    expect(page.get_by_test_id("resolve-answer")).to_contain_text("Blocked by: 198.18.0.0/15")
    box.get_by_label("Name or address").fill("203.0.113.9")
    box.get_by_role("button", name="Resolve").click()
    expect(page.get_by_test_id("resolve-answer")).to_contain_text(
        "Matched on some ports by: 203.0.113.0/24 (ports 25, 587)"
    )

    # DNS servers
    dns = page.get_by_role("form", name="DNS servers")
    expect(dns.get_by_test_id("dns-source")).to_contain_text("this host's resolv.conf")
    dns.get_by_label("DNS servers").fill("198.18.9.53")
    dns.get_by_role("button", name="Save DNS servers").click()
    expect(dns.get_by_test_id("dns-source")).to_contain_text("resolve names with 198.18.9.53")
    shot(page, "firewall-01-view")

    # delete (asks first)
    table.locator("tbody tr").filter(has_text="203.0.113.0/24").get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(table.locator("tbody tr")).to_have_count(1)

    # the function's settings: the egress allow list
    page.goto(f"{server.url}/web/#/functions/{fn['id']}?tab=settings")
    field = page.get_by_label("Egress allow list")
    field.fill("203.0.113.10\n*.example.com")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_text("egress_allow may not hold a wildcard")).to_be_visible()
    field.fill("203.0.113.10\n2001:db8::/48")
    page.get_by_role("button", name="Save settings").click()
    expect(field).to_have_value("203.0.113.10/32\n2001:db8::/48")
    with server.admin() as admin:
        assert admin.get(f"/api/v1/functions/{fn['id']}").json()["egress_allow"] == [
            "203.0.113.10/32",
            "2001:db8::/48",
        ]
    shot(page, "firewall-02-allow-list")
