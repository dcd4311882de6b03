"""The dashboard's looks in a real browser (Debian's Chromium via Playwright) against a real orvad.

A phone (390x844): every page fits the screen (no sideways scrolling), the menu works, screenshots in
test-artifacts/dashboard/mobile-*.png. The dark theme: from prefers-color-scheme and from the toggle,
kept across reloads. The Overview charts start from orvad's last 10 minutes. The Functions list: one
request, search, copy buttons; the create form's name rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.test_dashboard import PASSWORD, browser, shot  # noqa: F401 (fixture)
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

PHONE = {"width": 390, "height": 844}
HANDLER = """def handler(event, context):
    print("hello from the looks test")
    return {"statusCode": 200, "body": {"hello": "world"}}
"""


@contextmanager
def open_page(browser: Browser, server: Orvad, token: str, **context_args: Any) -> Iterator[Page]:  # noqa: F811
    """A logged-in page (the session cookie set); script errors and CSP violations fail the test."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 860}, **context_args})
    context.set_default_timeout(20_000)
    context.add_cookies([{"name": "session_token", "value": token, "url": server.url}])
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda m: (
            m.type == "error"
            and not m.text.startswith("Failed to load resource")
            and problems.append(f"console: {m.text}")
        ),
    )
    try:
        yield page
    finally:
        context.close()
    assert problems == [], problems


def start(make_orvad: Callable[..., Orvad], functions: tuple[str, ...] = ()) -> tuple[Orvad, str]:
    """An onboarded orvad sampling its metrics history every 0.5 s; each named function deployed."""
    server = make_orvad(env={"ORVA_METRICS_SAMPLE_S": "0.5"})
    with server.client() as c:
        token = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    with server.admin() as admin:
        for name in functions:
            create_function(admin, name)
            assert wait_deployed(admin, deploy_inline(admin, name, HANDLER)["id"])["status"] == "succeeded"
    return server, token


def no_sideways_scroll(page: Page, where: str) -> None:
    size = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert size[1] == PHONE["width"], f"{where}: the layout viewport is {size[1]} px wide (zoomed out)"
    assert size[0] <= size[1], f"{where}: the page is {size[0]} px wide on a {size[1]} px screen"


def go(page: Page, link: str, heading: str) -> None:
    """Open the menu of the top bar and follow a link; the menu closes and the page shows."""
    menu = page.get_by_role("button", name="Menu")
    menu.click()
    expect(page.get_by_role("button", name="Close")).to_have_attribute("aria-expanded", "true")
    page.get_by_role("navigation", name="Main").get_by_role("link", name=link, exact=True).click()
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(page.get_by_role("link", name=link, exact=True)).to_be_hidden()


@pytest.mark.timeout(300)
def test_phone_every_page_fits_and_the_menu_works(make_orvad, browser: Browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server, token = start(make_orvad, ("greeter",))
    for _ in range(3):
        assert httpx.post(f"{server.url}/fn/greeter", json={}).status_code == 200
    with server.admin() as admin:
        fn_id = admin.get("/api/v1/functions/greeter").json()["id"]
        execution = admin.get("/api/v1/executions", params={"limit": 1}).json()["executions"][0]["id"]
    with open_page(
        browser, server, token, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    ) as page:
        page.goto(f"{server.url}/web/")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(page.get_by_test_id("chart-rate")).to_be_visible()
        # the top bar: the brand, where you are, and the menu; the links wait in the closed menu
        expect(page.get_by_role("link", name="Functions", exact=True)).to_be_hidden()
        no_sideways_scroll(page, "overview")
        shot(page, "mobile-01-overview")
        page.get_by_role("button", name="Menu").click()
        shot(page, "mobile-02-menu-open")
        page.get_by_role("button", name="Close").click()

        for link, heading, name in (
            ("Functions", "Functions", "functions"),
            ("Invocations", "Invocations", "invocations"),
            ("Routes", "Routes", "routes"),
            ("Channels", "Channels", "channels"),
            ("Assistant", "Assistant", "assistant"),
            ("API keys", "API keys", "keys"),
            ("Settings", "Settings", "settings"),
            ("Overview", "Overview", "overview-again"),
        ):
            go(page, link, heading)
            if name == "functions":
                expect(page.get_by_role("table", name="Functions")).to_contain_text("greeter")
            if name == "invocations":
                expect(page.get_by_role("table", name="Executions").locator("tbody tr")).to_have_count(3)
            if name == "keys":
                expect(page.get_by_role("table", name="API keys")).to_contain_text("bootstrap-admin")
            if name == "settings":
                expect(page.get_by_test_id("version")).not_to_be_empty()
            no_sideways_scroll(page, name)
            shot(page, f"mobile-03-{name}")

        page.goto(f"{server.url}/web/#/invocations/{execution}")
        expect(page.get_by_test_id("execution-logs")).to_contain_text("hello from the looks test")
        no_sideways_scroll(page, "execution")
        shot(page, "mobile-04-execution")

        page.goto(f"{server.url}/web/#/functions/{fn_id}")
        expect(page.get_by_role("heading", name="greeter")).to_be_visible()
        for tab in ("Code", "Test", "Deployments", "Settings", "Secrets", "Routes", "Executions"):
            page.get_by_role("tab", name=tab).click()
            expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
            no_sideways_scroll(page, f"function {tab}")
            shot(page, f"mobile-05-function-{tab.lower()}")

        page.get_by_role("button", name="Menu").click()
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("button", name="Log in")).to_be_visible()
        no_sideways_scroll(page, "login")
        shot(page, "mobile-06-login")


