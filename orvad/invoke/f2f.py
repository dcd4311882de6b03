"""Function-to-function calls: the SDK operation ``invoke`` (``orva.invoke(name, payload|event, stream)``).

Everything that decides whether a call may happen comes from orvad's own records, never from the
arguments the sandbox sends: the caller is the ``Caller`` the worker's channel gave (its function, its
chain of F2F calls, its deadline, its trace), and what it may call is its function's ``may_invoke`` as
stored now. In order:

1. the target (a name or an id) must be named by the caller's ``may_invoke`` (or it holds ``"*"``); an id
   counts as the name the function has now. Refused with FORBIDDEN before anything about the target is
   told, so a caller cannot probe which functions exist;
2. the depth: a call from a function already ``MAX_DEPTH`` calls deep is refused (CALL_DEPTH_EXCEEDED);
3. cycles: a function already on the chain (the caller included) is refused (CALL_CYCLE);
4. the callee runs through ``Invoker.dispatch`` like any trigger (``f2f``), with a ``Grant`` of kind
   ``function`` that satisfies its ``auth_mode`` (HTTP never builds one), the chain plus the caller, the
   caller's trace as parent, and a time limit of the smaller of its ``timeout_ms`` and the caller's
   remaining time (less a margin, so the callee's TIMEOUT reaches the caller before its own deadline).

The reply comes back as ``{status, headers, body, json?}`` (``body``: text, or ``{"$bytes": base64}``);
a refusal or a failure of the callee raises the OrvaError HTTP would have answered with. ``stream: true``
returns an async iterator: ``{status, headers}`` first, then ``{"chunk": text | {"$bytes": ...}}`` items.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from starlette.types import Message

from orvad.errors import (
    BadRequest,
    CallCycle,
    CallDepthExceeded,
    Forbidden,
    FunctionError,
    NotFound,
    PayloadTooLarge,
    Timeout,
)
from orvad.invoke.dispatch import Invoker
from orvad.invoke.relay import Result
from orvad.invoke.request import DROPPED_HEADERS as _CALLER_DROPPED
from orvad.invoke.request import DROPPED_PREFIXES, Grant, InvokeRequest
from orvad.models import Function
from orvad.sdk.calls import MAX_DEPTH, Caller
from orvad.services.functions import FunctionService, may_invoke_allows
from orvad.traces.context import TraceContext

TRIGGER = "f2f"
# the callee's time limit ends this much before the caller's deadline, so its TIMEOUT (and the kill of
# its worker) happens while the caller can still be told
DEADLINE_MARGIN_S = 0.05
MAX_IDENT = 128
MAX_METHOD = 16
MAX_PATH = 2048
MAX_QUERY = 4096
MAX_HEADERS = 64
MAX_HEADER_NAME = 256
MAX_HEADER_VALUE = 8192
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name / method
_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")  # no CR, LF, NUL or other controls; latin-1
_PATH = re.compile(r"^/[^\x00-\x20\x7f?#]*$")
# never taken from the calling function: what MCP drops too, and the trace headers (the callee joins the
# caller's trace from orvad's record, never from a header the caller writes)
DROPPED_HEADERS = _CALLER_DROPPED | {"traceparent", "tracestate"}
JSON_TYPE = (b"content-type", b"application/json")


def _bad(field: str, message: str, hint: str) -> BadRequest:
    return BadRequest(f"invoke: {field} {message}", hint=hint, details={"field": field})


class FunctionCalls:
    """The ``invoke`` SDK operation (registered as ``daemon.sdk.register("invoke", calls.sdk_invoke)``)."""

    def __init__(self, functions: FunctionService, invoker: Invoker, max_body_bytes: int) -> None:
        self._functions, self._invoker, self._max_body = functions, invoker, max_body_bytes

    async def sdk_invoke(self, caller: Caller, args: dict[str, Any]) -> Any:
        stream = args.get("stream", False)
        if not isinstance(stream, bool):
            raise _bad("stream", "must be true or false", "pass stream=True to read the reply as it comes")
        request = self.request(caller, args)
        if stream:
            return await self._stream(request)
        return reply_json(request.function, await self._invoker.dispatch(request))

    # the checks, from orvad's records
    def request(self, caller: Caller, args: dict[str, Any]) -> InvokeRequest:
        """The callee's request, once the caller may make it; the refusal otherwise."""
        ident = args.get("function")
        if not isinstance(ident, str) or not 0 < len(ident) <= MAX_IDENT:
            raise _bad(
                "function", "must be a function's name (or id)", 'call it as orva.invoke("resize", {...})'
            )
        target = self._target(caller, ident)
        chain = (*caller.chain, caller.function_id)
        if target.id in chain:
            names = " -> ".join(self._name_of(i) for i in (*chain, target.id))
            raise CallCycle(
                f"{caller.function_name} may not call {target.name}: it is already on this call's chain "
                f"({names})",
                hint="a function-to-function call may not come back to a function that is waiting for it; "
                "return the value instead, or hand the work on as a job",
                details={"function": target.name, "chain": [self._name_of(i) for i in chain]},
            )
        if len(caller.chain) >= MAX_DEPTH:
            raise CallDepthExceeded(
                f"{caller.function_name} may not call {target.name}: the chain is {MAX_DEPTH} calls deep "
                f"already (the most there may be)",
                hint="flatten the chain (call several functions from one), or hand the work on as a job",
                details={"function": target.name, "depth": len(caller.chain), "max_depth": MAX_DEPTH},
            )
        remaining = caller.remaining_s() - DEADLINE_MARGIN_S
        if remaining <= 0:
            raise Timeout(f"{caller.function_name} has no time left to call {target.name}")
        method, path, query, headers, body = self._event(args)
        return InvokeRequest(
            target,
            subpath=path,
            trigger=TRIGGER,
            method=method,
            headers=headers,
            query=query,
            body=body,
            grant=Grant("function", caller.function_id),
            chain=chain,
            timeout_s=remaining,
            trace_parent=TraceContext(caller.trace_id, caller.span_id) if caller.trace_id else None,
        )

    def _target(self, caller: Caller, ident: str) -> Function:
        """The function ``ident`` names, if the caller's may_invoke allows it (FORBIDDEN first, then NOT_FOUND:
        a function that may not be called is not told whether it exists)."""
        own = self._functions.get(caller.function_id)
        allowed = own.may_invoke if own is not None else ()
        try:
            target: Function | None = self._functions.resolve(ident)
        except NotFound:
            target = None
        name = target.name if target is not None else ident
        if not may_invoke_allows(allowed, name):
            shown = ", ".join(allowed) or "none"
            wanted = [*allowed, name]
            raise Forbidden(
                f"{caller.function_name} may not call {ident}: its may_invoke does not name it "
                f"(it allows: {shown})",
                hint=f"add the name to the caller's may_invoke: PUT /api/v1/functions/{caller.function_name} "
                f"{json.dumps({'may_invoke': wanted})} (or orva functions update {caller.function_name} "
                f"--may-invoke {name})",
                details={"field": "may_invoke", "function": ident},
            )
        if target is None:
            raise NotFound(
                f"no function {ident!r} to call",
                hint="create and deploy it (POST /api/v1/functions), or correct the name",
                details={"function": ident},
            )
        return target

    def _name_of(self, function_id: str) -> str:
        fn = self._functions.get(function_id)
        return fn.name if fn is not None else function_id

    # the request's parts, bounded
    def _event(self, args: dict[str, Any]) -> tuple[str, str, bytes, list[tuple[bytes, bytes]], bytes]:
        """(method, path, query, headers, body) from ``payload`` (a JSON POST /) or ``event``."""
        if "payload" in args and "event" in args:
            raise _bad("payload", "and event exclude each other", "pass a payload, or an event with a body")
        if "event" not in args:
            if "payload" not in args:
                return "POST", "/", b"", [], b""
            return "POST", "/", b"", [JSON_TYPE], self._sized(_json_bytes(args["payload"], "payload"))
        event = args["event"]
        if not isinstance(event, dict):
            raise _bad("event", "must be an object", 'pass {"method": "GET", "path": "/items", ...}')
        method = event.get("method", "POST")
        if not isinstance(method, str) or not 0 < len(method) <= MAX_METHOD or not _TOKEN.fullmatch(method):
            raise _bad("event.method", "must be an HTTP method", "pass GET, POST, PUT, ...")
        path = event.get("path", "/")
        if not isinstance(path, str) or len(path) > MAX_PATH or not _PATH.fullmatch(path):
            raise _bad(
                "event.path",
                f"must start with / and hold no spaces, controls, ? or # (at most {MAX_PATH} characters)",
                'pass the path after the function\'s own prefix, such as "/items/42"; the query goes in query',
            )
        return (
            method.upper(),
            path,
            _query(event.get("query")),
            *self._body(event.get("headers"), event.get("body"), "body" in event),
        )

    def _body(self, sent: Any, body: Any, given: bool) -> tuple[list[tuple[bytes, bytes]], bytes]:
        headers = _headers(sent)
        if not given or body is None:
            return headers, b""
        if isinstance(body, str):
            return headers, self._sized(body.encode())
        if isinstance(body, dict) and set(body) == {"$bytes"}:
            try:
                raw = base64.b64decode(body["$bytes"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise _bad(
                    "event.body", "holds $bytes that are not base64", "pass bytes as they are"
                ) from None
            return headers, self._sized(raw)
        if not any(name == b"content-type" for name, _ in headers):
            headers.append(JSON_TYPE)
        return headers, self._sized(_json_bytes(body, "event.body"))

    def _sized(self, body: bytes) -> bytes:
        if len(body) > self._max_body:
            raise PayloadTooLarge(
                f"invoke: the request body is {len(body)} bytes, over the {self._max_body} a request may carry",
                hint="send a smaller payload, or pass a reference (a KV key) instead of the data",
            )
        return body

    # a streamed reply
    async def _stream(self, request: InvokeRequest) -> AsyncIterator[Any]:
        """Start the callee; once its reply's head is there (or it failed), an iterator over the reply."""
        queue: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=16)

        async def run() -> None:
            try:
                await self._invoker.serve(request, queue.put)
            finally:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)  # the end (a full queue means the reader has stopped)

        task = asyncio.create_task(run(), name=f"f2f-stream-{request.function.id}")
        try:
            head = await queue.get()
        except BaseException:
            task.cancel()
            raise
        if head is None:  # it ended without a reply: its error, or a stream cut before its head
            await _raised(task, request.function)
        assert head is not None
        return _chunks(task, queue, head, request.function)


