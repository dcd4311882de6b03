"""Granian (``ORVA_SERVER=granian``, the `fast` extra): its embedded server, inside orvad's event loop.

Granian parses and writes HTTP in Rust (hyper, on a tokio thread of its own); its embedded server
(``granian.server.embed.Server``) hands each request to the ASGI app as a task of the running asyncio
loop, orvad's, where the daemon and its pools live: no worker process, no other loop or thread runs
Python. One embedded server listens on each port of ``listen_ports``.

What Granian does unlike Hypercorn and Uvicorn, and what orvad makes of it:

- hyper's own refusals carry no envelope: Granian has no hook for them. A malformed request gets a bare
  400; a head past hyper's read buffer (``READ_BUFFER_BYTES``; it reads up to twice that before it looks,
  so past 256 KiB always) or with more than 100 header fields a bare 431; a request target past 64 KiB a
  bare 414 (each with ``Connection: close`` and an empty body, no X-Request-ID). A head past 16 KiB that
  hyper lets through reaches orvad and is refused here with the 431 envelope, counted as Uvicorn's parser
  counts it.
- a request with both Content-Length and Transfer-Encoding is served by its chunked framing (hyper drops
  the Content-Length) and the connection is closed after the answer (RFC 9112, 6.3): nothing can be
  smuggled after it, but it is not refused with a 400 as the others do (the app never sees the conflict).
- the scope's ``server`` and ``client`` ports are strings: made integers here (the functions origin's
  listener is told by its port).
- binding sets SO_REUSEPORT: a second Granian on the same port would share it silently, so each port is
  first bound plainly once, which fails with "address in use" as the other servers do.
"""

from __future__ import annotations

import asyncio
import errno
import importlib.metadata
import ipaddress
import logging
import re
import socket
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from orvad.config import Settings
from orvad.http.origins import Origins
from orvad.http.serving import bind_address, listen_ports, refused_head

# Granian 2.5.0 and 2.8.0 (tried) end a streamed response the app abandons (orvad cutting a stream at the
# end of the shutdown grace, an operator's kill) with a proper last chunk, so the client takes the cut
# body for a whole one, and keep a connection open after a request with Content-Length and
# Transfer-Encoding; 2.8.7 and 2.8.9 pass orvad's tests (pyproject.toml pins 2.8.7 too).
MIN_VERSION = (2, 8, 7)
READ_BUFFER_BYTES = 128 * 1024  # hyper's read buffer: a head past it (twice it) is refused by hyper, bare 431
BACKLOG = 2048  # as Uvicorn's
# Granian caps each listener's open connections (its "backpressure", a semaphore per connection): past
# it new connections wait in the backlog. Hypercorn and Uvicorn set no cap; this one is far from any load
# orvad serves (its own limits answer 429 much sooner) and bounds the file descriptors a flood can take.
MAX_CONNECTIONS = 2048
# The logging set-up Granian applies on each server's creation (logging.config.dictConfig): incremental,
# so that it only sets the level of Granian's own logger ("_granian", whose records reach orvad's
# handlers); a full configuration would close every handler orvad's logging has.
_LOGGING = {"version": 1, "incremental": True, "formatters": {}, "handlers": {}, "loggers": {}}
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


class _Quiet(logging.Filter):
    """Drops Granian's start-up notice that its embedded server is experimental (docs/PERFORMANCE.md
    says so once; its log would say it at every start, once per port)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Embedded server is experimental")


def version_refusal() -> str | None:
    """Why the installed Granian cannot serve orvad (too old), or None."""
    installed = importlib.metadata.version("granian")
    parts = re.match(r"(\d+)\.(\d+)\.(\d+)", installed)
    if parts is None or tuple(int(n) for n in parts.groups()) >= MIN_VERSION:
        return None
    wanted = ".".join(map(str, MIN_VERSION))
    return (
        f"--server granian needs Granian {wanted} or later, not {installed}: "
        f"pip install --upgrade 'granian>={wanted}'"
    )


def granian_app(app: ASGIApp) -> ASGIApp:
    """``app`` behind what Granian lets through that the other servers do not."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            server, client = scope.get("server"), scope.get("client")
            if server is not None:
                scope["server"] = (server[0], int(server[1]))
            if client is not None:
                scope["client"] = (client[0], int(client[1]))
            if await refused_head(scope, send):
                return
        await app(scope, receive, send)

    return guarded


def _address(host: str) -> str:
    """Granian binds an IP address only: a host name is resolved as the other servers resolve it."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])


def _claim(address: str, port: int) -> None:
    """Fail as Hypercorn and Uvicorn do when the port is taken (Granian's SO_REUSEPORT would share it)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Granian's own: TIME_WAIT is fine
        probe.bind((address, port))


def embedded_server(app: ASGIApp, address: str, port: int) -> Any:
    """Granian's embedded server for ``app`` on one port, set up as orvad serves (bench/hello.py too)."""
    from granian.constants import HTTPModes, Interfaces, TaskImpl
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.embed import Server

    granian_log = logging.getLogger("_granian")
    if not any(isinstance(f, _Quiet) for f in granian_log.filters):
        granian_log.addFilter(_Quiet())
    return Server(
        app,
        address=address,
        port=port,
        interface=Interfaces.ASGINL,  # no lifespan: orvad starts and stops its daemon itself
        http=HTTPModes.http1,
        websockets=False,
        # each request an asyncio task of orvad's loop: the disconnect watch cancels it (the Rust
        # implementation's stand-in task cannot be cancelled)
        task_impl=TaskImpl.asyncio,
        backlog=BACKLOG,
        backpressure=MAX_CONNECTIONS,
        http1_settings=HTTP1Settings(max_buffer_size=READ_BUFFER_BYTES),
        log_access=False,  # orvad writes its own access log
        log_level=LogLevels.warning,
        log_dictconfig=_LOGGING,
    )


def _start_error(exc: RuntimeError, address: str, port: int) -> OSError:
    """Granian's start-up failures (binding) are RuntimeErrors carrying the OS error's text and a backtrace."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    code = _OS_ERROR.search(first)
    return OSError(
        int(code.group(1)) if code else errno.EIO, f"{first} (binding {bind_address(address, port)})"
    )


async def serve_granian(
    app: ASGIApp, settings: Settings, origins: Origins, stop: asyncio.Event, close_s: float
) -> None:
    """Serve ``app`` until ``stop`` is set; then Granian stops accepting, closes idle connections and lets
    answers still being written finish, for up to ``close_s`` (orvad's drain gave requests their grace
    already); what is left is cut when orvad exits."""
    address = _address(settings.host)
    ports = listen_ports(settings, origins)
    for port in ports:
        _claim(address, port)
    guarded = granian_app(app)
    servers = [embedded_server(guarded, address, port) for port in ports]
    running = [
        asyncio.create_task(s.serve(), name=f"orva-granian-{p}") for s, p in zip(servers, ports, strict=True)
    ]
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([stopping, *running], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        for server in servers:
            server.stop()
        _, late = await asyncio.wait(running, timeout=close_s)
        for task in late:
            task.cancel()
        await asyncio.wait(running)
    for task, port in zip(running, ports, strict=True):
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, RuntimeError):
            raise _start_error(exc, address, port) from None
        if exc is not None:
            raise exc
    if not stop.is_set():
        raise RuntimeError("Granian's embedded server stopped by itself (its log says why)")