DARK_BG, LIGHT_BG = "rgb(15, 17, 21)", "rgb(246, 247, 249)"
THEME_IS = "t => document.documentElement.dataset.theme === t"
# The strongest contrast between the ink drawn in a chart's left axis strip (its y labels) and the tile.
AXIS_CONTRAST = """testid => {
  const tile = document.querySelector(`[data-testid="${testid}"]`);
  const canvas = tile.querySelector("canvas");
  const lum = ([r, g, b]) => { const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bg = getComputedStyle(tile).backgroundColor.match(/\\d+/g).map(Number);
  const width = Math.round(40 * canvas.width / canvas.clientWidth);
  const px = canvas.getContext("2d").getImageData(0, 0, width, canvas.height).data;
  let best = 1;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] < 200) continue;
    const a = lum([px[i], px[i + 1], px[i + 2]]), b = lum(bg);
    best = Math.max(best, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05));
  }
  return best;
}"""


def body_bg(page: Page) -> str:
    return str(page.evaluate("() => getComputedStyle(document.body).backgroundColor"))


def test_dark_theme_follows_the_system_and_the_toggle_sticks(make_orvad, browser: Browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server, token = start(make_orvad, ("greeter",))
    with open_page(browser, server, token, color_scheme="dark") as page:
        page.goto(f"{server.url}/web/")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        page.wait_for_function(THEME_IS, arg="dark")
        assert body_bg(page) == DARK_BG
        expect(page.get_by_label("Theme")).to_have_value("system")
        # both charts' y labels stand out from the dark tile (uPlot's default black would not)
        expect(page.get_by_test_id("chart-latency").locator("canvas")).to_be_visible()
        for chart in ("chart-latency", "chart-rate"):
            assert page.evaluate(AXIS_CONTRAST, chart) >= 3, chart
        shot(page, "theme-dark-overview")

        # "system" follows the system's preference as it changes
        page.emulate_media(color_scheme="light")
        page.wait_for_function(THEME_IS, arg="light")
        assert body_bg(page) == LIGHT_BG
        for chart in ("chart-latency", "chart-rate"):
            page.wait_for_function(f"() => ({AXIS_CONTRAST})('{chart}') >= 3")
        shot(page, "theme-light-overview")

        # the toggle: dark while the system is light, kept across a reload
        page.get_by_label("Theme").select_option("dark")
        page.wait_for_function(THEME_IS, arg="dark")
        assert body_bg(page) == DARK_BG
        page.reload()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        assert page.evaluate("() => localStorage.getItem('orva-theme')") == "dark"
        assert body_bg(page) == DARK_BG
        expect(page.get_by_label("Theme")).to_have_value("dark")
        page.get_by_role("link", name="Functions", exact=True).click()
        expect(page.get_by_role("table", name="Functions")).to_contain_text("greeter")
        shot(page, "theme-dark-functions")
        page.get_by_role("link", name="greeter").click()
        expect(page.locator(".cm-content")).to_contain_text("def handler")
        assert body_bg(page) == DARK_BG
        shot(page, "theme-dark-function-code")
        page.get_by_role("link", name="Functions", exact=True).click()

        # light while the system is dark; back to system follows it again
        page.emulate_media(color_scheme="dark")
        page.get_by_label("Theme").select_option("light")
        page.wait_for_function(THEME_IS, arg="light")
        page.reload()
        expect(page.get_by_role("heading", name="Functions")).to_be_visible()
        assert body_bg(page) == LIGHT_BG
        page.get_by_label("Theme").select_option("system")
        page.wait_for_function(THEME_IS, arg="dark")
        assert body_bg(page) == DARK_BG
        assert page.evaluate("() => localStorage.getItem('orva-theme')") == "system"


def test_charts_start_from_the_last_ten_minutes(make_orvad, browser: Browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    # a server nobody called: the charts say so (and still draw their y axis)
    quiet, quiet_token = start(make_orvad)
    with open_page(browser, quiet, quiet_token) as page:
        page.goto(f"{quiet.url}/web/")
        expect(page.get_by_text("No invocations in the last 10 minutes")).to_have_count(2)
        assert page.evaluate(AXIS_CONTRAST, "chart-rate") >= 3
        shot(page, "charts-empty")

    server, token = start(make_orvad, ("greeter",))
    for _ in range(5):
        assert httpx.post(f"{server.url}/fn/greeter", json={}).status_code == 200
    with server.admin() as admin:

        def history() -> list[dict[str, Any]]:
            points: list[dict[str, Any]] = admin.get(
                "/api/v1/system/metrics/history", params={"minutes": 10}
            ).json()["points"]
            return points

        wait_for(
            lambda: len(history()) >= 6 and any(p["rate_per_s"] > 0 for p in history()),
            30,
            "six history points, one with invocations",
        )
        before = len(history())
    with open_page(browser, server, token) as page:
        asked: list[str] = []
        page.on("request", lambda r: "/metrics/history" in r.url and asked.append(r.url))
        page.goto(f"{server.url}/web/")
        rate = page.get_by_test_id("chart-rate")
        expect(rate).to_be_visible()
        # points from the server's history, before a live event could have added more than one
        page.wait_for_function(
            f"() => +document.querySelector('[data-testid=chart-rate]').dataset.points >= {before}"
        )
        assert asked == [f"{server.url}/api/v1/system/metrics/history?minutes=10"]
        expect(page.get_by_text("No invocations in the last 10 minutes")).to_have_count(0)
        for chart in ("chart-latency", "chart-rate"):
            assert page.evaluate(AXIS_CONTRAST, chart) >= 3, chart
        shot(page, "charts-history")
        # live events append to the history
        grown = int(rate.get_attribute("data-points") or 0)
        page.wait_for_function(
            f"() => +document.querySelector('[data-testid=chart-rate]').dataset.points > {grown}"
        )


def test_functions_list_one_request_search_and_copy(make_orvad, browser: Browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server, token = start(make_orvad, ("alpha-one", "beta-two"))
    with server.admin() as admin:
        create_function(admin, "gamma")  # never deployed
        ids = {f["name"]: f["id"] for f in admin.get("/api/v1/functions").json()["functions"]}
    with open_page(browser, server, token) as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
        calls: list[str] = []
        page.on("request", lambda r: "/api/v1/" in r.url and calls.append(r.url.split("/api/v1/", 1)[1]))
        page.goto(f"{server.url}/web/#/functions")
        table = page.get_by_role("table", name="Functions")
        rows = table.locator("tbody tr")
        expect(rows).to_have_count(3)
        expect(rows.filter(has_text="alpha-one")).to_contain_text("v1, succeeded")
        expect(rows.filter(has_text="gamma")).to_contain_text("never")
        # the whole list in one request: no request per function
        listing = [c for c in calls if c.startswith("functions")]
        assert listing == ["functions?limit=50"], calls
        assert not any(fid in c for c in calls for fid in ids.values()), calls
        shot(page, "functions-list")

        # search: orvad filters (?q=), the address keeps it
        page.get_by_label("Search functions").fill("beta")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("beta-two")
        assert "q=beta" in page.url
        assert calls[-1] == "functions?limit=50&q=beta", calls
        page.reload()
        expect(page.get_by_label("Search functions")).to_have_value("beta")
        expect(page.get_by_role("table", name="Functions").locator("tbody tr")).to_have_count(1)
        page.get_by_label("Search functions").fill("nothing-like-it")
        expect(page.get_by_text("No function matches “nothing-like-it”.")).to_be_visible()
        page.get_by_label("Search functions").fill("")
        expect(rows).to_have_count(3)

        # copy buttons: the full id and the invoke URL, confirmed by "Copied"; the row is not opened
        page.get_by_role("button", name="Copy id of alpha-one").click()
        expect(page.get_by_role("button", name="Copied id of alpha-one")).to_have_text("Copied")
        assert page.evaluate("() => navigator.clipboard.readText()") == ids["alpha-one"]
        expect(page.get_by_role("heading", name="Functions")).to_be_visible()
        page.get_by_role("button", name="Copy invoke URL of alpha-one").click()
        expect(page.get_by_role("button", name="Copied invoke URL of alpha-one")).to_be_visible()
        url = page.evaluate("() => navigator.clipboard.readText()")
        assert url == f"{server.url}/fn/alpha-one/"
        assert httpx.post(url, json={}).json() == {"hello": "world"}
        # the confirmation goes away by itself
        expect(page.get_by_role("button", name="Copy id of alpha-one")).to_have_text("Copy")

        # a refused clipboard API: the older copy command still copies
        page.evaluate("() => { navigator.clipboard.writeText = () => Promise.reject(new Error('refused')); }")
        page.get_by_role("button", name="Copy id of beta-two").click()
        expect(page.get_by_role("button", name="Copied id of beta-two")).to_be_visible()
        assert page.evaluate("() => navigator.clipboard.readText()") == ids["beta-two"]
        shot(page, "functions-copied")


@pytest.mark.timeout(120)
def test_name_rule_and_fields_named_by_errors(make_orvad, browser: Browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server, token = start(make_orvad)
    with open_page(browser, server, token) as page:
        page.goto(f"{server.url}/web/#/functions")
        page.get_by_role("button", name="New function").click()
        dialog = page.get_by_role("dialog")
        name = dialog.get_by_label("Name")
        help_text = page.locator(f"#{name.get_attribute('aria-describedby')}")
        expect(help_text).to_contain_text(
            "1 to 63 characters: lowercase letters a-z, digits 0-9, - and _, starting with a letter"
        )
        # the browser's pattern and orvad agree on every name
        with server.admin() as admin:
            for candidate in (
                "a",
                "hello-world",
                "hello_world",
                "a2-_",
                "a" * 63,
                "a" * 64,
                "1abc",
                "Abc",
                "-abc",
                "_abc",
                "bad name!",
                "héllo",
                "abc.d",
            ):
                name.fill(candidate)
                # the input holds at most 63 characters; what it holds must match the pattern
                browser_ok = name.evaluate("el => el.checkValidity()") and name.input_value() == candidate
                created = admin.post("/api/v1/functions", json={"name": candidate, "runtime": "python"})
                assert browser_ok == (created.status_code == 201), (candidate, browser_ok, created.text)
                if created.status_code == 201:
                    assert admin.delete(f"/api/v1/functions/{candidate}").status_code in (200, 204)

        # a bad name never leaves the browser; a value only orvad checks comes back highlighted
        posts: list[str] = []
        page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
        name.fill("bad name!")
        dialog.get_by_role("button", name="Create").click()
        assert name.evaluate("el => el.validity.patternMismatch")
        expect(dialog).to_be_visible()
        name.fill("greeter")
        dialog.get_by_label("Memory (MB)").fill("99999")
        dialog.get_by_role("button", name="Create").click()
        alert = dialog.get_by_role("alert")
        expect(alert).to_contain_text("VALIDATION")
        expect(alert).to_contain_text("Hint:")
        assert "/api/v1" not in alert.inner_text()
        expect(dialog.get_by_label("Memory (MB)")).to_have_attribute("aria-invalid", "true")
        assert posts == [f"{server.url}/api/v1/functions"]
        shot(page, "create-field-highlighted")
        dialog.get_by_label("Memory (MB)").fill("128")
        expect(dialog.get_by_label("Memory (MB)")).not_to_have_attribute("aria-invalid", "true")
        dialog.get_by_role("button", name="Create").click()
        expect(page.get_by_role("heading", name="greeter")).to_be_visible()

        # API keys: no permission ticked; orvad names the field, the page marks the permissions
        page.goto(f"{server.url}/web/#/keys")
        expect(page.get_by_role("table", name="API keys")).to_contain_text("bootstrap-admin")
        page.get_by_label("Name").fill("nothing")
        for perm in ("invoke", "read"):
            page.get_by_label(perm, exact=True).uncheck()
        page.get_by_role("button", name="Create key").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("VALIDATION")
        assert "/api/v1" not in alert.inner_text()
        expect(page.locator("fieldset[data-field=permissions]")).to_have_attribute("aria-invalid", "true")
        shot(page, "keys-field-highlighted")
