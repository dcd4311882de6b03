"""/api/v1/ai: the assistant's chat (SSE), conversations, messages, tool-call approvals and settings
(issue 22). Every path needs admin (orvad/auth/guard.py). The providers' paths are in ai_providers.py.

The streaming answers (chat, regenerate, edit, approve, reject, and the re-attach stream) follow the
conversation's running turn (orvad/assistant/stream.py) as Server-Sent Events: ``event: <name>`` with a
JSON ``data:`` line, and ``: ping`` after ORVA_AI_PING_S of silence. The turn does not depend on the
connection: a client that goes away and comes back reads ``messages?since_seq=`` and re-attaches."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, int_param, principal_of, read_object
from orvad.assistant.providers import THINKING_LEVELS
from orvad.assistant.stream import Live, nothing
from orvad.assistant.turn import Operator
from orvad.errors import Unauthorized, ValidationError

API = "/api/v1/ai"
MAX_CONTENT = 100_000  # characters of one message
MAX_TITLE = 200
_OVERRIDES = ("provider_id", "model", "thinking")


def _operator(request: Request) -> Operator:
    principal = principal_of(request)
    client = request.client.host if request.client else ""
    request_id = request.scope.get("state", {}).get("request_id")
    if principal is not None and principal.key is not None:
        return Operator(principal.key.id, principal.key.name, client, request_id)
    if principal is not None and principal.session is not None:
        user = principal.session.user
        return Operator(user.id, user.username, client, request_id)
    raise Unauthorized("authentication required")  # the guard let no one else through


def _content(body: dict[str, Any]) -> str:
    value = body.get("content")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CONTENT:
        raise ValidationError(
            f"content must be a non-empty string of at most {MAX_CONTENT} characters",
            details={"field": "content"},
            hint="send the message's text as content",
        )
    return value


def _overrides(body: dict[str, Any]) -> dict[str, Any]:
    """provider_id, model and thinking of a message (present: a value, never null)."""
    out: dict[str, Any] = {}
    for name in ("provider_id", "model"):
        if name in body:
            value = body[name]
            if not isinstance(value, str) or not 1 <= len(value) <= 256:
                raise ValidationError(
                    f"{name} must be a string of 1..256 characters",
                    details={"field": name},
                    hint=f"list providers with GET {API}/providers and a provider's models with "
                    f"GET {API}/providers/<provider id>/models",
                )
            out[name] = value
    if "thinking" in body:
        if body["thinking"] not in THINKING_LEVELS:
            raise ValidationError(
                f"thinking must be one of {', '.join(THINKING_LEVELS)}",
                details={"field": "thinking"},
                hint="send thinking as off, low, medium or high",
            )
        out["thinking"] = body["thinking"]
    return out


async def _optional_object(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    return await read_object(request, allowed) if await request.body() else {}


def _stream(request: Request, live: Live | None, conv_id: str) -> Response:
    ping_s = daemon_of(request).settings.ai_ping_s
    frames_of = live.follow(ping_s) if live is not None else nothing()

    async def frames() -> AsyncIterator[dict[str, str]]:
        async for event, data in frames_of:
            if not event:
                yield {"comment": "ping"}
            else:
                yield {"event": event, "data": json.dumps(data)}

    return EventSourceResponse(
        frames(),
        ping=0,  # our own `: ping`, after each silence (orvad/assistant/stream.py)
        sep="\n",
        headers={"Cache-Control": "no-store", "X-Orva-Conversation-Id": conv_id},
    )


async def chat(request: Request) -> Response:
    """Send a message (to a new conversation without conversation_id) and stream the turn."""
    body = await read_object(request, ("conversation_id", "content", *_OVERRIDES))
    content = _content(body)
    overrides = _overrides(body)
    conv_id = body.get("conversation_id")
    if "conversation_id" in body and (not isinstance(conv_id, str) or not conv_id):
        raise ValidationError(
            "conversation_id must be a conversation's id",
            details={"field": "conversation_id"},
            hint=f"leave it out to start a conversation; list them with GET {API}/conversations",
        )
    service = daemon_of(request).assistant
    conv_id, live = await service.chat(_operator(request), conv_id, content, overrides)
    return _stream(request, live, conv_id)


async def list_conversations(request: Request) -> Response:
    """Conversations, most recently updated first (?archived=true|false, ?limit=, ?cursor=)."""
    raw = request.query_params.get("archived")
    if raw not in (None, "true", "false"):
        raise ValidationError("archived must be true or false", details={"field": "archived"})
    limit = int_param(request, "limit", 50, 1, 500)
    service = daemon_of(request).assistant
    rows, cursor = await service.list_conversations(
        None if raw is None else raw == "true", request.query_params.get("cursor") or None, limit
    )
    return JSONResponse(
        {"conversations": [service.conversation_json(r) for r in rows], "next_cursor": cursor}
    )


def _title(body: dict[str, Any]) -> str | None:
    if "title" not in body:
        return None
    title = body["title"]
    if not isinstance(title, str) or len(title) > MAX_TITLE:
        raise ValidationError(
            f"title must be a string of at most {MAX_TITLE} characters",
            details={"field": "title"},
            hint="send a shorter title",
        )
    return title


async def create_conversation(request: Request) -> Response:
    """An empty conversation (optionally titled, with its provider and model)."""
    body = await _optional_object(request, ("title", "provider_id", "model"))
    overrides = _overrides(body)
    service = daemon_of(request).assistant
    conv = await service.create(_title(body) or "", overrides.get("provider_id"), overrides.get("model"))
    return JSONResponse(
        {**service.conversation_json(conv), "messages": []},
        status_code=201,
        headers={"Location": f"{API}/conversations/{conv['id']}"},
    )


async def get_conversation(request: Request) -> Response:
    """One conversation with its whole timeline: every message with its tool calls."""
    service = daemon_of(request).assistant
    conv = await service.conversation(request.path_params["id"])
    return JSONResponse({**service.conversation_json(conv), "messages": await service.timeline(conv["id"])})


async def patch_conversation(request: Request) -> Response:
    """Rename ({"title"}) or archive ({"archived": true}) a conversation."""
    body = await read_object(request, ("title", "archived"))
    fields: dict[str, Any] = {}
    title = _title(body)
    if title is not None:
        fields["title"] = title
    if "archived" in body:
        if not isinstance(body["archived"], bool):
            raise ValidationError("archived must be true or false", details={"field": "archived"})
        fields["archived"] = int(body["archived"])
    service = daemon_of(request).assistant
    conv = await service.update(request.path_params["id"], fields)
    return JSONResponse(service.conversation_json(conv))


async def delete_conversation(request: Request) -> Response:
    """Delete a conversation with all its messages and tool calls (a running turn is cancelled first)."""
    conv_id = request.path_params["id"]
    await daemon_of(request).assistant.delete(conv_id)
    return JSONResponse({"id": conv_id, "deleted": True})


async def messages(request: Request) -> Response:
    """The messages after ?since_seq= (0: all), each with its tool calls, and whether a turn runs."""
    since = int_param(request, "since_seq", 0, 0, 2**63 - 1)
    service = daemon_of(request).assistant
    conv = await service.conversation(request.path_params["id"])
    timeline = await service.timeline(conv["id"], since)
    return JSONResponse(
        {
            "conversation_id": conv["id"],
            "running": service.running(conv["id"]),
            "usage": {"input_tokens": conv["input_tokens"], "output_tokens": conv["output_tokens"]},
            "messages": timeline,
            "last_seq": timeline[-1]["seq"] if timeline else since,
        }
    )


async def stream(request: Request) -> Response:
    """Re-attach: the running turn's frames from its start, then live, until it ends; with no turn
    running, an empty stream that ends at once."""
    service = daemon_of(request).assistant
    conv = await service.conversation(request.path_params["id"])
    return _stream(request, service.live(conv["id"]), conv["id"])


async def regenerate(request: Request) -> Response:
    """Drop the reply after the last user message and stream a new one."""
    body = await _optional_object(request, _OVERRIDES)
    conv_id = request.path_params["id"]
    live = await daemon_of(request).assistant.regenerate(_operator(request), conv_id, _overrides(body))
    return _stream(request, live, conv_id)


async def edit_message(request: Request) -> Response:
    """Replace a user message's text, drop everything after it, stream the new turn."""
    body = await read_object(request, ("content",))
    conv_id = request.path_params["id"]
    live = await daemon_of(request).assistant.edit(
        _operator(request), conv_id, request.path_params["mid"], _content(body)
    )
    return _stream(request, live, conv_id)


