"""The turn's edges: two calls in one reply (one held, one run), a result cut to 16 KiB, the tools the assistant
does not get, thinking kept and sent back with its signature, a conversation list's pages, SIGTERM mid-turn."""

from __future__ import annotations

import json
import re
import signal

from tests.assistant.chat_helpers import KEY, MODEL, add_provider, names, of, settings, sse, text_of
from tests.assistant.fake_provider import FakeProvider, delay, text, thinking, tool_call
from tests.helpers import Orvad, wait_for

LIMIT = 16 * 1024


def _chat(
    provider_id: str, content: str, conversation_id: str | None = None, **extra: object
) -> dict[str, object]:
    body: dict[str, object] = {"content": content, "provider_id": provider_id, "model": MODEL, **extra}
    if conversation_id:
        body["conversation_id"] = conversation_id
    return body


def test_a_read_runs_at_once_while_a_write_of_the_same_reply_waits(
    orvad: Orvad, fake_provider: FakeProvider
) -> None:
    name = f"ai-two-{fake_provider.port}"
    fake_provider.script(
        [
            tool_call("list_functions", {"limit": 1}),
            tool_call("create_function", {"name": name, "runtime": "python"}),
        ],
        [text("Both done.")],
    )
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "openai")
        settings(c, approval_policy="all_writes")
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "look, then create"))
        assert names(frames)[-5:] == [
            "tool_call",
            "tool_call",
            "message_end",
            "tool_result",
            "awaiting_approval",
        ]
        read, write = of(frames, "tool_call")
        assert (read["needs_approval"], write["needs_approval"]) == (False, True)
        assert of(frames, "tool_result")[0]["id"] == read["id"]
        assert of(frames, "awaiting_approval")[0]["id"] == write["id"]
        assert len(fake_provider.chat_requests()) == 1  # the model waits for both results
        _, frames = sse(c, "POST", f"/api/v1/ai/tool-calls/{write['id']}/approve")
        assert of(frames, "tool_result")[0]["id"] == write["id"] and text_of(frames) == "Both done."
    sent = [m for m in fake_provider.chat_requests()[1].body["messages"] if m["role"] == "tool"]
    assert len(sent) == 2 and "functions" in json.loads(
        sent[0]["content"]
    )  # in the order the model called them
    assert json.loads(sent[1]["content"])["name"] == name


def test_a_long_result_is_cut_to_16_kib_and_says_so(orvad: Orvad, fake_provider: FakeProvider) -> None:
    fake_provider.script([tool_call("get_orva_docs", {"topic": "api"})], [text("Read it.")])
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "anthropic")
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "read the API docs"))
        result = of(frames, "tool_result")[0]["result"]
        assert result.startswith('{"topic": "api"') and len(result) < LIMIT + 200
        assert result.endswith(f"only the first {LIMIT} are shown]") and "[cut: the result was " in result
        cid = of(frames, "message_start")[0]["conversation_id"]
        stored = c.get(f"/api/v1/ai/conversations/{cid}").json()["messages"][1]["tool_calls"][0]["result"]
        assert stored == result
    sent = fake_provider.chat_requests()[1].body["messages"]
    block = next(
        b for m in sent if isinstance(m["content"], list) for b in m["content"] if b["type"] == "tool_result"
    )
    assert json.dumps(block).count("x") < LIMIT + 200 and "only the first 16384 are shown" in json.dumps(
        block
    )


def test_tools_that_handle_credentials_are_not_the_assistants(
    orvad: Orvad, fake_provider: FakeProvider
) -> None:
    fake_provider.script(
        [tool_call("create_key", {"name": "from-the-model", "permissions": ["admin"]})],
        [text("I cannot do that.")],
    )
    with orvad.admin() as c:
        before = {k["name"] for k in c.get("/api/v1/keys").json()["keys"]}
        pid = add_provider(c, fake_provider, "openai")
        settings(c, approval_policy="auto")
        try:
            _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "make me an admin key"))
        finally:
            settings(c, approval_policy="all_writes")
        assert of(frames, "tool_call")[0]["needs_approval"] is False
        result = of(frames, "tool_result")[0]
        assert result["is_error"] is True and result["result"].startswith("NOT_AVAILABLE")
        assert "dashboard" in result["result"]
        assert {k["name"] for k in c.get("/api/v1/keys").json()["keys"]} == before
    sent = json.dumps(fake_provider.chat_requests()[1].body["messages"])
    assert not re.search(r"orva_[0-9a-f]{16}", sent), sent  # no key minted, none sent


