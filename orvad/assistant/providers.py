"""The assistant's chat interface, provider-neutral, and its two adapters over the official SDKs.

- ``AnthropicChatModel``: the Anthropic Messages API (``anthropic.AsyncAnthropic``, base_url optional).
- ``OpenAIChatModel``: OpenAI chat completions (``openai.AsyncOpenAI``) at any OpenAI-compatible base_url:
  OpenAI itself, a local Ollama (``http://127.0.0.1:11434/v1``), vLLM, LM Studio, OpenRouter.

A stream yields, in order: any number of TextDelta / ThinkingDelta / ToolCall, then one Usage, then one Stop.
Any provider failure (an HTTP error, a refused connection, an error event or a broken stream mid-way, a stream
that ends before the provider said it finished) raises ProviderError naming the provider's label; the API key is
never part of a message (it is scrubbed from what the provider says, should a provider echo it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from orvad.errors import ProviderError
from orvad.imports import imported

# The SDKs (and httpx, httpx2) are imported where a provider is first used, not with this module: anthropic alone costs
# about 1.8 CPU-seconds (openai 0.7), which every orvad start paid, most of them never calling a provider.
if TYPE_CHECKING:
    import anthropic
    import openai

Thinking = Literal["off", "low", "medium", "high"]
THINKING_LEVELS: tuple[str, ...] = ("off", "low", "medium", "high")
# Anthropic models that take a thinking budget (thinking.type "enabled"): tokens per level
THINKING_BUDGET = {"low": 2048, "medium": 8192, "high": 24576}
MAX_OUTPUT_TOKENS = 8192  # the answer's own room, on top of any thinking budget
DEFAULT_TIMEOUT_S = 300.0  # one request (a stream included): models think for minutes
DEFAULT_MAX_RETRIES = 1  # the SDKs retry 408/409/429/5xx and refused connections, before any byte streams


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolCall:
    id: str  # the provider's call id
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["user", "assistant", "tool"]
    content: str = ""  # text (tool: the result text sent back)
    tool_calls: tuple[ToolCall, ...] = ()  # assistant: the calls it made
    tool_call_id: str | None = None  # tool: which call this answers
    is_error: bool = False  # tool: the result is an error
    # assistant, Anthropic with thinking on: the thinking text and its signature as streamed (ThinkingDelta),
    # sent back so a tool loop can go on thinking (the API refuses a tool loop whose thinking was dropped)
    thinking: str = ""
    thinking_signature: str = ""


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ThinkingDelta:
    text: str
    signature: str = ""  # Anthropic: the thinking block's signature (arrives once, with empty text)


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


StopReason = Literal["end", "tool_use", "max_tokens", "other"]


@dataclass(frozen=True)
class Stop:
    reason: StopReason


StreamEvent = TextDelta | ThinkingDelta | ToolCall | Usage | Stop


class ChatModel(Protocol):
    def stream(
        self,
        *,
        model: str,
        system: str,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        thinking: Thinking,
    ) -> AsyncIterator[StreamEvent]: ...

    async def models(self) -> list[str]: ...

    async def aclose(self) -> None: ...


# ---- shared ------------------------------------------------------------------------------------------------


@dataclass
class _Who:
    """Which provider config an adapter speaks for: names it in errors, scrubs its key from them."""

    provider_id: str
    label: str
    base_url: str
    api_key: str | None = field(repr=False, default=None)

    def scrub(self, text: str) -> str:
        if self.api_key and len(self.api_key) >= 4:
            text = text.replace(self.api_key, "[key]")
        return text[:2000]

    def error(self, message: str, *, status: int | None = None) -> ProviderError:
        details: dict[str, Any] = {"provider": self.label, "provider_id": self.provider_id}
        if status is not None:
            details["status"] = status
        return ProviderError(
            self.scrub(f"provider {self.label!r}: {message}"),
            hint=(
                f"check provider {self.label!r}: its base_url ({self.base_url}), its API key and the model "
                f"name; test it with POST /api/v1/ai/providers/{self.provider_id}/test"
            ),
            details=details,
        )

    def wrap(self, exc: BaseException, *, streaming: bool = False) -> ProviderError:
        """An SDK or transport exception as a ProviderError (``streaming``: the response had begun)."""
        if isinstance(exc, ProviderError):
            return exc
        import anthropic
        import httpx
        import httpx2
        import openai

        if isinstance(exc, anthropic.APIStatusError | openai.APIStatusError) and exc.status_code >= 400:
            return self.error(f"HTTP {exc.status_code}: {_api_message(exc)}", status=exc.status_code)
        if isinstance(exc, anthropic.APITimeoutError | openai.APITimeoutError):
            return self.error("timed out")
        if isinstance(exc, anthropic.APIConnectionError | openai.APIConnectionError):
            cause = exc.__cause__ or exc
            if streaming:
                return self.error(f"the stream broke off ({type(cause).__name__}: {cause})")
            return self.error(f"could not connect ({type(cause).__name__}: {cause})")
        if isinstance(exc, anthropic.APIError | openai.APIError):
            return self.error(f"failed mid-stream: {_api_message(exc)}")
        if isinstance(exc, httpx2.HTTPError | httpx.HTTPError):
            return self.error(f"the stream broke ({type(exc).__name__}: {exc})")
        return self.error(f"sent what could not be read ({type(exc).__name__}: {exc})")


def _api_message(exc: anthropic.APIError | openai.APIError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return exc.message


# errors an adapter turns into ProviderError: the SDKs' own, transport errors, and what a broken body parses to
# (json.JSONDecodeError and pydantic's ValidationError are ValueErrors)
@cache
def _failures() -> tuple[type[BaseException], ...]:
    import anthropic
    import httpx
    import httpx2
    import openai

    return (anthropic.APIError, openai.APIError, httpx2.HTTPError, httpx.HTTPError, ValueError, KeyError)


def _answered(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """The history as both APIs require it: each assistant tool call answered by a tool message right after
    that assistant message (a call left without one, cancelled say, gets an error result), tool messages
    answering no call of the message before them dropped, empty assistant messages dropped."""
    out: list[ChatMessage] = []
    i = 0
    while i < len(messages):
        msg = messages[i]
        i += 1
        if msg.role == "tool":
            continue  # an orphan: the assistant message it answers is not right before it
        if msg.role == "assistant" and not msg.content and not msg.tool_calls:
            continue
        out.append(msg)
        if msg.role != "assistant" or not msg.tool_calls:
            continue
        results: dict[str, ChatMessage] = {}
        while i < len(messages) and messages[i].role == "tool":
            tool = messages[i]
            if tool.tool_call_id is not None:
                results.setdefault(tool.tool_call_id, tool)
            i += 1
        for call in msg.tool_calls:
            out.append(
                results.get(call.id)
                or ChatMessage(
                    role="tool", content="the call was not run", tool_call_id=call.id, is_error=True
                )
            )
    return out


def _arguments(raw: str, who: _Who, name: str) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise who.error(f"sent arguments for tool {name!r} that are not JSON") from None
    if not isinstance(value, dict):
        raise who.error(f"sent arguments for tool {name!r} that are not a JSON object")
    return value


# ---- Anthropic Messages ------------------------------------------------------------------------------------

_ANTHROPIC_STOP: dict[str, StopReason] = {
    "end_turn": "end",
    "stop_sequence": "end",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
}


@dataclass
class _ModelFacts:
    thinking_forms: frozenset[str] | None  # the thinking.type values the model takes; None: unknown
    max_tokens: int | None


def _input_tokens(u: Any) -> int:
    """All input tokens of an Anthropic usage object: uncached, written to the cache and read from it."""
    return int(u.input_tokens or 0) + (u.cache_creation_input_tokens or 0) + (u.cache_read_input_tokens or 0)


class _AnthropicReader:
    """Anthropic's raw stream events to StreamEvents."""

    def __init__(self, who: _Who) -> None:
        self._who = who
        self._tool_blocks: dict[int, tuple[str, str, list[str]]] = {}  # index -> (id, name, JSON pieces)
        self._input_tokens = self._output_tokens = 0
        self._stop_reason: str | None = None
        self._finished = False

    def feed(self, event: Any) -> list[StreamEvent]:
        kind = event.type
        if kind == "message_start":
            self._input_tokens = _input_tokens(event.message.usage)
            self._output_tokens = event.message.usage.output_tokens
        elif kind == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                self._tool_blocks[event.index] = (block.id, block.name, [])
        elif kind == "content_block_delta":
            return self._delta(event.index, event.delta)
        elif kind == "content_block_stop" and event.index in self._tool_blocks:
            call_id, name, parts = self._tool_blocks.pop(event.index)
            return [ToolCall(call_id, name, _arguments("".join(parts), self._who, name))]
        elif kind == "message_delta":
            self._stop_reason = event.delta.stop_reason
            self._output_tokens = event.usage.output_tokens
            if event.usage.input_tokens is not None:
                self._input_tokens = _input_tokens(event.usage)
        elif kind == "message_stop":
            self._finished = True
        return []

    def _delta(self, index: int, delta: Any) -> list[StreamEvent]:
        if delta.type == "text_delta":
            return [TextDelta(delta.text)]
        if delta.type == "thinking_delta":
            return [ThinkingDelta(delta.thinking)]
        if delta.type == "signature_delta":
            return [ThinkingDelta("", signature=delta.signature)]
        if delta.type == "input_json_delta" and index in self._tool_blocks:
            self._tool_blocks[index][2].append(delta.partial_json)
        return []

    def finish(self) -> list[StreamEvent]:
        if not self._finished:
            raise self._who.error("the stream ended before the message did (no message_stop)")
        return [
            Usage(self._input_tokens, self._output_tokens),
            Stop(_ANTHROPIC_STOP.get(self._stop_reason or "", "other")),
        ]


