"""The Assistant view and Settings > AI providers (issue 22) in a real browser (Debian's Chromium) against a real
orvad and the real local fake provider (tests/assistant/fake_provider.py: OpenAI chat-completions chunks over
HTTP on 127.0.0.1; nothing leaves the machine).

The journey: add a provider in Settings (its key typed into a password field, never shown again), Test connection,
choose it and a model it lists as the default; chat and watch the answer stream in (the second half arrives after
the first is on screen), thinking folded away, tokens per message and per conversation; a tool call held for
approval shown as a card and approved (the function really exists afterwards), another rejected (it does not run);
regenerate and edit-and-rerun; stop a running reply; leave a conversation mid-reply and come back (the page follows
the turn again, the text not doubled); rename, archive and delete the conversation.
No function is deployed or invoked, so no sandbox is needed (the `browser` marker keeps it out of make test-fast).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.assistant.fake_provider import FakeProvider, delay, running, text, thinking, tool_call, usage
from tests.dashboard.test_dashboard import PASSWORD, browser, page, shot  # noqa: F401 (fixtures)
from tests.helpers import Orvad

KEY = "sk-fake-dashboard-0123456789abcdef"


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    yield from running()


def _functions(admin: httpx.Client) -> set[str]:
    return {f["name"] for f in admin.get("/api/v1/functions").json()["functions"]}


def test_assistant_journey(make_orvad, page: Page, fake_provider: FakeProvider) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server: Orvad = make_orvad(env={"ORVA_AI_PING_S": "1"})
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])
    fake_provider.api_key = KEY

    # ---- Settings > AI providers: add one, test it, make it the default ----
    page.goto(f"{server.url}/web/#/settings")
    section = page.get_by_role("region", name="AI providers")
    expect(section.get_by_text("No providers yet.")).to_be_visible()
    form = section.get_by_role("form", name="Add an AI provider")
    form.get_by_label("Kind").select_option("openai")
    form.get_by_label("Label").fill("fake")
    form.get_by_label("Base URL").fill(fake_provider.openai_url)
    key_field = form.get_by_label("API key")
    assert key_field.get_attribute("type") == "password"
    key_field.fill(KEY)
    form.get_by_role("button", name="Add provider").click()
    row = section.get_by_role("row", name=re.compile("fake"))
    expect(row).to_be_visible()
    expect(key_field).to_have_value("")  # the key left the page
    assert KEY not in page.content()
    row.get_by_role("button", name="Test connection").click()
    expect(row.get_by_text(re.compile("Connection OK"))).to_be_visible()
    shot(page, "assistant-01-providers")

    prefs = page.get_by_role("form", name="Assistant settings")
    prefs.get_by_label("Default provider").select_option(label="fake")
    model = prefs.get_by_label("Default model")
    expect(model.locator("option", has_text="fake-model-2")).to_be_attached()  # listed by the provider
    model.select_option("fake-model-2")
    prefs.get_by_label("Approval policy").select_option("all_writes")
    prefs.get_by_role("button", name="Save assistant settings").click()
    expect(prefs.get_by_text("Saved.")).to_be_visible()
    with server.admin() as admin:
        got = admin.get("/api/v1/ai/settings").json()
        assert got["model"] == "fake-model-2" and got["approval_policy"] == "all_writes"
        assert KEY not in admin.get("/api/v1/ai/providers").text

    # ---- chat: the answer streams in ----
    fake_provider.script(
        [
            thinking("The operator greets me; no tool needed."),
            text("Hello! I can build functions. "),
            delay(4),
            text("Ask me for one."),
            usage(120, 17),
        ]
    )
    page.get_by_role("link", name="Assistant").click()
    chat = page.get_by_role("region", name="Chat")
    box = chat.get_by_label("Message", exact=True)
    box.fill("hello")
    chat.get_by_role("button", name="Send").click()
    reply = chat.get_by_role("article", name="Assistant message").last
    expect(reply).to_contain_text("Hello! I can build functions.")
    assert "Ask me for one." not in reply.inner_text()  # the first half is on screen before the rest exists
    expect(reply).to_contain_text("Ask me for one.", timeout=20_000)
    expect(page).to_have_url(re.compile(r"#/assistant/[0-9a-f-]+$"))
    reply = chat.get_by_role("article", name="Assistant message").last
    thought = reply.locator("details.thinking")
    expect(thought).to_be_visible()
    assert thought.get_attribute("open") is None  # folded
    expect(reply.get_by_test_id("message-tokens")).to_have_text("120 in · 17 out tokens")
    expect(chat.get_by_test_id("conversation-tokens")).to_contain_text("120 in · 17 out")
    expect(page.get_by_role("navigation", name="Conversations").get_by_text("hello")).to_be_visible()
    sent = fake_provider.chat_requests()[-1]
    assert sent.body["model"] == "fake-model-2"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    shot(page, "assistant-02-chat")

    # ---- a tool call held for approval, approved: the function is created ----
    fake_provider.script(
        [text("I will create it."), tool_call("create_function", {"name": "thumb", "runtime": "python"})],
        [text("Created thumb.")],
    )
    box.fill("make a function called thumb")
    chat.get_by_role("button", name="Send").click()
    card = chat.get_by_role("group", name="Tool call create_function")
    expect(card.get_by_role("button", name="Approve")).to_be_visible()
    expect(card.get_by_test_id("tool-arguments")).to_contain_text('"thumb"')
    with server.admin() as admin:
        assert "thumb" not in _functions(admin)  # nothing ran before the approval
    shot(page, "assistant-03-approval")
    card.get_by_role("button", name="Approve").click()
    expect(chat.get_by_text("Created thumb.")).to_be_visible()
    expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    expect(card.get_by_test_id("tool-result")).to_contain_text("thumb")  # what create_function answered
    card.get_by_text("Result").click()  # folded until opened
    expect(card.get_by_test_id("tool-result")).to_be_visible()
    with server.admin() as admin:
        assert "thumb" in _functions(admin)

    # ---- another one, rejected: it does not run ----
    fake_provider.script(
        [tool_call("delete_function", {"function": "thumb"})],
        [text("Understood, I left thumb alone.")],
    )
    box.fill("delete thumb")
    chat.get_by_role("button", name="Send").click()
    card = chat.get_by_role("group", name="Tool call delete_function")
    card.get_by_role("button", name="Reject").click()
    expect(chat.get_by_text("Understood, I left thumb alone.")).to_be_visible()
    expect(card.get_by_role("button", name="Reject")).to_have_count(0)
    with server.admin() as admin:
        assert "thumb" in _functions(admin)
    # the model was told: the tool result it got back says so
    told = fake_provider.chat_requests()[-1].body["messages"]
    assert any(m.get("role") == "tool" and "reject" in str(m.get("content", "")).lower() for m in told), told

    # ---- regenerate the last reply, with another model for this reply only ----
    # (the model's text is shown as text: markup in it is never run)
    fake_provider.script([text('Second thoughts: <img src=x onerror="window.pwned=1"> thumb stays.')])
    chat.locator("details.chat-options summary").click()
    chat.get_by_label("Provider for this reply").select_option(label="fake")
    expect(
        chat.get_by_label("Model for this reply").locator("option", has_text="fake-model-1")
    ).to_be_attached()
    chat.get_by_label("Model for this reply").select_option("fake-model-1")
    chat.get_by_role("button", name="Regenerate").click()
    expect(
        chat.get_by_text('Second thoughts: <img src=x onerror="window.pwned=1"> thumb stays.')
    ).to_be_visible()
    assert page.evaluate("() => window.pwned") is None and chat.locator("img").count() == 0
    expect(chat.get_by_text("Understood, I left thumb alone.")).to_have_count(0)
    assert fake_provider.chat_requests()[-1].body["model"] == "fake-model-1"
    chat.get_by_label("Provider for this reply").select_option("")  # back to the default

    # ---- edit a message and rerun from there ----
    fake_provider.script([text("Hi again.")])
    first = chat.get_by_role("article", name="You message").first
    first.get_by_role("button", name="Edit and rerun").click()
    first.get_by_label("Edited message").fill("hi there")
    first.get_by_role("button", name="Save and rerun").click()
    expect(chat.get_by_text("Hi again.")).to_be_visible()
    expect(chat.get_by_text("Created thumb.")).to_have_count(0)  # everything after it went
    expect(chat.get_by_role("article", name="You message")).to_have_count(1)
    expect(first).to_contain_text("hi there")

    # ---- stop a running reply ----
    fake_provider.script([text("This will take a while. "), delay(20), text("never shown")])
    box.fill("do something slow")
    chat.get_by_role("button", name="Send").click()
    expect(chat.get_by_text("This will take a while.")).to_be_visible()
    chat.get_by_role("button", name="Stop").click()
    expect(chat.get_by_role("article", name="Assistant message").last).to_have_attribute(
        "data-status", "cancelled"
    )
    expect(chat.get_by_role("button", name="Stop")).to_have_count(0)

    # ---- leave mid-reply and come back: the page follows the turn again ----
    fake_provider.script([text("Part one. "), delay(8), text("Part two.")])
    box.fill("tell me in two parts")
    chat.get_by_role("button", name="Send").click()
    expect(chat.get_by_text("Part one.")).to_be_visible()
    here = page.url
    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.goto(here)
    chat = page.get_by_role("region", name="Chat")
    last = chat.get_by_role("article", name="Assistant message").last
    expect(last).to_have_attribute("data-status", "streaming")  # still being written: followed again
    expect(last).to_contain_text("Part one. Part two.", timeout=20_000)
    assert last.inner_text().count("Part one.") == 1
    shot(page, "assistant-04-reattached")

    # ---- a phone: the conversation (tool cards, long arguments) and Settings fit the screen ----
    page.set_viewport_size({"width": 390, "height": 844})
    for where in (here, f"{server.url}/web/#/settings"):
        page.goto(where)
        if where == here:
            expect(page.get_by_role("region", name="Chat").get_by_text("Part two.")).to_be_visible()
        else:
            expect(
                page.get_by_role("region", name="AI providers").get_by_role("row", name=re.compile("fake"))
            ).to_be_visible()
        wide, screen = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
        assert wide <= screen, f"{where}: {wide} px wide on a {screen} px screen"
    shot(page, "assistant-05-phone-settings")
    page.set_viewport_size({"width": 1280, "height": 860})
    page.goto(here)
    chat = page.get_by_role("region", name="Chat")

    # ---- delete from a message on: it and everything after it go ----
    slow = chat.get_by_role("article", name="You message").filter(has_text="do something slow")
    slow.get_by_role("button", name="Delete from here").click()
    page.get_by_role("dialog", name="Delete from here").get_by_role("button", name="Delete from here").click()
    expect(chat.get_by_text("do something slow")).to_have_count(0)
    expect(chat.get_by_text("Part one.")).to_have_count(0)
    expect(chat.get_by_text("Hi again.")).to_be_visible()

    # ---- rename, archive, delete ----
    chat.get_by_role("button", name="Rename").click()
    dialog = page.get_by_role("dialog", name="Rename conversation")
    dialog.get_by_label("Title").fill("thumbnail work")
    dialog.get_by_role("button", name="Save").click()
    nav = page.get_by_role("navigation", name="Conversations")
    expect(nav.get_by_text("thumbnail work")).to_be_visible()
    chat.get_by_role("button", name="Archive").click()
    expect(chat.get_by_role("button", name="Unarchive")).to_be_visible()
    chat.get_by_role("button", name="Delete conversation").click()
    page.get_by_role("dialog", name="Delete conversation").get_by_role(
        "button", name="Delete conversation"
    ).click()
    expect(page).to_have_url(re.compile(r"#/assistant$"))
    expect(nav.get_by_text("thumbnail work")).to_have_count(0)
    with server.admin() as admin:
        assert admin.get("/api/v1/ai/conversations").json()["conversations"] == []


def test_provider_test_failure_and_chat_errors_in_words(  # type: ignore[no-untyped-def]
    make_orvad,
    page: Page,  # noqa: F811
    fake_provider: FakeProvider,
) -> None:
    """A provider that refuses the key: Test connection says it failed; chatting with no default says where to
    choose one, and the message typed goes back into the box."""
    server: Orvad = make_orvad()
    with server.client() as c:
        session = server.onboard(c, "admin", PASSWORD).cookies["session_token"]
    page.context.add_cookies([{"name": "session_token", "value": session, "url": server.url}])
    fake_provider.api_key = KEY

    # no provider yet: the Assistant says where to add one; a message is refused with that
    page.goto(f"{server.url}/web/#/assistant")
    expect(page.get_by_test_id("no-provider")).to_be_visible()
    chat = page.get_by_role("region", name="Chat")
    chat.get_by_label("Message", exact=True).fill("hello?")
    chat.get_by_role("button", name="Send").click()
    alert = chat.get_by_role("alert")
    expect(alert).to_contain_text("Settings › Assistant")
    assert "/api/v1" not in alert.inner_text()
    expect(chat.get_by_label("Message", exact=True)).to_have_value("hello?")
    expect(chat.get_by_role("article")).to_have_count(0)

    # a wrong key: Test connection fails, in words
    page.get_by_role("link", name="Settings", exact=True).click()
    section = page.get_by_role("region", name="AI providers")
    form = section.get_by_role("form", name="Add an AI provider")
    form.get_by_label("Kind").select_option("anthropic")
    form.get_by_label("Label").fill("wrong-key")
    form.get_by_label("Base URL").fill(fake_provider.anthropic_url)
    form.get_by_label("API key").fill("sk-not-the-right-one")
    form.get_by_role("button", name="Add provider").click()
    row = section.get_by_role("row", name=re.compile("wrong-key"))
    row.get_by_role("button", name="Test connection").click()
    expect(row.get_by_text(re.compile("Failed"))).to_be_visible()
    shot(page, "assistant-06-test-failed")

    # chatting through it: the provider's refusal shown once, in the page's words, the key nowhere
    with server.admin() as admin:
        pid = admin.get("/api/v1/ai/providers").json()["providers"][0]["id"]
        assert (
            admin.put("/api/v1/ai/settings", json={"provider_id": pid, "model": "fake-model-1"}).status_code
            == 200
        )
    page.get_by_role("link", name="Assistant").click()
    chat = page.get_by_role("region", name="Chat")
    chat.get_by_label("Message", exact=True).fill("hello again")
    chat.get_by_role("button", name="Send").click()
    alert = chat.get_by_role("alert")
    expect(alert).to_contain_text("PROVIDER_ERROR")
    expect(alert).to_contain_text("Test connection")
    expect(alert).to_have_count(1)
    assert "sk-not-the-right-one" not in page.content()
    page.get_by_role("link", name="Settings", exact=True).click()
    section = page.get_by_role("region", name="AI providers")
    row = section.get_by_role("row", name=re.compile("wrong-key"))
    # removing it asks first, then it is gone
    row.get_by_role("button", name="Remove").click()
    page.get_by_role("dialog", name="Remove").get_by_role("button", name="Remove").click()
    expect(section.get_by_text("No providers yet.")).to_be_visible()
