"""Who is calling and what they may do: the one permission map, and the guard that applies it.

``requirement(method, path)`` is the whole map (CONTRACT.md): public routes, session-only
routes, admin areas, a replay (invoke), then GET/HEAD -> read and every other method -> write. The OpenAPI
document is generated from the same function, so the published and enforced rules agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orvad.auth.keys import looks_like_key
from orvad.errors import Forbidden, Unauthorized
from orvad.http.cookies import cookie_value
from orvad.models import PERMISSIONS

if TYPE_CHECKING:
    from orvad.auth.keys import KeyService
    from orvad.auth.sessions import Session, SessionService
    from orvad.store.auth import KeyRow

API = "/api/v1"
METRICS = "/metrics"  # the Prometheus text at the root (the Go original's path): read, or public with ORVA_METRICS_PUBLIC
CSRF_HEADER = "X-Orva-CSRF"
CHANNEL_TOKEN_PREFIX = "orva_chn_"  # orvad/services/channels.py TOKEN_PREFIX: MCP-only (issue 21)
OAUTH_TOKEN_PREFIXES = ("orva_oat_", "orva_ort_")  # orvad/services/oauth.py: OAuth tokens are for /mcp only
_CSRF_HEADER = CSRF_HEADER.lower().encode()
Requirement = Literal["public", "session", "invoke", "read", "write", "admin"]

_PUBLIC = {
    ("GET", f"{API}/system/health"),
    ("GET", f"{API}/auth/status"),
    ("GET", f"{API}/openapi.json"),
    ("POST", f"{API}/auth/onboard"),
    ("POST", f"{API}/auth/login"),
}
_SESSION_ONLY = {f"{API}/auth/{name}" for name in ("me", "refresh", "logout", "change-password")}
_ADMIN_PREFIXES = (
    f"{API}/keys",
    f"{API}/audit-log",
    f"{API}/activity",  # the audit log read as a feed (issue 24)
    f"{API}/auth/sessions",  # a session sees its own user's; an admin key everyone's (issue 24)
    f"{API}/channels",
    f"{API}/oauth",
    f"{API}/ai/",
    f"{API}/backup",  # issue 24: a backup holds the master key and every secret
    f"{API}/restore",  # issue 24: a restore replaces everything
    f"{API}/webhooks",  # issue 24: outbound webhooks send orvad's events (and their secrets) elsewhere
    f"{API}/firewall",  # issue 24: egress rules and the sandboxes' DNS servers
)
_ADMIN_EXACT = {
    ("PUT", f"{API}/pool/config"),
    ("POST", f"{API}/pool/config"),
    ("POST", f"{API}/system/vacuum"),  # issue 24: holds the database's write lock
}  # POST: the Go original's method
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_EXECUTIONS, _REPLAY = f"{API}/executions/", "/replay"  # POST .../executions/{id}/replay: invoke


def requirement(method: str, path: str) -> Requirement:
    method = "GET" if method == "HEAD" else method
    # the guard guards only /api/v1 and /metrics: the dashboard's page, its assets, `/` and the probes need nothing
    if (method, path) in _PUBLIC or not (path.startswith(API) or path == METRICS):
        return "public"
    if path in _SESSION_ONLY:
        return "session"
    if path.startswith(_ADMIN_PREFIXES) or (method, path) in _ADMIN_EXACT:
        return "admin"
    if method == "POST" and path.startswith(_EXECUTIONS) and path.endswith(_REPLAY):
        return "invoke"  # a replay runs the function again: what /fn needs of a key, not write
    return "read" if method in _SAFE_METHODS else "write"


@dataclass(frozen=True)
class Principal:
    kind: Literal["key", "session"]
    permissions: frozenset[str]
    key: KeyRow | None = None
    session: Session | None = None

    def can(self, permission: str) -> bool:
        return permission in self.permissions


ALL_PERMISSIONS = frozenset(PERMISSIONS)


def credentials(scope: Scope, cookie_name: str | None) -> tuple[str | None, str | None]:
    """(API key, session token) as sent; the key from X-Orva-API-Key or Authorization: Bearer.

    Only the cookie name in use counts (auth/cookienames.py): behind HTTPS a plain `session_token`,
    which any subdomain or plain-HTTP page could have set, is ignored. No name: no cookie read.
    """
    key = None
    for name, raw in scope["headers"]:
        if name == b"x-orva-api-key":
            key = raw.decode("latin-1").strip()
        elif name == b"authorization" and key is None:
            scheme, _, value = raw.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                key = value.strip()
    return key, cookie_value(scope["headers"], cookie_name) if cookie_name else None


async def identify(scope: Scope, keys: KeyService, sessions: SessionService) -> Principal | None:
    """The caller, or None when no credential was sent; a bad credential is 401, never anonymous."""
    key, token = credentials(scope, sessions.cookie_name)
    if key:
        if key.startswith(CHANNEL_TOKEN_PREFIX):
            raise Unauthorized(
                "a channel token works only at /mcp, never on /api/v1",
                hint="call /api/v1 with an API key (X-Orva-API-Key) or a session; give the channel token to an MCP client",
            )
        if key.startswith(OAUTH_TOKEN_PREFIXES):
            raise Unauthorized(
                "an OAuth token works only at /mcp, never on /api/v1",
                hint="call /api/v1 with an API key (X-Orva-API-Key) or a session",
            )
        row = keys.authenticate(key) if looks_like_key(key) else None
        if row is None:
            raise Unauthorized(
                "the API key is unknown, revoked or expired",
                hint="create a new key with POST /api/v1/keys or check X-Orva-API-Key",
            )
        return Principal("key", row.permissions, key=row)
    if token:
        session = await sessions.resolve(token)
        if session is None:
            raise Unauthorized(
                "the session has expired or was logged out", hint="log in again with POST /api/v1/auth/login"
            )
        return Principal("session", ALL_PERMISSIONS, session=session)
    return None


def csrf_header_sent(scope: Scope) -> bool:
    """True when the request carries `X-Orva-CSRF: 1`, which a page of another origin cannot add without CORS."""
    return any(name == _CSRF_HEADER and value.strip() == b"1" for name, value in scope["headers"])


def same_origin(scope: Scope) -> bool:
    """False when a browser tells us the request came from another site (CSRF defence)."""
    headers: dict[bytes, str] = {
        k: v.decode("latin-1") for k, v in scope["headers"] if k in (b"sec-fetch-site", b"origin", b"host")
    }
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = headers.get(b"origin")
    if origin is None:
        return True  # not a browser-initiated cross-site request (curl, CLI)
    return urlsplit(origin).netloc == headers.get(b"host", "")


class Guard:
    """Authenticates /api/v1 requests and enforces the permission map before any handler runs."""

    def __init__(
        self,
        app: ASGIApp,
        keys: KeyService,
        sessions: SessionService,
        audit: Callable[[Scope, Principal | None, int], None] | None = None,
        metrics_public: bool = False,
    ) -> None:
        self.app = app
        self.metrics_public = metrics_public  # ORVA_METRICS_PUBLIC: GET /metrics needs no credential
        self.keys = keys
        self.sessions = sessions
        # told of every call: a write once it is answered (or refused), a read when its answer starts (an event
        # stream is one row when it opens); AuditTrail.record_call decides what becomes a row
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (scope["path"].startswith(API) or scope["path"] == METRICS):
            await self.app(scope, receive, send)
            return
        audit, read = self.audit, scope["method"] in _SAFE_METHODS
        if audit is None or (read and scope["path"] == METRICS):  # a scraper's reads, like probes: not rows
            await self._guarded(scope, receive, send)
            return
        status = 500
        told = False

        def tell() -> None:
            nonlocal told
            told = True
            audit(scope, scope.get("state", {}).get("principal"), status)

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if read:
                    tell()
            await send(message)

        try:
            await self._guarded(scope, receive, send_status)
        except Exception as exc:
            status = getattr(exc, "status", 500)
            raise
        finally:
            if not told:
                tell()

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        need = requirement(method, path)
        if self.metrics_public and path == METRICS and method in _SAFE_METHODS:
            need = "public"
        # Public routes ignore credentials: a stale cookie must not stop the login page working.
        principal = None if need == "public" else await identify(scope, self.keys, self.sessions)
        scope.setdefault("state", {})["principal"] = principal
        unsafe = method not in _SAFE_METHODS
        if (
            unsafe
            and (need == "public" or (principal and principal.kind == "session"))
            and not same_origin(scope)
        ):
            raise Forbidden(
                "cross-site request refused",
                hint="call the API from the dashboard's own origin or with an API key",
            )
        if unsafe and principal and principal.kind == "session" and not csrf_header_sent(scope):
            raise Forbidden(
                f"a request that changes state with the session cookie needs the {CSRF_HEADER} header",
                hint=f"send '{CSRF_HEADER}: 1' (the dashboard does), or call with an API key instead "
                "of the cookie",
                details={"header": CSRF_HEADER},
            )
        if need == "public":
            pass
        elif principal is None:
            raise Unauthorized("authentication required")
        elif need == "session":
            if principal.kind != "session":
                raise Unauthorized(
                    "this endpoint needs a dashboard session",
                    hint="log in with POST /api/v1/auth/login and send its session cookie",
                )
        elif not principal.can(need):
            raise Forbidden(
                f"this API key lacks the '{need}' permission",
                hint=f"use a key with '{need}' or create one with POST /api/v1/keys",
                details={"required": need, "granted": sorted(principal.permissions)},
            )
        await self.app(scope, receive, send)