async def delete_message(request: Request) -> Response:
    """Delete a message and every message and tool call after it."""
    conv_id = request.path_params["id"]
    count = await daemon_of(request).assistant.delete_message(conv_id, request.path_params["mid"])
    return JSONResponse({"conversation_id": conv_id, "deleted": count})


async def cancel(request: Request) -> Response:
    """Stop the running turn (or resolve the calls a paused one awaits as not run)."""
    conv_id = request.path_params["id"]
    cancelled = await daemon_of(request).assistant.cancel(conv_id)
    return JSONResponse({"conversation_id": conv_id, "cancelled": cancelled})


async def approve(request: Request) -> Response:
    """Approve a call awaiting approval: the turn resumes (the call runs) and streams."""
    conv_id, live = await daemon_of(request).assistant.approve(_operator(request), request.path_params["id"])
    return _stream(request, live, conv_id)


async def reject(request: Request) -> Response:
    """Reject a call awaiting approval: the model is told, the turn resumes and streams."""
    conv_id, live = await daemon_of(request).assistant.reject(_operator(request), request.path_params["id"])
    return _stream(request, live, conv_id)


async def get_settings(request: Request) -> Response:
    """The assistant's settings: default provider and model, thinking, approval policy, tool-step cap."""
    return JSONResponse(await daemon_of(request).assistant.settings())


