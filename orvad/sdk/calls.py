"""The in-sandbox SDK's calls, orvad's side: who is calling (``Caller``) and which service answers each
operation (``SdkRouter``).

A handler's ``orva.kv.get(...)`` becomes a ``call`` frame on its worker's stdout (runtimes/PROTOCOL.md);
the worker finds the request it belongs to, so orvad knows the caller from its own records and never
from anything the sandbox says: the function, the execution, the deadline and the trace. Each service
(KV, jobs, cron, function-to-function calls, traces) registers its operations at start-up::

    router.register("kv.get", kv.sdk_get)   # async def sdk_get(caller: Caller, args: dict) -> JSON value

A handler raises an ``OrvaError`` for a refusal (the handler sees its code and message); anything else
is reported as INTERNAL without its text.

Every call of a registered operation is a span of the invocation's trace (``SdkRouter.on_span``, set by the
daemon to ``TraceService.sdk_call``): named after the operation (``kv.get``), a child of the invocation's
span, with the operation, how many keys and their bytes (never a value, never a key's text), the target
function of ``invoke`` / ``jobs.enqueue``, and the error code of a failed call. ``invoke`` and
``jobs.enqueue`` run as a caller whose ``span_id`` is the call's span, so what they start hangs under the call:
the callee's execution, the job's attempts. Cost: ~7 us on the event loop per recorded call, and one row for
the batched writer (~8 us on its thread); ``ORVA_TRACE_SDK_SPANS`` bounds the spans per execution. Not traced: ``trace.*`` (the user spans themselves)
and the channel's built-ins (``context``, ``sdk.operations``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from orvad.errors import BadRequest, Conflict, OrvaError, RateLimited, Timeout

log = logging.getLogger(__name__)

MAX_DEPTH = 8  # function-to-function calls: the deepest chain
MAX_CALLS_IN_FLIGHT = 64  # SDK calls one request may have running at once; more answer TOO_MANY_CALLS
STREAM_WINDOW = 16  # chunks of a streamed result sent ahead of the handler's credit frames


@dataclass(frozen=True, slots=True)
class Caller:
    """The invocation an SDK call comes from, as orvad recorded it (never as the sandbox claims)."""

    function_id: str
    function_name: str
    execution_id: str
    deadline: float  # the invocation's deadline on the event loop's clock (loop.time())
    trace_id: str = ""  # W3C trace id (32 hex) of the invocation's trace
    span_id: str = ""  # the invocation's own span (16 hex): the parent of spans its calls make
    chain: tuple[str, ...] = field(default=())  # function ids of the F2F calls that led here, outermost first

    @property
    def depth(self) -> int:
        return len(self.chain)

    def remaining_s(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()


Operation = Callable[[Caller, dict[str, Any]], Awaitable[Any]]
# (caller, op, span id, start in Unix ms, duration ms, error code or None, attributes): one call's span
SpanSink = Callable[[Caller, str, str, float, float, str | None, dict[str, Any]], None]
UNTRACED = frozenset({"context", "sdk.operations"})  # and every trace.* operation
PARENTS = frozenset(
    {"invoke", "jobs.enqueue"}
)  # their callee's execution / job's attempts hang under the call


def new_span_id() -> str:
    span_id = os.urandom(8).hex()
    return span_id if span_id != "0" * 16 else new_span_id()


def call_attributes(op: str, args: dict[str, Any]) -> dict[str, Any]:
    """What a call's span says of its arguments: the operation, the number of keys and their bytes, the
    target function. Never a value, never a key's text (keys may name people: user:alice@example.com)."""
    attributes: dict[str, Any] = {"orva.sdk.op": op}
    keys: Any = None
    if isinstance(args.get("key"), str):
        keys = (args["key"],)
    elif isinstance(args.get("keys"), list):
        keys = args["keys"]
    elif isinstance(args.get("items"), dict):
        keys = args["items"]
    if keys is not None:
        attributes["orva.kv.keys"] = len(keys)
        attributes["orva.kv.key_bytes"] = sum(len(k.encode()) for k in keys if isinstance(k, str))
    if isinstance(args.get("prefix"), str):
        attributes["orva.kv.prefix_bytes"] = len(args["prefix"].encode())
    target = args.get("function") if op in ("invoke", "jobs.enqueue") else None
    if isinstance(target, str) and len(target) <= 200:
        attributes["orva.target"] = target
    return attributes


class UnknownOperation(BadRequest):
    code = "UNKNOWN_OPERATION"


class RequestEnded(Conflict):
    """A call frame for a request of this worker that has already ended (a handler's background work)."""

    code = "REQUEST_ENDED"


class TooManyCalls(RateLimited):
    """More SDK calls in flight for one request than ``MAX_CALLS_IN_FLIGHT``."""

    code = "TOO_MANY_CALLS"


