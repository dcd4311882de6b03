"""AssistantService (``daemon.assistant``): the assistant's settings, conversations and turns.

A conversation has at most one turn running at a time (``TURN_RUNNING`` otherwise). Starting one (a
message, a regenerate, an edit, an approval or rejection that resumes a paused turn) claims the
conversation, stores what the operator asked, and runs orvad/assistant/turn.py as a background task; the
caller gets the run's ``Live`` to stream. A turn paused on calls awaiting approval has no task: the
approval starts the next run. At start, what a stopped orvad left mid-way is marked (``load``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from orvad.assistant.providers import THINKING_LEVELS
from orvad.assistant.stream import Live
from orvad.assistant.turn import (
    NOT_RUN_CANCELLED,
    NOT_RUN_NEW_MESSAGE,
    REJECTED,
    Operator,
    Run,
    Turn,
    TurnConfig,
    error_json,
)
from orvad.clock import now_iso
from orvad.errors import Conflict, NotFound, OrvaError, TurnInterrupted, TurnRunning, ValidationError
from orvad.ids import uuid7
from orvad.mcp import tools
from orvad.store.assistant import AssistantStore, Row

if TYPE_CHECKING:
    from orvad.daemon import Daemon

log = logging.getLogger(__name__)

APPROVAL_POLICIES = ("all_writes", "destructive_only", "auto")
MAX_TOOL_STEPS = 100
TITLE_CHARS = 80
CANCEL_WAIT_S = 10.0
API = "/api/v1/ai"


def _no_conversation(conv_id: str) -> NotFound:
    return NotFound(f"no conversation {conv_id}", hint=f"list conversations with GET {API}/conversations")


def message_json(msg: Row, calls: list[Row]) -> dict[str, Any]:
    return {
        "id": msg["id"],
        "conversation_id": msg["conversation_id"],
        "seq": msg["seq"],
        "role": msg["role"],
        "content": msg["content"],
        "thinking": msg["thinking"],
        "status": msg["status"],
        "error": json.loads(msg["error"]) if msg["error"] else None,
        "provider_id": msg["provider_id"],
        "model": msg["model"],
        "usage": {"input_tokens": msg["input_tokens"], "output_tokens": msg["output_tokens"]},
        "created_at": msg["created_at"],
        "tool_calls": [tool_call_json(c) for c in calls],
    }


def tool_call_json(call: Row) -> dict[str, Any]:
    return {
        "id": call["id"],
        "conversation_id": call["conversation_id"],
        "message_id": call["message_id"],
        "name": call["name"],
        "arguments": json.loads(call["arguments"]),
        "status": call["status"],
        "result": call["result"],
        "is_error": bool(call["is_error"]),
        "created_at": call["created_at"],
        "resolved_at": call["resolved_at"],
    }


class AssistantService:
    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self.store = AssistantStore(daemon.db)
        self._runs: dict[str, Run] = {}

    @property
    def ping_s(self) -> float:
        return self._daemon.settings.ai_ping_s

    async def load(self) -> None:
        """What the last run of orvad left mid-way: a reply being written ends as a TURN_INTERRUPTED error
        (its text so far kept), a call approved or running as an error result; calls awaiting approval
        stay approvable."""
        exc = TurnInterrupted("orvad stopped while this reply was being written")
        messages, calls = await self.store.interrupt(
            json.dumps(error_json(exc)),
            "orvad stopped while this call ran (or before it ran): its outcome is unknown",
        )
        if messages or calls:
            log.warning(
                "assistant turns interrupted by the last stop",
                extra={"messages": messages, "tool_calls": calls},
            )

    # ---- settings ----

    async def settings(self) -> dict[str, Any]:
        return await self.store.settings()

    async def update_settings(self, body: dict[str, Any]) -> dict[str, Any]:
        values = {**await self.store.settings(), **body}
        provider_id = values.get("provider_id")
        if provider_id is not None:
            if not isinstance(provider_id, str) or not 1 <= len(provider_id) <= 256:
                raise ValidationError(
                    "provider_id must be a provider's id or null",
                    details={"field": "provider_id"},
                    hint=f"list providers with GET {API}/providers",
                )
            values["provider_id"] = (await self._daemon.ai_providers.get(provider_id)).id  # or its label
        model = values.get("model")
        if model is not None and (not isinstance(model, str) or not 1 <= len(model) <= 256):
            raise ValidationError(
                "model must be a model name of 1..256 characters or null",
                details={"field": "model"},
                hint=f"list a provider's models with GET {API}/providers/<provider id>/models",
            )
        if values["thinking"] not in THINKING_LEVELS:
            raise ValidationError(
                f"thinking must be one of {', '.join(THINKING_LEVELS)}",
                details={"field": "thinking"},
                hint="send thinking as off, low, medium or high",
            )
        if values["approval_policy"] not in APPROVAL_POLICIES:
            raise ValidationError(
                f"approval_policy must be one of {', '.join(APPROVAL_POLICIES)}",
                details={"field": "approval_policy"},
                hint="all_writes: every change waits for approval; destructive_only: deletes and revocations "
                "do; auto: nothing does",
            )
        steps = values["max_tool_steps"]
        if isinstance(steps, float) and steps.is_integer():
            steps = values["max_tool_steps"] = int(steps)  # JSON has one number type: 7.0 is 7
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_TOOL_STEPS:
            raise ValidationError(
                f"max_tool_steps must be an integer from 1 to {MAX_TOOL_STEPS}",
                details={"field": "max_tool_steps"},
                hint=f"send max_tool_steps between 1 and {MAX_TOOL_STEPS}",
            )
        await self.store.save_settings(values)
        return await self.store.settings()

    # ---- conversations ----

    def running(self, conv_id: str) -> bool:
        return conv_id in self._runs

    def conversation_json(self, conv: Row) -> dict[str, Any]:
        return {
            "id": conv["id"],
            "title": conv["title"],
            "archived": bool(conv["archived"]),
            "provider_id": conv["provider_id"],
            "model": conv["model"],
            "usage": {"input_tokens": conv["input_tokens"], "output_tokens": conv["output_tokens"]},
            "running": self.running(conv["id"]),
            "created_at": conv["created_at"],
            "updated_at": conv["updated_at"],
        }

    async def conversation(self, conv_id: str) -> Row:
        conv = await self.store.conversation(conv_id)
        if conv is None:
            raise _no_conversation(conv_id)
        return conv

    async def create(self, title: str, provider_id: str | None, model: str | None) -> Row:
        if provider_id is not None:
            provider_id = (await self._daemon.ai_providers.get(provider_id)).id
        conv_id = uuid7()
        await self.store.create_conversation(conv_id, title, provider_id, model)
        return await self.conversation(conv_id)

    async def list_conversations(
        self, archived: bool | None, cursor: str | None, limit: int
    ) -> tuple[list[Row], str | None]:
        rows = await self.store.conversations(archived=archived, before=cursor, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (f"{rows[-1]['updated_at']}|{rows[-1]['id']}" if more and rows else None)

    async def timeline(self, conv_id: str, since_seq: int = 0) -> list[dict[str, Any]]:
        calls: dict[str, list[Row]] = {}
        for call in await self.store.tool_calls(conv_id, since_seq):
            calls.setdefault(call["message_id"], []).append(call)
        return [
            message_json(m, calls.get(m["id"], [])) for m in await self.store.messages(conv_id, since_seq)
        ]

    async def update(self, conv_id: str, fields: dict[str, Any]) -> Row:
        await self.conversation(conv_id)
        if fields:
            await self.store.update_conversation(conv_id, fields)
        return await self.conversation(conv_id)

    async def delete(self, conv_id: str) -> None:
        await self.conversation(conv_id)
        await self.cancel(conv_id)
        await self.store.delete_conversation(conv_id)

    # ---- turns ----

    def live(self, conv_id: str) -> Live | None:
        run = self._runs.get(conv_id)
        return run.live if run is not None else None

    def _claim(self, conv_id: str) -> Run:
        """The conversation's one run, claimed before anything awaits (two requests cannot both start)."""
        if conv_id in self._runs:
            raise TurnRunning(
                f"conversation {conv_id} has a turn running",
                hint=f"follow it with GET {API}/conversations/{conv_id}/stream, or stop it with "
                f"POST {API}/conversations/{conv_id}/cancel",
            )
        run = self._runs[conv_id] = Run(Live(conv_id))
        return run

    def _release(self, conv_id: str, run: Run) -> None:
        if self._runs.get(conv_id) is run:
            del self._runs[conv_id]
        run.live.end()

    async def _config(self, conv: Row | None, overrides: dict[str, Any]) -> TurnConfig:
        settings = await self.store.settings()
        provider_id = (
            overrides.get("provider_id") or (conv or {}).get("provider_id") or settings["provider_id"]
        )
        if provider_id is None:
            raise ValidationError(
                "no AI provider is chosen for the assistant",
                details={"field": "provider_id"},
                hint=f"add one with POST {API}/providers, then choose it with PUT {API}/settings "
                "(provider_id and model) or send provider_id and model with the message",
            )
        model_name = overrides.get("model") or (conv or {}).get("model") or settings["model"]
        if model_name is None:
            raise ValidationError(
                "no model is chosen for the assistant",
                details={"field": "model"},
                hint=f"list the provider's models with GET {API}/providers/{provider_id}/models, then set model "
                f"with PUT {API}/settings or send it with the message",
            )
        provider_id = (await self._daemon.ai_providers.get(provider_id)).id  # NOT_FOUND now, not mid-stream
        return TurnConfig(
            provider_id=provider_id,
            model_name=model_name,
            thinking=overrides.get("thinking") or settings["thinking"],
            approval_policy=settings["approval_policy"],
            max_tool_steps=settings["max_tool_steps"],
        )

    def _start(self, conv_id: str, run: Run, config: TurnConfig, operator: Operator) -> None:
        async def go() -> None:
            try:
                # the provider's client: built once and kept by ProviderService (which closes it), not ours
                model = await self._daemon.ai_providers.model_for(config.provider_id)
                await Turn(self._daemon, self.store, conv_id, config, model, operator, run)()
            except OrvaError as exc:  # the provider could not be built (deleted meanwhile, say)
                run.live.emit("error", error_json(exc))
            finally:
                self._release(conv_id, run)

        run.task = self._daemon.tasks.start(f"orva-ai-turn-{conv_id}", go())

    async def _pending(self, conv_id: str) -> list[Row]:
        return [c for c in await self.store.tool_calls(conv_id) if c["status"] == "awaiting_approval"]

    async def _resolve_pending(self, conv_id: str, result: str, message_status: str) -> int:
        pending = await self._pending(conv_id)
        for call in pending:
            await self.store.update_tool_call(
                call["id"], {"status": "rejected", "result": result, "is_error": 1, "resolved_at": now_iso()}
            )
            await self.store.update_message(call["message_id"], {"status": message_status})
        return len(pending)

    async def chat(
        self, operator: Operator, conv_id: str | None, content: str, overrides: dict[str, Any]
    ) -> tuple[str, Live]:
        """Store the operator's message (in a new conversation when ``conv_id`` is None) and start the turn."""
        conv = await self.conversation(conv_id) if conv_id is not None else None
        config = await self._config(conv, overrides)
        if conv is None:
            new_id = uuid7()
            run = self._claim(new_id)
            try:
                title = " ".join(content.split())[:TITLE_CHARS]
                await self.store.create_conversation(new_id, title, config.provider_id, config.model_name)
            except BaseException:
                self._release(new_id, run)
                raise
            conv_id = new_id
        else:
            assert conv_id is not None
            run = self._claim(conv_id)
        try:
            await self._resolve_pending(conv_id, NOT_RUN_NEW_MESSAGE, "complete")
            if conv is not None:
                changes = {
                    k: v
                    for k, v in (
                        ("provider_id", overrides.get("provider_id")),
                        ("model", overrides.get("model")),
                    )
                    if v
                }
                if conv["title"] == "":
                    changes["title"] = " ".join(content.split())[:TITLE_CHARS]
                if changes:
                    await self.store.update_conversation(conv_id, changes)
            mid = uuid7()
            seq = await self.store.add_message(
                {
                    "id": mid,
                    "conversation_id": conv_id,
                    "role": "user",
                    "content": content,
                    "status": "complete",
                }
            )
        except BaseException:
            self._release(conv_id, run)
            raise
        run.live.emit(
            "message_start", {"message_id": mid, "conversation_id": conv_id, "seq": seq, "role": "user"}
        )
        self._start(conv_id, run, config, operator)
        return conv_id, run.live

    async def regenerate(self, operator: Operator, conv_id: str, overrides: dict[str, Any]) -> Live:
        """Drop everything after the last user message and run the turn again."""
        conv = await self.conversation(conv_id)
        config = await self._config(conv, overrides)
        run = self._claim(conv_id)
        try:
            users = [m for m in await self.store.messages(conv_id) if m["role"] == "user"]
            if not users:
                raise ValidationError(
                    "the conversation has no message to answer again",
                    hint=f"send one with POST {API}/chat",
                )
            await self.store.truncate(conv_id, users[-1]["seq"] + 1)
        except BaseException:
            self._release(conv_id, run)
            raise
        self._start(conv_id, run, config, operator)
        return run.live

    async def edit(self, operator: Operator, conv_id: str, message_id: str, content: str) -> Live:
        """Replace a user message's text, drop everything after it, run the turn again."""
        conv = await self.conversation(conv_id)
        msg = await self._message(conv_id, message_id)
        if msg["role"] != "user":
            raise ValidationError(
                f"message {message_id} is the assistant's: only the operator's messages can be edited",
                details={"field": "message_id"},
                hint=f"regenerate the assistant's reply with POST {API}/conversations/{conv_id}/regenerate",
            )
        config = await self._config(conv, {})
        run = self._claim(conv_id)
        try:
            await self.store.truncate(conv_id, msg["seq"] + 1)
            await self.store.update_message(message_id, {"content": content})
        except BaseException:
            self._release(conv_id, run)
            raise
        self._start(conv_id, run, config, operator)
        return run.live

    async def _message(self, conv_id: str, message_id: str) -> Row:
        msg = await self.store.message(message_id)
        if msg is None or msg["conversation_id"] != conv_id:
            raise NotFound(
                f"no message {message_id} in conversation {conv_id}",
                hint=f"read its messages with GET {API}/conversations/{conv_id}",
            )
        return msg

    async def delete_message(self, conv_id: str, message_id: str) -> int:
        """Delete a message and every message and tool call after it; returns how many messages went."""
        await self.conversation(conv_id)
        msg = await self._message(conv_id, message_id)
        run = self._claim(conv_id)
        try:
            count = len([m for m in await self.store.messages(conv_id) if m["seq"] >= msg["seq"]])
            await self.store.truncate(conv_id, msg["seq"])
        finally:
            self._release(conv_id, run)
        return count

    async def cancel(self, conv_id: str) -> bool:
        """Stop the running turn (its message ends ``cancelled``; the answer waits for that), or resolve
        the calls a paused turn awaits as not run. False: nothing to cancel."""
        await self.conversation(conv_id)
        run = self._runs.get(conv_id)
        if run is not None and run.task is not None:
            run.cancel_requested = True
            run.task.cancel()
            await asyncio.wait({run.task}, timeout=CANCEL_WAIT_S)
            return True
        if run is not None:
            return False  # a request is starting one this very moment
        return await self._resolve_pending(conv_id, NOT_RUN_CANCELLED, "cancelled") > 0

    async def _pending_call(self, call_id: str) -> Row:
        call = await self.store.tool_call(call_id)
        if call is None:
            raise NotFound(
                f"no tool call {call_id}",
                hint=f"a conversation's calls are in its timeline: GET {API}/conversations, then the conversation",
            )
        if call["status"] != "awaiting_approval":
            raise Conflict(
                f"tool call {call_id} is not awaiting approval (it is {call['status']})",
                details={"status": call["status"]},
                hint=f"only a call in status awaiting_approval can be approved or rejected; see "
                f"GET {API}/conversations/{call['conversation_id']}",
            )
        return call

    async def approve(self, operator: Operator, call_id: str) -> tuple[str, Live]:
        """Approve a held call: the turn resumes, runs it (a destructive tool gets confirm: true: the
        approval is the confirmation) and goes on."""
        return await self._resolve(operator, call_id, approve=True)

    async def reject(self, operator: Operator, call_id: str) -> tuple[str, Live]:
        """Reject a held call: the model gets an error result saying the operator rejected it; the turn resumes."""
        return await self._resolve(operator, call_id, approve=False)

    async def _resolve(self, operator: Operator, call_id: str, *, approve: bool) -> tuple[str, Live]:
        call = await self._pending_call(call_id)
        conv_id = call["conversation_id"]
        conv = await self.conversation(conv_id)
        config = await self._config(conv, {})
        run = self._claim(conv_id)
        try:
            call = await self._pending_call(call_id)  # (another request may have resolved it meanwhile)
            if approve:
                args = json.loads(call["arguments"])
                tool = tools.BY_NAME.get(call["name"])
                if tool is not None and tool.destructive:
                    args["confirm"] = True
                await self.store.update_tool_call(
                    call_id, {"status": "approved", "arguments": json.dumps(args)}
                )
            else:
                await self.store.update_tool_call(
                    call_id,
                    {"status": "rejected", "result": REJECTED, "is_error": 1, "resolved_at": now_iso()},
                )
                self._daemon.audit_trail.record_assistant(
                    conversation_id=conv_id,
                    actor_id=operator.id,
                    actor_name=operator.name,
                    tool=call["name"],
                    target_id=tools.target_of(call["name"], json.loads(call["arguments"])),
                    status=403,
                    request_id=operator.request_id,
                    client_ip=operator.client or None,
                )
                run.live.emit("tool_result", {"id": call_id, "is_error": True, "result": REJECTED})
        except BaseException:
            self._release(conv_id, run)
            raise
        self._start(conv_id, run, config, operator)
        return conv_id, run.live
