"""The assistant's conversations and turns end to end: a real orvad, the real provider SDKs, the fake provider
server (tests/assistant/fake_provider.py), frames read off the SSE answers in order, what was stored read
back over the API."""

from __future__ import annotations

import json
import signal

import pytest

from tests.assistant.chat_helpers import (
    KEY,
    MODEL,
    add_provider,
    names,
    of,
    settings,
    sse,
    text_of,
)
from tests.assistant.fake_provider import (
    FakeProvider,
    delay,
    error_mid_stream,
    text,
    tool_call,
    usage,
)
from tests.helpers import Orvad, wait_for


def _chat(
    provider_id: str, content: str, conversation_id: str | None = None, **extra: object
) -> dict[str, object]:
    body: dict[str, object] = {"content": content, "provider_id": provider_id, "model": MODEL, **extra}
    if conversation_id:
        body["conversation_id"] = conversation_id
    return body


def test_a_plain_answer_streams_its_frames_in_order_and_is_stored(
    orvad: Orvad, fake_provider: FakeProvider
) -> None:
    fake_provider.script([text("Hello from Orva's assistant", pieces=3), usage(120, 7)])
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "anthropic")
        r, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "Hi there"))
        assert r.status_code == 200
        assert names(frames) == ["message_start", "message_start", "delta", "delta", "delta", "message_end"]
        user, assistant = of(frames, "message_start")
        cid = user["conversation_id"]
        assert r.headers["x-orva-conversation-id"] == cid == assistant["conversation_id"]
        assert (user["role"], user["seq"], assistant["role"], assistant["seq"]) == ("user", 1, "assistant", 2)
        assert text_of(frames) == "Hello from Orva's assistant"
        end = of(frames, "message_end")[0]
        assert end == {
            "message_id": assistant["message_id"],
            "usage": {"input_tokens": 120, "output_tokens": 7},
            "stop_reason": "end",
        }
        conv = c.get(f"/api/v1/ai/conversations/{cid}").json()
        assert conv["title"] == "Hi there" and conv["running"] is False
        assert conv["usage"] == {"input_tokens": 120, "output_tokens": 7}
        assert [(m["role"], m["content"], m["status"]) for m in conv["messages"]] == [
            ("user", "Hi there", "complete"),
            ("assistant", "Hello from Orva's assistant", "complete"),
        ]
        assert conv["messages"][1]["usage"] == {"input_tokens": 120, "output_tokens": 7}
        listed = c.get("/api/v1/ai/conversations").json()["conversations"]
        assert listed[0]["id"] == cid  # most recently updated first
        everything = json.dumps(conv) + json.dumps(listed) + c.get("/api/v1/ai/providers").text
    assert KEY not in everything and KEY not in orvad.stderr() and KEY not in orvad.stdout()
    # what went to the provider: the system prompt, the message, the operator catalog (minus credential tools)
    (req,) = fake_provider.chat_requests()
    assert "Orva" in req.body["system"] and "approval" in req.body["system"].lower()
    tools = {t["name"] for t in req.body["tools"]}
    assert {"create_function", "deploy_function", "invoke_function", "get_build_logs"} <= tools
    assert not tools & {"create_key", "create_channel", "rotate_channel_token", "set_secret"}
    assert req.body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]


