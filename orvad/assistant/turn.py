"""The turn loop: the model's reply, its tool calls (run, or held for the operator's approval), the results
sent back, the next reply, until the model answers without a tool call, a call awaits approval, the step
cap is reached, the provider fails, or the turn is cancelled.

A turn runs as a background task (orvad/tasks.py), not in the HTTP request that started it: a client
that goes away stops nothing. Everything is stored as it happens (orvad/store/assistant.py): a message
row when it starts (status ``streaming``), its text so far about once a second, and its end (status,
tokens); a tool call row when the model asks for it and again when it ends. Frames go to the run's
``Live`` (orvad/assistant/stream.py) for whoever listens.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orvad.assistant.providers import (
    ChatMessage,
    ChatModel,
    Stop,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolCall,
    ToolSpec,
    Usage,
)
from orvad.assistant.stream import Live
from orvad.clock import now_iso
from orvad.errors import OrvaError, StepLimit, TurnInterrupted
from orvad.ids import uuid7
from orvad.mcp import tools
from orvad.mcp.results import Caller
from orvad.models import PERMISSIONS
from orvad.store.assistant import AssistantStore, Row

if TYPE_CHECKING:
    from orvad.daemon import Daemon

log = logging.getLogger(__name__)

RESULT_LIMIT = 16 * 1024  # characters of a tool result sent back to the model (and stored)
FLUSH_EVERY_S = 1.0  # a streaming message's text so far is written this often
REJECTED = "the operator rejected this call: it did not run. Do not repeat it unchanged; ask the operator."
NOT_RUN_NEW_MESSAGE = "the operator sent a new message instead of approving this call: it did not run."
NOT_RUN_CANCELLED = "the operator cancelled the turn: this call did not run."
CANCELLED_RUNNING = "the turn was cancelled while this call ran: its outcome is unknown."
# tools of the operator catalog the assistant does not get: their result carries a credential (a new key or
# token, shown once) or their arguments one (a secret's value); either would go to the provider and into
# the conversation's rows. The operator uses the dashboard, the CLI or the REST API for these.
EXCLUDED_TOOLS = frozenset({"create_key", "create_channel", "rotate_channel_token", "set_secret"})


@dataclass(frozen=True)
class Operator:
    """Who asked (the request's principal): tool calls run as an admin on their behalf and are audited
    with their id and name."""

    id: str
    name: str
    client: str = ""
    request_id: str | None = None

    def caller(self) -> Caller:
        return Caller(
            key_id=self.id,
            key_name=self.name,
            permissions=frozenset(PERMISSIONS),
            token="",
            client=self.client,
        )


@dataclass(frozen=True)
class TurnConfig:
    provider_id: str
    model_name: str
    thinking: Thinking
    approval_policy: str
    max_tool_steps: int


@dataclass
class Run:
    """A conversation's running turn: its frames, its task, and whether the operator cancelled it."""

    live: Live
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False
    open_message: dict[str, Any] = field(default_factory=dict)  # the streaming message: id, text, thinking
    running_call: str | None = None


def needs_approval(policy: str, name: str) -> bool:
    tool = tools.BY_NAME.get(name)
    if tool is None or name in EXCLUDED_TOOLS:
        return False  # it will not run: its error result goes back at once
    if policy == "all_writes":
        return not tool.read_only
    if policy == "destructive_only":
        return tool.destructive
    return False


def tool_specs(policy: str) -> list[ToolSpec]:
    """The operator catalog as the model sees it (all of it, an admin's, but EXCLUDED_TOOLS); a tool that
    waits for the operator under the policy says so in its description."""
    specs = []
    for tool in tools.TOOLS:
        if tool.name in EXCLUDED_TOOLS:
            continue
        description = tool.description
        if needs_approval(policy, tool.name):
            description += " (Runs only once the operator approves the call.)"
        specs.append(ToolSpec(tool.name, description, tool.schema()))
    return specs


_POLICY_TEXT = {
    "all_writes": "every tool that changes something waits for the operator's approval; reads run at once",
    "destructive_only": "tools that cannot be undone (deletes, revocations) wait for the operator's approval; "
    "the rest run at once",
    "auto": "every tool runs at once; a destructive one needs confirm: true in its arguments",
}


def system_prompt(policy: str) -> str:
    """The system prompt: short, names Orva, the tools and the approval rules (docs/ASSISTANT.md)."""
    return (
        "You are the assistant inside Orva, a self-hosted serverless platform: it runs functions (Python or "
        "Node.js handlers) in sandboxes and serves them over HTTP at /fn/<name>. You help its operator build, "
        "deploy, test and debug functions. The tools act on this Orva directly: create_function, "
        "deploy_function, get_build_logs, invoke_function, get_execution_logs, set_route and more; "
        "get_orva_docs explains handlers and everything else. Deploy, then invoke to check that it works, "
        "and read the logs to fix what fails.\n"
        f"Approval: {_POLICY_TEXT[policy]}. When the operator approves a destructive call, confirm is added "
        "for you. A rejected call comes back as an error result saying so: do not repeat it unchanged, ask "
        f"instead. Tool results longer than {RESULT_LIMIT // 1024} KiB are cut (the result says so).\n"
        "You never see secret values or API keys, and cannot create keys, channels or secrets: the operator "
        "does that in the dashboard or with the orva CLI. Answer briefly and say what you did."
    )


def truncate(text: str) -> str:
    if len(text) <= RESULT_LIMIT:
        return text
    return (
        text[:RESULT_LIMIT]
        + f"\n[cut: the result was {len(text)} characters; only the first {RESULT_LIMIT} are shown]"
    )


def error_json(exc: OrvaError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message, "hint": exc.hint}
    if exc.details:
        body["details"] = exc.details
    return body


async def history(store: AssistantStore, conversation_id: str) -> list[ChatMessage]:
    """The stored conversation as the provider's messages: user text, the assistant's text and calls,
    each call's (stored, truncated) result. Empty failed replies are left out."""
    calls: dict[str, list[Row]] = {}
    for call in await store.tool_calls(conversation_id):
        calls.setdefault(call["message_id"], []).append(call)
    out: list[ChatMessage] = []
    for msg in await store.messages(conversation_id):
        if msg["role"] == "user":
            out.append(ChatMessage("user", msg["content"]))
            continue
        mine = calls.get(msg["id"], [])
        if not msg["content"] and not mine:
            continue
        out.append(
            ChatMessage(
                "assistant",
                msg["content"],
                tool_calls=tuple(
                    ToolCall(c["provider_call_id"], c["name"], json.loads(c["arguments"])) for c in mine
                ),
                thinking=msg["thinking"] if mine else "",
                thinking_signature=msg["thinking_signature"] if mine else "",
            )
        )
        for c in mine:
            result = c["result"] if c["result"] is not None else "this call has no result: it did not run"
            out.append(
                ChatMessage("tool", result, tool_call_id=c["provider_call_id"], is_error=bool(c["is_error"]))
            )
    return out


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class Turn:
    """One run of a conversation's turn (a new message, a regenerate, an edit, an approval's resume)."""

    def __init__(
        self,
        daemon: Daemon,
        store: AssistantStore,
        conversation_id: str,
        config: TurnConfig,
        model: ChatModel,
        operator: Operator,
        run: Run,
    ) -> None:
        self.model = model
        self.daemon = daemon
        self.store = store
        self.cid = conversation_id
        self.config = config
        self.operator = operator
        self.run = run
        self.live = run.live

    async def __call__(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            await asyncio.shield(self._stopped())
            raise
        except Exception as exc:  # a bug: stored and told, not a silent dead turn
            log.exception("assistant turn failed", extra={"conversation_id": self.cid})
            error = (
                exc
                if isinstance(exc, OrvaError)
                else OrvaError(
                    "the assistant's turn failed inside orvad",
                    hint="orvad's log has the traceback; regenerate to retry",
                )
            )
            await self._fail_open(error)
        finally:
            self.live.end()

    # ---- the loop ----

    async def _loop(self) -> None:
        messages = await self.store.messages(self.cid)
        last = messages[-1] if messages else None
        msg = last if last is not None and last["role"] == "assistant" else None
        while True:
            if msg is not None and not await self._settle(msg):
                return
            if await self._steps() >= self.config.max_tool_steps:
                await self._step_limit()
                return
            msg = await self._reply()
            if msg is None:
                return

    async def _steps(self) -> int:
        """Replies with tool calls since the last user message: the steps this turn has taken."""
        messages = await self.store.messages(self.cid)
        users = [m["seq"] for m in messages if m["role"] == "user"]
        since = users[-1] if users else 0
        with_calls = {c["message_id"] for c in await self.store.tool_calls(self.cid, since)}
        return sum(1 for m in messages if m["seq"] > since and m["id"] in with_calls)

    async def _settle(self, msg: Row) -> bool:
        """Run the message's approved calls in order; True when every call is resolved (the model goes
        on), False when one awaits approval (the turn pauses) or the message made no call (it is done)."""
        calls = await self.store.tool_calls_of(msg["id"])
        if not calls:
            return False
        for call in calls:
            if call["status"] == "approved":
                await self._run_call(call)
        pending = [c for c in await self.store.tool_calls_of(msg["id"]) if c["status"] == "awaiting_approval"]
        if pending:
            await self.store.update_message(msg["id"], {"status": "awaiting_approval"})
            for call in pending:
                self.live.emit(
                    "awaiting_approval",
                    {"id": call["id"], "name": call["name"], "arguments": json.loads(call["arguments"])},
                )
            return False
        if msg["status"] == "awaiting_approval":
            await self.store.update_message(msg["id"], {"status": "complete"})
        return True

    async def _run_call(self, call: Row) -> None:
        self.run.running_call = call["id"]
        await self.store.update_tool_call(call["id"], {"status": "running"})
        args = json.loads(call["arguments"])
        if call["name"] in EXCLUDED_TOOLS:
            text, is_error, status = (
                f"NOT_AVAILABLE: the assistant cannot use {call['name']} (it handles a key, token or secret "
                "value) (hint: ask the operator to do it in the dashboard or with the orva CLI)",
                True,
                403,
            )
        else:
            reply = await tools.call(self.daemon, self.operator.caller(), call["name"], args)
            text, is_error, status = reply.text, reply.is_error, reply.status
        result = truncate(text)
        await self.store.update_tool_call(
            call["id"],
            {
                "status": "error" if is_error else "done",
                "result": result,
                "is_error": int(is_error),
                "resolved_at": now_iso(),
            },
        )
        self.run.running_call = None
        self.daemon.audit_trail.record_assistant(
            conversation_id=self.cid,
            actor_id=self.operator.id,
            actor_name=self.operator.name,
            tool=call["name"],
            target_id=tools.target_of(call["name"], args),
            status=status,
            request_id=self.operator.request_id,
            client_ip=self.operator.client or None,
        )
        self.live.emit("tool_result", {"id": call["id"], "is_error": is_error, "result": result})

    async def _reply(self) -> Row | None:
        """One streamed reply of the model; the message row if it made tool calls, else None."""
        config = self.config
        sent = await history(self.store, self.cid)
        mid = uuid7()
        seq = await self.store.add_message(
            {
                "id": mid,
                "conversation_id": self.cid,
                "role": "assistant",
                "status": "streaming",
                "provider_id": config.provider_id,
                "model": config.model_name,
            }
        )
        opened = self.run.open_message = {
            "id": mid,
            "text": [],
            "thinking": [],
            "signature": "",
            "usage": None,
        }
        self.live.emit(
            "message_start", {"message_id": mid, "conversation_id": self.cid, "seq": seq, "role": "assistant"}
        )
        calls: list[ToolCall] = []
        usage = Usage(0, 0)
        reason = "end"
        flusher = asyncio.create_task(self._flush(mid, opened), name=f"orva-ai-flush-{mid}")
        try:
            stream = self.model.stream(
                model=config.model_name,
                system=system_prompt(config.approval_policy),
                messages=sent,
                tools=tool_specs(config.approval_policy),
                thinking=config.thinking,
            )
            async with aclosing(stream) as events:  # type: ignore[type-var]
                async for event in events:
                    if isinstance(event, TextDelta):
                        opened["text"].append(event.text)
                        self.live.emit("delta", {"message_id": mid, "text": event.text})
                    elif isinstance(event, ThinkingDelta):
                        opened["thinking"].append(event.text)
                        if event.signature:
                            opened["signature"] = event.signature
                        if event.text:
                            self.live.emit("thinking", {"message_id": mid, "text": event.text})
                    elif isinstance(event, ToolCall):
                        calls.append(event)
                    elif isinstance(event, Usage):
                        usage = opened["usage"] = event
                    elif isinstance(event, Stop):
                        reason = event.reason
        except OrvaError as exc:  # ProviderError: the provider failed (before or mid-stream)
            await _stop(flusher)
            await self._fail_open(exc)
            return None
        finally:
            await _stop(flusher)  # (its last write, if one was under way, lands before the ones below)
        self.run.open_message = {}
        await self.store.update_message(
            mid,
            {
                "content": "".join(opened["text"]),
                "thinking": "".join(opened["thinking"]),
                "thinking_signature": opened["signature"],
                "status": "complete",
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
            },
        )
        await self.store.add_tokens(self.cid, usage.input_tokens, usage.output_tokens)
        for call in calls:
            held = needs_approval(config.approval_policy, call.name)
            row = {
                "id": uuid7(),
                "conversation_id": self.cid,
                "message_id": mid,
                "seq": seq,
                "provider_call_id": call.id,
                "name": call.name,
                "arguments": json.dumps(call.arguments),
                "status": "awaiting_approval" if held else "approved",
            }
            await self.store.add_tool_call(row)
            self.live.emit(
                "tool_call",
                {
                    "id": row["id"],
                    "message_id": mid,
                    "name": call.name,
                    "arguments": call.arguments,
                    "needs_approval": held,
                },
            )
        self.live.emit(
            "message_end",
            {
                "message_id": mid,
                "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens},
                "stop_reason": reason,
            },
        )
        return await self.store.message(mid) if calls else None

    async def _flush(self, mid: str, opened: dict[str, Any]) -> None:
        """While a reply streams: its text so far, written every FLUSH_EVERY_S when it changed (a client
        reading messages?since_seq= sees it grow; a crash keeps it)."""
        written = (0, 0)
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            now = (len(opened["text"]), len(opened["thinking"]))
            if now != written:
                written = now
                await self.store.update_message(
                    mid, {"content": "".join(opened["text"]), "thinking": "".join(opened["thinking"])}
                )

    async def _step_limit(self) -> None:
        cap = self.config.max_tool_steps
        exc = StepLimit(
            f"the turn reached its cap of {cap} tool steps and was stopped",
            hint="send a message to let the assistant go on, or raise max_tool_steps with PUT /api/v1/ai/settings",
            details={"max_tool_steps": cap},
        )
        mid = uuid7()
        seq = await self.store.add_message(
            {
                "id": mid,
                "conversation_id": self.cid,
                "role": "assistant",
                "status": "error",
                "error": json.dumps(error_json(exc)),
                "provider_id": self.config.provider_id,
                "model": self.config.model_name,
            }
        )
        self.live.emit(
            "message_start", {"message_id": mid, "conversation_id": self.cid, "seq": seq, "role": "assistant"}
        )
        self.live.emit("error", error_json(exc))

    async def _fail_open(self, exc: OrvaError) -> None:
        """The open message (if any) ends as an error with its text so far; the error frame is sent."""
        opened, self.run.open_message = self.run.open_message, {}
        if opened:
            usage = opened["usage"] or Usage(0, 0)
            await self.store.update_message(
                opened["id"],
                {
                    "content": "".join(opened["text"]),
                    "thinking": "".join(opened["thinking"]),
                    "status": "error",
                    "error": json.dumps(error_json(exc)),
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                },
            )
            await self.store.add_tokens(self.cid, usage.input_tokens, usage.output_tokens)
        self.live.emit("error", error_json(exc))

    async def _stopped(self) -> None:
        """Cancelled: by the operator (POST .../cancel) the open message ends ``cancelled``; otherwise orvad
        is stopping and it ends as a TURN_INTERRUPTED error. A call running then gets an error result; calls
        still awaiting approval of a cancelled turn are resolved as not run."""
        if self.run.running_call is not None:
            await self.store.update_tool_call(
                self.run.running_call,
                {"status": "error", "result": CANCELLED_RUNNING, "is_error": 1, "resolved_at": now_iso()},
            )
        if not self.run.cancel_requested:
            await self._fail_open(TurnInterrupted("orvad stopped while this reply was being written"))
            return
        opened, self.run.open_message = self.run.open_message, {}
        if opened:
            await self.store.update_message(
                opened["id"],
                {
                    "content": "".join(opened["text"]),
                    "thinking": "".join(opened["thinking"]),
                    "status": "cancelled",
                },
            )
            self.live.emit(
                "message_end",
                {
                    "message_id": opened["id"],
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                    "stop_reason": "cancelled",
                },
            )
