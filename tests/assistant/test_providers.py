"""The provider adapters (orvad/assistant/providers.py) over the real SDKs against the fake provider server, and
provider configs over HTTP (orvad/api/ai_providers.py) on a real orvad: keys sealed, never shown, never logged."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import select
import subprocess
import sys
import termios
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from orvad.assistant.providers import (
    AnthropicChatModel,
    ChatMessage,
    ChatModel,
    OpenAIChatModel,
    Stop,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolSpec,
    Usage,
    chat_model,
)
from orvad.errors import ProviderError
from tests.assistant.fake_provider import (
    FakeProvider,
    delay,
    drop,
    error_mid_stream,
    http_error,
    stop,
    text,
    thinking,
    tool_call,
    usage,
)
from tests.cli.test_cli import Cli, error_line
from tests.helpers import Orvad, free_port, wait_for

KEY = "sk-test-0123456789-abcd"
TOOLS = [
    ToolSpec(
        "create_function",
        "Create a function",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    )
]


_OPEN: list[ChatModel] = []


@pytest.fixture(autouse=True)
async def _close_models() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().aclose()


def _model(kind: str, fake: FakeProvider, key: str | None = KEY) -> ChatModel:
    url = fake.anthropic_url if kind == "anthropic" else fake.openai_url
    model = chat_model(
        kind, provider_id="prv_test", label="my-fake", api_key=key, base_url=url, max_retries=0
    )
    _OPEN.append(model)
    return model


async def _collect(model: ChatModel, messages: list[ChatMessage] | None = None, **kw: Any) -> list[Any]:
    out = []
    async for event in model.stream(
        model="fake-model-1",
        system=kw.pop("system", "You are Orva's assistant."),
        messages=messages or [ChatMessage("user", "hello")],
        tools=kw.pop("tools", TOOLS),
        thinking=kw.pop("thinking", "off"),
    ):
        out.append(event)
    return out


def _text(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


KINDS = ["anthropic", "openai"]


@pytest.mark.parametrize("kind", KINDS)
async def test_plain_text_streams_in_pieces_then_usage_then_stop(
    fake_provider: FakeProvider, kind: str
) -> None:
    fake_provider.api_key = KEY
    fake_provider.script([text("Hello from the fake", pieces=4), usage(123, 45)])
    events = await _collect(_model(kind, fake_provider))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 3 and _text(events) == "Hello from the fake"
    assert events[-2:] == [Usage(123, 45), Stop("end")]
    (req,) = fake_provider.chat_requests()
    assert req.body["stream"] is True and req.body["model"] == "fake-model-1"
    if kind == "anthropic":
        assert req.path == "/v1/messages" and req.body["system"] == "You are Orva's assistant."
        assert req.body["tools"][0] == {
            "name": "create_function",
            "description": "Create a function",
            "input_schema": TOOLS[0].input_schema,
        }
        assert "thinking" not in req.body
    else:
        assert req.path == "/v1/chat/completions"
        assert req.body["messages"][0] == {"role": "system", "content": "You are Orva's assistant."}
        assert req.body["stream_options"] == {"include_usage": True}
        assert req.body["tools"][0]["function"]["parameters"] == TOOLS[0].input_schema
        assert "reasoning_effort" not in req.body
    # the key went where the SDK puts it, nowhere else in the request
    assert req.headers.get("authorization") == f"Bearer {KEY}" or req.headers.get("x-api-key") == KEY
    assert KEY.encode() not in req.raw


@pytest.mark.parametrize("kind", KINDS)
async def test_a_tool_call_with_arguments_split_across_deltas(fake_provider: FakeProvider, kind: str) -> None:
    args = {
        "name": "thumb",
        "code": "def handler(event):\n    return {'ok': True}\n",
        "n": [1, 2, {"x": None}],
    }
    fake_provider.script([text("I'll create it."), tool_call("create_function", args, pieces=7)])
    events = await _collect(_model(kind, fake_provider))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert len(calls) == 1 and calls[0].name == "create_function" and calls[0].arguments == args
    assert calls[0].id  # the provider's call id
    assert events[-1] == Stop("tool_use") and isinstance(events[-2], Usage)
    assert events.index(calls[0]) > max(i for i, e in enumerate(events) if isinstance(e, TextDelta))


@pytest.mark.parametrize("kind", KINDS)
async def test_two_tool_calls_come_out_in_order(fake_provider: FakeProvider, kind: str) -> None:
    fake_provider.script([tool_call("a_tool", {"i": 1}), tool_call("b_tool", {"i": 2}, pieces=5)])
    events = await _collect(_model(kind, fake_provider))
    assert [(c.name, c.arguments) for c in events if isinstance(c, ToolCall)] == [
        ("a_tool", {"i": 1}),
        ("b_tool", {"i": 2}),
    ]


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_results_go_back_in_the_providers_shape(fake_provider: FakeProvider, kind: str) -> None:
    fake_provider.script([text("Done.")])
    call = ToolCall("call_1", "create_function", {"name": "thumb"})
    history = [
        ChatMessage("user", "make thumb"),
        ChatMessage("assistant", "Creating.", tool_calls=(call,)),
        ChatMessage("tool", '{"id": "fn_1"}', tool_call_id="call_1"),
        ChatMessage("user", "thanks"),
    ]
    assert _text(await _collect(_model(kind, fake_provider), history)) == "Done."
    sent = fake_provider.chat_requests()[0].body["messages"]
    if kind == "anthropic":
        assert sent[1] == {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Creating."},
                {"type": "tool_use", "id": "call_1", "name": "create_function", "input": {"name": "thumb"}},
            ],
        }
        # the tool result and the next user text share one user message (the API wants roles to alternate)
        assert sent[2] == {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "call_1",
                    "content": '{"id": "fn_1"}',
                    "is_error": False,
                },
                {"type": "text", "text": "thanks"},
            ],
        }
    else:
        assert sent[2]["tool_calls"] == [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "create_function", "arguments": '{"name": "thumb"}'},
            }
        ]
        assert sent[3] == {"role": "tool", "tool_call_id": "call_1", "content": '{"id": "fn_1"}'}
        assert sent[4] == {"role": "user", "content": "thanks"}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_call_left_without_a_result_gets_an_error_result(
    fake_provider: FakeProvider, kind: str
) -> None:
    """A cancelled call (no tool message) would make both APIs refuse the history: it is answered as not run."""
    fake_provider.script([text("ok")])
    history = [
        ChatMessage("user", "go"),
        ChatMessage("assistant", "", tool_calls=(ToolCall("c9", "delete_function", {"id": "x"}),)),
        ChatMessage("user", "never mind"),
    ]
    await _collect(_model(kind, fake_provider), history)
    sent = str(fake_provider.chat_requests()[0].body["messages"])
    assert "the call was not run" in sent and "c9" in sent


async def test_anthropic_thinking_adaptive_or_budget_by_what_the_model_takes(
    fake_provider: FakeProvider,
) -> None:
    model = _model("anthropic", fake_provider)
    fake_provider.script([thinking("Let me think.", signature="sig-1"), text("Answer.")])
    events = await _collect(model, thinking="medium")
    assert "".join(e.text for e in events if isinstance(e, ThinkingDelta)) == "Let me think."
    assert ThinkingDelta("", signature="sig-1") in events
    assert _text(events) == "Answer."
    body = fake_provider.chat_requests()[0].body
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body["output_config"] == {"effort": "medium"}
    # a model that takes only the budget form (read from GET /v1/models/{id}) gets a budget by level
    fake_provider.thinking_types = {
        "adaptive": False,
        "enabled": True,
        "disabled": True,
        "between_tools": False,
    }
    budget_model = _model("anthropic", fake_provider)
    fake_provider.script([text("Fine.")])
    await _collect(budget_model, thinking="high")
    body = fake_provider.chat_requests()[1].body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 24576}
    assert body["max_tokens"] > body["thinking"]["budget_tokens"] and "output_config" not in body


async def test_anthropic_thinking_goes_back_signed_in_a_tool_loop(fake_provider: FakeProvider) -> None:
    call = ToolCall("toolu_1", "list_functions", {})
    signed = [
        ChatMessage("user", "list"),
        ChatMessage(
            "assistant", "", tool_calls=(call,), thinking="I should list.", thinking_signature="sig-9"
        ),
        ChatMessage("tool", "[]", tool_call_id="toolu_1"),
    ]
    fake_provider.script([text("None yet.")], [text("None yet.")])
    await _collect(_model("anthropic", fake_provider), signed, thinking="low")
    body = fake_provider.chat_requests()[0].body
    assert body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "I should list.",
        "signature": "sig-9",
    }
    assert "thinking" in body
    # without the signature the loop cannot go on thinking: that request goes without
    unsigned = [signed[0], ChatMessage("assistant", "", tool_calls=(call,)), signed[2]]
    await _collect(_model("anthropic", fake_provider), unsigned, thinking="low")
    assert "thinking" not in fake_provider.chat_requests()[1].body


async def test_openai_reasoning_is_thinking_and_effort_is_sent(fake_provider: FakeProvider) -> None:
    fake_provider.script([thinking("pondering"), text("42")])
    events = await _collect(_model("openai", fake_provider), thinking="low")
    assert "".join(e.text for e in events if isinstance(e, ThinkingDelta)) == "pondering"
    assert _text(events) == "42"
    assert fake_provider.chat_requests()[0].body["reasoning_effort"] == "low"


@pytest.mark.parametrize("kind", KINDS)
async def test_max_tokens_stop(fake_provider: FakeProvider, kind: str) -> None:
    fake_provider.script([text("cut"), stop("max_tokens" if kind == "anthropic" else "length")])
    assert (await _collect(_model(kind, fake_provider)))[-1] == Stop("max_tokens")


@pytest.mark.parametrize("kind", KINDS)
async def test_an_http_error_is_a_provider_error_naming_the_label(
    fake_provider: FakeProvider, kind: str
) -> None:
    fake_provider.script([http_error(400, "messages: bad shape")])
    with pytest.raises(ProviderError) as info:
        await _collect(_model(kind, fake_provider))
    err = info.value
    assert err.status == 502 and err.code == "PROVIDER_ERROR"
    assert "my-fake" in err.message and "HTTP 400" in err.message and "messages: bad shape" in err.message
    assert err.hint is not None and "my-fake" in err.hint and "/api/v1/ai/providers/prv_test/test" in err.hint
    assert err.details == {"provider": "my-fake", "provider_id": "prv_test", "status": 400}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_wrong_key_is_a_401_provider_error_without_the_key(
    fake_provider: FakeProvider, kind: str
) -> None:
    fake_provider.api_key = KEY
    wrong = "sk-wrong-key-never-shown-9999"
    fake_provider.script([text("unreached")])
    with pytest.raises(ProviderError) as info:
        await _collect(_model(kind, fake_provider, key=wrong))
    assert "HTTP 401" in info.value.message
    assert wrong not in str(info.value.envelope("r")) and KEY not in str(info.value.envelope("r"))
    with pytest.raises(ProviderError):
        await _model(kind, fake_provider, key=wrong).models()


@pytest.mark.parametrize("kind", KINDS)
async def test_an_error_mid_stream_is_a_provider_error(fake_provider: FakeProvider, kind: str) -> None:
    fake_provider.script([text("Starting"), error_mid_stream("Overloaded")])
    seen: list[Any] = []
    with pytest.raises(ProviderError) as info:
        async for event in _model(kind, fake_provider).stream(
            model="fake-model-1", system="", messages=[ChatMessage("user", "hi")], tools=[], thinking="off"
        ):
            seen.append(event)
    assert _text(seen) == "Starting"  # what came before the error was streamed
    assert "mid-stream" in info.value.message and "Overloaded" in info.value.message


@pytest.mark.parametrize("kind", KINDS)
async def test_a_broken_stream_is_a_provider_error(fake_provider: FakeProvider, kind: str) -> None:
    fake_provider.script([text("Half"), drop()])
    with pytest.raises(ProviderError) as info:
        await _collect(_model(kind, fake_provider))
    assert "broke off" in info.value.message


@pytest.mark.parametrize("kind", KINDS)
async def test_nothing_listening_is_a_provider_error(kind: str) -> None:
    url = f"http://127.0.0.1:{free_port()}" + ("/v1" if kind == "openai" else "")
    model = chat_model(kind, provider_id="p", label="gone", api_key=None, base_url=url, max_retries=0)
    _OPEN.append(model)
    with pytest.raises(ProviderError) as info:
        await model.models()
    assert "could not connect" in info.value.message and "gone" in info.value.message


@pytest.mark.parametrize("kind", KINDS)
async def test_models_lists_what_the_endpoint_serves(fake_provider: FakeProvider, kind: str) -> None:
    fake_provider.models = ["m-a", "m-b", "m-c"]
    assert await _model(kind, fake_provider).models() == ["m-a", "m-b", "m-c"]


async def test_a_keyless_openai_endpoint_needs_no_key(fake_provider: FakeProvider) -> None:
    """A local Ollama takes no key: the adapter starts without one (and reads none from the environment)."""
    fake_provider.script([text("local")])
    assert _text(await _collect(_model("openai", fake_provider, key=None))) == "local"


@pytest.mark.parametrize("kind", KINDS)
async def test_a_key_the_provider_echoes_is_scrubbed_from_the_error(
    fake_provider: FakeProvider, kind: str
) -> None:
    fake_provider.script([http_error(401, f"Incorrect API key provided: {KEY}")])
    with pytest.raises(ProviderError) as info:
        await _collect(_model(kind, fake_provider))
    assert "[key]" in info.value.message and KEY not in str(info.value.envelope("r"))


async def test_a_keyless_anthropic_endpoint_reads_no_key_from_the_environment(
    fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """orvad's environment may hold ANTHROPIC_API_KEY / OPENAI_API_KEY for something else: never sent."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env-anthropic-never-sent")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-openai-never-sent")
    fake_provider.script([text("hi")], [text("hi")])
    for kind in KINDS:
        assert _text(await _collect(_model(kind, fake_provider, key=None))) == "hi"
    for req in fake_provider.requests:
        assert "never-sent" not in str(req.headers), req.headers