def test_a_write_waits_for_approval_then_runs_and_the_turn_goes_on(
    orvad: Orvad, fake_provider: FakeProvider
) -> None:
    name = f"ai-approve-{fake_provider.port}"
    fake_provider.script(
        [text("I'll create it."), tool_call("create_function", {"name": name, "runtime": "python"})],
        [text("Created it.")],
    )
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "openai")
        settings(c, approval_policy="all_writes")
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "make a function"))
        assert names(frames) == [
            "message_start", "message_start", "delta", "delta", "delta", "tool_call", "message_end",
            "awaiting_approval",
        ]  # fmt: skip
        (call,) = of(frames, "tool_call")
        assert call["name"] == "create_function" and call["needs_approval"] is True
        assert call["arguments"] == {"name": name, "runtime": "python"}
        assert of(frames, "awaiting_approval") == [
            {"id": call["id"], "name": "create_function", "arguments": call["arguments"]}
        ]
        assert of(frames, "message_end")[0]["stop_reason"] == "tool_use"
        cid = of(frames, "message_start")[0]["conversation_id"]
        # held: nothing ran, the stored call and message say so
        assert c.get(f"/api/v1/functions/{name}").status_code == 404
        conv = c.get(f"/api/v1/ai/conversations/{cid}").json()
        assert conv["messages"][1]["status"] == "awaiting_approval"
        assert conv["messages"][1]["tool_calls"][0]["status"] == "awaiting_approval"
        # approve: the call runs, its result is streamed, the model gets it and answers
        r, frames = sse(c, "POST", f"/api/v1/ai/tool-calls/{call['id']}/approve")
        assert r.status_code == 200
        assert names(frames) == ["tool_result", "message_start", "delta", "delta", "delta", "message_end"], (
            frames
        )
        result = of(frames, "tool_result")[0]
        assert result["id"] == call["id"] and result["is_error"] is False
        assert json.loads(result["result"])["name"] == name
        assert c.get(f"/api/v1/functions/{name}").status_code == 200
        # a second approval is refused
        again = c.post(f"/api/v1/ai/tool-calls/{call['id']}/approve")
        assert again.status_code == 409 and "awaiting_approval" in again.json()["error"]["hint"]
        audit = c.get("/api/v1/audit-log", params={"method": "AI"}).json()["entries"]
        row = next(e for e in audit if e["path"].endswith("tools/call create_function"))
        assert row["actor_kind"] == "assistant" and row["target_id"] == name and row["status"] == 200
        assert row["path"] == f"/api/v1/ai/conversations/{cid} tools/call create_function"
    second = fake_provider.chat_requests()[1].body["messages"]
    tool_msg = next(m for m in second if m["role"] == "tool")
    assert json.loads(tool_msg["content"])["name"] == name


def test_a_rejected_call_does_not_run_and_the_model_is_told(
    orvad: Orvad, fake_provider: FakeProvider
) -> None:
    name = f"ai-reject-{fake_provider.port}"
    with orvad.admin() as c:
        assert c.post("/api/v1/functions", json={"name": name, "runtime": "python"}).status_code == 201
        fake_provider.script(
            [tool_call("delete_function", {"function": name, "confirm": True})],
            [text("Understood, I left it.")],
        )
        pid = add_provider(c, fake_provider, "anthropic")
        settings(c, approval_policy="destructive_only")
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "delete it"))
        (held,) = of(frames, "awaiting_approval")
        r, frames = sse(c, "POST", f"/api/v1/ai/tool-calls/{held['id']}/reject")
        assert names(frames) == ["tool_result", "message_start", "delta", "delta", "delta", "message_end"], (
            frames
        )
        result = of(frames, "tool_result")[0]
        assert result["is_error"] is True and "rejected" in result["result"]
        assert c.get(f"/api/v1/functions/{name}").status_code == 200  # still there
        conv = c.get(f"/api/v1/ai/conversations/{r.headers['x-orva-conversation-id']}").json()
        assert conv["messages"][1]["tool_calls"][0]["status"] == "rejected"
    sent = fake_provider.chat_requests()[1].body["messages"]
    answer = next(
        b
        for m in sent
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b["type"] == "tool_result"
    )
    assert answer["type"] == "tool_result" and answer["is_error"] is True
    assert "the operator rejected this call" in json.dumps(answer)


def test_a_provider_error_mid_stream_is_an_error_frame_and_a_stored_error(
    orvad: Orvad, fake_provider: FakeProvider
) -> None:
    fake_provider.script([text("Half an ans", pieces=1), error_mid_stream("Overloaded")])
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "anthropic")
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "hello"))
        assert names(frames) == ["message_start", "message_start", "delta", "error"]
        error = of(frames, "error")[0]
        assert error["code"] == "PROVIDER_ERROR" and error["hint"] and "fake-anthropic" in error["hint"]
        cid = of(frames, "message_start")[0]["conversation_id"]
        msg = c.get(f"/api/v1/ai/conversations/{cid}").json()["messages"][1]
        assert msg["status"] == "error" and msg["content"] == "Half an ans"
        assert msg["error"]["code"] == "PROVIDER_ERROR"
        # the conversation goes on: the next message is answered (the failed reply, kept, is sent as said so far)
        fake_provider.script([text("Back again")])
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "again?", cid))
        assert text_of(frames) == "Back again"


def test_a_runaway_tool_loop_ends_at_the_step_cap(orvad: Orvad, fake_provider: FakeProvider) -> None:
    fake_provider.script(*([tool_call("list_functions", {"limit": 1})] for _ in range(5)))
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "openai")
        settings(c, approval_policy="all_writes", max_tool_steps=3)
        try:
            _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "loop forever"))
        finally:
            settings(c, max_tool_steps=20)
        assert len(of(frames, "tool_result")) == 3  # reads run at once under all_writes
        assert names(frames)[-2:] == ["message_start", "error"]
        error = of(frames, "error")[0]
        assert error["code"] == "STEP_LIMIT" and "max_tool_steps" in error["hint"]
        cid = of(frames, "message_start")[0]["conversation_id"]
        last = c.get(f"/api/v1/ai/conversations/{cid}").json()["messages"][-1]
        assert last["status"] == "error" and last["error"]["code"] == "STEP_LIMIT"
    assert len(fake_provider.chat_requests()) == 3