class AnthropicChatModel:
    """The Anthropic Messages API through ``anthropic.AsyncAnthropic``."""

    def __init__(
        self,
        *,
        provider_id: str,
        label: str,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self._who = _Who(provider_id, label, base_url or "https://api.anthropic.com", api_key)
        # api_key is always passed (a placeholder for a keyless endpoint: an empty one makes an illegal
        # "Bearer " header): the SDK then reads no credential from orvad's environment or profile files
        import anthropic

        self._client = anthropic.AsyncAnthropic(
            api_key=api_key or "no-key",
            base_url=self._who.base_url,
            timeout=timeout_s,
            max_retries=max_retries,
        )
        self._facts: dict[str, _ModelFacts] = {}

    async def aclose(self) -> None:
        """Close the SDK client's connections."""
        await self._client.close()

    async def models(self) -> list[str]:
        try:
            return [m.id async for m in self._client.models.list(limit=1000)]
        except _failures() as exc:
            raise self._who.wrap(exc) from None

    async def _model_facts(self, model: str) -> _ModelFacts:
        """What GET /v1/models/{model} says of the model's thinking forms and output room (once per model)."""
        if model not in self._facts:
            forms: frozenset[str] | None = None
            max_tokens = None
            try:
                info = await self._client.models.retrieve(model)
                max_tokens = info.max_tokens
                caps = info.capabilities
                if caps is not None:
                    types = caps.thinking.types
                    forms = frozenset(
                        name
                        for name, support in (
                            ("adaptive", types.adaptive),
                            ("enabled", types.enabled),
                            ("disabled", types.disabled),
                        )
                        if support.supported
                    )
            except _failures():
                pass  # an Anthropic-compatible endpoint without the models API: assume the budget form
            self._facts[model] = _ModelFacts(forms, max_tokens)
        return self._facts[model]

    async def _thinking_params(
        self, model: str, thinking: Thinking, messages: Sequence[ChatMessage]
    ) -> dict[str, Any]:
        facts = await self._model_facts(model) if thinking != "off" else _ModelFacts(None, None)
        room = MAX_OUTPUT_TOKENS
        params: dict[str, Any] = {}
        last = next((m for m in reversed(messages) if m.role == "assistant"), None)
        # a tool loop whose thinking (and signature) was not kept cannot go on thinking: this request goes
        # without (the API refuses a tool_use turn that lost its thinking block)
        unsigned_loop = (
            last is not None
            and bool(last.tool_calls)
            and messages[-1].role == "tool"
            and not last.thinking_signature
        )
        if thinking != "off" and not unsigned_loop:
            forms = facts.thinking_forms
            if forms is not None and "adaptive" in forms:
                params["thinking"] = {"type": "adaptive", "display": "summarized"}
                params["output_config"] = {"effort": thinking}
                room = 4 * MAX_OUTPUT_TOKENS
            elif forms is None or "enabled" in forms:
                budget = THINKING_BUDGET[thinking]
                params["thinking"] = {"type": "enabled", "budget_tokens": budget}
                room = budget + MAX_OUTPUT_TOKENS
        if facts.max_tokens:
            room = min(room, facts.max_tokens)
            if "budget_tokens" in params.get("thinking", {}):
                params["thinking"]["budget_tokens"] = min(params["thinking"]["budget_tokens"], room // 2)
        params["max_tokens"] = room
        return params

    @staticmethod
    def _messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for msg in _answered(messages):
            blocks: list[dict[str, Any]] = []
            role = "assistant" if msg.role == "assistant" else "user"
            if msg.role == "tool":
                blocks.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": msg.tool_call_id,
                        "content": msg.content or "(empty)",
                        "is_error": msg.is_error,
                    }
                )
            else:
                if msg.role == "assistant" and msg.thinking_signature:
                    blocks.append(
                        {"type": "thinking", "thinking": msg.thinking, "signature": msg.thinking_signature}
                    )
                if msg.content.strip():
                    blocks.append({"type": "text", "text": msg.content})
                for call in msg.tool_calls:
                    blocks.append(
                        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
                    )
            if not blocks:
                continue
            if out and out[-1]["role"] == role:  # the API wants user and assistant to alternate
                out[-1]["content"].extend(blocks)
            else:
                out.append({"role": role, "content": blocks})
        return out

    async def stream(
        self,
        *,
        model: str,
        system: str,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        thinking: Thinking,
    ) -> AsyncIterator[StreamEvent]:
        who = self._who
        reader = _AnthropicReader(who)
        streaming = False
        try:
            params = await self._thinking_params(model, thinking, messages)
            kwargs: dict[str, Any] = {"model": model, "messages": self._messages(messages), **params}
            if system:
                kwargs["system"] = system
            if tools:
                kwargs["tools"] = [
                    {"name": t.name, "description": t.description, "input_schema": t.input_schema}
                    for t in tools
                ]
            events = await self._client.messages.create(stream=True, **kwargs)
            streaming = True
            async for event in events:
                for out in reader.feed(event):
                    yield out
        except _failures() as exc:
            raise who.wrap(exc, streaming=streaming) from None
        for out in reader.finish():
            yield out


