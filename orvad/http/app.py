"""create_app(daemon): the route table, the middleware stack and the error handlers."""

from __future__ import annotations

import re
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orvad.api import (
    activity,
    ai,
    ai_providers,
    auth,
    backup,
    channels,
    cluster,
    cron,
    deployments,
    executions,
    functions,
    health,
    inbound_webhooks,
    jobs,
    keys,
    kv,
    oauth,
    openapi,
    pools,
    replay,
    routes,
    runtimes,
    secrets,
    system,
    templates,
    traces,
    web,
    webhooks,
)
from orvad.api import firewall as firewall_api  # issue 24: egress rules
from orvad.api.oauth_server import OAuthServer
from orvad.auth.guard import Guard
from orvad.daemon import Daemon
from orvad.errors import BadRequest, MethodNotAllowed, NotFound, OrvaError, ValidationError
from orvad.host.memtrim import HeapTrimmer
from orvad.http.cors import Cors, function_lookup
from orvad.http.middleware import BodyLimit, HostGuard, RequestContext, error_parts
from orvad.http.origins import Origins
from orvad.mcp.endpoint import PATH as MCP_PATH
from orvad.mcp.endpoint import McpEndpoint

_ARCHIVE_UPLOAD = re.compile(r"^/api/v1/functions/[^/]+/deploy$")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (each method may be its own Route)."""
    path = request.url.path
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def _as_orva_error(exc: Exception, request: Request) -> OrvaError:
    if isinstance(exc, OrvaError):
        return exc
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = _allowed_methods(request) or (exc.headers or {}).get("Allow", "")
        return MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}",
            hint=f"allowed methods: {allow}",
            headers={"Allow": allow},
        )
    if exc.status_code == 404:
        return NotFound(
            f"no such endpoint: {request.url.path}", hint="see GET /api/v1/openapi.json for the API"
        )
    if 400 <= exc.status_code < 500:  # e.g. Starlette's multipart parser: a malformed request, not our fault
        unread = ValidationError if exc.status_code == 400 else BadRequest
        error = unread(
            f"the request could not be read: {exc.detail}",
            hint="see GET /api/v1/openapi.json for what this endpoint takes",
        )
        error.status = (
            exc.status_code
        )  # Starlette's status (400, or e.g. 415/422), under the code its family has
        return error
    return OrvaError(str(exc.detail))  # INTERNAL


async def render_error(request: Request, exc: Exception) -> Response:
    """The one error handler: every OrvaError and routing error becomes the envelope."""
    status, headers, body = error_parts(_as_orva_error(exc, request), request.state.request_id)
    return Response(body, status_code=status, headers={k.decode(): v.decode() for k, v in headers})


class OrvaApp(Starlette):
    """The management API on Starlette; `/fn/` requests go straight to the invoke path.

    The invoke path needs only the request id, error rendering and body cap (RequestContext and
    BodyLimit, which it shares with the API), not Starlette's router and exception layers, which
    cost every warm invoke a few percent of its CPU.
    """

    def __init__(
        self,
        invoke: ASGIApp,
        functions_only: ASGIApp,
        origins: Origins,
        mcp: McpEndpoint,
        webhook: ASGIApp,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.invoke = invoke
        self.webhook = webhook  # POST /webhook/{id}: inbound webhooks, on both origins, no Orva key
        self.functions_only = functions_only
        self.origins = origins
        self.mcp = mcp  # /mcp (a route below); `orvad serve` runs its session manager: `async with app.mcp.running()`

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/"):
            _origin_form(scope)
        if scope["type"] == "http" and scope["path"].startswith("/fn/"):
            await self.invoke(scope, receive, send)
        elif scope["type"] == "http" and scope["path"].startswith("/webhook/"):
            await self.webhook(scope, receive, send)  # the sender's signature is checked there (no guard)
        elif scope["type"] == "http" and self.origins.on_functions_origin(scope):
            await self.functions_only(scope, receive, send)  # custom routes; never the API or the dashboard
        else:
            await super().__call__(scope, receive, send)


def _origin_form(scope: Scope) -> None:
    """``GET http://host/fn/x`` (the absolute form, RFC 9112 3.2.2; Hypercorn passes it on as the
    path): route by its path, and take its authority as the Host, which the RFC says wins."""
    scheme, sep, rest = scope["path"].partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return
    authority, _, tail = rest.partition("/")
    scope["path"] = "/" + tail
    raw = scope.get("raw_path")
    if raw:
        scope["raw_path"] = b"/" + raw.partition(b"://")[2].partition(b"/")[2]
    scope["headers"] = [
        *((k, v) for k, v in scope["headers"] if k != b"host"),
        (b"host", authority.encode("latin-1")),
    ]


def _functions_origin_app(daemon: Daemon) -> ASGIApp:
    """What ORVA_FUNCTIONS_ORIGIN serves besides /fn: custom routes, and a 404 for the rest."""
    dashboard = daemon.settings.public_url or f"http://{daemon.settings.host}:{daemon.settings.port}"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/" or any(path == p or path.startswith(p + "/") for p in ("/api", "/web", "/health")):
            raise NotFound(
                f"{path} is not served on the functions origin",
                hint=f"the API and the dashboard are at {dashboard}; this origin serves only /fn "
                "and custom routes (ORVA_FUNCTIONS_ORIGIN)",
            )
        await daemon.invoker.route_endpoint(scope, receive, send)

    return app


def create_app(daemon: Daemon) -> OrvaApp:
    settings = daemon.settings

    def body_limit(scope: Scope) -> int:
        if scope["method"] == "POST" and _ARCHIVE_UPLOAD.match(scope["path"]):
            return settings.max_archive_bytes
        if scope["method"] == "POST" and scope["path"] == "/api/v1/restore":  # a backup (issue 24)
            return settings.restore_max_bytes + (1 << 20)  # the multipart framing on top
        return settings.max_body_bytes

    # request id, error envelope and body cap: every request; the guard only guards /api/v1
    common = [
        Middleware(RequestContext, drain=daemon.drain),
        Middleware(BodyLimit, limit_for=body_limit, trimmer=HeapTrimmer()),
    ]  # one trimmer for both stacks

    # CORS (orvad/http/cors.py) just inside RequestContext: its grant also reaches the errors of the layers below it
    def cors(api: bool) -> Middleware:
        return Middleware(
            Cors,
            origins_setting=settings.cors_origins,
            api=api,
            function_for=function_lookup(daemon),
            host_allowed=daemon.origins.host_allowed,
        )

    invoke: ASGIApp = daemon.invoker.fn_endpoint
    functions_only = _functions_origin_app(daemon)
    for cls, args, kwargs in reversed([common[0], cors(False), *common[1:]]):  # the same layers for /fn/
        invoke = cls(invoke, *args, **kwargs)
        functions_only = cls(functions_only, *args, **kwargs)
    webhook: ASGIApp = daemon.inbound_webhooks.endpoint  # request id, error envelope, body cap; no CORS
    for cls, args, kwargs in reversed(common):
        webhook = cls(webhook, *args, **kwargs)
    mcp = McpEndpoint(daemon, daemon.origins)
    app = OrvaApp(
        invoke,
        functions_only,
        daemon.origins,
        mcp,
        webhook,
        routes=[
            # every method: POST, GET (the SSE stream), DELETE (ends a session); not in the OpenAPI document
            Route(MCP_PATH, mcp, include_in_schema=False),
            # OAuth for remote MCP connectors: /.well-known metadata and /oauth/* (orvad/api/oauth_server.py)
            *OAuthServer(daemon, daemon.origins).routes(),
            *health.routes,
            *auth.routes,
            *keys.routes,
            *channels.routes,
            *oauth.routes,
            *ai_providers.routes,  # issue 22: the AI assistant's provider configs
            *ai.routes,  # issue 22: the AI assistant (chat, conversations, approvals, settings)
            *functions.routes,
            *deployments.routes,
            *routes.routes,
            *pools.routes,
            *replay.routes,  # issue 23: executions' captured requests, replay, fixtures
            *executions.routes,
            *runtimes.routes,
            *secrets.routes,
            *kv.routes,  # issue 23: /api/v1/functions/{id}/kv
            *jobs.routes,  # issue 23: /api/v1/jobs
            *cron.routes,  # issue 23: /api/v1/functions/{id}/cron, /api/v1/cron
            *inbound_webhooks.routes,  # issue 24: /api/v1/functions/{id}/inbound-webhooks
            *webhooks.routes,  # issue 24: /api/v1/webhooks (outbound)
            *traces.routes,  # issue 23: /api/v1/traces
            *system.routes,
            *activity.routes,  # issue 24: the audit log as a feed
            *templates.routes,  # issue 24: /api/v1/templates, the starter functions
            *backup.routes,  # issue 24: /api/v1/backup, /api/v1/backup/status, /api/v1/restore
            *firewall_api.routes,  # issue 24: /api/v1/firewall (egress rules, docs/NETWORK.md)
            *cluster.routes,  # issue 25: /api/v1/cluster/nodes (the node registry)
            *openapi.routes,
            *web.routes,
        ],
        middleware=[
            common[0],
            cors(True),
            *common[1:],
            Middleware(HostGuard, origins=daemon.origins),
            Middleware(
                Guard,
                keys=daemon.keys,
                sessions=daemon.sessions,
                audit=daemon.audit_trail.record_call,
                metrics_public=settings.metrics_public,
            ),
        ],
        exception_handlers={HTTPException: render_error, OrvaError: render_error},
    )
    app.router.default = daemon.invoker.route_endpoint  # custom routes, else 404
    app.state.daemon = daemon
    return app