def test_a_client_that_goes_away_misses_nothing(orvad: Orvad, fake_provider: FakeProvider) -> None:
    fake_provider.script([text("Slow ", pieces=1), delay(1.5), text("but finished", pieces=2)])
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "anthropic")
        _, first = sse(
            c, "POST", "/api/v1/ai/chat", _chat(pid, "take your time"), until=lambda f: "delta" in names(f)
        )
        cid = of(first, "message_start")[0]["conversation_id"]
        # gone: the turn goes on; the messages so far are readable, and the live stream re-attachable
        page = c.get(f"/api/v1/ai/conversations/{cid}/messages", params={"since_seq": 1}).json()
        assert page["running"] is True and [m["status"] for m in page["messages"]] == ["streaming"]
        _, again = sse(c, "GET", f"/api/v1/ai/conversations/{cid}/stream")
        assert names(again)[:3] == ["message_start", "message_start", "delta"]  # from the run's start
        assert names(again)[-1] == "message_end" and text_of(again) == "Slow but finished"
        page = c.get(f"/api/v1/ai/conversations/{cid}/messages", params={"since_seq": 1}).json()
        assert page["running"] is False and page["last_seq"] == 2
        assert [(m["status"], m["content"]) for m in page["messages"]] == [("complete", "Slow but finished")]
        assert (
            c.get(f"/api/v1/ai/conversations/{cid}/messages", params={"since_seq": 2}).json()["messages"]
            == []
        )
        # no turn running: the stream ends at once
        _, idle = sse(c, "GET", f"/api/v1/ai/conversations/{cid}/stream", timeout_s=5)
        assert idle == []


def test_cancel_stops_the_turn_and_keeps_what_was_said(orvad: Orvad, fake_provider: FakeProvider) -> None:
    fake_provider.script([text("Starting", pieces=1), delay(30), text(" never sent")])
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "openai")
        _, first = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "go"), until=lambda f: "delta" in names(f))
        cid = of(first, "message_start")[0]["conversation_id"]
        second = c.post("/api/v1/ai/chat", json=_chat(pid, "and this", cid))
        assert second.status_code == 409 and second.json()["error"]["code"] == "TURN_RUNNING"
        assert f"/api/v1/ai/conversations/{cid}/cancel" in second.json()["error"]["hint"]
        r = c.post(f"/api/v1/ai/conversations/{cid}/cancel")
        assert r.status_code == 200 and r.json() == {"conversation_id": cid, "cancelled": True}
        msg = c.get(f"/api/v1/ai/conversations/{cid}").json()["messages"][1]
        assert (msg["status"], msg["content"]) == ("cancelled", "Starting")
        assert c.post(f"/api/v1/ai/conversations/{cid}/cancel").json()["cancelled"] is False


