"""The consent step in a real browser (Debian's Chromium) against a real orvad with ORVA_PUBLIC_URL: a
connector's authorize link opened without a session goes to the dashboard's login, comes back to the
consent page after logging in, and Approve lands on the client's redirect URI with a code that the
token endpoint exchanges. No function is deployed: the `browser` marker (from the fixtures) keeps it out
of `make test-fast`, as every dashboard test."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, Route, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page  # noqa: F401 (fixtures)
from tests.helpers import Orvad
from tests.oauth.test_oauth import REDIRECT, _authorize, _mcp_status, _pkce, _register, _token


def test_consent_in_the_browser_goes_through_login_and_back(make_orvad: Any, page: Page) -> None:  # noqa: F811
    server: Orvad = make_orvad(start=False)
    server.env["ORVA_PUBLIC_URL"] = server.url
    server.start()
    with server.client() as c:
        assert server.onboard(c, "admin", PASSWORD).status_code == 201
    client = _register(server, client_name="Browser Connector")
    verifier, challenge = _pkce()
    consent = _authorize(server, client["client_id"], challenge, scope="read invoke admin").headers[
        "location"
    ]

    landed: dict[str, str] = {}

    def at_client(route: Route) -> None:
        landed["url"] = route.request.url
        route.fulfill(status=200, content_type="text/plain", body="back at the client")

    page.route("https://client.example/**", at_client)
    page.goto(consent)
    expect(page.get_by_label("Username")).to_be_visible()  # no session: the dashboard's login
    assert "#/login?next=" in page.url
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Connect Browser Connector?")).to_be_visible()
    assert page.url == consent
    expect(page.get_by_text("client.example").first).to_be_visible()
    read, invoke = page.get_by_role("checkbox", name="read"), page.get_by_role("checkbox", name="invoke")
    expect(read).to_be_checked()
    expect(invoke).to_be_checked()
    expect(page.get_by_role("checkbox", name="admin")).not_to_be_checked()  # never ticked for the user
    invoke.uncheck()
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url("https://client.example/**")
    query = parse_qs(urlsplit(landed["url"]).query)
    assert landed["url"].startswith(REDIRECT) and query["state"] == ["st-1"] and query["iss"] == [server.url]
    tokens = _token(server, client["client_id"], code=query["code"][0], code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "read"
    assert _mcp_status(server, tokens.json()["access_token"]) == 200