async def test_a_slow_start_streams_when_it_comes(fake_provider: FakeProvider) -> None:
    fake_provider.script([delay(0.3), text("late")])
    events = await asyncio.wait_for(_collect(_model("anthropic", fake_provider)), 10)
    assert _text(events) == "late"


async def test_adapters_are_chat_models() -> None:
    for cls in (AnthropicChatModel, OpenAIChatModel):
        model: ChatModel = cls(provider_id="p", label="l", api_key="k", base_url="http://127.0.0.1:9")
        _OPEN.append(model)
        assert callable(model.stream) and callable(model.models)


# ---- provider configs over HTTP on a real orvad ------------------------------------------------------------

PROVIDERS = "/api/v1/ai/providers"


def _no_key_in(text: str, *keys: str) -> None:
    for key in keys:
        assert key not in text, "an API key leaked"


def _dump(server: Orvad) -> str:
    """Everything the database holds (orva.db and its WAL on SQLite, pg_dump's text on PostgreSQL) as one
    string."""
    return server.database_bytes().decode("latin-1")


def _no_key_stored(dump: str, *keys: str) -> None:
    """Neither as text nor as bytes: pg_dump writes a BYTEA column as hex, so a key stored as raw bytes
    shows there only as its hex."""
    _no_key_in(dump, *keys, *(key.encode().hex() for key in keys))


