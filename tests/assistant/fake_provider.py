"""THE fake AI provider: a real HTTP server on 127.0.0.1 speaking both wire formats the assistant uses.

- Anthropic Messages: ``POST /v1/messages`` (stream=true: SSE events message_start, content_block_start/delta/stop
  for text, thinking (+ signature_delta) and tool_use (input_json_delta in pieces), message_delta with usage and
  stop_reason, message_stop; an ``event: error`` mid-stream), ``GET /v1/models`` and ``GET /v1/models/{id}``.
- OpenAI chat completions: ``POST /v1/chat/completions`` (stream=true: ``data: {chunk}`` lines with delta.content,
  delta.reasoning_content, delta.tool_calls by index with the arguments in pieces, a finish chunk, a usage chunk
  when stream_options.include_usage is true, ``data: [DONE]``; a ``data: {"error": ...}`` line mid-stream),
  ``GET /v1/models``.

Which format a request gets follows its path (and, for GET /v1/models, the ``anthropic-version`` header the
Anthropic SDK sends). Responses use chunked transfer encoding, so ``drop()`` (the socket closed without the last
chunk) is a broken stream to the client, not a short one.

Scripted per test::

    fake.script([text("Let me look."), tool_call("list_functions", {"limit": 5})],   # the first request's turn
                [text("There are none.")])                                          # the second's
    ... run the code under test ...
    fake.requests[0].body["tools"]   # what was sent, headers included

Each chat request takes the next turn; one with no turn left gets ``fake.default_turn`` if set, else a 500 (so
a test that forgot a turn fails loudly). ``fake.api_key`` (when set) must arrive as ``Authorization: Bearer`` (or ``x-api-key`` on the Anthropic
paths), else 401 in the provider's error shape.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# ---- script steps ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    text: str
    pieces: int = 3  # how many deltas the text is split into


@dataclass(frozen=True)
class Thinking:
    text: str
    signature: str = "sig-fake-thinking"


@dataclass(frozen=True)
class ToolCallStep:
    name: str
    arguments: dict[str, Any]
    id: str = ""  # "" : call_<n> / toolu_<n>
    pieces: int = 3  # the arguments JSON split into this many deltas


@dataclass(frozen=True)
class Delay:
    seconds: float


@dataclass(frozen=True)
class HttpError:
    status: int
    message: str = "fake provider error"
    kind: str = ""  # the provider's error type; "" : derived from the status


@dataclass(frozen=True)
class ErrorMidStream:
    message: str = "Overloaded"
    kind: str = "overloaded_error"


@dataclass(frozen=True)
class Drop:
    """Close the connection mid-stream without ending the chunked body."""


@dataclass(frozen=True)
class UsageStep:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class StopStep:
    reason: (
        str  # the provider's own word: end_turn | tool_use | max_tokens (Anthropic), stop | length (OpenAI)
    )


Step = Text | Thinking | ToolCallStep | Delay | HttpError | ErrorMidStream | Drop | UsageStep | StopStep


def text(s: str, pieces: int = 3) -> Text:
    return Text(s, pieces)


def thinking(s: str, signature: str = "sig-fake-thinking") -> Thinking:
    return Thinking(s, signature)


def tool_call(name: str, arguments: dict[str, Any], id: str = "", pieces: int = 3) -> ToolCallStep:
    return ToolCallStep(name, arguments, id, pieces)


def delay(seconds: float) -> Delay:
    return Delay(seconds)


def http_error(status: int, message: str = "fake provider error", kind: str = "") -> HttpError:
    """Answer the request with this status and the provider's error body (must be a turn's first step)."""
    return HttpError(status, message, kind)


def error_mid_stream(message: str = "Overloaded", kind: str = "overloaded_error") -> ErrorMidStream:
    """The provider's own error event after what came before (Anthropic ``event: error``; OpenAI an error chunk)."""
    return ErrorMidStream(message, kind)


def drop() -> Drop:
    return Drop()


