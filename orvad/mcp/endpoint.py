"""/mcp: the MCP SDK's Streamable HTTP transport (low-level ``Server`` + ``StreamableHTTPSessionManager``,
stateful sessions keyed by ``Mcp-Session-Id``, DELETE ends one) behind orvad's own checks.

Each request, before the SDK sees it: the ``Host`` must be one orvad answers for /api (DNS rebinding),
an ``Origin``, when sent, must be one of orvad's own (never the functions origin), and the caller must
present a credential (``Authorization: Bearer`` or ``X-Orva-API-Key``): an ``orva_`` API key is operator
mode, its tools filtered by the key's permissions; anything else answers 401 with ``WWW-Authenticate``
pointing at the protected-resource metadata. The caller rides in the ASGI scope to the tool handlers
(``ctx.request.scope``), and the SDK binds each session to the key that opened it (another credential
gets 404 for that session id). The body cap is orvad's ``BodyLimit`` (every path), and the SDK's own
cap is set to the same figure.

The SDK itself (``orvad/mcp/sessions.py``: pydantic models, the server, the session manager, about 37 MB)
is imported and started at the first request that passes those checks, not at orvad's start: an orvad no
agent talks to does not carry it. Its task group then lives until the server stops (``running()``, entered
by ``orvad serve`` around the server); an app without it (in-process tests) answers 404 at /mcp.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send

from orvad.auth.keys import KEY_PREFIX, looks_like_key
from orvad.errors import Forbidden, NotFound, Unauthorized
from orvad.http.origins import Origins, client_address, host_name
from orvad.imports import imported
from orvad.mcp import oauth
from orvad.mcp.results import Caller
from orvad.services.channels import looks_like_channel_token
from orvad.services.oauth import looks_like_access_token

if TYPE_CHECKING:
    from orvad.daemon import Daemon
    from orvad.mcp.sessions import Sessions

log = logging.getLogger(__name__)

SCOPE_KEY = "orva.mcp.caller"
PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def credential(scope: Scope) -> str | None:
    """The token as sent: ``Authorization: Bearer <token>``, else ``X-Orva-API-Key``."""
    auth = _header(scope, b"authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return _header(scope, b"x-orva-api-key") or None


def origin_allowed(origins: Origins, scope: Scope, origin: str) -> bool:
    """An Origin orvad itself serves: its host one ORVA_ALLOWED_HOSTS names (with ``*``: the
    request's own Host), and not the functions origin, where tenant pages run."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    name = parts.hostname.lower().rstrip(".")
    if origins.functions_name is not None and name == origins.functions_name:
        default = 443 if parts.scheme == "https" else 80
        fn_port = origins.functions_port
        if fn_port is None or (parts.port or default) == fn_port:
            return False
    if origins.allow_any:
        host = _header(scope, b"host")
        return host is not None and host_name(host) == name
    return name in origins.allowed or (origins.any_ip and _is_ip(name))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class McpEndpoint:
    """The ASGI app mounted at /mcp."""

    def __init__(self, daemon: Daemon, origins: Origins) -> None:
        self.daemon = daemon
        self.origins = origins
        self._serving = False  # inside running(): the SDK may start
        self._sessions: Sessions | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._starting = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """/mcp serves for as long as the block runs; the SDK's session manager, started by the first
        request (``_started``), stops at its end."""
        self._serving, self._stop = True, asyncio.Event()
        try:
            yield
        finally:
            self._serving = False
            self._stop.set()
            if self._task is not None:
                await self._stopped(self._task)

    async def _started(self) -> Sessions:
        """The SDK's sessions, imported and started at the first call. The session manager's task group
        runs in a task of its own (one object with its own close: orvad/tasks.py): anyio's group, cancelled
        at its end with sessions still open, leaks a CancelledError out of the block on asyncio, which would
        end ``orvad serve`` with a traceback. Awaited in ``_stopped``, its cancellation is told apart from
        our own."""
        async with self._starting:
            if self._sessions is not None:
                return self._sessions
            await imported(
                "orvad.mcp.sessions"
            )  # the SDK, at first use, off the event loop (orvad/imports.py)
            from orvad.mcp.sessions import Sessions  # noqa: PLC0415 (imported just above)

            sessions = Sessions(self.daemon)
            started = asyncio.Event()

            async def serve() -> None:
                async with sessions.manager.run():
                    started.set()
                    await self._stop.wait()

            task = self._task = asyncio.create_task(serve(), name="orva-mcp-sessions")
            waiter = asyncio.create_task(started.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if task.done():
                self._task = None
                task.result()  # it failed to start: raise why
            self._sessions = sessions
            return sessions

    @staticmethod
    async def _stopped(task: asyncio.Task[None]) -> None:
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we are being cancelled ourselves
            log.info("the MCP session manager stopped with sessions still open")

    def _base_url(self, scope: Scope) -> str:
        public = self.daemon.settings.public_url
        if public:
            return public.rstrip("/")
        host = _header(scope, b"host") or f"{self.daemon.settings.host}:{self.daemon.settings.port}"
        return f"{scope.get('scheme', 'http')}://{host}"

    def _unauthorized(self, scope: Scope, message: str) -> Unauthorized:
        metadata = self._base_url(scope) + METADATA_PATH
        return Unauthorized(
            message,
            hint=f"send an Orva API key as Authorization: Bearer {KEY_PREFIX}... (or X-Orva-API-Key); "
            "create one with POST /api/v1/keys",
            headers={"WWW-Authenticate": f'Bearer resource_metadata="{metadata}"'},
        )

    def authenticate(self, scope: Scope) -> Caller:
        token = credential(scope)
        if token is None:
            raise self._unauthorized(scope, "/mcp needs a credential")
        if looks_like_channel_token(token):
            channel = self.daemon.channels.authenticate(token)
            if channel is None:
                raise self._unauthorized(scope, "the channel token is unknown, rotated, deleted or expired")
            return Caller(
                key_id=channel.row.id,
                key_name=channel.row.name,
                permissions=frozenset(),
                token=token,
                channel_id=channel.row.id,
            )
        if looks_like_access_token(token):  # OAuth (remote connectors): scopes act as a key's permissions
            granted = oauth.caller(self.daemon, token)
            if granted is None:
                refused = self._unauthorized(
                    scope, "the OAuth access token is unknown, expired, revoked or for another resource"
                )
                # RFC 6750 3.1: the client refreshes, or signs in again
                refused.headers["WWW-Authenticate"] += ', error="invalid_token"'
                refused.hint = (
                    "refresh the token at /oauth/token, or connect the app again (docs/MCP.md, OAuth)"
                )
                raise refused
            return granted
        row = self.daemon.keys.authenticate(token) if looks_like_key(token) else None
        if row is None:
            raise self._unauthorized(scope, "the credential is not a live API key of this orvad")
        return Caller(key_id=row.id, key_name=row.name, permissions=frozenset(row.permissions), token=token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not self.origins.host_allowed(scope):
            raise Forbidden(
                f"Host {_header(scope, b'host')!r} is not one this orvad answers for /mcp",
                hint="add the name to ORVA_ALLOWED_HOSTS, or set ORVA_PUBLIC_URL",
            )
        origin = _header(scope, b"origin")
        if origin is not None and not origin_allowed(self.origins, scope, origin):
            raise Forbidden(
                f"Origin {origin!r} may not call /mcp",
                hint="only orvad's own origins (ORVA_ALLOWED_HOSTS, ORVA_PUBLIC_URL) may send an Origin to /mcp; "
                "MCP clients that are not browsers send none",
                details={"origin": origin},
            )
        caller = self.authenticate(scope)
        if not self._serving:
            raise NotFound(
                "the MCP endpoint is not running in this app",
                hint="it runs under `orvad serve` (its session manager starts with the server)",
            )
        sessions = await self._started()
        peer = scope.get("client")
        scope[SCOPE_KEY] = replace(
            caller,
            client=client_address(
                peer[0] if peer else "",
                _header(scope, b"x-forwarded-for"),
                self.daemon.settings.trusted_networks,
            ),
        )
        await sessions.handle(caller, scope, receive, send)