def test_provider_crud_never_shows_stores_or_logs_the_key(
    make_orvad: Any, fake_provider: FakeProvider
) -> None:
    server: Orvad = make_orvad()
    second_key = "sk-second-key-5678-wxyz"
    with server.admin() as c:
        r = c.post(PROVIDERS, json={"kind": "anthropic", "label": "claude", "api_key": f"  {KEY}\n"})
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["kind"] == "anthropic" and created["label"] == "claude" and created["base_url"] is None
        assert created["has_key"] is True and created["key_hint"] == KEY[-4:]
        assert set(created) == {
            "id",
            "kind",
            "label",
            "base_url",
            "has_key",
            "key_hint",
            "created_at",
            "updated_at",
        }
        pid = created["id"]
        # upsert by label: the base_url changes, the key (not sent) is kept
        r = c.post(PROVIDERS, json={"label": "claude", "base_url": fake_provider.anthropic_url + "/"})
        assert r.status_code == 200 and r.json()["id"] == pid, r.text
        assert r.json()["base_url"] == fake_provider.anthropic_url and r.json()["has_key"] is True
        # upsert by id: a new label and a new key
        r = c.post(PROVIDERS, json={"id": pid, "label": "claude-work", "api_key": second_key})
        assert r.status_code == 200 and r.json()["label"] == "claude-work", r.text
        assert r.json()["key_hint"] == "wxyz"
        # a keyless local endpoint (an Ollama, say), with the seed's field names
        r = c.post(
            PROVIDERS, json={"kind": "openai", "label": "local", "base_url": "http://127.0.0.1:11434/v1"}
        )
        assert r.status_code == 201 and r.json()["has_key"] is False and r.json()["key_hint"] is None
        local = r.json()["id"]
        listed = c.get(PROVIDERS).json()["providers"]
        assert [p["label"] for p in listed] == ["claude-work", "local"]
        assert c.get(f"{PROVIDERS}/claude-work").json()["id"] == pid  # by label too
        assert c.get(f"{PROVIDERS}/{pid}").json()["label"] == "claude-work"
        # the key works: the fake provider checks it (it was opened from its sealed form)
        fake_provider.api_key = second_key
        r = c.post(f"{PROVIDERS}/{pid}/test")
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        # a short key gets no hint (4 characters would be half of it); null removes the key
        r = c.post(PROVIDERS, json={"id": local, "api_key": "abc123"})
        assert r.json()["has_key"] is True and r.json()["key_hint"] is None
        r = c.post(PROVIDERS, json={"id": local, "api_key": None})
        assert r.json()["has_key"] is False
        seen = [r.text for r in (c.get(PROVIDERS), c.get(f"{PROVIDERS}/{pid}"))]
        r = c.delete(f"{PROVIDERS}/{local}")
        assert r.status_code == 200 and r.json() == {"id": local, "deleted": True}
        assert c.get(f"{PROVIDERS}/{local}").status_code == 404
        assert c.get("/api/v1/openapi.json").status_code == 200
        audit = c.get("/api/v1/audit-log").text
    for answer in [repr(created), *seen, audit]:
        _no_key_in(answer, KEY, second_key)
    # never in plaintext in the database (nor in its WAL), never in orvad's log output
    assert server.stop() == 0
    _no_key_stored(_dump(server), KEY, second_key, "abc123")
    _no_key_in(server.stdout() + server.stderr(), KEY, second_key, "abc123")
    # ... but sealed there: a nonce and a ciphertext of the key's length plus the GCM tag
    [(nonce, sealed)] = server.sql("SELECT key_nonce, key_sealed FROM ai_providers WHERE id = ?", (pid,))
    assert isinstance(nonce, bytes) and isinstance(sealed, bytes)
    assert len(nonce) == 12 and len(sealed) == len(second_key) + 16


