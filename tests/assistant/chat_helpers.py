"""What the assistant's chat tests share: a provider config on a real orvad pointing at the fake provider,
and an SSE reader that returns the frames of a stream in order (``: ping`` comments included)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.assistant.fake_provider import FakeProvider

Frames = list[tuple[str, Any]]
KEY = "sk-chat-test-key-7f3a9c"  # the fake provider's API key: must never come back from orvad
MODEL = "fake-model-1"


def add_provider(
    c: httpx.Client, fake: FakeProvider, kind: str = "anthropic", label: str | None = None
) -> str:
    """A provider config for the fake (its key set on both ends); returns its id."""
    fake.api_key = KEY
    url = fake.anthropic_url if kind == "anthropic" else fake.openai_url
    r = c.post(
        "/api/v1/ai/providers",
        json={"kind": kind, "label": label or f"fake-{kind}-{fake.port}", "base_url": url, "api_key": KEY},
    )
    assert r.status_code in (200, 201), r.text
    return str(r.json()["id"])


def settings(c: httpx.Client, **values: Any) -> dict[str, Any]:
    r = c.put("/api/v1/ai/settings", json=values)
    assert r.status_code == 200, r.text
    return dict(r.json())


def sse(
    c: httpx.Client,
    method: str,
    url: str,
    body: Any = None,
    *,
    until: Callable[[Frames], bool] | None = None,
    timeout_s: float = 60.0,
) -> tuple[httpx.Response, Frames]:
    """Read an SSE answer into (event, data) frames, ("ping", text) for a comment; stop at its end or
    once ``until(frames)`` holds (the connection is then closed: a client that went away)."""
    frames: Frames = []
    end = time.monotonic() + timeout_s
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    with c.stream(method, url, timeout=timeout_s, **kwargs) as r:
        if r.status_code != 200:
            r.read()
            return r, frames
        assert r.headers["content-type"].startswith("text/event-stream")
        event, data = "", []
        for line in r.iter_lines():
            assert time.monotonic() < end, f"the stream ran past {timeout_s} s: {frames}"
            if line.startswith(":"):
                frames.append(("ping", line[1:].strip()))
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and event:
                frames.append((event, json.loads("\n".join(data))))
                event, data = "", []
            if until is not None and until(frames):
                break
    return r, frames


def names(frames: Frames, pings: bool = False) -> list[str]:
    return [e for e, _ in frames if pings or e != "ping"]


def of(frames: Frames, event: str) -> list[Any]:
    return [d for e, d in frames if e == event]


def text_of(frames: Frames) -> str:
    return "".join(d["text"] for d in of(frames, "delta"))
