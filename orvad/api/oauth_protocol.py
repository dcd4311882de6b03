"""The OAuth 2.1 protocol endpoints for /mcp, on the MCP SDK's handlers (mcp.server.auth.handlers):
``OrvaProvider``, the SDK's ``OAuthAuthorizationServerProvider`` over orvad/services/oauth.py, and orvad's
subclasses of the SDK's client authenticator and handlers (why each: orvad/api/oauth_server.py's docstring).

orvad/api/oauth_server.py imports this module at the first OAuth request: the SDK (pydantic models, about
37 MB) is not loaded by an orvad no OAuth client talks to.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

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
)
from mcp.server.auth.routes import cors_middleware
from mcp.server.auth.settings import ClientRegistrationOptions
from mcp.server.transport_security import RequestBodyLimitMiddleware
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken, ProtectedResourceMetadata
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from pydantic import AnyUrl
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import request_response
from starlette.types import ASGIApp

from orvad.api.oauth_server import (
    AS_METADATA,
    AUTHORIZE,
    CONSENT,
    MAX_FORM,
    MCP_PATH,
    PR_METADATA,
    REGISTER,
    REVOKE,
    TOKEN,
    consent_page,
)
from orvad.services.oauth import (
    CONSENT_TTL_S,
    SCOPES,
    ClientLimit,
    OAuthService,
    Pending,
    resource_url,
    same_resource,
    scope_list,
)

log = logging.getLogger(__name__)

MAX_REDIRECT_URIS = 10
MAX_NAME = 200
MAX_METADATA = 16 * 1024  # a registration's metadata, as stored (JSON)


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
        return consent_page("Authorization request refused", body, status=400)


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


def endpoints(
    service: OAuthService, issuer: str, consent: ASGIApp
) -> dict[str, tuple[tuple[str, ...], ASGIApp]]:
    """Every OAuth path's (methods, app): the SDK's handlers, and ``consent`` (the
    consent page, orvad's own) behind the same body cap."""
    provider = OrvaProvider(service, issuer)
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
    apps: dict[str, tuple[tuple[str, ...], ASGIApp]] = {
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
            _cors(_limited(request_response(RegistrationHandler(provider, registration).handle)), list(cors)),
        ),
        REVOKE: (
            cors,
            _cors(
                _limited(request_response(PublicClientRevocationHandler(provider, authenticator).handle)),
                list(cors),
            ),
        ),
        CONSENT: (("GET", "POST"), _limited(consent)),
    }
    return apps


def _cors(app: ASGIApp, methods: list[str]) -> ASGIApp:
    """CORS for the endpoints an OAuth client calls from a browser page (the SDK's routes do the same;
    never with credentials)."""
    return CORSMiddleware(
        app, allow_origins="*", allow_methods=methods, allow_headers=[MCP_PROTOCOL_VERSION_HEADER]
    )


def _limited(app: ASGIApp) -> ASGIApp:
    """The SDK's own body cap (as create_auth_routes sets it), at MAX_FORM: OAuth requests are small."""
    return RequestBodyLimitMiddleware(app, MAX_FORM)
