"""The reply: a handler's answer (or its stream) as HTTP messages, sent through an ASGI ``send``.

A caller that is not an HTTP connection passes a ``Result`` as its ``send``: it keeps the
messages as one buffered reply.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.types import Message, Send

from orvad.errors import FunctionError
from orvad.http.drain import Drain
from orvad.invoke.event import BadResponse, confined, response_headers, status_code
from orvad.invoke.flight import Flight
from orvad.invoke.record import CUT_MESSAGE, ExecutionRecord
from orvad.pool.worker import Reply

_T = TypeVar("_T")
# Function replies that land on the dashboard's cookie scope (docs/API.md): scripts and forms run,
# but in an opaque origin, so the page can neither read or set the dashboard's cookies nor call
# the API as the logged-in operator.
SANDBOX_HEADER = (
    b"content-security-policy",
    b"sandbox allow-scripts allow-forms allow-modals allow-downloads",
)


def orva_headers(record: ExecutionRecord, cold: bool, started: float) -> list[tuple[bytes, bytes]]:
    """Orvad's own response headers: the execution, and its span (``traceparent`` naming the execution's
    span as the parent of what the caller does next, and ``X-Trace-Id``)."""
    trace_id = record.trace_id
    return [
        (b"x-orva-execution-id", record.id.encode()),
        (b"x-orva-cold-start", b"true" if cold else b"false"),
        (b"x-orva-duration-ms", f"{(time.perf_counter() - started) * 1000:.3f}".encode()),
        (b"traceparent", f"00-{trace_id}-{record.span_id}-{record.trace_flags}".encode()),
        (b"x-trace-id", trace_id.encode()),
    ]


async def answer(
    reply: Reply, flight: Flight, headers: list[tuple[bytes, bytes]], sandboxed: bool, send: Send
) -> None:
    """A whole reply: status, headers and body in two messages."""
    status, out_headers, out = rendered(lambda: response_of(reply.response or {}))
    if sandboxed:
        out_headers = confined(out_headers)
    flight.record.status_code = status
    if flight.watch is not None:
        flight.watch.stop()  # before the response completes: servers then answer receive() with a disconnect
    await send({"type": "http.response.start", "status": status, "headers": out_headers + headers})
    await send({"type": "http.response.body", "body": out})
    flight.record.answered(len(out))


async def relay(
    reply: Reply,
    flight: Flight,
    headers: list[tuple[bytes, bytes]],
    sandboxed: bool,
    send: Send,
    timeout_s: float,
) -> None:
    """A stream, chunk by chunk until its end frame; an end frame with an error leaves the body cut
    (the server then closes the connection, so the client never sees it complete). The watch stays
    on meanwhile: a client that leaves mid-stream cancels it too."""
    record = flight.record
    status, stream_headers = rendered(lambda: (status_code(reply.status), response_headers(reply.headers)))
    if sandboxed:
        stream_headers = confined(stream_headers)
    record.status_code, flight.stream_headers = status, stream_headers
    flight.unread = reply  # until the stream has been relayed to its end
    end = await _chunks(
        reply, status, stream_headers + headers, send, time.perf_counter() + timeout_s, record
    )
    flight.unread = None
    if flight.watch is not None:
        flight.watch.stop()  # before the response completes: servers then answer receive() with a disconnect
    if record.streamed(end):
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:  # a stream cut at its deadline takes its worker
        assert flight.lease is not None
        flight.healthy = record.status != "timeout" and flight.lease.worker.alive


async def _chunks(
    reply: Reply,
    status: int,
    headers: list[tuple[bytes, bytes]],
    send: Send,
    deadline: float,
    record: ExecutionRecord,
) -> dict[str, Any]:
    """Relay the chunks (counted in the record as they go); the end frame."""
    await send({"type": "http.response.start", "status": status, "headers": headers})
    assert reply.chunks is not None and reply.ended is not None
    while True:
        remaining = deadline - time.perf_counter()
        try:
            chunk = await asyncio.wait_for(reply.chunks.get(), max(0.001, remaining))
        except TimeoutError:
            return {
                "error": {"kind": "timeout", "message": "the stream ran past the function's timeout"},
                "logs": "",
            }
        if chunk is None:
            return reply.ended.result()
        data = base64.b64decode(chunk["data"]) if chunk.get("isBase64Encoded") else chunk["data"].encode()
        record.response_bytes += len(data)
        await send({"type": "http.response.body", "body": data, "more_body": True})


async def end_stream_in_band(headers: Sequence[tuple[bytes, bytes]], send: Send, request_id: str) -> None:
    """A stream cut by the shutdown: an event stream gets a last ``event: error`` with the envelope;
    any stream is left without its final chunk, so the client sees an incomplete body."""
    if not any(
        k == b"content-type" and v.partition(b";")[0].strip().lower() == b"text/event-stream"
        for k, v in headers
    ):
        return
    envelope = Drain.refusal(CUT_MESSAGE).envelope(request_id)
    with contextlib.suppress(Exception):  # the client may be gone too
        await send(
            {
                "type": "http.response.body",
                "body": b"event: error\ndata: " + json.dumps(envelope).encode() + b"\n\n",
                "more_body": True,
            }
        )


def response_of(response: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A handler's reply as status, headers and body bytes; BadResponse if HTTP cannot carry it."""
    if not isinstance(response, dict):
        raise BadResponse(f"the response must be an object, not {type(response).__name__}")
    status = status_code(response.get("statusCode", 200))
    raw = response.get("body", "")
    if response.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise BadResponse("isBase64Encoded is true but the body is not base64") from None
    else:
        body = ("" if raw is None else str(raw)).encode()
    headers = response_headers(response.get("headers"))
    if status in (204, 304):
        if body:
            raise BadResponse(f"a {status} response has no body, and this one has {len(body)} bytes")
        return status, headers, body
    return status, [*headers, (b"content-length", str(len(body)).encode())], body


def rendered(render: Callable[[], _T]) -> _T:
    try:
        return render()
    except BadResponse as exc:
        raise FunctionError(
            f"the handler's response cannot be sent: {exc}",
            hint="return {statusCode: 200..599, headers: {name: value}, body: text} or a plain "
            "value (docs/API.md)",
        ) from None


@dataclass(slots=True)
class Result:
    """A reply kept whole, for a caller that is not an HTTP connection: pass it as the ``send``.

    ``complete`` is False when a stream was cut (an error after its first bytes, or the shutdown);
    ``body`` then holds what had been sent."""

    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.headers = message["status"], list(message.get("headers", ()))
            return
        self.chunks.append(message.get("body", b""))
        self.complete = not message.get("more_body", False)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), as text."""
        key = name.lower().encode("latin-1")
        return next((v.decode("latin-1") for k, v in self.headers if k == key), None)

    @property
    def execution_id(self) -> str:
        return self.header("x-orva-execution-id") or ""

    def json(self) -> Any:
        return json.loads(self.body)