# ---- OpenAI chat completions -------------------------------------------------------------------------------

_OPENAI_STOP: dict[str, StopReason] = {
    "stop": "end",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
}


class _OpenAIReader:
    """Chat-completion chunks to StreamEvents: tool calls assembled by index, emitted once the model finished."""

    def __init__(self, who: _Who) -> None:
        self._who = who
        self._calls: dict[int, list[Any]] = {}  # index -> [id, name, [argument pieces]]
        self._finish: str | None = None
        self._usage = Usage(0, 0)

    def feed(self, chunk: Any) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if chunk.usage is not None:
            self._usage = Usage(chunk.usage.prompt_tokens or 0, chunk.usage.completion_tokens or 0)
        for choice in chunk.choices:
            delta = choice.delta
            # reasoning text where the endpoint sends it: reasoning_content (DeepSeek, vLLM) or reasoning
            # (Ollama, OpenRouter); neither is in OpenAI's own schema
            extra = delta.model_extra or {}
            reasoning = extra.get("reasoning_content") or extra.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out.append(ThinkingDelta(reasoning))
            if delta.content:
                out.append(TextDelta(delta.content))
            for tc in delta.tool_calls or ():
                self._call_piece(tc)
            if choice.finish_reason:
                self._finish = choice.finish_reason
        return out

    def _call_piece(self, tc: Any) -> None:
        slot = self._calls.setdefault(tc.index, ["", "", []])
        if tc.id:
            slot[0] = tc.id
        if tc.function is not None:
            if tc.function.name:
                slot[1] = tc.function.name
            if tc.function.arguments:
                slot[2].append(tc.function.arguments)

    def finish(self) -> list[StreamEvent]:
        if self._finish is None:
            raise self._who.error("the stream ended before the model finished (no finish_reason)")
        out: list[StreamEvent] = []
        for index in sorted(self._calls):
            call_id, name, parts = self._calls[index]
            if not name:
                raise self._who.error("sent a tool call without a function name")
            out.append(
                ToolCall(call_id or f"call_{index}", name, _arguments("".join(parts), self._who, name))
            )
        reason = _OPENAI_STOP.get(self._finish, "other")
        if self._calls and reason == "end":  # some compatible servers (Ollama) finish a tool call with "stop"
            reason = "tool_use"
        return [*out, self._usage, Stop(reason)]


