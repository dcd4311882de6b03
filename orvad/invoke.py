"""The one dispatch path for every trigger: resolve -> gate -> acquire -> dispatch -> respond -> record.

Raw ASGI, for speed and for streaming. Nothing here touches the disk or the database: the
function, its route and its pool are found in memory; the execution row goes to the batched
writer after the response. A client that disconnects cancels its request and frees the slot.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.types import Receive, Scope, Send

from orvad.auth.guard import csrf_header_sent, identify
from orvad.clock import now_iso
from orvad.drain import Drain
from orvad.errors import (
    Forbidden,
    FunctionError,
    MethodNotAllowed,
    NotActive,
    NotDeployed,
    NotFound,
    OrvaError,
    ShuttingDown,
    Unauthorized,
    Unavailable,
)
from orvad.events import (
    BadResponse,
    build_event,
    confined,
    handler_headers,
    raw_subpath,
    response_headers,
    status_code,
)
from orvad.ids import uuid7
from orvad.limits import client_address
from orvad.models import Function
from orvad.pool.pool import Lease, Pool, PoolClosed
from orvad.pool.worker import Reply
from orvad.store.paths import recorded_path

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_SIGNING_HEADERS = (b"x-orva-timestamp", b"x-orva-signature")
# Function replies that land on the dashboard's cookie scope (docs/API.md): scripts and forms run,
# but in an opaque origin, so the page can neither read or set the dashboard's cookies nor call
# the API as the logged-in operator.
_SERVICE_WORKER = (b"service-worker", b"script")  # what a browser sends when it fetches a worker's script
SANDBOX_HEADER = (b"content-security-policy", b"sandbox allow-scripts allow-forms allow-modals allow-downloads")


def signed_target(scope: Scope) -> str:
    """The request target a signature covers: the path as sent (%-escapes kept, /fn/<id> or the
    route's path included) and ``?query`` when the query is not empty."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"]
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError("client disconnected")
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


# A request still running after this long gets a task that watches for its client going away.
# Most invocations end sooner, and a watcher task for every request would cost each one ~5% of
# orvad's CPU; a client that leaves earlier is noticed at this mark.
DISCONNECT_WATCH_AFTER_S = 0.05
CUT_MESSAGE = "orvad shut down before the execution finished (its shutdown grace ended)"


class _DisconnectWatch:
    """Cancels the request's task when its client goes away (the body was read already)."""

    def __init__(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        self._receive, self._task = receive, task
        self._watcher: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(DISCONNECT_WATCH_AFTER_S, self._start)

    def _start(self) -> None:
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._task.cancel()

    def stop(self) -> None:
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


class Invoker:
    def __init__(self, daemon: Any) -> None:
        self.d = daemon
        self._inflight: dict[str, set[asyncio.Task[Any]]] = {}  # request tasks on a worker, streams included: what kill() cancels
        self._killed: set[asyncio.Task[Any]] = set()
        self._stopping: set[asyncio.Future[None]] = set()  # workers of requests the shutdown cut
        self._orphans: dict[int, Lease] = {}  # slots held by handlers whose client left, by id(lease)

    def kill(self, function_id: str) -> int:
        """Cancel every in-flight execution of a function; they are recorded as ``killed``."""
        running = list(self._inflight.get(function_id, ()))
        for task in running:
            self._killed.add(task)
            task.cancel()
        return len(running)

    # entry points
    def fn_endpoint(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """ASGI app for /fn/{id} and /fn/{id}/{path} (hands back run's coroutine: one frame fewer to resume)."""
        ident, _, sub = scope["path"][len("/fn/"):].partition("/")
        return self.run(self.d.functions.resolve(ident), "/" + sub, "http", scope, receive, send, 2)

    async def route_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The router's fallback: custom routes, else 404."""
        if scope["type"] != "http":
            return
        match = self.d.routes.table.match(scope["path"])
        if match is None:
            raise NotFound(f"no such endpoint: {scope['path']}", hint="see GET /api/v1/openapi.json and GET /api/v1/routes")
        methods = match.route.methods
        if methods is not None and scope["method"] not in methods and not (
                scope["method"] == "HEAD" and "GET" in methods):
            allow = ", ".join(sorted(methods))
            raise MethodNotAllowed(f"{scope['method']} is not allowed on {match.route.path}",
                                   hint=f"allowed methods: {allow}", headers={"Allow": allow})
        fn = self.d.functions.get(match.route.function_id)
        if fn is None:
            raise NotFound(f"the function behind {match.route.path} is gone")
        await self.run(fn, match.subpath, "route", scope, receive, send, match.route.raw_skip)

    # gates
    @staticmethod
    def _refuse_undeployed(fn: Function) -> None:
        """A function that never had code deployed: refused before the call is recorded (no execution row)."""
        if fn.status == "created" and fn.active_deployment_id is None:
            raise NotDeployed(f"function {fn.name} has no deployed code",
                              hint=f"deploy first: POST /api/v1/functions/{fn.name}/deploy-inline",
                              details={"function_id": fn.id, "status": fn.status})

    def _gate(self, fn: Function) -> None:
        if fn.status == "inactive":
            raise NotActive(f"function {fn.name} is inactive", details={"function_id": fn.id, "status": fn.status},
                            hint=f'set it active with PUT /api/v1/functions/{fn.name} {{"status": "active"}}')
        if fn.status == "error":
            raise NotActive(f"function {fn.name} never had a successful build", details={"function_id": fn.id, "status": fn.status},
                            hint=f"deploy a version that builds (POST /api/v1/functions/{fn.name}/deploy-inline); the "
                                 f"failed build's log is listed by GET /api/v1/functions/{fn.name}/deployments")
        if fn.active_deployment_id is None:
            raise Unavailable(f"function {fn.name} has no built version yet", code="BUILDING", retry_after_s=5,
                              hint=f"wait for the deployment to finish (GET /api/v1/functions/{fn.name}/deployments)",
                              details={"function_id": fn.id})

    async def _authorize(self, fn: Function, scope: Scope, body: bytes) -> None:
        if fn.auth_mode == "none":
            return
        if fn.auth_mode == "signed":
            sent = [(k, v.decode("latin-1")) for k, v in scope["headers"] if k in _SIGNING_HEADERS]
            headers = dict(sent)
            if len(headers) != len(sent):
                raise Unauthorized("X-Orva-Timestamp and X-Orva-Signature may each be sent once",
                                   hint="send one of each")
            self.d.signatures.verify(await self.d.secrets.signing_secret(fn.id), headers.get(b"x-orva-timestamp"),
                                     headers.get(b"x-orva-signature"), body, version=fn.signature_version,
                                     method=scope["method"], target=signed_target(scope))
            return
        if fn.auth_mode == "api_key":
            principal = await identify(scope, self.d.keys, self.d.sessions)
            if principal is None:
                raise Unauthorized(f"function {fn.name} needs an API key with the invoke permission")
            if principal.kind == "session" and not csrf_header_sent(scope):
                # the operator's cookie rides along with any same-site request (another port, a function
                # page): only the dashboard, which adds this header, may invoke with it
                raise Forbidden(f"function {fn.name} was called with the dashboard's session but without "
                                "X-Orva-CSRF: 1", details={"required": "X-Orva-CSRF"},
                                hint="call it with an API key (X-Orva-API-Key) that has the invoke permission; "
                                     "the dashboard's Test tab sends the header itself")
            if not principal.can("invoke"):
                raise Forbidden("this API key lacks the 'invoke' permission", details={"required": "invoke"},
                                hint='call with a key that has it (POST /api/v1/keys {"permissions": ["invoke"]})')
            return
        raise Unauthorized(f"function {fn.name} has an unknown auth_mode {fn.auth_mode!r}")

    def pool_for(self, fn: Function) -> Pool:
        code_hash = self.d.active_hash(fn)
        spawner = self.d.spawner
        key = spawner.key(fn, code_hash)
        current = self.d.pools.current(fn.id, key)
        if current is not None:  # the usual case: no spawner or details built
            return current
        return self.d.pools.ensure(fn.id, key, spawner.spawner(fn, code_hash), fn.memory_mb,
                                   spawner.details(fn, code_hash))

    # the path
    async def run(self, fn: Function, subpath: str, trigger: str, scope: Scope, receive: Receive, send: Send,
                  raw_skip: int | None = None) -> None:
        """One invocation; ``raw_skip`` is how many leading segments of the raw path are not the
        function's (its rawPath keeps the %-encoding the decoded ``subpath`` lost)."""
        self._refuse_undeployed(fn)
        started, started_at = time.perf_counter(), now_iso()
        execution_id = uuid7()
        record: dict[str, Any] = {
            "id": execution_id, "function_id": fn.id, "function_name": fn.name, "code_hash": None,
            "trigger": trigger, "method": scope["method"], "path": recorded_path(subpath), "status": "rejected",
            "status_code": 500, "cold_start": False, "duration_ms": 0.0, "queue_ms": 0.0, "request_bytes": 0,
            "response_bytes": 0, "error_code": None, "error_message": None, "started_at": started_at,
            "finished_at": started_at,
        }
        logs, truncated = "", False
        lease: Lease | None = None
        pool: Pool | None = None
        settling: list[asyncio.Future[Reply]] = []  # the reply of a handler still running after a disconnect
        unread: Reply | None = None  # a stream whose client went away: the worker drops the rest
        stream_headers: list[tuple[bytes, bytes]] = []
        healthy = True
        gated = False
        watch: _DisconnectWatch | None = None
        try:
            self._gate(fn)
            if _SERVICE_WORKER in scope["headers"] and self.d.origins.shares_cookies(scope):
                raise Forbidden("function content cannot become a service worker where the dashboard's cookies live",
                                hint="serve functions from their own origin (ORVA_FUNCTIONS_ORIGIN) to register one")
            client = scope.get("client")
            if fn.rate_limit_per_min > 0:
                forwarded = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"), None)
                self.d.rate_limiter.take(fn.id, client_address(client[0] if client else "", forwarded,
                                                               self.d.settings.trusted_networks), fn.rate_limit_per_min)
            body = await _read_body(receive)
            record["request_bytes"] = len(body)
            # from here a client that goes away cancels the request: in the pool's queue too
            task = asyncio.current_task()
            assert task is not None
            watch = _DisconnectWatch(receive, task)
            if fn.auth_mode != "none":
                await self._authorize(fn, scope, body)
            timeout_s = fn.timeout_ms / 1000
            if fn.max_concurrency > 0:
                gated = await self.d.concurrency.enter(fn.id, fn.max_concurrency, fn.concurrency_policy, timeout_s)
            for attempt in range(3):  # a pool replaced while we waited hands us to its successor
                pool = self.pool_for(self.d.functions.get(fn.id) or fn)
                try:
                    lease = await pool.acquire(timeout_s - (time.perf_counter() - started))
                    break
                except PoolClosed:
                    if attempt == 2:
                        raise
            assert lease is not None and pool is not None
            record["code_hash"] = pool.code_hash()
            record["cold_start"], record["queue_ms"] = lease.cold, round(lease.queue_ms, 3)
            event = build_event(
                method=scope["method"], path=subpath, raw_query=scope.get("query_string", b"").decode("latin-1"),
                headers=handler_headers(scope["headers"]), body=body,
                request_context={"requestId": scope.get("state", {}).get("request_id", ""),
                                 "executionId": execution_id, "functionId": fn.id, "functionName": fn.name,
                                 "trigger": trigger, "sourceIp": client[0] if client else "", "time": started_at},
                raw_path=raw_subpath(scope.get("raw_path"), raw_skip, subpath))
            remaining = timeout_s  # queueing is bounded by timeout_ms too, but does not eat the handler's time
            context = {"requestId": event["requestContext"]["requestId"], "executionId": execution_id,
                       "functionId": fn.id, "functionName": fn.name, "memoryLimitMb": fn.memory_mb,
                       "deadlineMs": int(time.time() * 1000 + remaining * 1000)}
            inflight = self._inflight.setdefault(fn.id, set())  # what an operator kill cancels, streams included
            inflight.add(task)
            reply = await self._dispatch(lease, event, context, remaining, settling)
            logs, truncated = reply.logs, reply.logs_truncated
            headers = self._orva_headers(execution_id, lease.cold, started)
            sandboxed = fn.csp_sandbox and self.d.origins.shares_cookies(scope)
            if sandboxed:
                headers.append(SANDBOX_HEADER)  # the page gets an opaque origin: no cookies, no same-origin API
            if reply.kind == "error":
                error = reply.error or {}
                raise FunctionError(f"the handler raised {error.get('name', 'an error')}: {error.get('message', '')}"[:500],
                                    details={"execution_id": execution_id})
            if reply.kind == "stream":  # the watch stays on: a client that leaves mid-stream cancels it too
                status, stream_headers = _rendered(lambda: (status_code(reply.status), response_headers(reply.headers)))
                if sandboxed:
                    stream_headers = confined(stream_headers)
                record["status_code"] = status
                unread = reply  # until the stream has been relayed to its end
                end = await self._stream(reply, status, stream_headers + headers, send,
                                         time.perf_counter() + timeout_s, record)
                unread = None
                watch.stop()  # before the response completes: servers then answer receive() with a disconnect
                logs, truncated = end.get("logs", ""), bool(end.get("logsTruncated"))
                record["status"] = "success"
                if (failure := end.get("error")) is not None:
                    timed_out = failure.get("kind") == "timeout"
                    record["status"], record["error_code"] = ("timeout", "TIMEOUT") if timed_out else ("error", "FUNCTION_ERROR")
                    record["error_message"] = str(failure.get("message"))[:500]
                    healthy = not timed_out and lease.worker.alive  # a stream cut at its deadline takes its worker
                else:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                # (a stream that ended in an error is not finished: the server closes the connection, so
                # the client sees a cut body, never a complete one)
            else:
                status, out_headers, out = _rendered(lambda: _response(reply.response or {}))
                if sandboxed:
                    out_headers = confined(out_headers)
                record["status_code"] = status
                watch.stop()  # before the response completes: servers then answer receive() with a disconnect
                await send({"type": "http.response.start", "status": status, "headers": out_headers + headers})
                await send({"type": "http.response.body", "body": out})
                record["response_bytes"] = len(out)
                record["status"] = "success"
        except OrvaError as exc:
            record["status"], record["status_code"] = _status_of(exc), exc.status
            record["error_code"], record["error_message"] = exc.code, exc.message[:500]
            # a killed execution takes its worker with it: the handler really stops
            healthy = exc.code not in ("WORKER_CRASHED", "TIMEOUT") and not isinstance(exc, Killed | ShuttingDown)
            if isinstance(exc, ShuttingDown) and lease is not None:
                self._stop_now(lease)
            exc.details = {**(exc.details or {}), "execution_id": execution_id} if lease is not None else exc.details
            exc.name_execution(execution_id)  # a hint that points at the execution's logs names this one
            exc.headers = {**exc.headers, **{name.decode(): value.decode() for name, value in
                                             self._orva_headers(execution_id, lease is not None and lease.cold, started)}}
            raise
        except asyncio.CancelledError:
            if self.d.drain.claim(asyncio.current_task()):  # the shutdown grace ended
                record["status"], record["error_code"], record["error_message"] = ("shutting_down", "SHUTTING_DOWN",
                                                                                   CUT_MESSAGE)
                healthy = False
                if lease is not None:
                    self._stop_now(lease)
                if unread is None:  # nothing sent yet: the 503 envelope
                    record["status_code"] = 503
                    raise self.d.drain.refusal(CUT_MESSAGE) from None
                unread = None  # a started stream: an in-band error, and the body stays cut
                await _end_stream_in_band(stream_headers, send, scope)
                return
            if unread is None or not self._was_killed(asyncio.current_task()):
                record["status"], record["status_code"], record["error_code"] = "killed", 499, "CLIENT_CLOSED"
                record["error_message"] = "the client disconnected"
                raise
            # an operator kill mid-stream: the stream stays cut (its response cannot become an error),
            # and its worker is taken down with it
            record["status"], record["error_code"] = "killed", "NOT_ACTIVE"
            record["error_message"] = "the execution was killed by an operator"
            healthy, unread = False, None
        finally:
            if watch is not None:
                watch.stop()
                self._inflight.get(fn.id, set()).discard(task)
            if gated:
                await self.d.concurrency.leave(fn.id)
            duration = time.perf_counter() - started
            if lease is not None and pool is not None and unread is not None and lease.worker.alive:
                # the client left mid-stream but the handler streams on: its slot is free once it ends
                # (or is killed at its deadline), so the worker is never given more than it can take
                self._orphans[id(lease)] = lease
                self._release_after_stream(pool, lease, started, unread)
            elif lease is not None and pool is not None and settling:
                # the same for a handler still running when its client left
                self._orphans[id(lease)] = lease
                settling[0].add_done_callback(functools.partial(self._release_settled, pool, lease, started))
            elif lease is not None and pool is not None:
                pool.release(lease, healthy=healthy and lease.worker.alive, duration_s=duration)
            record["duration_ms"], record["finished_at"] = round(duration * 1000, 3), now_iso()
            self.d.record_execution(record, logs, truncated)

    def _stop_now(self, lease: Lease) -> None:
        """A handler cut by the shutdown: its worker stops at once (no quit grace: orvad is exiting)."""
        stopping = asyncio.ensure_future(lease.worker.stop(grace_s=0.0))  # type: ignore[attr-defined]
        self._stopping.add(stopping)
        stopping.add_done_callback(self._stopping.discard)

    def _was_killed(self, task: asyncio.Task[Any] | None) -> bool:
        """Whether an operator kill (not a client) cancelled ``task``; takes the cancel back if so."""
        if task is None or task not in self._killed:
            return False
        self._killed.discard(task)
        task.uncancel()
        return True

    async def _dispatch(self, lease: Lease, event: dict[str, Any], context: dict[str, Any], timeout_s: float,
                        settling: list[asyncio.Future[Reply]]) -> Reply:
        """Invoke, but give up if the client disconnects (run's watch cancels us) or an operator kills it.

        After a disconnect the handler's reply future lands in `settling` (the slot stays taken until
        it resolves); after a kill the worker is dropped instead.
        """
        task = asyncio.current_task()
        assert task is not None

        def abandoned(future: asyncio.Future[Reply]) -> bool:
            if task in self._killed or self.d.drain.was_cut(task):
                return False
            settling.append(future)
            return True

        try:
            return await lease.worker.invoke(event, context, timeout_s, abandoned)  # type: ignore[attr-defined, no-any-return]
        except asyncio.CancelledError:
            if self._was_killed(task):
                raise Killed("the execution was killed by an operator",
                             hint=f"resume the function with PUT /api/v1/functions/{context['functionName']} "
                                  '{"status": "active"}') from None
            if self.d.drain.claim(task):
                raise self.d.drain.refusal(CUT_MESSAGE) from None
            raise

    def _release_settled(self, pool: Pool, lease: Lease, started: float, reply: asyncio.Future[Reply]) -> None:
        """The handler of a request whose client left has answered or died: free its slot (a stream's
        once the stream ends)."""
        healthy = not reply.cancelled() and reply.exception() is None and lease.worker.alive
        if healthy and reply.result().kind == "stream":
            self._release_after_stream(pool, lease, started, reply.result())
            return
        self._orphans.pop(id(lease), None)
        pool.release(lease, healthy=healthy, duration_s=time.perf_counter() - started)

    def _release_after_stream(self, pool: Pool, lease: Lease, started: float, stream: Reply) -> None:
        """Nobody reads this stream: drop its chunks, and free the slot when its handler ends."""
        lease.worker.forget_stream(stream)  # type: ignore[attr-defined]
        assert stream.ended is not None

        def ended(_: object) -> None:
            self._orphans.pop(id(lease), None)
            pool.release(lease, healthy=lease.worker.alive, duration_s=time.perf_counter() - started)

        stream.ended.add_done_callback(ended)

    def stop_orphans(self) -> int:
        """At the end of the shutdown drain: handlers still running for clients that left are stopped
        now (their slots would otherwise hold the pools' close for its grace)."""
        orphans = list(self._orphans.values())
        for lease in orphans:
            self._stop_now(lease)
        return len(orphans)

    @staticmethod
    def _orva_headers(execution_id: str, cold: bool, started: float) -> list[tuple[bytes, bytes]]:
        return [(b"x-orva-execution-id", execution_id.encode()), (b"x-orva-cold-start", b"true" if cold else b"false"),
                (b"x-orva-duration-ms", f"{(time.perf_counter() - started) * 1000:.3f}".encode())]

    @staticmethod
    async def _stream(reply: Reply, status: int, headers: list[tuple[bytes, bytes]], send: Send,
                      deadline: float, record: dict[str, Any]) -> dict[str, Any]:
        """Relay the chunks (counted in the record as they go); the end frame. The caller finishes
        the response (or, after an error, leaves it cut)."""
        await send({"type": "http.response.start", "status": status, "headers": headers})
        assert reply.chunks is not None and reply.ended is not None
        while True:
            remaining = deadline - time.perf_counter()
            try:
                chunk = await asyncio.wait_for(reply.chunks.get(), max(0.001, remaining))
            except TimeoutError:
                return {"error": {"kind": "timeout", "message": "the stream ran past the function's timeout"}, "logs": ""}
            if chunk is None:
                return reply.ended.result()
            data = base64.b64decode(chunk["data"]) if chunk.get("isBase64Encoded") else chunk["data"].encode()
            record["response_bytes"] += len(data)
            await send({"type": "http.response.body", "body": data, "more_body": True})


def _response(response: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
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


def _rendered(render: Callable[[], _T]) -> _T:
    try:
        return render()
    except BadResponse as exc:
        raise FunctionError(f"the handler's response cannot be sent: {exc}",
                            hint="return {statusCode: 200..599, headers: {name: value}, body: text} or a plain "
                                 "value (docs/API.md)") from None


class Killed(NotActive):
    """An operator killed the function while this request ran (409 NOT_ACTIVE, recorded as killed)."""


async def _end_stream_in_band(headers: list[tuple[bytes, bytes]], send: Send, scope: Scope) -> None:
    """A stream cut by the shutdown: an event stream gets a last ``event: error`` with the envelope;
    any stream is left without its final chunk, so the client sees an incomplete body."""
    if not any(k == b"content-type" and v.partition(b";")[0].strip().lower() == b"text/event-stream"
               for k, v in headers):
        return
    envelope = Drain.refusal(CUT_MESSAGE).envelope(scope.get("state", {}).get("request_id", ""))
    with contextlib.suppress(Exception):  # the client may be gone too
        await send({"type": "http.response.body", "body": b"event: error\ndata: " + json.dumps(envelope).encode()
                    + b"\n\n", "more_body": True})


def _status_of(exc: OrvaError) -> str:
    if isinstance(exc, Killed):
        return "killed"
    if isinstance(exc, ShuttingDown):
        return "shutting_down"
    return {"FUNCTION_ERROR": "error", "TIMEOUT": "timeout", "WORKER_CRASHED": "crashed"}.get(exc.code, "rejected")