async def _chunks(
    task: asyncio.Task[None], queue: asyncio.Queue[Message | None], head: Message, fn: Function
) -> AsyncIterator[Any]:
    try:
        yield {"status": head["status"], "headers": _header_map(head.get("headers", ()))}
        while True:
            message = await queue.get()
            if message is None:
                await _raised(task, fn)
                return
            data = message.get("body", b"")
            if data:
                yield {"chunk": _body_value(data)}
            if not message.get("more_body", False):
                return
    finally:
        if not task.done():
            task.cancel()  # the reader stopped: the callee's request is a client that left
        elif not task.cancelled():
            task.exception()  # retrieved: an error after the reader stopped is the callee's record's business


async def _raised(task: asyncio.Task[None], fn: Function) -> None:
    """The serve task ended early: raise its error, or say that the stream was cut."""
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        assert exc is not None
        raise exc
    raise FunctionError(
        f"the reply of {fn.name} ended before it was complete (its handler failed or ran out of time "
        "mid-stream)",
        hint=f"see its executions: GET /api/v1/executions?function_id={fn.id}",
    )


# shapes
def reply_json(fn: Function, result: Result) -> dict[str, Any]:
    """The callee's reply as the handler gets it: ``{status, headers, body, json?}``."""
    if not result.complete:
        raise FunctionError(
            f"the reply of {fn.name} ended before it was complete (its handler failed or ran out of time "
            "mid-stream)",
            hint=f"see the execution: GET /api/v1/executions/{result.execution_id}",
            details={"execution_id": result.execution_id},
        )
    body = result.body
    reply: dict[str, Any] = {
        "status": result.status,
        "headers": _header_map(result.headers),
        "body": _body_value(body),
    }
    kind = (result.header("content-type") or "").partition(";")[0].strip().lower()
    if body and (kind == "application/json" or kind.endswith("+json")):
        with contextlib.suppress(ValueError):
            reply["json"] = json.loads(body)
    return reply