@pytest.mark.parametrize("kind", KINDS)
def test_models_and_test_connection_against_the_fake(
    make_orvad: Any, fake_provider: FakeProvider, kind: str
) -> None:
    server: Orvad = make_orvad()
    fake_provider.api_key = KEY
    fake_provider.models = ["fake-small", "fake-large"]
    url = fake_provider.anthropic_url if kind == "anthropic" else fake_provider.openai_url
    with server.admin() as c:
        pid = c.post(PROVIDERS, json={"kind": kind, "label": "fake", "base_url": url, "api_key": KEY}).json()[
            "id"
        ]
        r = c.get(f"{PROVIDERS}/{pid}/models")
        assert r.status_code == 200 and r.json() == {
            "provider_id": pid,
            "models": ["fake-small", "fake-large"],
        }
        r = c.post(f"{PROVIDERS}/{pid}/test", json={})
        body = r.json()
        assert r.status_code == 200 and body["ok"] is True and body["models"] == ["fake-small", "fake-large"]
        assert isinstance(body["latency_ms"], float | int) and "model" not in body
        # with a model: a short request to it too
        fake_provider.script([text("OK")])
        body = c.post(f"{PROVIDERS}/fake/test", json={"model": "fake-small"}).json()
        assert body["model"]["name"] == "fake-small" and body["model"]["reply"] == "OK"
        assert body["model"]["stop_reason"] == "end"
        sent = fake_provider.chat_requests()[-1].body
        assert sent["model"] == "fake-small" and "tools" not in sent
        # a wrong key: the provider's 401 as a 502 PROVIDER_ERROR naming the label, no key in it
        c.post(PROVIDERS, json={"id": pid, "api_key": "sk-wrong-0000-1111"})
        for r in (c.post(f"{PROVIDERS}/{pid}/test"), c.get(f"{PROVIDERS}/{pid}/models")):
            assert r.status_code == 502, r.text
            err = r.json()["error"]
            assert (
                err["code"] == "PROVIDER_ERROR"
                and "'fake'" in err["message"]
                and "HTTP 401" in err["message"]
            )
            assert "fake" in err["hint"] and f"/api/v1/ai/providers/{pid}/test" in err["hint"]
            assert err["details"]["status"] == 401 and err["details"]["provider_id"] == pid
            _no_key_in(r.text, KEY, "sk-wrong-0000-1111")
        # nothing listening there
        c.post(PROVIDERS, json={"id": pid, "base_url": f"http://127.0.0.1:{free_port()}"})
        r = c.post(f"{PROVIDERS}/{pid}/test")
        assert r.status_code == 502 and "could not connect" in r.json()["error"]["message"]
    # every request carried the key only in its auth header
    for req in fake_provider.requests:
        assert KEY.encode() not in req.raw
    _no_key_in(server.stdout() + server.stderr(), KEY)