def test_regenerate_edit_and_delete_rewrite_the_tail(orvad: Orvad, fake_provider: FakeProvider) -> None:
    fake_provider.script([text("one")], [text("two")], [text("two again")], [text("edited answer")])
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "anthropic")
        _, f1 = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "first"))
        cid = of(f1, "message_start")[0]["conversation_id"]
        sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "second", cid))
        _, f3 = sse(c, "POST", f"/api/v1/ai/conversations/{cid}/regenerate", {})
        assert names(f3) == ["message_start", "delta", "delta", "delta", "message_end"]
        msgs = c.get(f"/api/v1/ai/conversations/{cid}").json()["messages"]
        assert [(m["seq"], m["content"]) for m in msgs] == [
            (1, "first"),
            (2, "one"),
            (3, "second"),
            (4, "two again"),
        ]
        # edit the first message: everything after it goes, the turn runs again
        _, f4 = sse(
            c,
            "POST",
            f"/api/v1/ai/conversations/{cid}/messages/{msgs[0]['id']}/edit",
            {"content": "first, edited"},
        )
        assert text_of(f4) == "edited answer"
        msgs = c.get(f"/api/v1/ai/conversations/{cid}").json()["messages"]
        assert [(m["seq"], m["content"]) for m in msgs] == [(1, "first, edited"), (2, "edited answer")]
        assert fake_provider.chat_requests()[-1].body["messages"] == [
            {"role": "user", "content": [{"type": "text", "text": "first, edited"}]}
        ]
        # an assistant message cannot be edited; a message of another conversation is not found
        bad = c.post(f"/api/v1/ai/conversations/{cid}/messages/{msgs[1]['id']}/edit", json={"content": "x"})
        assert bad.status_code == 400 and "regenerate" in bad.json()["error"]["hint"]
        assert c.delete(f"/api/v1/ai/conversations/{cid}/messages/nope").status_code == 404
        # delete truncates from the message on
        r = c.delete(f"/api/v1/ai/conversations/{cid}/messages/{msgs[1]['id']}")
        assert r.json() == {"conversation_id": cid, "deleted": 1}
        assert [m["content"] for m in c.get(f"/api/v1/ai/conversations/{cid}").json()["messages"]] == [
            "first, edited"
        ]
        # rename, archive, delete the conversation
        assert (
            c.patch(f"/api/v1/ai/conversations/{cid}", json={"title": "Renamed", "archived": True}).json()[
                "title"
            ]
            == "Renamed"
        )
        archived = c.get("/api/v1/ai/conversations", params={"archived": "true"}).json()["conversations"]
        assert cid in {a["id"] for a in archived}
        assert c.delete(f"/api/v1/ai/conversations/{cid}").json() == {"id": cid, "deleted": True}
        assert c.get(f"/api/v1/ai/conversations/{cid}").status_code == 404
        assert c.get(f"/api/v1/ai/conversations/{cid}/messages").status_code == 404


def test_settings_are_validated(orvad: Orvad) -> None:
    with orvad.admin() as c:
        current = c.get("/api/v1/ai/settings").json()
        assert set(current) == {
            "provider_id",
            "model",
            "thinking",
            "approval_policy",
            "max_tool_steps",
            "updated_at",
        }
        for body, field in (
            ({"approval_policy": "yolo"}, "approval_policy"),
            ({"thinking": "max"}, "thinking"),
            ({"max_tool_steps": 0}, "max_tool_steps"),
            ({"max_tool_steps": 101}, "max_tool_steps"),
            ({"max_tool_steps": True}, "max_tool_steps"),
            ({"model": ""}, "model"),
        ):
            r = c.put("/api/v1/ai/settings", json=body)
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == field, (body, r.text)
            assert r.json()["error"]["hint"]
        r = c.put("/api/v1/ai/settings", json={"provider_id": "prv_missing"})
        assert r.status_code == 404 and "/api/v1/ai/providers" in r.json()["error"]["hint"]
        r = c.put("/api/v1/ai/settings", json={"colour": "blue"})
        assert r.status_code == 400
        assert c.get("/api/v1/ai/settings").json() == current  # nothing half-saved
        ok = c.put(
            "/api/v1/ai/settings", json={"thinking": "low", "approval_policy": "auto", "max_tool_steps": 7}
        )
        assert ok.status_code == 200 and ok.json()["thinking"] == "low" and ok.json()["max_tool_steps"] == 7
        c.put(
            "/api/v1/ai/settings",
            json={k: current[k] for k in ("thinking", "approval_policy", "max_tool_steps")},
        )
        # no provider chosen anywhere: a message is refused with what to do
        if current["provider_id"] is None:
            r = c.post("/api/v1/ai/chat", json={"content": "hi"})
            assert r.status_code == 400 and "PUT /api/v1/ai/settings" in r.json()["error"]["hint"]
        assert c.post("/api/v1/ai/chat", json={"content": "  "}).status_code == 400
        # refused before anything is stored: no conversation appears
        count = len(c.get("/api/v1/ai/conversations", params={"limit": 500}).json()["conversations"])
        for body, status in (
            ({"content": "hi", "provider_id": "nope", "model": MODEL}, 404),
            ({"content": "hi", "conversation_id": "nope", "provider_id": "nope", "model": MODEL}, 404),
            ({"content": "hi", "conversation_id": None}, 400),
            ({"content": "hi", "thinking": "max"}, 400),
            ({"content": 5}, 400),
            ({"content": "x" * 100_001}, 400),
        ):
            r = c.post("/api/v1/ai/chat", json=body)
            assert r.status_code == status and r.json()["error"]["hint"], (body, r.text)
        assert c.post("/api/v1/ai/chat", content=b"{not json").json()["error"]["code"] == "INVALID_JSON"
        assert len(c.get("/api/v1/ai/conversations", params={"limit": 500}).json()["conversations"]) == count
        assert c.get("/api/v1/ai/conversations/nope").status_code == 404