async def put_settings(request: Request) -> Response:
    """Change the settings (the fields sent; the others stay)."""
    body = await read_object(
        request, ("provider_id", "model", "thinking", "approval_policy", "max_tool_steps")
    )
    return JSONResponse(await daemon_of(request).assistant.update_settings(body))


routes = [
    Route(f"{API}/chat", chat, methods=["POST"]),
    Route(f"{API}/conversations", list_conversations, methods=["GET"]),
    Route(f"{API}/conversations", create_conversation, methods=["POST"]),
    Route(f"{API}/conversations/{{id}}", get_conversation, methods=["GET"]),
    Route(f"{API}/conversations/{{id}}", patch_conversation, methods=["PATCH"]),
    Route(f"{API}/conversations/{{id}}", delete_conversation, methods=["DELETE"]),
    Route(f"{API}/conversations/{{id}}/messages", messages, methods=["GET"]),
    Route(f"{API}/conversations/{{id}}/stream", stream, methods=["GET"]),
    Route(f"{API}/conversations/{{id}}/regenerate", regenerate, methods=["POST"]),
    Route(f"{API}/conversations/{{id}}/cancel", cancel, methods=["POST"]),
    Route(f"{API}/conversations/{{id}}/messages/{{mid}}/edit", edit_message, methods=["POST"]),
    Route(f"{API}/conversations/{{id}}/messages/{{mid}}", delete_message, methods=["DELETE"]),
    Route(f"{API}/tool-calls/{{id}}/approve", approve, methods=["POST"]),
    Route(f"{API}/tool-calls/{{id}}/reject", reject, methods=["POST"]),
    Route(f"{API}/settings", get_settings, methods=["GET"]),
    Route(f"{API}/settings", put_settings, methods=["PUT"]),
]
