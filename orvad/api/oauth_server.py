"""The OAuth 2.1 authorization server for /mcp (issue 21, remote connectors such as claude.ai and ChatGPT).

The MCP SDK's handlers do the protocol (mcp.server.auth.handlers: metadata, authorize, token, register,
revoke, with their request validation, PKCE S256 check, redirect_uri and client checks, error shapes and
CORS); ``OrvaProvider`` implements the SDK's ``OAuthAuthorizationServerProvider`` over
orvad/services/oauth.py. What is orvad's own, and why (docs/ARCHITECTURE.md):

- the routes are built here rather than by ``create_auth_routes``: the endpoints live under ``/oauth/``
  (the root's ``/token`` or ``/register`` stay free for custom routes), every one is behind the Host check
  and answers 404 with a hint while ``ORVA_PUBLIC_URL`` is unset, and they stay out of the OpenAPI document;
- client authentication compares SHA-256 hashes (the SDK's ``ClientAuthenticator`` compares the stored
  plaintext secret, and orvad stores no secret in plaintext);
- the token endpoint refuses a ``resource`` (RFC 8707) other than this orvad's /mcp (the SDK's handler does
  not pass it on), and ``authorize`` does the same;
- the consent page is orvad's: the SDK leaves the user's approval to the provider. It needs a dashboard
  session (none: to the dashboard's login and back), names the client, its redirect URI's host and the
  scopes, and takes Approve/Deny as a form POST checked like the dashboard's writes (same-origin by
  ``Sec-Fetch-Site``/``Origin``) plus a one-request token bound to the session (a form cannot send
  ``X-Orva-CSRF``).

The issuer is ``ORVA_PUBLIC_URL`` (https, or http on a loopback host); the resource, the audience every
access token is bound to, is ``<ORVA_PUBLIC_URL>/mcp``.
"""

from __future__ import annotations

import hmac
import html
import logging
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from orvad.auth.guard import ALL_PERMISSIONS, credentials, same_origin
from orvad.auth.sessions import Session, token_hash
from orvad.clock import now_iso
from orvad.errors import Forbidden, MethodNotAllowed, NotFound
from orvad.http.origins import Origins
from orvad.ids import uuid7
from orvad.imports import imported
from orvad.services.oauth import (
    Pending,
    issuer_of,
)

if TYPE_CHECKING:
    from orvad.daemon import Daemon

log = logging.getLogger(__name__)

AUTHORIZE = "/oauth/authorize"
TOKEN = "/oauth/token"
REGISTER = "/oauth/register"
REVOKE = "/oauth/revoke"
CONSENT = "/oauth/consent"
AS_METADATA = "/.well-known/oauth-authorization-server"
PR_METADATA = "/.well-known/oauth-protected-resource"
MCP_PATH = "/mcp"
MAX_FORM = 64 * 1024  # the body of every OAuth POST (forms, a registration)
SCOPE_TEXT = {
    "read": "read functions, deployments, executions and their logs",
    "invoke": "invoke functions",
    "write": "create, change, deploy and delete functions, secrets and routes",
    "admin": "manage API keys, channels and the pool configuration",
}
_HINT = (
    "OAuth for remote MCP connectors needs ORVA_PUBLIC_URL set to the https URL clients reach this orvad at "
    "(http only on localhost/127.0.0.1/[::1]); see docs/MCP.md, OAuth"
)