def test_provider_paths_need_admin(orvad: Orvad) -> None:
    with orvad.admin() as admin:
        made = admin.post("/api/v1/keys", json={"name": "ai-rw", "permissions": ["read", "write", "invoke"]})
        assert made.status_code == 201, made.text
        key = made.json()["key"]
    with orvad.client(key) as c:
        for method, path in [
            ("GET", PROVIDERS),
            ("POST", PROVIDERS),
            ("GET", f"{PROVIDERS}/x"),
            ("DELETE", f"{PROVIDERS}/x"),
            ("GET", f"{PROVIDERS}/x/models"),
            ("POST", f"{PROVIDERS}/x/test"),
        ]:
            r = c.request(
                method, path, json={"kind": "openai", "label": "nope"} if method == "POST" else None
            )
            assert r.status_code == 403, (method, path, r.text)
    with orvad.client() as anonymous:
        assert anonymous.get(PROVIDERS).status_code == 401


BAD = [
    ({"kind": "gemini", "label": "g"}, "kind"),
    ({"kind": "openai", "label": ""}, "label"),
    ({"kind": "openai", "label": "   "}, "label"),
    ({"kind": "openai", "label": "x" * 65}, "label"),
    ({"kind": "openai", "label": "a\nb"}, "label"),
    ({"kind": "openai", "label": "a/b"}, "label"),
    ({"kind": "openai", "label": "b", "base_url": "ftp://files.example/v1"}, "base_url"),
    ({"kind": "openai", "label": "b", "base_url": "http://user:pw@127.0.0.1/v1"}, "base_url"),
    ({"kind": "openai", "label": "b", "base_url": "127.0.0.1:11434"}, "base_url"),
    ({"kind": "openai", "label": "b", "base_url": "http://127.0.0.1:99999/v1"}, "base_url"),
    ({"kind": "openai", "label": "b", "base_url": "http://h/v1?x=1"}, "base_url"),
    ({"kind": "openai", "label": "k", "api_key": "sk-a\nX-Evil: 1"}, "api_key"),
    ({"kind": "openai", "label": "k", "api_key": "sk a"}, "api_key"),
    ({"kind": "openai", "label": "k", "api_key": 5}, "api_key"),
    ({"label": "no-kind"}, "kind"),
    ({"kind": "openai"}, "label"),
]


