"""Pure ASGI middleware (BaseHTTPMiddleware would break contextvars and streaming).

``RequestContext`` is the outermost layer: it gives every request an id (the caller's
``X-Request-ID`` when sane), stamps it on the response, renders any error that escaped the
app as the envelope, and writes one access-log line. ``BodyLimit`` refuses oversized bodies
from ``Content-Length`` and while the body streams in, never by reading it all first, and a
request framed twice (``Content-Length`` and ``Transfer-Encoding``). ``HostGuard`` refuses
/api and /web for a ``Host`` orvad does not answer to (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Callable
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orvad.errors import BadRequest, OrvaError, PayloadTooLarge
from orvad.host.memtrim import TRIM_AFTER_BYTES, HeapTrimmer
from orvad.http.drain import Drain
from orvad.http.origins import Origins
from orvad.logs import AccessLog

access_log = AccessLog("orvad.access")
errlog = logging.getLogger("orvad.errors")

_random = random.Random()
RESTORE_HOLD_S = (
    30.0  # how long a request arriving during a restore's reload waits for it (then 503 RESTORING)
)
_PROBES = ("/health/", "/api/v1/system/health")  # answered at once during a restore (not ready: 503)
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


def new_request_id() -> str:
    return f"req_{_random.getrandbits(64):016x}"  # unique, not secret: no system call per request


def error_parts(exc: OrvaError, request_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The one rendering of an error: status, headers and the envelope body."""
    body = json.dumps(exc.envelope(request_id)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.retry_after_s is not None:
        headers.append((b"retry-after", str(exc.retry_after_s).encode()))
    for name, value in exc.headers.items():
        headers.append((name.encode(), value.encode()))
    return exc.status, headers, body


class RequestContext:
    def __init__(self, app: ASGIApp, drain: Drain | None = None) -> None:
        self.app = app
        self.drain = drain if drain is not None else Drain()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent_id = _header(scope, b"x-request-id")
        request_id = sent_id if sent_id and _SANE_ID.match(sent_id) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0
        drain = self.drain
        task = asyncio.current_task()
        assert task is not None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
                if drain.draining and scope.get("http_version") in _HTTP1:
                    headers.append((b"connection", b"close"))  # the client reconnects, to another orvad
                if scope["path"].startswith("/api/") and _event_stream(headers):
                    drain.feed(task)
            await send(message)

        try:
            if drain.draining:
                raise drain.refusal()
            if drain.paused and not scope["path"].startswith(_PROBES):
                await drain.hold(RESTORE_HOLD_S)  # a restore's reload: wait for the restored state
            drain.work.add(task)
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if not drain.claim(task):
                raise
            await _cut_by_shutdown(drain, task, status, send_with_id, request_id)
        except Exception as exc:
            error = _as_orva_error(exc, request_id, scope)
            if status:  # the response has started; the connection is all we can end
                raise
            await _send_error(send_with_id, error, request_id)
        finally:
            drain.work.discard(task)
            if drain.watching:
                drain.left(task)
            request_id_var.reset(token)
            if access_log.enabled():
                access_log.write(
                    "request",
                    request_id=request_id,
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )


def _as_orva_error(exc: Exception, request_id: str, scope: Scope) -> OrvaError:
    """An OrvaError as it is; anything else is a bug: logged with its traceback, answered as an opaque 500."""
    if isinstance(exc, OrvaError):
        return exc
    errlog.exception("unhandled error", extra={"request_id": request_id, "path": scope.get("path")})
    return OrvaError("internal error", hint=f"report request id {request_id} to the operator")


async def _cut_by_shutdown(
    drain: Drain, task: asyncio.Task[object], status: int, send: Send, request_id: str
) -> None:
    """The shutdown's grace ended while the request ran: end an API event stream, leave another started
    response cut, or answer 503 SHUTTING_DOWN when nothing was sent yet."""
    if status:  # an API event stream, or a response cut mid-way: end what was started
        if drain.is_feed(task):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    await _send_error(send, drain.refusal("orvad shut down before this request finished"), request_id)


async def _send_error(send: Send, error: OrvaError, request_id: str) -> None:
    code, headers, body = error_parts(error, request_id)
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Also tells ``trimmer`` when a large body is done, so the heap it took goes back to the system."""

    def __init__(
        self, app: ASGIApp, limit_for: Callable[[Scope], int], trimmer: HeapTrimmer | None = None
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.trimmer = trimmer if trimmer is not None else HeapTrimmer()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _header(scope, b"content-length")
        if declared is not None and _header(scope, b"transfer-encoding") is not None:
            # two framings: a proxy in front may have used the other one (request smuggling)
            raise BadRequest(
                "a request may not carry both Content-Length and Transfer-Encoding",
                hint="send one of them: Content-Length for a body of known size, else chunked",
                headers={"Connection": "close"},
            )
        if (
            declared == "0"
            or declared is None
            and _header(scope, b"transfer-encoding") is None
            and scope.get("http_version") in _HTTP1
        ):
            await self.app(scope, receive, send)  # HTTP/1 without a body: nothing can be left unread
            return
        await self._with_body(scope, receive, send, limit, declared)

    async def _with_body(
        self, scope: Scope, receive: Receive, send: Send, limit: int, declared: str | None
    ) -> None:
        """An answer given before the whole body was read (a refusal, a 404) says ``Connection: close``:
        the server drops such a connection after the answer (Hypercorn even when the rest arrives a moment
        later), and a client that was not told would send its next request into a closing socket."""
        ended = False

        async def tracked() -> Message:
            nonlocal ended
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                ended = True
            return message

        async def closing_if_unread(message: Message) -> None:
            if message["type"] == "http.response.start" and not ended and scope.get("http_version") in _HTTP1:
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        try:
            await self._limited(scope, tracked, closing_if_unread, limit, declared)
        except OrvaError as exc:
            if not ended:
                _close_after(scope, exc)
            raise

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, limit: int, declared: str | None
    ) -> None:
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                refused = _too_large(limit)
                if (_header(scope, b"expect") or "").lower() == "100-continue":
                    _close_after(scope, refused)  # nothing was sent: nothing to read
                elif int(declared) <= _discard_bound(limit):
                    await _discard(scope, receive, refused, limit)
                else:
                    _close_after(scope, refused)  # too much to read for nothing
                raise refused
            try:
                await self.app(scope, receive, send)  # the server delivers no more than the declared length
            finally:
                if int(declared) >= TRIM_AFTER_BYTES:
                    self.trimmer.after_body(int(declared))
            return
        seen = 0  # no length given (chunked, or HTTP/2 without one): count as it arrives

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = _too_large(limit)
                    if message.get(
                        "more_body"
                    ):  # before the answer, whoever renders it (the API's handlers do)
                        await _discard(scope, receive, refused, limit)
                    raise refused
            return message

        try:
            await self.app(scope, counted, send)
        finally:
            if seen >= TRIM_AFTER_BYTES:
                self.trimmer.after_body(seen)


DISCARD_MIN_BYTES = 32 * 1024 * 1024
DISCARD_MAX_S = 10.0


def _discard_bound(limit: int) -> int:
    """How much of an over-limit body orvad reads and throws away so that its 413 arrives: closing a
    connection with unread bytes makes the kernel send a reset, which destroys the answer before
    the client reads it (once more is sent than the kernel buffers, 12-20 MiB on loopback here). As
    much as the limit (what an accepted body costs), at least 32 MiB; nothing of it is kept."""
    return max(DISCARD_MIN_BYTES, limit)


async def _discard(scope: Scope, receive: Receive, refused: PayloadTooLarge, limit: int) -> None:
    """Read the rest of the body without keeping it, up to the bound in bytes and time; if it does not
    end by then, the answer says Connection: close (the server closes after it)."""
    budget = _discard_bound(limit)
    try:
        async with asyncio.timeout(DISCARD_MAX_S):
            while budget > 0:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client left
                budget -= len(message.get("body", b""))
                if not message.get("more_body"):
                    return
    except TimeoutError:
        pass
    _close_after(scope, refused)


_HTTP1 = ("1.0", "1.1")


def _close_after(scope: Scope, error: OrvaError) -> None:
    """The answer ends the connection: ``Connection: close`` on HTTP/1 (HTTP/2 forbids the header;
    its streams end on their own)."""
    if scope.get("http_version") in _HTTP1:
        error.headers["Connection"] = "close"


class HostGuard:
    """/api and /web answer only the Host names of ORVA_ALLOWED_HOSTS (DNS rebinding); the rest
    (functions, custom routes, health probes) is not checked."""

    def __init__(self, app: ASGIApp, origins: Origins) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if (
            path.startswith("/api/") or path == "/web" or path.startswith("/web/")
        ) and not self.origins.host_allowed(scope):
            host = _header(scope, b"host") or ""
            raise BadRequest(
                f"Host {host!r} is not one this orvad answers for /api and /web",
                hint="add the name to ORVA_ALLOWED_HOSTS (comma list; default: the bind address, "
                "localhost, 127.0.0.1, [::1] and ORVA_PUBLIC_URL's host), or set ORVA_PUBLIC_URL",
                details={"host": host},
            )
        await self.app(scope, receive, send)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body exceeds the limit of {limit} bytes",
        hint="send a smaller body, or raise ORVA_MAX_BODY_BYTES",
        details={"limit_bytes": limit},
    )


def _event_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        k.lower() == b"content-type" and v.partition(b";")[0].strip().lower() == b"text/event-stream"
        for k, v in headers
    )


def _header(scope: Scope, name: bytes) -> str | None:
    key: bytes
    value: bytes
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