def test_thinking_is_streamed_stored_and_sent_back_with_its_signature(
    orvad: Orvad, fake_provider: FakeProvider
) -> None:
    fake_provider.script(
        [thinking("Which functions exist?", signature="sig-abc"), tool_call("list_functions", {"limit": 1})],
        [text("There are some.")],
    )
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "anthropic")
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "what is there?", thinking="low"))
        assert "".join(d["text"] for d in of(frames, "thinking")) == "Which functions exist?"
        assert names(frames).index("thinking") < names(frames).index("tool_call")
        cid = of(frames, "message_start")[0]["conversation_id"]
        assert (
            c.get(f"/api/v1/ai/conversations/{cid}").json()["messages"][1]["thinking"]
            == "Which functions exist?"
        )
    first, second = fake_provider.chat_requests()
    assert "thinking" in first.body
    reply = next(m for m in second.body["messages"] if m["role"] == "assistant")
    assert reply["content"][0] == {
        "type": "thinking",
        "thinking": "Which functions exist?",
        "signature": "sig-abc",
    }


def test_conversations_page_by_cursor(orvad: Orvad) -> None:
    with orvad.admin() as c:
        made = [
            c.post("/api/v1/ai/conversations", json={"title": f"page {i}"}).json()["id"] for i in range(3)
        ]
        seen: list[dict[str, object]] = []
        cursor = None
        while True:  # two at a time, newest first, each once
            page = c.get(
                "/api/v1/ai/conversations", params={"limit": 2, **({"cursor": cursor} if cursor else {})}
            )
            assert page.status_code == 200 and len(page.json()["conversations"]) <= 2
            seen += page.json()["conversations"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        ids = [x["id"] for x in seen]
        assert len(ids) == len(set(ids)) and set(made) <= set(ids)
        keys = [(x["updated_at"], x["id"]) for x in seen]
        assert keys == sorted(keys, reverse=True)
        assert set(ids[:3]) == set(made)  # the newest three
        assert c.get("/api/v1/ai/conversations", params={"archived": "maybe"}).status_code == 400
        assert (
            c.get(f"/api/v1/ai/conversations/{made[0]}/messages", params={"since_seq": "-1"}).status_code
            == 400
        )
        for conv_id in made:
            c.delete(f"/api/v1/ai/conversations/{conv_id}")


def test_sigterm_mid_turn_stores_it_as_interrupted(make_orvad, fake_provider: FakeProvider) -> None:  # type: ignore[no-untyped-def]
    server = make_orvad()
    fake_provider.script([text("Working on it", pieces=1), delay(60)])
    with server.admin() as c:
        pid = add_provider(c, fake_provider, "openai")
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "go"), until=lambda f: "delta" in names(f))
        cid = of(frames, "message_start")[0]["conversation_id"]
    assert server.stop(signal.SIGTERM) == 0
    server.start()
    with server.admin() as c:
        wait_for(lambda: c.get("/health/ready").status_code == 200, 10, "orvad to be ready")
        msg = c.get(f"/api/v1/ai/conversations/{cid}").json()["messages"][1]
        assert (msg["status"], msg["content"], msg["error"]["code"]) == (
            "error",
            "Working on it",
            "TURN_INTERRUPTED",
        )
    assert KEY not in server.stderr()


def test_a_paused_turn_cancelled_or_overtaken_runs_nothing(orvad: Orvad, fake_provider: FakeProvider) -> None:
    name = f"ai-paused-{fake_provider.port}"
    create = tool_call("create_function", {"name": name, "runtime": "python"})
    fake_provider.script(
        [create], [create], [text("Fine, something else.")], [text("slow", pieces=1), delay(30)]
    )
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "anthropic")
        settings(c, approval_policy="all_writes")
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "create it"))
        cid = of(frames, "message_start")[0]["conversation_id"]
        held = of(frames, "awaiting_approval")[0]["id"]
        assert c.post(f"/api/v1/ai/conversations/{cid}/cancel").json()["cancelled"] is True
        conv = c.get(f"/api/v1/ai/conversations/{cid}").json()
        assert conv["messages"][1]["status"] == "cancelled"
        assert conv["messages"][1]["tool_calls"][0]["status"] == "rejected"
        assert c.post(f"/api/v1/ai/tool-calls/{held}/approve").status_code == 409
        # held again, then a new message instead of an answer: the held call is resolved as not run
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "create it again", cid))
        held = of(frames, "awaiting_approval")[0]["id"]
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "no, do something else", cid))
        assert text_of(frames) == "Fine, something else."
        call = next(
            t
            for m in c.get(f"/api/v1/ai/conversations/{cid}").json()["messages"]
            for t in m["tool_calls"]
            if t["id"] == held
        )
        assert call["status"] == "rejected" and "new message" in call["result"]
        assert c.get(f"/api/v1/functions/{name}").status_code == 404
        # deleting a conversation with a running turn stops the turn first
        _, frames = sse(
            c, "POST", "/api/v1/ai/chat", _chat(pid, "slow one", cid), until=lambda f: "delta" in names(f)
        )
        assert c.delete(f"/api/v1/ai/conversations/{cid}").status_code == 200
        assert c.get(f"/api/v1/ai/conversations/{cid}").status_code == 404
        assert c.get(f"/api/v1/ai/conversations/{cid}/stream").status_code == 404