class SdkRouter:
    """Operation name -> the service method that answers it."""

    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}
        self.on_span: SpanSink | None = (
            None  # where each call's span goes (the daemon: TraceService.sdk_call)
        )

    def register(self, op: str, handler: Operation) -> None:
        if op in self._ops:
            raise ValueError(f"SDK operation {op!r} is registered twice")
        self._ops[op] = handler

    @property
    def operations(self) -> list[str]:
        return sorted(self._ops)

    def register_builtins(self) -> None:
        """The channel's own operations: ``context`` (who orvad says is calling) and ``sdk.operations``."""
        self.register("context", self._context)
        self.register("sdk.operations", self._operations)

    async def _context(self, caller: Caller, args: dict[str, Any]) -> Any:
        return {
            "functionId": caller.function_id,
            "functionName": caller.function_name,
            "executionId": caller.execution_id,
            "traceId": caller.trace_id,
            "spanId": caller.span_id,
            "depth": caller.depth,
            "remainingMs": max(0, int(caller.remaining_s() * 1000)),
        }

    async def _operations(self, caller: Caller, args: dict[str, Any]) -> Any:
        return self.operations

    async def call(self, caller: Caller, op: Any, args: Any) -> Any:
        """Run one call within the caller's remaining time; an OrvaError for any refusal. A registered
        operation's call is a span (``on_span``) unless it is ``trace.*`` or a built-in."""
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            raise UnknownOperation(
                f"unknown SDK operation {str(op)[:100]!r}",
                hint="update the function's orva SDK calls: see docs/SDK.md for the operations",
            )
        sink = self.on_span
        if sink is None or not caller.trace_id or op in UNTRACED or op.startswith("trace."):
            return await self._run(caller, op, args, handler)
        span_id = new_span_id()
        start_ms, began = time.time() * 1000, time.perf_counter()
        attributes = call_attributes(op, args) if isinstance(args, dict) else {"orva.sdk.op": op}
        try:
            # the operations that start work of their own run as the call's span (its child hangs under it)
            inner = dataclasses.replace(caller, span_id=span_id) if op in PARENTS else caller
            value = await self._run(inner, op, args, handler)
        except BaseException as exc:
            code = (
                exc.code
                if isinstance(exc, OrvaError)
                else "CANCELLED"
                if isinstance(exc, asyncio.CancelledError)
                else "INTERNAL"
            )
            sink(caller, op, span_id, start_ms, (time.perf_counter() - began) * 1000, code, attributes)
            raise
        if hasattr(value, "__anext__"):  # a streamed result: the span ends with the stream
            return self._traced(value, sink, caller, op, span_id, start_ms, began, attributes)
        sink(caller, op, span_id, start_ms, (time.perf_counter() - began) * 1000, None, attributes)
        return value

    @staticmethod
    async def _traced(
        chunks: Any,
        sink: SpanSink,
        caller: Caller,
        op: str,
        span_id: str,
        start_ms: float,
        began: float,
        attributes: dict[str, Any],
    ) -> AsyncIterator[Any]:
        code: str | None = None
        try:
            async for chunk in chunks:
                yield chunk
        except BaseException as exc:
            code = (
                exc.code
                if isinstance(exc, OrvaError)
                else "CANCELLED"
                if isinstance(exc, asyncio.CancelledError | GeneratorExit)
                else "INTERNAL"
            )
            raise
        finally:
            sink(caller, op, span_id, start_ms, (time.perf_counter() - began) * 1000, code, attributes)
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    @staticmethod
    async def _run(caller: Caller, op: str, args: Any, handler: Operation) -> Any:
        if not isinstance(args, dict):
            raise BadRequest(f"the arguments of {op} must be an object")
        remaining = caller.remaining_s()
        if remaining <= 0:
            raise Timeout(f"{op}: the invocation's deadline has passed")
        try:
            async with asyncio.timeout(remaining):
                return await handler(caller, args)
        except TimeoutError:
            raise Timeout(f"{op} did not finish before the invocation's deadline") from None


def error_result(exc: BaseException, op: Any) -> dict[str, Any]:
    """The ``error`` of a ``result`` frame: an OrvaError as its code and message, anything else INTERNAL."""
    if isinstance(exc, OrvaError):
        body: dict[str, Any] = {"code": exc.code, "message": exc.message, "status": exc.status}
        if exc.hint:
            body["hint"] = exc.hint
        if exc.details:
            body["details"] = exc.details
        return body
    log.error("SDK operation failed", extra={"op": str(op)[:100]}, exc_info=exc)
    return {"code": "INTERNAL", "message": f"{str(op)[:100]} failed inside orvad", "status": 500}
