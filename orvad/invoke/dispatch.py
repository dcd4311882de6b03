"""The one dispatch path every trigger takes: admission -> lease -> invoke -> answer/relay -> settle.

``serve(request, send)`` is that path for a caller with an ASGI ``send`` (HTTP: ``fn_endpoint``
and ``route_endpoint`` build the request from the scope); ``dispatch(request)`` is the same path
for a caller that wants the reply whole (MCP, jobs, cron, a function calling a function).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.types import Receive, Scope, Send

from orvad.errors import BadRequest, FunctionError, MethodNotAllowed, NotFound, OrvaError, ShuttingDown
from orvad.invoke.admission import Admission, refuse_undeployed
from orvad.invoke.capture import capture_row
from orvad.invoke.collaborators import Collaborators
from orvad.invoke.connection import DisconnectWatch, read_body
from orvad.invoke.event import build_event, handler_headers, raw_subpath
from orvad.invoke.flight import Flight
from orvad.invoke.record import CUT_MESSAGE, MESSAGE_CHARS, ExecutionRecord, Killed
from orvad.invoke.relay import SANDBOX_HEADER, Result, answer, end_stream_in_band, orva_headers, relay
from orvad.invoke.request import InvokeRequest
from orvad.invoke.settle import Settler
from orvad.pool.pool import Lease, PoolClosed
from orvad.pool.worker import Reply
from orvad.traces.context import TraceContext, from_headers

_ACQUIRE_ATTEMPTS = 3  # a pool replaced while we waited hands us to its successor
_INVOCATION_TYPE = b"x-orva-invocation-type"


def _asks_event(request: InvokeRequest) -> bool:
    """Whether the request asks to be run later (``X-Orva-Invocation-Type: Event``); ``RequestResponse``
    (or no header) runs it now, anything else is refused."""
    value = request.header(_INVOCATION_TYPE)
    if value is None:
        return False
    kind = value.strip().lower()
    if kind == "event":
        return True
    if kind == "requestresponse":
        return False
    raise BadRequest(
        f"X-Orva-Invocation-Type must be Event or RequestResponse, not {value[:40]!r}",
        hint="send X-Orva-Invocation-Type: Event to queue the call as a job (202), or leave the header out",
    )


class Forward(Protocol):
    """A cluster's warm-aware forwarding (orvad/cluster/forward.py): the request sent to a node with a warm
    worker for the function (an awaitable to run), or None to serve it here. ``local`` serves it here
    after all (the peer unreachable), with the body already read."""

    def take(
        self,
        function_id: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        local: Callable[[Receive], Awaitable[None]],
    ) -> Awaitable[None] | None: ...


class Invoker:
    def __init__(self, deps: Collaborators) -> None:
        self._functions, self._routes, self._pools, self._drain = (
            deps.functions,
            deps.routes,
            deps.pools,
            deps.drain,
        )
        self.admission = Admission(
            origins=deps.origins,
            rate_limiter=deps.rate_limiter,
            concurrency=deps.concurrency,
            trusted_networks=deps.trusted_networks,
            signatures=deps.signatures,
            signing_secret=deps.signing_secret,
            keys=deps.keys,
            sessions=deps.sessions,
        )
        self.settler = Settler(deps.executions, deps.bus, deps.metrics)
        self._inflight: dict[
            str, set[asyncio.Task[Any]]
        ] = {}  # request tasks on a worker, streams included: what kill() cancels
        self._killed: set[asyncio.Task[Any]] = set()
        # X-Orva-Invocation-Type: Event -> a job; set by the daemon (orvad/jobs): the request, its gates and
        # credentials checked, in; the 202's JSON body (with "job_id") out
        self.enqueue_event: Callable[[InvokeRequest], Awaitable[dict[str, Any]]] | None = None
        # a cluster's forwarding of a synchronous call this node has no warm worker for (set by the daemon)
        self.forward: Forward | None = None

    def kill(self, function_id: str) -> int:
        """Cancel every in-flight execution of a function; they are recorded as ``killed``."""
        running = list(self._inflight.get(function_id, ()))
        for task in running:
            self._killed.add(task)
            task.cancel()
        return len(running)

    def stop_orphans(self) -> int:
        return self.settler.stop_orphans()

    # the triggers
    def fn_endpoint(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """ASGI app for /fn/{id} and /fn/{id}/{path} (hands back serve's coroutine: one frame fewer to resume)."""
        ident, _, sub = scope["path"][len("/fn/") :].partition("/")
        request = InvokeRequest.from_scope(self._functions.resolve(ident), "/" + sub, "http", scope, 2)
        if self.enqueue_event is not None and _asks_event(request):
            return self.accept_event(request, send, receive)
        if self.forward is not None:
            taken = self.forward.take(
                request.function.id, scope, receive, send, lambda rcv: self.serve(request, send, rcv)
            )
            if taken is not None:
                return taken
        return self.serve(request, send, receive)

    async def route_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The router's fallback: custom routes, else 404."""
        if scope["type"] != "http":
            return
        match = self._routes.table.match(scope["path"])
        if match is None:
            raise NotFound(
                f"no such endpoint: {scope['path']}",
                hint="see GET /api/v1/openapi.json and GET /api/v1/routes",
            )
        methods = match.route.methods
        if (
            methods is not None
            and scope["method"] not in methods
            and not (scope["method"] == "HEAD" and "GET" in methods)
        ):
            allow = ", ".join(sorted(methods))
            raise MethodNotAllowed(
                f"{scope['method']} is not allowed on {match.route.path}",
                hint=f"allowed methods: {allow}",
                headers={"Allow": allow},
            )
        fn = self._functions.get(match.route.function_id)
        if fn is None:
            raise NotFound(f"the function behind {match.route.path} is gone")
        request = InvokeRequest.from_scope(fn, match.subpath, "route", scope, match.route.raw_skip)
        if self.enqueue_event is not None and _asks_event(request):
            await self.accept_event(request, send, receive)
            return
        if self.forward is not None:
            taken = self.forward.take(fn.id, scope, receive, send, lambda rcv: self.serve(request, send, rcv))
            if taken is not None:
                await taken
                return
        await self.serve(request, send, receive)

    async def accept_event(self, request: InvokeRequest, send: Send, receive: Receive) -> None:
        """``X-Orva-Invocation-Type: Event`` (Lambda's asynchronous invoke): the function's gates and its
        auth_mode are checked as for a call that runs now (signature over this request, API key, rate
        limit), then the request becomes a job (orvad/jobs) and the answer is 202 with its id, sent once
        the job's row is committed. No execution row: each of the job's attempts is one."""
        assert self.enqueue_event is not None
        refuse_undeployed(request.function)
        self.admission.check(request)
        request.body = await read_body(receive)
        if request.function.auth_mode != "none":
            await self.admission.authorize(request, request.body)
        accepted = await self.enqueue_event(request)
        body = json.dumps(accepted).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 202 if accepted.get("created", True) else 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-orva-job-id", str(accepted.get("job_id", "")).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def dispatch(self, request: InvokeRequest) -> Result:
        """One invocation for a caller that is not an HTTP connection: the reply comes back whole.
        Refusals and failures raise the OrvaError HTTP would have answered with (its details name
        the execution once one ran); cancelling the caller's task is a client that left."""
        if request.body is None:
            raise ValueError("a dispatched request carries its body (bytes, maybe empty)")
        result = Result()
        await self.serve(request, result)
        return result

    # the path
    async def serve(self, request: InvokeRequest, send: Send, receive: Receive | None = None) -> None:
        """One invocation, its reply sent through ``send``. ``receive`` (HTTP) delivers the body when
        the request has none yet, and tells when the client goes away."""
        refuse_undeployed(request.function)
        flight = Flight(
            ExecutionRecord.begin(
                request.function,
                request.trigger,
                request.method,
                request.subpath,
                request.grant.channel_id if request.grant is not None else None,
                *self._trace_parent(request),
            ),
            time.perf_counter(),
        )
        try:
            await self._admit(request, flight, receive)
            lease = await self._lease(request, flight)
            reply = await self._invoke(request, flight, lease)
            await self._answer(request, flight, lease, reply, send)
        except OrvaError as exc:
            self._failed(flight, exc)
            raise
        except asyncio.CancelledError:
            if await self._cancelled(request, flight, send):
                raise
        finally:
            if flight.task is not None:
                self._inflight[request.function.id].discard(flight.task)
            if flight.watch is not None:
                flight.watch.stop()
            if flight.gated:
                await self.admission.concurrency.leave(request.function.id)
            if (
                flight.record.status != "rejected"
            ):  # a refused caller leaves no capture: no flood fills the disk
                flight.request = capture_row(request, flight.record.id)  # None: capture off, or no body read
            self.settler.settle(flight)

    @staticmethod
    def _trace_parent(request: InvokeRequest) -> tuple[TraceContext | None, bool]:
        """The span an execution is the child of, and whether it enters its trace from outside orvad:
        a trigger's own (jobs, cron, F2F), else an HTTP request's ``traceparent`` (strict; else none)."""
        if request.trace_parent is not None:
            return request.trace_parent, False
        return (from_headers(request.headers) if request.scope is not None else None), True

    async def _admit(self, request: InvokeRequest, flight: Flight, receive: Receive | None) -> None:
        """Gates, the body, the caller, the concurrency gate. From the body on, a client that goes
        away cancels the request (in the pool's queue too)."""
        fn = request.function
        self.admission.check(request)
        if request.body is None:
            assert receive is not None, "an HTTP request without its body needs receive"
            request.body = await read_body(receive)
        flight.record.request_bytes = len(request.body)
        if receive is not None:
            task = asyncio.current_task()
            assert task is not None
            flight.watch = DisconnectWatch(receive, task)
        if fn.auth_mode != "none":
            await self.admission.authorize(request, request.body)
        if fn.max_concurrency > 0:
            flight.gated = await self.admission.concurrency.enter(
                fn.id, fn.max_concurrency, fn.concurrency_policy, request.time_limit_s()
            )

    async def _lease(self, request: InvokeRequest, flight: Flight) -> Lease:
        """A slot on a worker of the version the function serves now (queueing counts against timeout_ms)."""
        fn = request.function
        for attempt in range(_ACQUIRE_ATTEMPTS):
            flight.pool = pool = self._pools.pool_for(self._functions.get(fn.id) or fn)
            try:
                lease = await pool.acquire(request.time_limit_s() - (time.perf_counter() - flight.started))
            except PoolClosed:
                if attempt == _ACQUIRE_ATTEMPTS - 1:
                    raise
                continue
            flight.lease = lease
            flight.record.leased(pool.code_hash(), lease.cold, lease.queue_ms)
            return lease
        raise AssertionError("unreachable")

    async def _invoke(self, request: InvokeRequest, flight: Flight, lease: Lease) -> Reply:
        """The handler's event to the worker; its reply. An operator kill from here on cancels it."""
        fn, record = request.function, flight.record
        assert request.body is not None
        event = build_event(
            method=request.method,
            path=request.subpath,
            raw_query=request.query.decode("latin-1"),
            headers=handler_headers(request.headers),
            body=request.body,
            request_context={
                "requestId": request.request_id,
                "executionId": record.id,
                "functionId": fn.id,
                "functionName": fn.name,
                "trigger": request.trigger,
                "sourceIp": request.client,
                "time": record.started_at,
            },
            raw_path=raw_subpath(request.raw_path, request.raw_skip, request.subpath),
        )
        if request.job_id is not None:  # a job's attempt: which job (orvad/jobs)
            event["requestContext"]["jobId"] = request.job_id
        if request.webhook_id is not None:  # an inbound webhook's delivery (orvad/webhooks/inbound.py)
            event["requestContext"]["webhookId"] = request.webhook_id
        # queueing is bounded by timeout_ms too, but does not eat the handler's time (F2F: capped by the caller's)
        remaining = request.time_limit_s(time.perf_counter() - flight.started)
        context = {
            "requestId": request.request_id,
            "executionId": record.id,
            "functionId": fn.id,
            "functionName": fn.name,
            "memoryLimitMb": fn.memory_mb,
            "deadlineMs": int(time.time() * 1000 + remaining * 1000),
            "traceId": record.trace_id,
            "spanId": record.span_id,
        }
        flight.chain = request.chain  # for flight.caller: who the handler's SDK calls come from
        task = asyncio.current_task()
        assert task is not None
        inflight = self._inflight.get(fn.id)  # what an operator kill cancels, streams included
        if inflight is None:
            inflight = self._inflight[fn.id] = set()
        inflight.add(task)
        flight.task = task

        def abandoned(future: asyncio.Future[Reply]) -> bool:
            """The client left (not a kill, not the shutdown): the slot stays taken until the reply lands."""
            if task in self._killed or self._drain.was_cut(task):
                return False
            flight.settling = future
            return True

        try:
            reply: Reply = await lease.worker.invoke(event, context, remaining, abandoned, flight.caller)  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            if self._was_killed(task):
                raise Killed(
                    "the execution was killed by an operator",
                    hint=f'resume the function with PUT /api/v1/functions/{fn.name} {{"status": "active"}}',
                ) from None
            if self._drain.claim(task):
                raise self._drain.refusal(CUT_MESSAGE) from None
            raise
        flight.record.logs, flight.record.logs_truncated = reply.logs, reply.logs_truncated
        return reply

    def _answer(
        self, request: InvokeRequest, flight: Flight, lease: Lease, reply: Reply, send: Send
    ) -> Awaitable[None]:
        """The reply, whole or streamed (hands back the sending coroutine: one frame fewer to resume)."""
        headers = orva_headers(flight.record, lease.cold, flight.started)
        sandboxed = request.function.csp_sandbox and self.admission.shares_cookies(request)
        if sandboxed:
            headers.append(SANDBOX_HEADER)  # the page gets an opaque origin: no cookies, no same-origin API
        if reply.kind == "error":
            error = reply.error or {}
            raise FunctionError(
                f"the handler raised {error.get('name', 'an error')}: {error.get('message', '')}"[
                    :MESSAGE_CHARS
                ],
                details={"execution_id": flight.record.id},
            )
        if reply.kind == "stream":
            return relay(
                reply,
                flight,
                headers,
                sandboxed,
                send,
                request.time_limit_s(time.perf_counter() - flight.started),
            )
        return answer(reply, flight, headers, sandboxed, send)

    # how it ended, when not with a reply
    def _failed(self, flight: Flight, exc: OrvaError) -> None:
        """An error answer: recorded, and named after the execution it ended."""
        record, lease = flight.record, flight.lease
        record.failed(exc)
        # a killed execution takes its worker with it: the handler really stops
        flight.healthy = exc.code not in ("WORKER_CRASHED", "TIMEOUT") and not isinstance(
            exc, Killed | ShuttingDown
        )
        if isinstance(exc, ShuttingDown) and lease is not None:
            self.settler.stop_now(lease)
        if lease is not None:
            exc.details = {**(exc.details or {}), "execution_id": record.id}
        exc.name_execution(record.id)  # a hint that points at the execution's logs names this one
        exc.headers = {
            **exc.headers,
            **{
                name.decode(): value.decode()
                for name, value in orva_headers(record, lease is not None and lease.cold, flight.started)
            },
        }

    async def _cancelled(self, request: InvokeRequest, flight: Flight, send: Send) -> bool:
        """The task was cancelled: by the shutdown's end, the client leaving, or an operator kill
        mid-stream. True when the cancellation goes on up."""
        record, lease = flight.record, flight.lease
        if self._drain.claim(asyncio.current_task()):  # the shutdown grace ended
            record.cut(answered=flight.unread is not None)
            flight.healthy = False
            if lease is not None:
                self.settler.stop_now(lease)
            if flight.unread is None:  # nothing sent yet: the 503 envelope
                raise self._drain.refusal(CUT_MESSAGE) from None
            flight.unread = None  # a started stream: an in-band error, and the body stays cut
            await end_stream_in_band(flight.stream_headers, send, request.request_id)
            return False
        if flight.unread is None or not self._was_killed(asyncio.current_task()):
            record.client_left()
            return True
        # an operator kill mid-stream: the stream stays cut (its response cannot become an error),
        # and its worker is taken down with it
        record.killed()
        flight.healthy, flight.unread = False, None
        return False

    def _was_killed(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether an operator kill (not a client) cancelled ``task``; takes the cancel back if so."""
        if task is None or task not in self._killed:
            return False
        self._killed.discard(task)
        task.uncancel()
        return True