def test_only_admin_reaches_the_assistant(orvad: Orvad) -> None:
    with orvad.admin() as c:
        key = c.post(
            "/api/v1/keys", json={"name": "ai-rw", "permissions": ["read", "write", "invoke"]}
        ).json()["key"]
    with orvad.client(key) as c:
        for method, path in (
            ("GET", "/api/v1/ai/settings"),
            ("PUT", "/api/v1/ai/settings"),
            ("POST", "/api/v1/ai/chat"),
            ("GET", "/api/v1/ai/conversations"),
            ("POST", "/api/v1/ai/conversations"),
            ("POST", "/api/v1/ai/tool-calls/x/approve"),
        ):
            r = c.request(method, path, json={})
            assert r.status_code == 403 and r.json()["error"]["details"]["required"] == "admin", (
                method,
                path,
            )


def test_a_restart_keeps_what_was_stored_and_a_held_call_stays_approvable(
    make_orvad, fake_provider: FakeProvider
) -> None:  # type: ignore[no-untyped-def]
    server = make_orvad(env={"ORVA_AI_PING_S": "0.3"})
    name = f"ai-restart-{fake_provider.port}"
    fake_provider.script(
        [tool_call("create_function", {"name": name, "runtime": "python"})],  # held in conversation A
        [text("Thinking about it", pieces=1), delay(60)],  # conversation B: still streaming at the stop
    )
    with server.admin() as c:
        pid = add_provider(c, fake_provider, "anthropic")
        settings(c, approval_policy="all_writes")
        _, fa = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "make it"))
        (held,) = of(fa, "awaiting_approval")
        a = of(fa, "message_start")[0]["conversation_id"]
        _, fb = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "slowly"), until=lambda f: "delta" in names(f))
        b = of(fb, "message_start")[0]["conversation_id"]
        wait_for(
            lambda: (
                c.get(f"/api/v1/ai/conversations/{b}").json()["messages"][1]["content"] == "Thinking about it"
            ),
            10,
            "the streamed text to be written",
        )
    server.stop(signal.SIGKILL)
    server.start()
    with server.admin() as c:
        msg = c.get(f"/api/v1/ai/conversations/{b}").json()["messages"][1]
        assert msg["status"] == "error" and msg["error"]["code"] == "TURN_INTERRUPTED"
        assert msg["content"] == "Thinking about it" and msg["error"]["hint"]
        conv = c.get(f"/api/v1/ai/conversations/{a}").json()
        assert conv["messages"][1]["tool_calls"][0]["status"] == "awaiting_approval"
        fake_provider.script([text("Done after the restart")])
        _, frames = sse(c, "POST", f"/api/v1/ai/tool-calls/{held['id']}/approve")
        assert of(frames, "tool_result")[0]["is_error"] is False
        assert text_of(frames) == "Done after the restart"
        assert c.get(f"/api/v1/functions/{name}").status_code == 200
        # a slow start: `: ping` comments while the provider is silent
        fake_provider.script([delay(1.2), text("late")])
        _, frames = sse(c, "POST", "/api/v1/ai/chat", _chat(pid, "anyone?", b))
        first_delta = names(frames, pings=True).index("delta")
        assert names(frames, pings=True)[:first_delta].count("ping") >= 2
        assert ("ping", "ping") in frames


@pytest.mark.sandbox
def test_a_chain_deploys_a_function_and_invokes_it(orvad: Orvad, fake_provider: FakeProvider) -> None:
    name = f"ai-chain-{fake_provider.port}"
    code = "def handler(event, context):\n    return {'greeting': 'hello from ' + event['path']}\n"
    fake_provider.script(
        [tool_call("create_function", {"name": name, "runtime": "python"})],
        [tool_call("deploy_function", {"function": name, "code": code, "wait": True})],
        [tool_call("invoke_function", {"function": name, "method": "GET", "path": "/thumb"})],
        [text("It works: it says hello.")],
    )
    with orvad.admin() as c:
        pid = add_provider(c, fake_provider, "openai")
        settings(c, approval_policy="auto")
        try:
            _, frames = sse(
                c, "POST", "/api/v1/ai/chat", _chat(pid, "make a hello function and try it"), timeout_s=180
            )
        finally:
            settings(c, approval_policy="all_writes")
        results = of(frames, "tool_result")
        assert [r["is_error"] for r in results] == [False, False, False], results
        assert "hello from /thumb" in results[2]["result"]
        assert text_of(frames) == "It works: it says hello." and names(frames)[-1] == "message_end"
        assert c.get(f"/fn/{name}/x").json() == {"greeting": "hello from /x"}