class OpenAIChatModel:
    """OpenAI chat completions through ``openai.AsyncOpenAI``, at any OpenAI-compatible base_url."""

    def __init__(
        self,
        *,
        provider_id: str,
        label: str,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self._who = _Who(provider_id, label, base_url or "https://api.openai.com/v1", api_key)
        # a keyless endpoint (a local Ollama) gets a placeholder: the SDK refuses to start without a key and
        # would otherwise read OPENAI_API_KEY from orvad's environment
        import openai

        self._client = openai.AsyncOpenAI(
            api_key=api_key or "no-key",
            base_url=self._who.base_url,
            timeout=timeout_s,
            max_retries=max_retries,
        )

    async def aclose(self) -> None:
        """Close the SDK client's connections."""
        await self._client.close()

    async def models(self) -> list[str]:
        try:
            return [m.id async for m in self._client.models.list()]
        except _failures() as exc:
            raise self._who.wrap(exc) from None

    @staticmethod
    def _messages(system: str, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        for msg in _answered(messages):
            if msg.role == "tool":
                content = msg.content or "(empty)"
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": msg.tool_call_id,
                        "content": f"error: {content}" if msg.is_error else content,
                    }
                )
            elif msg.role == "assistant":
                entry: dict[str, Any] = {"role": "assistant", "content": msg.content or None}
                if msg.tool_calls:
                    entry["tool_calls"] = [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in msg.tool_calls
                    ]
                out.append(entry)
            else:
                out.append({"role": "user", "content": msg.content})
        return out

    async def stream(
        self,
        *,
        model: str,
        system: str,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        thinking: Thinking,
    ) -> AsyncIterator[StreamEvent]:
        who = self._who
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": self._messages(system, messages),
            "stream_options": {"include_usage": True},
        }
        if tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
                }
                for t in tools
            ]
        if thinking != "off":
            kwargs["reasoning_effort"] = thinking  # models that do not reason may refuse it: set thinking off
        reader = _OpenAIReader(who)
        streaming = False
        try:
            chunks = await self._client.chat.completions.create(stream=True, **kwargs)
            streaming = True
            async for chunk in chunks:
                for out in reader.feed(chunk):
                    yield out
        except _failures() as exc:
            raise who.wrap(exc, streaming=streaming) from None
        for out in reader.finish():
            yield out


KINDS: tuple[str, ...] = ("anthropic", "openai")


async def sdks_imported() -> None:
    """The SDKs imported off the event loop (orvad/imports.py): about 2.5 CPU-seconds that would otherwise stop
    every invocation and request of this orvad at the first use of a provider. Await it before ``chat_model``."""
    for name in ("anthropic", "openai", "httpx2"):
        await imported(name)


def chat_model(
    kind: str,
    *,
    provider_id: str,
    label: str,
    api_key: str | None,
    base_url: str | None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> ChatModel:
    """The adapter for a provider config's kind."""
    cls = AnthropicChatModel if kind == "anthropic" else OpenAIChatModel
    return cast(
        ChatModel,
        cls(
            provider_id=provider_id,
            label=label,
            api_key=api_key,
            base_url=base_url,
            timeout_s=timeout_s,
            max_retries=max_retries,
        ),
    )