def _header_map(pairs: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name_b, value_b in pairs:
        name, value = name_b.decode("latin-1").lower(), value_b.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _body_value(body: bytes) -> Any:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return {"$bytes": base64.b64encode(body).decode("ascii")}


def _json_bytes(value: Any, field: str) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):
        raise _bad(
            field, "must be a JSON value", "pass dicts, lists, strings, numbers, booleans or None"
        ) from None


def _query(sent: Any) -> bytes:
    if sent is None:
        return b""
    if isinstance(sent, dict) and all(isinstance(v, str | int | float | bool) for v in sent.values()):
        text = urlencode({str(k): str(v) for k, v in sent.items()})
    elif isinstance(sent, str):
        text = sent.removeprefix("?")
    else:
        raise _bad("event.query", "must be an object of values or a query string", 'pass {"page": "2"}')
    if len(text) > MAX_QUERY or not _VALUE.fullmatch(text) or "#" in text or " " in text:
        raise _bad(
            "event.query", f"must be at most {MAX_QUERY} characters of a URL query", 'pass {"page": "2"}'
        )
    return text.encode("latin-1")


def _headers(sent: Any) -> list[tuple[bytes, bytes]]:
    """The headers the caller named, checked; credentials, orvad's and the framing's own dropped."""
    if sent is None:
        return []
    if (
        not isinstance(sent, dict)
        or len(sent) > MAX_HEADERS
        or not all(isinstance(v, str) for v in sent.values())
    ):
        raise _bad(
            "event.headers", f"must be an object of at most {MAX_HEADERS} strings", 'pass {"x-id": "1"}'
        )
    headers: list[tuple[bytes, bytes]] = []
    for name, value in sent.items():
        if (
            len(name) > MAX_HEADER_NAME
            or len(value) > MAX_HEADER_VALUE
            or not _TOKEN.fullmatch(name)
            or not _VALUE.fullmatch(value)
        ):
            raise _bad(
                "event.headers",
                f"has a header that HTTP cannot carry: {name[:80]!r}",
                "header names are letters, digits and -; values are text without line breaks",
            )
        lower = name.lower()
        if lower not in DROPPED_HEADERS and not lower.startswith(DROPPED_PREFIXES):
            headers.append((lower.encode("latin-1"), value.encode("latin-1")))
    return headers