def usage(input_tokens: int, output_tokens: int) -> UsageStep:
    return UsageStep(input_tokens, output_tokens)


def stop(reason: str) -> StopStep:
    return StopStep(reason)


# ---- the server --------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # the parsed JSON body (None for a GET)
    raw: bytes = b""


_ERROR_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _pieces(s: str, n: int) -> list[str]:
    if n <= 1 or len(s) <= 1:
        return [s]
    size = max(1, -(-len(s) // n))
    return [s[i : i + size] for i in range(0, len(s), size)]


class _Dropped(Exception):
    pass


@dataclass
class FakeProvider:
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None
    models: list[str] = field(default_factory=lambda: ["fake-model-1", "fake-model-2"])
    # GET /v1/models/{id} (Anthropic) capabilities.thinking.types: which thinking forms the model accepts
    thinking_types: dict[str, bool] = field(
        default_factory=lambda: {"adaptive": True, "enabled": True, "disabled": True, "between_tools": False}
    )
    requests: list[Recorded] = field(default_factory=list)
    turns: list[list[Step]] = field(default_factory=list)
    default_turn: list[Step] | None = None  # what a request gets when no scripted turn is left (None: a 500)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _calls: int = 0

    # -- lifecycle

    def start(self) -> FakeProvider:
        fake = self

        class Handler(_Handler):
            provider = fake

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.turns.clear()
            self._calls = 0
        self.default_turn = None
        self.api_key = None
        self.models = ["fake-model-1", "fake-model-2"]

    # -- addresses

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def anthropic_url(self) -> str:
        """base_url for the Anthropic SDK (it appends /v1/messages)."""
        return self.url

    @property
    def openai_url(self) -> str:
        """base_url for the OpenAI SDK (it appends /chat/completions)."""
        return self.url + "/v1"

    # -- scripting

    def script(self, *turns: list[Step]) -> None:
        """Queue one turn per chat request, in order (appends to what is still queued)."""
        with self._lock:
            self.turns.extend(list(t) for t in turns)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def _next_turn(self) -> list[Step] | None:
        with self._lock:
            if self.turns:
                return self.turns.pop(0)
            return list(self.default_turn) if self.default_turn is not None else None

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    def _next_id(self) -> int:
        with self._lock:
            self._calls += 1
            return self._calls


class _Handler(BaseHTTPRequestHandler):
    provider: FakeProvider
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # -- plumbing

    def _read(self) -> tuple[bytes, Any]:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return raw, json.loads(raw) if raw else None
        except ValueError:
            return raw, None

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_fake")
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: str) -> None:
        raw = data.encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.close_connection = True
        raise _Dropped

    def _is_anthropic(self) -> bool:
        return "anthropic-version" in {k.lower() for k in self.headers}

    def _authorised(self, anthropic: bool) -> bool:
        key = self.provider.api_key
        if key is None:
            return True
        bearer = (self.headers.get("authorization") or "").removeprefix("Bearer ")
        # the Anthropic SDK sends x-api-key (older) or Authorization: Bearer (2.x); OpenAI's Bearer
        if bearer == key or (anthropic and self.headers.get("x-api-key") == key):
            return True
        self._error(
            anthropic, HttpError(401, "invalid x-api-key" if anthropic else "Incorrect API key provided")
        )
        return False

    def _error(self, anthropic: bool, err: HttpError) -> None:
        kind = err.kind or _ERROR_KINDS.get(err.status, "api_error")
        if anthropic:
            body: Any = {"type": "error", "error": {"type": kind, "message": err.message}}
        else:
            body = {"error": {"message": err.message, "type": kind, "param": None, "code": None}}
        self._json(err.status, body)

    # -- routes

    def do_GET(self) -> None:
        self.provider._record(
            Recorded("GET", self.path, {k.lower(): v for k, v in self.headers.items()}, None)
        )
        anthropic = self._is_anthropic()
        path = self.path.split("?", 1)[0]
        if not self._authorised(anthropic):
            return
        if path == "/v1/models":
            if anthropic:
                data = [self._anthropic_model(m) for m in self.provider.models]
                self._json(
                    200,
                    {
                        "data": data,
                        "has_more": False,
                        "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None,
                    },
                )
            else:
                self._json(
                    200,
                    {
                        "object": "list",
                        "data": [
                            {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                            for m in self.provider.models
                        ],
                    },
                )
            return
        if path.startswith("/v1/models/") and anthropic:
            model = path.removeprefix("/v1/models/")
            if model in self.provider.models:
                self._json(200, self._anthropic_model(model, capabilities=True))
            else:
                self._error(True, HttpError(404, f"model: {model}"))
            return
        self._error(anthropic, HttpError(404, f"no route {path}"))

    def _anthropic_model(self, model: str, capabilities: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {
            "type": "model",
            "id": model,
            "display_name": model.replace("-", " ").title(),
            "created_at": "2026-01-01T00:00:00Z",
        }
        if capabilities:
            types = {k: {"supported": v} for k, v in self.provider.thinking_types.items()}
            info["capabilities"] = {"thinking": {"supported": True, "types": types}}
        return info

    def do_POST(self) -> None:
        raw, body = self._read()
        path = self.path.split("?", 1)[0]
        self.provider._record(
            Recorded("POST", path, {k.lower(): v for k, v in self.headers.items()}, body, raw)
        )
        if path not in ("/v1/messages", "/v1/chat/completions"):
            self._error(self._is_anthropic(), HttpError(404, f"no route {path}"))
            return
        anthropic = path == "/v1/messages"
        if not self._authorised(anthropic):
            return
        if not isinstance(body, dict) or not body.get("model") or not isinstance(body.get("messages"), list):
            self._error(anthropic, HttpError(400, "model and messages are required"))
            return
        turn = self.provider._next_turn()
        if turn is None:
            self._error(anthropic, HttpError(500, "the fake provider has no scripted turn left"))
            return
        # steps before the first output: delays and an HTTP error happen before any byte of the stream
        while turn and isinstance(turn[0], Delay | HttpError):
            step = turn.pop(0)
            if isinstance(step, Delay):
                time.sleep(step.seconds)
            else:
                assert isinstance(step, HttpError)
                self._error(anthropic, step)
                return
        if not body.get("stream"):
            self._whole(anthropic, body, turn)
            return
        self._start_stream()
        try:
            if anthropic:
                self._anthropic_stream(body, turn)
            else:
                self._openai_stream(body, turn)
            self._end_stream()
        except _Dropped:
            return
        except (BrokenPipeError, ConnectionResetError):
            return

    # -- Anthropic Messages SSE

    def _sse(self, event: str, data: dict[str, Any]) -> None:
        self._chunk(f"event: {event}\ndata: {json.dumps(data)}\n\n")

    def _anthropic_stream(self, body: dict[str, Any], turn: list[Step]) -> None:
        n = self.provider._next_id()
        in_tokens, out_tokens = 10 * n, 0
        explicit_usage: UsageStep | None = None
        reason: str | None = None
        self._sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": f"msg_fake_{n}",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": in_tokens, "output_tokens": 1},
                },
            },
        )
        self._chunk('event: ping\ndata: {"type": "ping"}\n\n')
        index = 0
        calls = 0
        for step in turn:
            if isinstance(step, Delay):
                time.sleep(step.seconds)
            elif isinstance(step, Text):
                self._sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                for piece in _pieces(step.text, step.pieces):
                    out_tokens += 1
                    self._sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "text_delta", "text": piece},
                        },
                    )
                self._sse("content_block_stop", {"type": "content_block_stop", "index": index})
                index += 1
            elif isinstance(step, Thinking):
                self._sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                    },
                )
                for piece in _pieces(step.text, 2):
                    out_tokens += 1
                    self._sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "thinking_delta", "thinking": piece},
                        },
                    )
                self._sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "signature_delta", "signature": step.signature},
                    },
                )
                self._sse("content_block_stop", {"type": "content_block_stop", "index": index})
                index += 1
            elif isinstance(step, ToolCallStep):
                calls += 1
                self._sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": step.id or f"toolu_fake_{n}_{calls}",
                            "name": step.name,
                            "input": {},
                        },
                    },
                )
                for piece in _pieces(json.dumps(step.arguments), step.pieces):
                    out_tokens += 1
                    self._sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
                self._sse("content_block_stop", {"type": "content_block_stop", "index": index})
                index += 1
            elif isinstance(step, ErrorMidStream):
                self._sse("error", {"type": "error", "error": {"type": step.kind, "message": step.message}})
                return
            elif isinstance(step, Drop):
                self._drop()
            elif isinstance(step, UsageStep):
                explicit_usage = step
            elif isinstance(step, StopStep):
                reason = step.reason
        if reason is None:
            reason = "tool_use" if calls else "end_turn"
        usage_body = (
            {"input_tokens": explicit_usage.input_tokens, "output_tokens": explicit_usage.output_tokens}
            if explicit_usage
            else {"output_tokens": max(out_tokens, 1)}
        )
        self._sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": None},
                "usage": usage_body,
            },
        )
        self._sse("message_stop", {"type": "message_stop"})

    # -- OpenAI chat-completions chunks

    def _data(self, obj: Any) -> None:
        self._chunk(f"data: {json.dumps(obj)}\n\n")

    def _openai_stream(self, body: dict[str, Any], turn: list[Step]) -> None:
        n = self.provider._next_id()
        base = {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body["model"],
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
            self._data(
                {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            )

        chunk({"role": "assistant", "content": ""})
        out_tokens = 0
        explicit_usage: UsageStep | None = None
        reason: str | None = None
        calls = 0
        for step in turn:
            if isinstance(step, Delay):
                time.sleep(step.seconds)
            elif isinstance(step, Text):
                for piece in _pieces(step.text, step.pieces):
                    out_tokens += 1
                    chunk({"content": piece})
            elif isinstance(step, Thinking):
                for piece in _pieces(step.text, 2):
                    out_tokens += 1
                    chunk({"reasoning_content": piece})
            elif isinstance(step, ToolCallStep):
                index = calls
                calls += 1
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": step.id or f"call_fake_{n}_{calls}",
                                "type": "function",
                                "function": {"name": step.name, "arguments": ""},
                            }
                        ]
                    }
                )
                for piece in _pieces(json.dumps(step.arguments), step.pieces):
                    out_tokens += 1
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            elif isinstance(step, ErrorMidStream):
                self._data(
                    {"error": {"message": step.message, "type": step.kind, "param": None, "code": None}}
                )
                return
            elif isinstance(step, Drop):
                self._drop()
            elif isinstance(step, UsageStep):
                explicit_usage = step
            elif isinstance(step, StopStep):
                reason = step.reason
        chunk({}, reason or ("tool_calls" if calls else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            prompt = explicit_usage.input_tokens if explicit_usage else 10 * n
            completion = explicit_usage.output_tokens if explicit_usage else max(out_tokens, 1)
            self._data(
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                }
            )
        self._chunk("data: [DONE]\n\n")

    # -- a non-streamed request (a one-token "test connection", say): the turn's text, whole

    def _whole(self, anthropic: bool, body: dict[str, Any], turn: list[Step]) -> None:
        n = self.provider._next_id()
        said = "".join(s.text for s in turn if isinstance(s, Text))
        if anthropic:
            self._json(
                200,
                {
                    "id": f"msg_fake_{n}",
                    "type": "message",
                    "role": "assistant",
                    "model": body["model"],
                    "content": [{"type": "text", "text": said}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 10, "output_tokens": 1},
                },
            )
        else:
            self._json(
                200,
                {
                    "id": f"chatcmpl-fake-{n}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": said},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
                },
            )


def running() -> Iterator[FakeProvider]:
    """A started fake provider, stopped afterwards (for fixtures)."""
    fake = FakeProvider().start()
    try:
        yield fake
    finally:
        fake.stop()
