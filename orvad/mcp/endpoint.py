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

The session manager's task group lives as long as the server (``running()``, entered by ``orvad
serve`` around the server); an app without it (in-process tests) answers 404 at /mcp.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import mcp_types as types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

from orvad import __version__
from orvad.auth.keys import KEY_PREFIX, looks_like_key
from orvad.errors import Forbidden, NotFound, Unauthorized
from orvad.http.origins import Origins, client_address, host_name
from orvad.mcp import channel, oauth, tools
from orvad.mcp.results import Caller
from orvad.services.channels import looks_like_channel_token
from orvad.services.oauth import looks_like_access_token

if TYPE_CHECKING:
    from orvad.daemon import Daemon

log = logging.getLogger(__name__)

SCOPE_KEY = "orva.mcp.caller"
PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"
INSTRUCTIONS = (
    "Orva runs serverless functions. These tools manage and invoke them; which tools you see depends "
    "on the API key's permissions (read, invoke, write, admin). Tools marked destructive need confirm: true."
)
# open sessions one credential may hold (the SDK's limit, 10,000, is for all callers together): opening one
# more ends that credential's oldest, so a token handed to an agent cannot fill /mcp for everyone
MAX_SESSIONS_PER_CALLER = 100


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
        self.server: Server[Any] = Server(
            "orva",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        self.manager = StreamableHTTPSessionManager(
            self.server, max_request_body_size=max(daemon.settings.max_body_bytes, 1)
        )
        self._running = False

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The session manager's task group, for as long as the block runs. It runs in a task of its
        own (one object with its own close: orvad/tasks.py): anyio's group, cancelled at its end with
        sessions still open, leaks a CancelledError out of the block on asyncio, which would end
        ``orvad serve`` with a traceback. Awaited here, the task's cancellation is told apart from
        our own."""
        stop = asyncio.Event()
        started = asyncio.Event()

        async def serve() -> None:
            async with self.manager.run():
                self._running = True
                started.set()
                try:
                    await stop.wait()
                finally:
                    self._running = False

        task = asyncio.create_task(serve(), name="orva-mcp-sessions")
        waiter = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done():
            task.result()  # it failed to start: raise why
        try:
            yield
        finally:
            stop.set()
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
        if not self._running:
            raise NotFound(
                "the MCP endpoint is not running in this app",
                hint="it runs under `orvad serve` (its session manager starts with the server)",
            )
        peer = scope.get("client")
        scope[SCOPE_KEY] = replace(
            caller,
            client=client_address(
                peer[0] if peer else "",
                _header(scope, b"x-forwarded-for"),
                self.daemon.settings.trusted_networks,
            ),
        )
        # the SDK binds a session to the credential that opened it (another one gets 404)
        user = scope["user"] = AuthenticatedUser(
            AccessToken(
                token="",
                client_id=f"channel:{caller.channel_id}" if caller.channel_id else f"key:{caller.key_id}",
                scopes=sorted(caller.permissions),
            )
        )
        if _header(scope, b"mcp-session-id") is None:
            await self._make_room(user)
        await self.manager.handle_request(scope, receive, send)

    async def _make_room(self, user: AuthenticatedUser) -> None:
        """Before a request that may open a session: when its credential holds MAX_SESSIONS_PER_CALLER
        sessions already, its oldest ends (its id answers 404; the SDK's session maps, in opening order)."""
        requestor = authorization_context(user)
        owners: dict[str, Any] = self.manager._session_owners
        held = [sid for sid, owner in owners.items() if owner == requestor]
        for sid in held[: max(len(held) - MAX_SESSIONS_PER_CALLER + 1, 0)]:
            transport = self.manager._server_instances.get(sid)
            if transport is not None:
                log.info("an MCP credential opened one session more than it may hold: its oldest ends")
                await self.manager._discard_session(sid, transport)

    @staticmethod
    def _caller(ctx: Any) -> Caller:
        request = getattr(ctx, "request", None)
        caller = request.scope.get(SCOPE_KEY) if request is not None else None
        if not isinstance(caller, Caller):
            raise RuntimeError("an MCP request reached a handler without its caller")
        return caller

    async def _list_tools(
        self, ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        caller = self._caller(ctx)
        if caller.channel_id is not None:
            return types.ListToolsResult(
                tools=[
                    types.Tool(name=t.name, description=t.description, input_schema=t.input_schema)
                    for t in await channel.channel_tools(self.daemon, caller)
                ]
            )
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=t.name,
                    description=t.description
                    + (" Destructive: pass confirm: true." if t.destructive else ""),
                    input_schema=t.schema(),
                    annotations=types.ToolAnnotations(
                        read_only_hint=t.read_only, destructive_hint=t.destructive
                    ),
                )
                for t in tools.visible(caller)
            ]
        )

    def _audit(self, ctx: Any, caller: Caller, name: str, args: dict[str, Any], reply: Any) -> None:
        """Every tool call, both modes, is an audit-log row (orvad/auth/audit.py ``record_mcp``)."""
        scope = ctx.request.scope
        client = scope.get("client")
        self.daemon.audit_trail.record_mcp(
            actor_kind=caller.actor_kind,
            actor_id=caller.key_id,
            actor_name=caller.key_name,
            tool=name,
            target_id=tools.target_of(name, args) if caller.channel_id is None else None,
            status=reply.status,
            request_id=scope.get("state", {}).get("request_id"),
            client_ip=client[0] if client else None,
        )

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        caller = self._caller(ctx)
        args = dict(params.arguments or {})
        if caller.channel_id is not None:
            reply = await channel.call_channel_tool(self.daemon, caller, params.name, args)
        else:
            reply = await tools.call(self.daemon, caller, params.name, args)
        log.info(
            "mcp tool call",
            extra={"tool": params.name, "key_id": caller.key_id, "is_error": reply.is_error},
        )
        self._audit(ctx, caller, params.name, args, reply)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=reply.text)],
            structured_content=reply.structured,
            is_error=reply.is_error,
        )