def test_bad_input_is_400_with_hints(orvad: Orvad) -> None:
    with orvad.admin() as c:
        for body, field in BAD:
            r = c.post(PROVIDERS, json=body)
            assert r.status_code == 400, (body, r.text)
            err = r.json()["error"]
            assert err["code"] == "VALIDATION" and err["details"]["field"] == field and err["hint"], (
                body,
                err,
            )
            assert "X-Evil" not in r.text and "sk a" not in r.text  # a refused key is not echoed
        r = c.post(PROVIDERS, json={"kind": "openai", "label": "b", "secret": "x"})
        assert r.status_code == 400 and "allowed fields" in r.json()["error"]["hint"]
        r = c.post(PROVIDERS, content=b"{not json")
        assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_JSON"
        r = c.post(PROVIDERS, json={"id": "no-such-provider", "label": "x"})
        assert r.status_code == 404 and "GET /api/v1/ai/providers" in r.json()["error"]["hint"]
        for path in (f"{PROVIDERS}/nope", f"{PROVIDERS}/nope/models"):
            assert c.get(path).status_code == 404
        assert c.delete(f"{PROVIDERS}/nope").status_code == 404
        assert c.post(f"{PROVIDERS}/nope/test").status_code == 404
        a = c.post(PROVIDERS, json={"kind": "openai", "label": "bad-input-a"}).json()
        c.post(PROVIDERS, json={"kind": "openai", "label": "bad-input-b"})
        r = c.post(PROVIDERS, json={"id": a["id"], "label": "bad-input-b"})
        assert r.status_code == 409 and "another label" in r.json()["error"]["hint"]
        r = c.post(f"{PROVIDERS}/{a['id']}/test", json={"model": 5})
        assert r.status_code == 400 and f"{PROVIDERS}/{a['id']}/models" in r.json()["error"]["hint"]
        nothing_sent = c.get(PROVIDERS).json()["providers"]
        assert {p["label"] for p in nothing_sent} >= {"bad-input-a", "bad-input-b"}
        assert not {"g", "b", "k", "no-kind"} & {p["label"] for p in nothing_sent}


def test_a_sealed_key_opens_only_as_that_providers_key() -> None:
    """Own associated data: a provider key is no function secret, nor another provider's key (and the reverse)."""
    from orvad.assistant.provider_service import open_key, seal_key
    from orvad.sealing import Unsealable
    from orvad.services.secrets import open_sealed, seal

    master = os.urandom(32)
    nonce, sealed = seal_key(master, "prv_1", KEY)
    assert open_key(master, "prv_1", nonce, sealed) == KEY
    with pytest.raises(Unsealable):
        open_key(master, "prv_2", nonce, sealed)
    with pytest.raises(Unsealable):
        open_sealed(master, "prv_1", "", nonce, sealed)
    s_nonce, s_sealed = seal(master, "prv_1", "API_KEY", KEY)
    with pytest.raises(Unsealable):
        open_key(master, "prv_1", s_nonce, s_sealed)


