"""The Cluster page (issue 25, the node registry) in a real browser against a real orvad: reached from the
navigation, this node alive and marked, rows of other nodes that left or went silent, a node that stops
heartbeating turning gone on the page without a reload (it reads the list again by itself), and the status
filter."""

from __future__ import annotations

import time

from playwright.sync_api import Page, expect

from tests.cluster.test_nodes import FAST, _fake_node
from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.helpers import Orvad


def test_cluster_page(make_orvad, page: Page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad(env=FAST)
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    _fake_node(server, "node-left", time.time() - 60, left=True)
    _fake_node(server, "node-silent", time.time() - 3600)
    _fake_node(server, "node-fading", time.time() + 8.0)  # alive for 8 s and the slack, then gone
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])
    page.goto(f"{server.url}/web/#/")
    page.get_by_role("link", name="Cluster", exact=True).click()
    expect(page.get_by_role("heading", name="Cluster", exact=True)).to_be_visible()

    table = page.get_by_role("table", name="Nodes")
    expect(table.get_by_role("row")).to_have_count(5)  # a header and four nodes
    me = table.get_by_role("row").filter(has_text="(this node)")
    expect(me).to_have_count(1)
    expect(me.locator("[data-status]")).to_have_text("alive")
    expect(me).to_contain_text(f"http://127.0.0.1:{server.port}")
    expect(table.get_by_role("row").filter(has_text="node-left").locator("[data-status]")).to_have_text(
        "left"
    )
    silent = table.get_by_role("row").filter(has_text="node-silent")
    expect(silent.locator("[data-status]")).to_have_text("gone")
    expect(silent).to_contain_text("1 in 1 function")  # its warm workers, from its last heartbeat
    fading = table.get_by_role("row").filter(has_text="node-fading").locator("[data-status]")
    expect(fading).to_have_text("alive")
    shot(page, "cluster-01-nodes")
    # no reload: the page reads the list again and the silent node turns gone
    expect(fading).to_have_text("gone", timeout=40_000)
    expect(page.get_by_test_id("cluster-counts")).to_contain_text("gone 2")

    page.get_by_label("Status").select_option("gone")
    expect(table.get_by_role("row")).to_have_count(3)
    expect(table).to_contain_text("node-silent")
    expect(table).not_to_contain_text("(this node)")
    page.get_by_label("Status").select_option("left")
    expect(table.get_by_role("row")).to_have_count(2)
    shot(page, "cluster-02-left")
