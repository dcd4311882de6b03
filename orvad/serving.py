"""What the HTTP servers need beyond the app: the addresses to listen on (the functions origin
may add a port) and, for Uvicorn, a protocol whose parser refusals are the error envelope."""

from __future__ import annotations

import socket
from typing import Any

from orvad.config import Settings
from orvad.errors import BadRequest
from orvad.middleware import error_parts, new_request_id
from orvad.origins import Origins


def listen_ports(settings: Settings, origins: Origins) -> list[int]:
    """``port``, and the functions origin's port when it is another one (same bind address)."""
    extra = origins.functions_listener
    return [settings.port] if extra is None else [settings.port, extra]


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parser_refusal() -> bytes:
    """The raw 400 envelope for a request the HTTP parser refused (no app ever saw it)."""
    request_id = new_request_id()
    status, headers, body = error_parts(BadRequest(
        "the request is not valid HTTP/1.1 (for example both Content-Length and Transfer-Encoding, or a "
        "malformed request line or header)", hint="send one well-formed request; the connection is closed"),
        request_id)
    lines = [b"HTTP/1.1 %d Bad Request" % status, *(k + b": " + v for k, v in headers),
             b"x-request-id: " + request_id.encode(), b"connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def uvicorn_protocol() -> type[Any]:
    """Uvicorn's httptools protocol, answering its parser's refusals with the envelope instead of
    a plain-text 400."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class OrvaHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            self.transport.write(_parser_refusal())
            self.transport.close()

    return OrvaHttpToolsProtocol


def uvicorn_sockets(app: Any, settings: Settings, origins: Origins) -> list[socket.socket]:
    import uvicorn

    return [uvicorn.Config(app, host=settings.host, port=port).bind_socket() for port in listen_ports(settings, origins)]