def test_a_provider_key_survives_a_master_key_rotation(make_orvad: Any, fake_provider: FakeProvider) -> None:
    """orvad rotate-master-key re-seals the AI provider keys too (they share the master key)."""
    server: Orvad = make_orvad()
    fake_provider.api_key = KEY
    with server.admin() as c:
        made = c.post(
            PROVIDERS,
            json={"kind": "openai", "label": "rot", "base_url": fake_provider.openai_url, "api_key": KEY},
        )
        pid = made.json()["id"]
    assert server.stop() == 0
    old_master = (server.data_dir / "master.key").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "orvad", "rotate-master-key", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **server.database_env()},
    )
    assert done.returncode == 0 and "1 AI provider key(s)" in done.stdout, (done.stdout, done.stderr)
    assert (server.data_dir / "master.key").read_text() != old_master
    _no_key_in(done.stdout + done.stderr, KEY)
    again = server.start()  # the same data dir and database, restarted
    with again.admin() as c:
        r = c.post(f"{PROVIDERS}/{pid}/test")
        assert r.status_code == 200 and r.json()["ok"] is True, r.text  # the fake provider checked the key


# ---- the CLI: `orva ai providers ...` ----------------------------------------------------------------------


def _typed_at_a_terminal(cli: Cli, args: list[str], typed: str) -> str:
    """Run `orva ARGS` on a pseudo-terminal (its controlling one, so the hidden prompt really hides), type
    ``typed`` once the key prompt shows, and return everything the terminal displayed."""
    master, slave = os.openpty()

    def controlling_tty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        cli.argv(*args),
        env=cli.environ({"TERM": "dumb"}),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=controlling_tty,
    )
    os.close(slave)
    shown = b""
    typed_yet = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the other end closed: the command is done
                break
            if not chunk:
                break
            shown += chunk
        if not typed_yet and b"API key" in shown:
            os.write(master, typed.encode() + b"\r")
            typed_yet = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=30)
    os.close(master)
    assert typed_yet, shown
    assert proc.returncode == 0, shown
    return shown.decode(errors="replace")


def test_the_cli_manages_providers_and_never_echoes_a_key(
    make_orvad: Any, fake_provider: FakeProvider, tmp_path: Any
) -> None:
    server: Orvad = make_orvad()
    cli = Cli(tmp_path / "home")
    cli.home.mkdir()
    cli.ok("login", "--endpoint", server.url, "--api-key", server.admin_key)
    fake_provider.api_key = KEY
    fake_provider.models = ["fake-a", "fake-b"]
    # the key from stdin: never on the command line, never printed back
    r = cli.run(
        "ai", "providers", "add", "claude", "--kind", "anthropic", "--base-url", fake_provider.anthropic_url,
        "--key-stdin", input=KEY + "\n",
    )  # fmt: skip
    assert r.returncode == 0 and "saved provider claude" in r.stdout and KEY[-4:] in r.stdout, r.stderr
    _no_key_in(r.stdout + r.stderr, KEY)
    # a keyless local endpoint
    r = cli.run(
        "ai",
        "providers",
        "add",
        "local",
        "--kind",
        "openai",
        "--base-url",
        fake_provider.openai_url,
        "--no-key",
    )
    assert r.returncode == 0 and "no key" in r.stdout, r.stderr
    listed = cli.run("ai", "providers", "list")
    assert listed.returncode == 0 and "claude" in listed.stdout and "local" in listed.stdout
    assert f"…{KEY[-4:]}" in listed.stdout and "none" in listed.stdout
    _no_key_in(listed.stdout, KEY)
    as_json = json.loads(cli.run("ai", "providers", "list", "--json").stdout)
    assert {p["label"]: p["has_key"] for p in as_json} == {"claude": True, "local": False}
    models = cli.run("ai", "providers", "models", "claude")
    assert models.returncode == 0 and models.stdout.split() == ["fake-a", "fake-b"], models.stderr
    fake_provider.script([text("OK")])
    tested = cli.run("ai", "providers", "test", "claude", "--model", "fake-a")
    assert tested.returncode == 0 and "ok: claude answered" in tested.stdout and "2 model(s)" in tested.stdout
    assert "'OK'" in tested.stdout, tested.stdout
    # changing the base_url (add on an existing label) keeps the key
    r = cli.run("ai", "providers", "add", "claude", "--base-url", f"http://127.0.0.1:{free_port()}")
    assert r.returncode == 0 and KEY[-4:] in r.stdout, r.stderr
    # a failed test: exit 1 and the provider's error, its hint in orva's words
    failed = cli.run("ai", "providers", "test", "claude")
    assert failed.returncode != 0
    line = error_line(failed.stderr, "PROVIDER_ERROR")
    assert "claude" in line and "could not connect" in line and "orva ai providers test" in line, line
    assert "/api/v1/" not in line
    # bad input: VALIDATION naming the flag
    bad = cli.run("ai", "providers", "add", "x", "--kind", "openai", "--base-url", "ftp://nope")
    assert bad.returncode != 0 and "--base-url" in error_line(bad.stderr, "VALIDATION")
    gone = cli.run("ai", "providers", "remove", "local")
    assert gone.returncode == 0 and "removed provider local" in gone.stdout
    # a label with a space, ? and # still names it on the command line
    odd = cli.run(
        "ai", "providers", "add", "my claude? #2", "--kind", "anthropic", "--base-url", fake_provider.url,
        "--key-stdin", input=KEY,
    )  # fmt: skip
    assert odd.returncode == 0, odd.stderr
    assert cli.run("ai", "providers", "models", "my claude? #2").stdout.split() == ["fake-a", "fake-b"]
    assert cli.run("ai", "providers", "remove", "my claude? #2").returncode == 0
    missing = cli.run("ai", "providers", "test", "local")
    assert "orva ai providers list" in error_line(missing.stderr, "NOT_FOUND")
    # the hidden prompt on a terminal: the key is typed, not shown
    shown = _typed_at_a_terminal(cli, ["ai", "providers", "add", "typed", "--kind", "openai"], KEY)
    assert "saved provider typed" in shown and KEY[-4:] in shown
    _no_key_in(shown, KEY)
    with server.admin() as c:
        typed = c.get(f"{PROVIDERS}/typed").json()
        assert typed["has_key"] is True and typed["key_hint"] == KEY[-4:]
    _no_key_in(server.stdout() + server.stderr(), KEY)


