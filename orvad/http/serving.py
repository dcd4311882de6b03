"""What the HTTP servers need beyond the app: the addresses to listen on (the functions origin
may add a port), and refusals of their own HTTP parsers (malformed framing, oversized heads)
answered with the error envelope and an X-Request-ID like every other error.

Hypercorn offers no hook for its parser's refusals: ``envelope_hypercorn_refusals`` replaces
``H11Protocol._send_error_response`` (the one place it answers them), once, at start. Granian's
parser (Rust) has none either: what it lets through and what it answers itself are in
orvad/http/granian_server.py.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from orvad.config import Settings
from orvad.errors import BadRequest, HeadersTooLarge, OrvaError
from orvad.http.middleware import error_parts, new_request_id
from orvad.http.origins import Origins

log = logging.getLogger(__name__)
# request line and headers: Hypercorn's own h11 limit, applied to Uvicorn and Granian too
MAX_HEAD_BYTES = 16 * 1024


def listen_ports(settings: Settings, origins: Origins) -> list[int]:
    """``port``, and the functions origin's port when it is another one (same bind address)."""
    extra = origins.functions_listener
    return [settings.port] if extra is None else [settings.port, extra]


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _refusal(status: int) -> OrvaError:
    if status == 431:
        return HeadersTooLarge(f"the request line and headers exceed {MAX_HEAD_BYTES} bytes")
    refused = BadRequest(
        "the request is not valid HTTP/1.1 (for example both Content-Length and Transfer-Encoding, "
        "or a malformed request line or header)",
        hint="send one well-formed request; the connection is closed",
    )
    refused.status = status if 400 <= status < 600 else 400
    return refused


def refusal_parts(status: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers (X-Request-ID and Connection: close included) and envelope of a parser refusal."""
    request_id = new_request_id()
    code, headers, body = error_parts(_refusal(status), request_id)
    return code, [*headers, (b"x-request-id", request_id.encode()), (b"connection", b"close")], body


def _raw_refusal(status: int) -> bytes:
    code, headers, body = refusal_parts(status)
    reason = b"Request Header Fields Too Large" if code == 431 else b"Bad Request"
    lines = [b"HTTP/1.1 %d %s" % (code, reason), *(k + b": " + v for k, v in headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def uvicorn_protocol() -> type[Any]:
    """Uvicorn's httptools protocol with a 16 KiB head limit (431) and its parser's refusals as
    the envelope instead of a plain-text 400."""
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeadTooLarge(httptools.HttpParserError):
        """Raised from a parser callback: data_received answers it through send_400_response."""

    class OrvaHttpToolsProtocol(HttpToolsProtocol):
        _orva_head = 0

        def on_message_begin(self) -> None:
            self._orva_head = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def _count(self, size: int) -> None:
            self._orva_head += size
            if self._orva_head > MAX_HEAD_BYTES:
                raise HeadTooLarge("request head too large")

        def send_400_response(self, msg: str) -> None:
            self.transport.write(_raw_refusal(431 if self._orva_head > MAX_HEAD_BYTES else 400))
            self.transport.close()

    return OrvaHttpToolsProtocol


def uvicorn_sockets(app: Any, settings: Settings, origins: Origins) -> list[socket.socket]:
    import uvicorn

    # log_config=None: a Config otherwise re-applies Uvicorn's own logging over orvad's
    return [
        uvicorn.Config(app, host=settings.host, port=port, log_config=None).bind_socket()
        for port in listen_ports(settings, origins)
    ]


def envelope_hypercorn_refusals() -> None:
    """Hypercorn answers what h11 refuses (400, 431 for an oversized head) with an empty body:
    answer the envelope instead."""
    import h11
    from hypercorn.protocol.h11 import H11Protocol

    if not hasattr(H11Protocol, "_send_error_response"):
        log.warning("this Hypercorn has no H11Protocol._send_error_response: its parser refusals stay bare")
        return

    async def send_error_response(self: Any, status_code: int) -> None:
        code, headers, body = refusal_parts(status_code)
        await self._send_h11_event(
            h11.Response(status_code=code, headers=[*headers, *self.config.response_headers("h11")])
        )
        await self._send_h11_event(h11.Data(data=body))
        await self._send_h11_event(h11.EndOfMessage())

    H11Protocol._send_error_response = send_error_response  # type: ignore[method-assign]


async def refused_head(scope: Any, send: Any) -> bool:
    """Answer 431 with the envelope when the request's head is past 16 KiB as Uvicorn's parser counts it,
    for heads a server's parser let through (Hypercorn's, Granian's); True when it did."""
    if head_bytes(scope) <= MAX_HEAD_BYTES:
        return False
    code, headers, body = refusal_parts(431)
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return True


def head_bytes(scope: Any) -> int:
    """The request's URL and headers as Uvicorn's parser counts them (``on_url``, ``on_header`` + 4): the
    16 KiB limit as Hypercorn and Granian apply it in the app, for heads their parsers let through."""
    query = scope.get("query_string") or b""
    url = len(scope.get("raw_path") or b"") + (len(query) + 1 if query else 0)
    return url + sum(len(name) + len(value) + 4 for name, value in scope.get("headers") or ())


def hypercorn_continue_on_read() -> None:
    """Hypercorn answers ``Expect: 100-continue`` as soon as it has parsed the head, before the app has seen
    the request: a client announcing a body over the cap was told to send it, then refused (413) after
    sending it. Send the 100 when the app first reads the body instead (as Uvicorn does), so an answer
    given before reading (413 for a Content-Length over the cap, 401, 404) is the first and only one."""
    import h11
    from hypercorn.protocol.h11 import H11Protocol

    if getattr(H11Protocol, "_orva_continue_on_read", False):
        return
    if not hasattr(H11Protocol, "_send_h11_event"):
        log.warning(
            "this Hypercorn has no H11Protocol._send_h11_event: it sends 100 Continue before the app reads"
        )
        return
    send_event = H11Protocol._send_h11_event
    init = H11Protocol.__init__

    async def send_h11_event(self: Any, event: Any) -> None:
        if isinstance(event, h11.InformationalResponse) and event.status_code == 100:
            return  # the eager one, from _handle_events: read_body below sends it when the app reads
        await send_event(self, event)

    def wrapped_init(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        protocol = self

        async def continue_on_read(scope: Any, receive: Any, send: Any, *rest: Any) -> None:
            # h11 applies its limit only to a head still incomplete after a read: one that arrived in
            # one read (up to 64 KiB) was served (found by attack-19); count it as Uvicorn's parser does
            if scope.get("type") == "http" and await refused_head(scope, send):
                return

            async def read_body() -> Any:
                if protocol.connection.they_are_waiting_for_100_continue:
                    await send_event(
                        protocol,
                        h11.InformationalResponse(
                            status_code=100, headers=protocol.config.response_headers("h11")
                        ),
                    )
                return await receive()

            await app(scope, read_body, send, *rest)

        init(self, continue_on_read, *args, **kwargs)  # type: ignore[arg-type]

    H11Protocol._send_h11_event = send_h11_event  # type: ignore[method-assign]
    H11Protocol.__init__ = wrapped_init  # type: ignore[method-assign]
    H11Protocol._orva_continue_on_read = True  # type: ignore[attr-defined]
