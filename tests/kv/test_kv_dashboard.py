"""The function page's KV tab (issue 23) in a real browser (Debian's Chromium) against a real orvad: browse by
prefix a page at a time, open a key (value, version, expiry), edit it (the expiry kept, a concurrent write
refused with KV_VERSION_CONFLICT), add one, refuse bad JSON on the page, delete one. Nothing is deployed: the
`browser` marker (from the fixtures) keeps it out of `make test-fast`."""

from __future__ import annotations

import base64

from playwright.sync_api import Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.deploy_helpers import create_function
from tests.helpers import Orvad


def test_kv_tab(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    with server.admin() as admin:
        fn = create_function(admin, "stateful")
        for i in range(60):
            admin.put(f"/api/v1/functions/stateful/kv/item%2F{i:02d}", json={"value": i}).raise_for_status()
        admin.put("/api/v1/functions/stateful/kv/config", json={"value": {"mode": "fast"}, "ttl_s": 3600})
        admin.put(
            "/api/v1/functions/stateful/kv/blob",
            json={"value": {"$bytes": base64.b64encode(b"\x00\x01").decode()}},
        )
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])

    page.goto(f"{server.url}/web/#/functions/{fn['id']}")
    page.get_by_role("tab", name="KV").click()
    table = page.get_by_role("table", name="Keys")
    expect(table.get_by_role("row")).to_have_count(51)  # a header and the first page of 50
    expect(page.get_by_text("62 of 100000 keys")).to_be_visible()
    page.get_by_role("button", name="Load more").click()
    expect(table.get_by_role("row")).to_have_count(63)
    expect(page.get_by_role("button", name="Load more")).to_have_count(0)
    shot(page, "kv-01-keys")

    # by prefix
    page.get_by_label("Prefix").fill("item/5")
    page.get_by_role("button", name="Show keys").click()
    expect(table.get_by_role("row")).to_have_count(11)
    expect(table.get_by_text("item/59")).to_be_visible()
    page.get_by_label("Prefix").fill("")
    page.get_by_role("button", name="Show keys").click()
    expect(table.get_by_role("row")).to_have_count(51)

    # open a key: value, version, expiry; edit it, the expiry kept
    table.get_by_text("config", exact=True).click()
    editor = page.get_by_role("region", name="Key config")
    expect(editor.get_by_label("Value (JSON)")).to_have_value('{\n  "mode": "fast"\n}')
    expect(editor.get_by_test_id("kv-meta")).to_contain_text("expires in 60 min")
    editor.get_by_label("Value (JSON)").fill('{"mode": "slow"}')
    editor.get_by_role("button", name="Save").click()
    expect(editor.get_by_test_id("kv-meta")).to_contain_text("version")
    with server.admin() as admin:

        def stored() -> dict:  # type: ignore[type-arg]
            return admin.get("/api/v1/functions/stateful/kv/config").json()  # type: ignore[no-any-return]

        expect(editor.get_by_label("Value (JSON)")).to_have_value('{\n  "mode": "slow"\n}')
        assert stored()["value"] == {"mode": "slow"} and stored()["expires_at"] is not None
        # a write from elsewhere meanwhile: Save is refused, the other write stays
        admin.put("/api/v1/functions/stateful/kv/config", json={"value": "from a handler"}).raise_for_status()
        editor.get_by_label("Value (JSON)").fill('"from the page"')
        editor.get_by_role("button", name="Save").click()
        expect(editor.get_by_role("alert")).to_contain_text("KV_VERSION_CONFLICT")
        assert stored()["value"] == "from a handler"
        shot(page, "kv-02-conflict")
        # bad JSON is caught on the page
        editor.get_by_role("button", name="Close").click()
        page.get_by_role("button", name="New key").click()
        new = page.get_by_role("region", name="New key")
        new.get_by_label("Key", exact=True).fill("fresh")
        new.get_by_label("Value (JSON)").fill("not json")
        new.get_by_role("button", name="Add key").click()
        expect(new.get_by_role("alert")).to_contain_text("not JSON")
        new.get_by_label("Value (JSON)").fill('{"n": 1}')
        new.get_by_label("TTL (seconds)").fill("120")
        new.get_by_role("button", name="Add key").click()
        added = page.get_by_role("region", name="Key fresh")
        expect(added.get_by_test_id("kv-meta")).to_contain_text("expires in 120 s")
        fresh = admin.get("/api/v1/functions/stateful/kv/fresh").json()
        assert fresh["value"] == {"n": 1} and fresh["expires_at"] is not None
        # bytes are shown as base64
        table.get_by_text("blob", exact=True).click()
        expect(page.get_by_role("region", name="Key blob").get_by_label("Value (base64)")).to_have_value(
            "AAE="
        )
        # delete
        page.get_by_role("region", name="Key blob").get_by_role("button", name="Delete key").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete key").click()
        expect(table.get_by_text("blob", exact=True)).to_have_count(0)
        assert admin.get("/api/v1/functions/stateful/kv/blob").status_code == 404