class OAuthServer:
    """Every OAuth path (metadata, /oauth/*) in one ASGI app: the Host check, 404 with a hint while
    ORVA_PUBLIC_URL is unset, then the SDK's handler (or the consent page) for the path and method."""

    def __init__(self, daemon: Daemon, origins: Origins) -> None:
        self.daemon = daemon
        self.origins = origins
        self.issuer = issuer_of(daemon.settings.public_url)
        self._apps: dict[str, tuple[tuple[str, ...], ASGIApp]] = {}
        if daemon.settings.public_url and self.issuer is None:
            log.warning("OAuth for /mcp is off: %s", _HINT)

    @property
    def enabled(self) -> bool:
        return self.issuer is not None

    async def _endpoints(self, issuer: str) -> dict[str, tuple[tuple[str, ...], ASGIApp]]:
        """Every path's (methods, app), built at the first OAuth request: the SDK is imported then, off
        the event loop (orvad/imports.py), not at orvad's start (orvad/api/oauth_protocol.py)."""
        if not self._apps:
            protocol = await imported("orvad.api.oauth_protocol")
            self._apps = protocol.endpoints(self.daemon.oauth, issuer, request_response(self.consent))
        return self._apps

    def routes(self) -> list[Route]:
        """One route per path, every method (the app checks them): out of the OpenAPI document."""
        paths = (
            AS_METADATA,
            PR_METADATA,
            PR_METADATA + MCP_PATH,
            AUTHORIZE,
            TOKEN,
            REGISTER,
            REVOKE,
            CONSENT,
        )
        return [Route(path, self, include_in_schema=False) for path in paths]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not self.origins.host_allowed(scope):
            raise Forbidden(
                "this Host is not one orvad answers for OAuth",
                hint="add the name to ORVA_ALLOWED_HOSTS, or set ORVA_PUBLIC_URL",
            )
        if self.issuer is None:
            raise NotFound(f"{scope['path']} is not served: OAuth is off", hint=_HINT)
        methods, app = (await self._endpoints(self.issuer))[scope["path"]]
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        if method not in methods:
            allow = ", ".join(m for m in methods if m != "OPTIONS")
            raise MethodNotAllowed(
                f"{scope['method']} is not allowed on {scope['path']}",
                hint=f"allowed methods: {allow}",
                headers={"Allow": allow},
            )
        await app(scope, receive, send)

    # the consent page

    async def _session(self, request: Request) -> Session | None:
        _key, token = credentials(request.scope, self.daemon.sessions.cookie_name)
        return await self.daemon.sessions.resolve(token) if token else None

    def _login_redirect(self, request_id: str) -> Response:
        here = f"{CONSENT}?{urlencode({'request': request_id})}"
        return RedirectResponse(
            f"/web/#/login?next={quote(here, safe='')}", status_code=303, headers=_NO_STORE
        )

    async def consent(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._decide(request)
        pending = self.daemon.oauth.pending(request.query_params.get("request", ""))
        if pending is None:
            return consent_page("Authorization request expired", _EXPIRED, status=400)
        session = await self._session(request)
        if session is None:
            return self._login_redirect(pending.id)
        pending.seen = True  # a flood of authorize requests no longer pushes it out
        client = self.daemon.oauth.client(pending.client_id)
        assert client is not None
        target = urlsplit(pending.redirect_uri)
        where = target.hostname or target.scheme + ":"
        # admin (keys, channels, the pool) is never ticked for the user: it must be a deliberate choice
        boxes = "".join(
            f'<label class="scope"><input type="checkbox" name="scope" value="{s}"'
            f"{'' if s == 'admin' else ' checked'}> <b>{s}</b>: {html.escape(SCOPE_TEXT[s])}"
            f"{' (tick it only if the app must manage keys and channels)' if s == 'admin' else ''}</label>"
            for s in pending.scopes
        )
        body = f"""
<p><b>{html.escape(client.client_name)}</b> wants to use this Orva server as <b>{html.escape(session.user.username)}</b>
through MCP.</p>
<p>After you decide, you go back to <b>{html.escape(where)}</b>
(<code>{html.escape(pending.redirect_uri)}</code>).</p>
<form method="post" action="{CONSENT}">
<input type="hidden" name="request" value="{html.escape(pending.id)}">
<input type="hidden" name="csrf" value="{_csrf(pending, session)}">
<fieldset><legend>It may</legend>{boxes}</fieldset>
<p class="muted">Untick what it should not do. Access lasts an hour at a time and renews for up to 30 days;
cut it off any time under Settings, Connected apps (or <code>orva oauth revoke {html.escape(client.client_id)}</code>).</p>
<button type="submit" name="action" value="approve">Approve</button>
<button type="submit" name="action" value="deny">Deny</button>
</form>"""
        return consent_page(f"Connect {client.client_name}?", body, form_target=pending.redirect_uri)

    def _audit(self, request: Request, session: Session, pending: Pending, decision: str) -> None:
        """The user's decision is an audit-log row: the session's user, the client as the target."""
        client = request.scope.get("client")
        self.daemon.audit.record(
            {
                "id": uuid7(),
                "ts": now_iso(),
                "actor_kind": "session",
                "actor_id": session.user.id,
                "actor_name": session.user.username,
                "method": "POST",
                "path": f"{CONSENT} {decision}",
                "target_id": pending.client_id,
                "status": 303,
                "request_id": request.scope.get("state", {}).get("request_id", "-"),
                "client_ip": client[0] if client else None,
            }
        )

    async def _decide(self, request: Request) -> Response:
        # the SDK's, loaded with the endpoints already (this page is one of them)
        from mcp.server.auth.provider import construct_redirect_uri  # noqa: PLC0415

        if not same_origin(request.scope):
            raise Forbidden(
                "cross-site request refused",
                hint="approve or deny on the consent page orvad shows (open the app's connect link again)",
            )
        form = await request.form()
        pending = self.daemon.oauth.pending(str(form.get("request") or ""))
        if pending is None:
            return consent_page("Authorization request expired", _EXPIRED, status=400)
        session = await self._session(request)
        if session is None:
            return self._login_redirect(pending.id)
        sent = form.get("csrf")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, _csrf(pending, session)):
            raise Forbidden(
                "the consent form's token does not match this session",
                hint="reload the consent page and decide again",
            )
        state = {"state": pending.state} if pending.state is not None else {}
        action = form.get("action")
        granted = [
            s for s in pending.scopes if s in {str(v) for v in form.getlist("scope")} & ALL_PERMISSIONS
        ]
        approved = action == "approve" and bool(granted)
        self._audit(request, session, pending, "approve " + " ".join(granted) if approved else "deny")
        if not approved:
            self.daemon.oauth.finish(pending.id)
            why = "the user denied access" if action != "approve" else "the user granted no scope"
            log.info("oauth consent denied", extra={"client_id": pending.client_id})
            target = construct_redirect_uri(
                pending.redirect_uri, error="access_denied", error_description=why, iss=self.issuer, **state
            )
            return RedirectResponse(target, status_code=303, headers=_NO_STORE)
        code = self.daemon.oauth.grant_code(pending, session.user.id, granted)
        log.info("oauth consent granted", extra={"client_id": pending.client_id, "scopes": " ".join(granted)})
        target = construct_redirect_uri(pending.redirect_uri, code=code, iss=self.issuer, **state)
        return RedirectResponse(target, status_code=303, headers=_NO_STORE)


