"""The dashboard's New function dialog offers the templates (grouped by runtime, each with its description)
and creates a function from one: its settings, the secret typed in the dialog, its code deployed. A real
browser against a real orvad; the created webhook receiver then accepts a signed request and refuses an
unsigned one."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # the created function is built and invoked


def test_new_function_from_a_template(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])
    page.goto(f"{server.url}/web/#/functions")
    page.get_by_role("button", name="New function").click()
    dialog = page.get_by_role("dialog")
    start = dialog.get_by_label("Start from")
    groups = start.locator("optgroup").evaluate_all("gs => gs.map(g => g.label)")
    assert groups == ["Python templates", "Node templates"]
    node_titles = start.locator("optgroup[label='Node templates'] option").all_inner_texts()
    assert "URL shortener (Node)" in node_titles and "Hello, world (Node)" in node_titles

    # a Node template: only Node runtimes are offered, the description is shown
    start.select_option(label="URL shortener (Node)")
    expect(dialog.get_by_text("GET /CODE redirects with 302")).to_be_visible()
    runtimes = dialog.get_by_label("Runtime").locator("option").evaluate_all("os => os.map(o => o.value)")
    assert runtimes and all(r.startswith("node") for r in runtimes), runtimes

    # the GitHub receiver: its secret is asked for, the name defaults to the template's
    start.select_option(label="GitHub webhook receiver (Python)")
    expect(dialog.get_by_text("Checks X-Hub-Signature-256")).to_be_visible()
    dialog.get_by_label("Name").fill("hooks")
    secret = dialog.get_by_label("Secret GITHUB_WEBHOOK_SECRET (required)")
    expect(secret).to_have_attribute("type", "password")
    secret.fill("dash-secret")
    shot(page, "templates-01-new-function")
    dialog.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="hooks")).to_be_visible()

    with server.admin() as api:
        wait_for(
            lambda: api.get("/api/v1/functions/hooks").json()["status"] == "active", 120, "hooks to build"
        )
        fn = api.get("/api/v1/functions/hooks").json()
        assert fn["runtime"].startswith("python")
        assert [s["key"] for s in api.get("/api/v1/functions/hooks/secrets").json()["secrets"]] == [
            "GITHUB_WEBHOOK_SECRET"
        ]
    body = json.dumps({"zen": "Design for failure."}).encode()
    signature = "sha256=" + hmac.new(b"dash-secret", body, hashlib.sha256).hexdigest()
    with server.client() as c:
        ok = c.post(
            "/fn/hooks", content=body, headers={"x-github-event": "ping", "x-hub-signature-256": signature}
        )
        assert ok.status_code == 200 and ok.json() == {
            "ok": True,
            "event": "ping",
            "zen": "Design for failure.",
        }
        assert c.post("/fn/hooks", content=body, headers={"x-github-event": "ping"}).status_code == 401
