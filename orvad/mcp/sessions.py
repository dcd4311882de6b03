"""The MCP SDK behind /mcp: its low-level ``Server`` (the tools, both modes) and its Streamable HTTP
``StreamableHTTPSessionManager`` (stateful sessions keyed by ``Mcp-Session-Id``, DELETE ends one).

``orvad/mcp/endpoint.py`` does orvad's own checks (Host, Origin, the credential) and imports this module
at the first request that passes them: the SDK (pydantic models for every protocol version, about 37 MB)
is not loaded by an orvad no agent talks to.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.auth.provider import AccessToken
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.types import Receive, Scope, Send

from orvad import __version__
from orvad.mcp import channel, tools
from orvad.mcp.endpoint import SCOPE_KEY
from orvad.mcp.results import Caller

if TYPE_CHECKING:
    from orvad.daemon import Daemon

log = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Orva runs serverless functions. These tools manage and invoke them; which tools you see depends "
    "on the API key's permissions (read, invoke, write, admin). Tools marked destructive need confirm: true."
)
# open sessions one credential may hold (the SDK's limit, 10,000, is for all callers together): opening one
# more ends that credential's oldest, so a token handed to an agent cannot fill /mcp for everyone
MAX_SESSIONS_PER_CALLER = 100


class Sessions:
    """The SDK's server and session manager; ``manager.run()`` must be running while requests come."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
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

    async def handle(self, caller: Caller, scope: Scope, receive: Receive, send: Send) -> None:
        """One /mcp request whose caller is known (and in the scope, under SCOPE_KEY)."""
        # the SDK binds a session to the credential that opened it (another one gets 404)
        user = scope["user"] = AuthenticatedUser(
            AccessToken(
                token="",
                client_id=f"channel:{caller.channel_id}" if caller.channel_id else f"key:{caller.key_id}",
                scopes=sorted(caller.permissions),
            )
        )
        if not any(key == b"mcp-session-id" for key, _ in scope["headers"]):
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