_NO_STORE = {"Cache-Control": "no-store"}


_EXPIRED = (
    "<p>This authorization request is unknown or has expired (they last 10 minutes).</p>"
    "<p>Start again from the app you were connecting.</p>"
)


def _csrf(pending: Pending, session: Session) -> str:
    """The consent form's token: the pending request's secret bound to the session that saw it."""
    return hmac.new(pending.csrf.encode(), token_hash(session.token).encode(), "sha256").hexdigest()


def consent_page(title: str, body: str, *, status: int = 200, form_target: str | None = None) -> HTMLResponse:
    """A page of orvad's own: no script at all, never framed, the form posting only to orvad (and the
    redirect after it, which browsers check against form-action, only to the client's redirect URI)."""
    action = "'self'"
    if form_target:
        parts = urlsplit(form_target)
        extra = (
            f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else f"{parts.scheme}:"
        )
        action += " " + extra.replace(";", "").replace(" ", "")
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        f"form-action {action}; base-uri 'none'; frame-ancestors 'none'"
    )
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(title)} - Orva</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#222}}
fieldset{{border:1px solid #ccc;border-radius:6px;margin:1rem 0}} .scope{{display:block;margin:.4rem 0}}
button{{font:inherit;padding:.5rem 1.2rem;margin-right:.5rem}} .muted{{color:#666;font-size:.9rem}}
code{{word-break:break-all}}</style></head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""
    return HTMLResponse(
        page,
        status_code=status,
        headers={
            "Content-Security-Policy": csp,
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            **_NO_STORE,
        },
    )
