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

import base64
import hmac
import html
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.metadata import MetadataHandler, ProtectedResourceMetadataHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.revoke import RevocationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    RegistrationError,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.routes import cors_middleware
from mcp.server.auth.settings import ClientRegistrationOptions
from mcp.server.transport_security import RequestBodyLimitMiddleware
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken, ProtectedResourceMetadata
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from pydantic import AnyUrl
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from orvad.auth.guard import ALL_PERMISSIONS, credentials, same_origin
from orvad.auth.sessions import Session, token_hash
from orvad.clock import now_iso
from orvad.errors import Forbidden, MethodNotAllowed, NotFound
from orvad.http.origins import Origins
from orvad.ids import uuid7
from orvad.services.oauth import (
    CONSENT_TTL_S,
    SCOPES,
    ClientLimit,
    OAuthService,
    Pending,
    issuer_of,
    resource_url,
    same_resource,
    scope_list,
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
MAX_REDIRECT_URIS = 10
MAX_NAME = 200
MAX_METADATA = 16 * 1024  # a registration's metadata, as stored (JSON)
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


def _redirect_uri_ok(uri: str) -> bool:
    """OAuth 2.1 redirect URIs: https, http only to a loopback host, or a private-use scheme of a native
    app (``cursor://...``); never a script-running or local-file scheme, never a fragment."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if parts.fragment or not scheme:
        return False
    if scheme == "https":
        return bool(parts.hostname)
    if scheme == "http":
        return parts.hostname in ("localhost", "127.0.0.1", "::1")
    return scheme not in ("javascript", "data", "file", "vbscript", "blob", "about", "ftp", "ws", "wss")


class OrvaProvider:
    """The SDK's ``OAuthAuthorizationServerProvider`` over orvad's OAuth service."""

    def __init__(self, service: OAuthService, issuer: str) -> None:
        self.service = service
        self.issuer = issuer
        self.resource = resource_url(issuer)

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        row = self.service.client(client_id)
        if row is None:
            return None
        return OAuthClientInformationFull.model_validate({**json.loads(row.metadata), "client_id": client_id})

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        uris = [str(u) for u in client_info.redirect_uris or []]
        if not uris or len(uris) > MAX_REDIRECT_URIS:
            raise RegistrationError("invalid_redirect_uri", f"register 1..{MAX_REDIRECT_URIS} redirect_uris")
        for uri in uris:
            if not _redirect_uri_ok(uri):
                raise RegistrationError(
                    "invalid_redirect_uri",
                    f"redirect_uri {uri!r} must be https, http on a loopback host, or an app's own scheme",
                )
        name = (client_info.client_name or "").strip()
        if len(name) > MAX_NAME:
            raise RegistrationError(
                "invalid_client_metadata", f"client_name is longer than {MAX_NAME} characters"
            )
        if client_info.grant_types and not set(client_info.grant_types) <= {
            "authorization_code",
            "refresh_token",
        }:
            raise RegistrationError(
                "invalid_client_metadata", "grant_types may be authorization_code and refresh_token only"
            )
        metadata = client_info.model_dump(mode="json", exclude={"client_secret"}, exclude_none=True)
        if len(json.dumps(metadata)) > MAX_METADATA:
            raise RegistrationError(
                "invalid_client_metadata", f"the metadata is over {MAX_METADATA} bytes as JSON"
            )
        try:
            await self.service.register(
                client_info.client_id or "",
                name or "unnamed client",
                json.dumps(metadata),
                client_info.client_secret,
            )
        except ClientLimit as exc:
            raise RegistrationError("invalid_client_metadata", str(exc)) from None

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if params.resource is not None and not same_resource(params.resource, self.resource):
            raise AuthorizeError(
                "invalid_target", f"this authorization server issues tokens for {self.resource} only"
            )
        requested = params.scopes or scope_list(client.scope or "") or list(SCOPES)
        unknown = [s for s in requested if s not in SCOPES]
        if unknown:
            raise AuthorizeError(
                "invalid_scope", f"unknown scopes {unknown}; this server has {' '.join(SCOPES)}"
            )
        pending = self.service.begin(
            Pending(
                id=secrets.token_urlsafe(24),
                client_id=client.client_id or "",
                scopes=[s for s in SCOPES if s in requested],
                code_challenge=params.code_challenge,
                redirect_uri=str(params.redirect_uri),
                redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
                state=params.state,
                resource=self.resource,
                expires_at=time.time() + CONSENT_TTL_S,
            )
        )
        return f"{self.issuer}{CONSENT}?{urlencode({'request': pending.id})}"

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        found = await self.service.load_code(authorization_code)
        if found is None:
            return None
        return AuthorizationCode(
            code=authorization_code,
            scopes=found.scopes,
            expires_at=found.expires_at,
            client_id=found.client_id,
            code_challenge=found.code_challenge,
            redirect_uri=AnyUrl(found.redirect_uri),
            redirect_uri_provided_explicitly=found.redirect_uri_provided_explicitly,
            resource=found.resource,
            subject=found.subject,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        found = await self.service.load_code(authorization_code.code)
        if found is None:
            raise TokenError("invalid_grant", "authorization code does not exist")
        try:
            issued = await self.service.exchange_code(authorization_code.code, found)
        except LookupError as exc:
            raise TokenError("invalid_grant", str(exc)) from None
        return _token(issued.access_token, issued.refresh_token, issued.expires_in, issued.scopes)

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        row = await self.service.load_refresh(refresh_token)
        if row is None:
            return None
        return RefreshToken(
            token=refresh_token,
            client_id=row.client_id,
            scopes=scope_list(row.scopes),
            expires_at=row.expires_at,
            resource=row.resource,
            subject=row.subject,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        row = self.service.token_row(refresh_token.token)
        if row is None:
            raise TokenError("invalid_grant", "refresh token does not exist")
        try:
            issued = await self.service.rotate(refresh_token.token, row, [s for s in SCOPES if s in scopes])
        except LookupError as exc:
            raise TokenError("invalid_grant", str(exc)) from None
        return _token(issued.access_token, issued.refresh_token, issued.expires_in, issued.scopes)

    async def load_access_token(self, token: str) -> AccessToken | None:
        row = self.service.access_token(token)
        if row is None:
            return None
        return AccessToken(
            token=token,
            client_id=row.client_id,
            scopes=scope_list(row.scopes),
            expires_at=row.expires_at,
            resource=row.resource,
            subject=row.subject,
        )

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        await self.service.revoke(token.token)

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: Any
    ) -> OAuthToken:
        raise TokenError("unsupported_grant_type", "the JWT bearer grant is not supported by this server")


def _token(access: str, refresh: str, expires_in: int, scopes: list[str]) -> OAuthToken:
    return OAuthToken(
        access_token=access,
        token_type="Bearer",
        expires_in=expires_in,
        scope=" ".join(scopes),
        refresh_token=refresh,
    )


class HashedClientAuthenticator(ClientAuthenticator):
    """The SDK's client authentication (client_secret_basic, client_secret_post or none, per the client's
    registration) against the stored SHA-256 of the secret instead of the secret itself."""

    def __init__(self, provider: OrvaProvider) -> None:
        super().__init__(provider)
        self.orva = provider

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        form = await request.form()
        client_id = form.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise AuthenticationError("Missing client_id")
        row = self.orva.service.client(client_id)
        client = await self.orva.get_client(client_id)
        if row is None or client is None:
            raise AuthenticationError("Invalid client_id")
        method = client.token_endpoint_auth_method or "client_secret_post"
        secret: str | None = None
        if method == "client_secret_basic":
            header = request.headers.get("authorization", "")
            if not header.startswith("Basic "):
                raise AuthenticationError("Missing or invalid Basic authentication in Authorization header")
            try:
                basic_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise AuthenticationError("Invalid Basic authentication header") from None
            from urllib.parse import unquote

            if unquote(basic_id) != client_id:
                raise AuthenticationError("Client ID mismatch in Basic auth")
            secret = unquote(secret)
        elif method == "client_secret_post":
            raw = form.get("client_secret")
            secret = raw if isinstance(raw, str) else None
        elif method != "none":
            raise AuthenticationError(f"Unsupported auth method: {method}")
        if method != "none" and row.secret_hash is None:
            raise AuthenticationError(
                "Client is registered for secret-based authentication but has no stored secret"
            )
        if row.secret_hash is not None and not self.orva.service.check_secret(row, secret):
            raise AuthenticationError("Invalid client_secret" if secret else "Client secret is required")
        return client


class UserFirstAuthorizationHandler(AuthorizationHandler):
    """The SDK's authorization endpoint, but an error it would send straight back to the client's
    redirect_uri (a bad scope, plain PKCE, another resource) is shown on a page of orvad's with a link
    instead: anyone can register a client (RFC 7591), so an automatic redirect would make orvad an open
    redirector to whatever URI an attacker registered (RFC 9700 4.11.1: redirect only after the user
    has been involved). The redirect to the consent page is kept."""

    def __init__(self, provider: OrvaProvider) -> None:
        super().__init__(provider)
        self.consent = provider.issuer + CONSENT + "?"

    async def handle(self, request: Request) -> Response:
        response = await super().handle(request)
        target = response.headers.get("location", "")
        if response.status_code != 302 or target.startswith(self.consent):
            return response
        query = dict(parse_qsl(urlsplit(target).query))
        error, description = query.get("error", "invalid_request"), query.get("error_description", "")
        host = urlsplit(target).hostname or urlsplit(target).scheme + ":"
        body = (
            f"<p>The app's authorization request was refused: <code>{html.escape(error)}</code>"
            f"{': ' + html.escape(description) if description else ''}.</p>"
            f'<p><a href="{html.escape(target)}">Return to {html.escape(host)}</a> (the app is told why).</p>'
        )
        return _page("Authorization request refused", body, status=400)


class AudienceTokenHandler(TokenHandler):
    """The SDK's token endpoint, refusing a ``resource`` (RFC 8707) other than this orvad's /mcp."""

    def __init__(self, provider: OrvaProvider, authenticator: ClientAuthenticator) -> None:
        super().__init__(provider, authenticator)
        self.resource = provider.resource

    async def handle(self, request: Request) -> Response:
        form = await request.form()  # cached on the request: the SDK's handler reads the same form
        resource = form.get("resource")
        if isinstance(resource, str) and resource and not same_resource(resource, self.resource):
            return JSONResponse(
                content={
                    "error": "invalid_target",
                    "error_description": f"this authorization server issues tokens for {self.resource} only",
                },
                status_code=400,
                headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
            )
        response: Response = await super().handle(request)
        return response


class PublicClientRevocationHandler(RevocationHandler):
    """The SDK's revocation endpoint (RFC 7009), also for public clients: its request model requires a
    ``client_secret`` field, which a client registered with ``none`` never sends (the SDK answers 400)."""

    async def handle(self, request: Request) -> Response:
        try:
            client = await self.client_authenticator.authenticate_request(request)
        except AuthenticationError as exc:
            return JSONResponse(
                status_code=401, content={"error": "unauthorized_client", "error_description": exc.message}
            )
        form = await request.form()
        token, hint = form.get("token"), form.get("token_type_hint")
        if not isinstance(token, str) or not token or hint not in (None, "access_token", "refresh_token"):
            return JSONResponse(
                status_code=400,
                content={"error": "invalid_request", "error_description": "token is required; token_type_hint "
                         "is access_token or refresh_token"},
            )  # fmt: skip
        found: AccessToken | RefreshToken | None = await self.provider.load_access_token(token)
        if found is None:
            found = await self.provider.load_refresh_token(client, token)
        if found is not None and found.client_id == client.client_id:
            await self.provider.revoke_token(found)
        return Response(status_code=200, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


class OAuthServer:
    """Every OAuth path (metadata, /oauth/*) in one ASGI app: the Host check, 404 with a hint while
    ORVA_PUBLIC_URL is unset, then the SDK's handler (or the consent page) for the path and method."""

    def __init__(self, daemon: Daemon, origins: Origins) -> None:
        self.daemon = daemon
        self.origins = origins
        self.issuer = issuer_of(daemon.settings.public_url)
        self.provider: OrvaProvider | None = None
        self._apps: dict[str, tuple[tuple[str, ...], ASGIApp]] = {}
        if daemon.settings.public_url and self.issuer is None:
            log.warning("OAuth for /mcp is off: %s", _HINT)
        if self.issuer is not None:
            self._build(self.issuer)

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def _build(self, issuer: str) -> None:
        provider = self.provider = OrvaProvider(self.daemon.oauth, issuer)
        scopes = list(SCOPES)
        # validated from plain strings: the models keep an empty path as is (the issuer has no trailing
        # slash, and clients compare it as a string, RFC 8414 3.3)
        metadata = OAuthMetadata.model_validate(
            {
                "issuer": issuer,
                "authorization_endpoint": issuer + AUTHORIZE,
                "token_endpoint": issuer + TOKEN,
                "registration_endpoint": issuer + REGISTER,
                "scopes_supported": scopes,
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                    "none",
                ],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": True,
                "revocation_endpoint": issuer + REVOKE,
                "revocation_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                    "none",
                ],
            }
        )
        resource = ProtectedResourceMetadata.model_validate(
            {
                "resource": provider.resource,
                "authorization_servers": [issuer],
                "scopes_supported": scopes,
                "resource_name": "Orva",
            }
        )
        authenticator = HashedClientAuthenticator(provider)
        registration = ClientRegistrationOptions(enabled=True, valid_scopes=scopes, default_scopes=scopes)
        resource_app = cors_middleware(ProtectedResourceMetadataHandler(resource).handle, ["GET", "OPTIONS"])
        cors = ("POST", "OPTIONS")
        self._apps = {
            AS_METADATA: (
                ("GET", "OPTIONS"),
                cors_middleware(MetadataHandler(metadata).handle, ["GET", "OPTIONS"]),
            ),
            PR_METADATA: (("GET", "OPTIONS"), resource_app),
            PR_METADATA + MCP_PATH: (("GET", "OPTIONS"), resource_app),
            AUTHORIZE: (
                ("GET", "POST"),
                _limited(request_response(UserFirstAuthorizationHandler(provider).handle)),
            ),
            TOKEN: (
                cors,
                _cors(
                    _limited(request_response(AudienceTokenHandler(provider, authenticator).handle)),
                    list(cors),
                ),
            ),
            REGISTER: (
                cors,
                _cors(
                    _limited(request_response(RegistrationHandler(provider, registration).handle)), list(cors)
                ),
            ),
            REVOKE: (
                cors,
                _cors(
                    _limited(request_response(PublicClientRevocationHandler(provider, authenticator).handle)),
                    list(cors),
                ),
            ),
            CONSENT: (("GET", "POST"), _limited(request_response(self.consent))),
        }

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
        if not self.enabled:
            raise NotFound(f"{scope['path']} is not served: OAuth is off", hint=_HINT)
        methods, app = self._apps[scope["path"]]
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
        assert self.provider is not None
        if request.method == "POST":
            return await self._decide(request)
        pending = self.daemon.oauth.pending(request.query_params.get("request", ""))
        if pending is None:
            return _page("Authorization request expired", _EXPIRED, status=400)
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
        return _page(f"Connect {client.client_name}?", body, form_target=pending.redirect_uri)

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
        if not same_origin(request.scope):
            raise Forbidden(
                "cross-site request refused",
                hint="approve or deny on the consent page orvad shows (open the app's connect link again)",
            )
        form = await request.form()
        pending = self.daemon.oauth.pending(str(form.get("request") or ""))
        if pending is None:
            return _page("Authorization request expired", _EXPIRED, status=400)
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


def _cors(app: ASGIApp, methods: list[str]) -> ASGIApp:
    """CORS for the endpoints an OAuth client calls from a browser page (the SDK's routes do the same;
    never with credentials)."""
    return CORSMiddleware(
        app, allow_origins="*", allow_methods=methods, allow_headers=[MCP_PROTOCOL_VERSION_HEADER]
    )


def _limited(app: ASGIApp) -> ASGIApp:
    """The SDK's own body cap (as create_auth_routes sets it), at MAX_FORM: OAuth requests are small."""
    return RequestBodyLimitMiddleware(app, MAX_FORM)


_EXPIRED = (
    "<p>This authorization request is unknown or has expired (they last 10 minutes).</p>"
    "<p>Start again from the app you were connecting.</p>"
)


def _csrf(pending: Pending, session: Session) -> str:
    """The consent form's token: the pending request's secret bound to the session that saw it."""
    return hmac.new(pending.csrf.encode(), token_hash(session.token).encode(), "sha256").hexdigest()


def _page(title: str, body: str, *, status: int = 200, form_target: str | None = None) -> HTMLResponse:
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
