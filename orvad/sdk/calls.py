"""The in-sandbox SDK's calls, orvad's side: who is calling (``Caller``) and which service answers each
operation (``SdkRouter``).

A handler's ``orva.kv.get(...)`` becomes a ``call`` frame on its worker's stdout (runtimes/PROTOCOL.md);
the worker finds the request it belongs to, so orvad knows the caller from its own records and never
from anything the sandbox says: the function, the execution, the deadline and the trace. Each service
(KV, jobs, cron, function-to-function calls, traces) registers its operations at start-up::

    router.register("kv.get", kv.sdk_get)   # async def sdk_get(caller: Caller, args: dict) -> JSON value

A handler raises an ``OrvaError`` for a refusal (the handler sees its code and message); anything else
is reported as INTERNAL without its text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
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
        """Run one call within the caller's remaining time; an OrvaError for any refusal."""
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            raise UnknownOperation(
                f"unknown SDK operation {str(op)[:100]!r}",
                hint="update the function's orva SDK calls: see docs/SDK.md for the operations",
            )
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
