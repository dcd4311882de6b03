"""The trace waterfall (web/src/views/traces.jsx) in a real browser against a real orvad with a real worker:
a handler's SDK calls show as their own rows (kind sdk) under the execution, and the panel of one says
"SDK call kv.get" with its attributes (key count and bytes, never the key's text)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.sandbox]

HANDLER = """
from orva import kv

def handler(event, context):
    kv.put("user:carol", 1)
    kv.get("user:carol")
    return {"trace": context.trace_id}
"""


def test_waterfall_shows_sdk_call_spans(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    with server.admin() as admin:
        create_function(admin, "spanned", entrypoint="handler.py")
        assert wait_deployed(admin, deploy_inline(admin, "spanned", HANDLER)["id"])["status"] == "succeeded"
        trace_id = admin.post("/fn/spanned", content="{}").json()["trace"]
        wait_for(
            lambda: admin.get(f"/api/v1/traces/{trace_id}").json().get("span_count") == 3,
            10,
            "the execution and its two SDK call spans",
        )
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])
    page.goto(f"{server.url}/web/#/traces/{trace_id}")
    waterfall = page.get_by_test_id("waterfall")
    calls = waterfall.locator('[data-kind="sdk"]')
    expect(calls).to_have_count(2)
    expect(calls.nth(0)).to_contain_text("kv.put")
    expect(calls.nth(1)).to_contain_text("kv.get")
    expect(waterfall.locator('[data-kind="execution"]')).to_contain_text("spanned")
    shot(page, "traces-01-sdk-spans")
    calls.nth(1).click()
    facts = page.get_by_test_id("span-facts")
    expect(facts.get_by_role("heading")).to_have_text("SDK call kv.get")
    expect(facts).to_contain_text("orva.kv.key_bytes")
    expect(facts).to_contain_text(str(len("user:carol")))
    expect(facts).not_to_contain_text("carol")