async def test_test_connection_gives_up_after_its_deadline(
    tmp_path: Any, fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider that accepts but does not answer: test connection says so within TEST_TIMEOUT_S."""
    from orvad.assistant import provider_service
    from orvad.store.ai_providers import AiProviderStore
    from orvad.store.db import SqliteDatabase

    monkeypatch.setattr(provider_service, "TEST_TIMEOUT_S", 0.5)
    db = SqliteDatabase(tmp_path / "orva.db")
    await db.open()
    service = provider_service.ProviderService(AiProviderStore(db), max_retries=0)
    service.unlock(os.urandom(32))
    try:
        row, created = await service.upsert(kind="openai", label="slow", base_url=fake_provider.openai_url)
        assert created
        fake_provider.script([delay(3), text("late")])
        with pytest.raises(ProviderError) as info:
            await service.test(row.id, "fake-model-1")
        assert "did not answer as model 'fake-model-1' within" in info.value.message
        assert "slow" in info.value.message and info.value.hint and f"{row.id}/test" in info.value.hint
        assert (await service.test("slow"))["ok"] is True  # the model list alone answers in time
    finally:
        await service.aclose()
        await db.close()


def test_the_first_use_of_a_provider_does_not_stop_orvad(
    make_orvad: Any, fake_provider: FakeProvider
) -> None:
    """The SDKs are imported at a provider's first use (about 2.5 CPU-seconds, so not at every orvad's start), in a
    thread: meanwhile orvad answers other requests; on the event loop it answered none until the import ended."""
    server: Orvad = make_orvad()
    fake_provider.api_key = KEY
    fake_provider.models = ["fake-small"]
    answered: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as probing:
            while not done.is_set():
                assert probing.get("/health/live").status_code == 200
                answered.append(time.monotonic())

    with server.admin() as c:
        pid = c.post(
            PROVIDERS,
            json={
                "kind": "anthropic",
                "label": "fake",
                "base_url": fake_provider.anthropic_url,
                "api_key": KEY,
            },
        ).json()["id"]
        prober = threading.Thread(target=probe)
        prober.start()
        try:
            wait_for(lambda: len(answered) >= 5, 10, "the prober to be answered")
            started = time.monotonic()
            r = c.post(f"{PROVIDERS}/{pid}/test", json={})
            took = time.monotonic() - started
        finally:
            done.set()
            prober.join(30)
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    during = [t for t in answered if started <= t <= started + took]
    gaps = [b - a for a, b in zip([started, *during], [*during, started + took], strict=True)]
    print(
        f"first provider use {took:.2f} s: {len(during)} probes answered meanwhile, longest gap {max(gaps):.3f} s"
    )
    assert max(gaps) < 0.5, (took, max(gaps))
