"""A streaming LLM relay: takes {"prompt": "..."} or {"messages": [...]}, calls an OpenAI-compatible
chat completions endpoint with stream=true, and relays the server-sent events to the client as they come
(or, with ?format=text, only the text of each delta). The API key stays on the server.

    orva secrets set NAME OPENAI_API_KEY
    orva functions update NAME --env OPENAI_BASE_URL=https://api.openai.com/v1 --env OPENAI_MODEL=gpt-4o-mini
The function needs network_mode egress to reach the endpoint.
"""

import json
import os
import urllib.error
import urllib.request

ROLES = ("system", "user", "assistant")


def failed(status, message, **extra):
    yield {"statusCode": status, "headers": {"content-type": "application/json"}}
    yield {"error": message, **extra}


def messages_of(body):
    """The chat messages the request asks for, or None when they are not usable."""
    if isinstance(body.get("prompt"), str) and body["prompt"].strip():
        return [{"role": "user", "content": body["prompt"]}]
    messages = body.get("messages")
    if not isinstance(messages, list) or not 0 < len(messages) <= 100:
        return None
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return None
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def upstream_request(body, messages):
    base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
    payload = {"model": os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), "messages": messages, "stream": True}
    for field in ("temperature", "max_tokens"):
        if isinstance(body.get(field), (int, float)) and not isinstance(body.get(field), bool):
            payload[field] = body[field]
    return urllib.request.Request(
        base + "/chat/completions",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={
            "content-type": "application/json",
            "accept": "text/event-stream",
            "authorization": "Bearer " + os.environ.get("OPENAI_API_KEY", ""),
        },
    )


def text_of(line):
    """The text delta of one SSE line ("data: {...}"), "" for anything else; None at "data: [DONE]"."""
    if not line.startswith(b"data:"):
        return ""
    data = line[5:].strip()
    if data == b"[DONE]":
        return None
    try:
        choice = json.loads(data)["choices"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        return ""
    return (choice.get("delta") or {}).get("content") or ""


def handler(event, context):
    if event["method"] != "POST":
        yield from failed(405, 'POST {"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}')
        return
    if not os.environ.get("OPENAI_API_KEY"):
        yield from failed(500, "OPENAI_API_KEY is not set: orva secrets set NAME OPENAI_API_KEY")
        return
    try:
        body = json.loads(event["body"] or "{}")
    except ValueError:
        body = None
    messages = messages_of(body) if isinstance(body, dict) else None
    if messages is None:
        yield from failed(422, 'send {"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]}')
        return
    text_only = event["query"].get("format") == "text"
    seconds = max(1.0, context.get_remaining_time_in_millis() / 1000 - 1)
    try:
        upstream = urllib.request.urlopen(upstream_request(body, messages), timeout=seconds)
    except urllib.error.HTTPError as err:
        yield from failed(
            502, f"the model endpoint answered {err.code}", detail=err.read(2000).decode(errors="replace")
        )
        return
    except (urllib.error.URLError, OSError) as err:
        yield from failed(502, f"cannot reach the model endpoint: {err}")
        return
    with upstream:
        content_type = "text/plain; charset=utf-8" if text_only else "text/event-stream"
        yield {"statusCode": 200, "headers": {"content-type": content_type, "cache-control": "no-cache"}}
        for line in upstream:  # one SSE line at a time, as the endpoint sends them
            if not text_only:
                yield line
                continue
            text = text_of(line)
            if text is None:
                break
            if text:
                yield text
