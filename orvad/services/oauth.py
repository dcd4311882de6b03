"""OAuth 2.1 for /mcp (issue 21, remote connectors): registered clients, pending consents, codes and tokens.

The authorization server's state, independent of the HTTP layer (orvad/mcp/oauth.py puts the MCP SDK's
handlers in front of it). As API keys and channel tokens are (orvad/auth/keys.py, services/channels.py):
client secrets, codes and tokens are stored only as SHA-256 hashes; the tokens live in an in-memory map by
hash that every change updates in the same call as the database, so a revoked or rotated token fails on
the very next request; last_used_at goes through the batch writer at most once a minute per client.

- Access tokens ``orva_oat_`` (1 hour) carry scopes (``read invoke write admin``, an API key's permissions)
  and the audience (the resource, this orvad's /mcp URL when issued).
- Refresh tokens ``orva_ort_`` (30 days) rotate on every use. A family is one consent's grant: a rotated
  refresh token presented again (a stolen copy, or the client's own stale one) revokes the whole family,
  as does a code presented twice.
- Authorization codes (5 minutes, one use) and pending consents (10 minutes) live only in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from orvad.clock import now_iso
from orvad.errors import NotFound
from orvad.store.oauth import ClientRow, OAuthStore, TokenRow

ACCESS_PREFIX = "orva_oat_"
REFRESH_PREFIX = "orva_ort_"
SCOPES = ("read", "invoke", "write", "admin")
ACCESS_TTL_S = 3600
REFRESH_TTL_S = 30 * 86400
CODE_TTL_S = 300
CONSENT_TTL_S = 600
MAX_CLIENTS = 1000  # registration is open (RFC 7591): at the limit, the oldest never granted anything go
MAX_PENDING = 1000
_TOUCH_EVERY_S = 60
_PRUNE_EVERY_S = 600  # expired tokens leave memory and the database at most this long after expiring
_HINT = "list connected apps with GET /api/v1/oauth/connected-apps"
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def issuer_of(public_url: str) -> str | None:
    """The issuer: ORVA_PUBLIC_URL without a trailing slash, or None when OAuth cannot be served (unset, or
    plain http to a host that is not loopback: OAuth 2.1 and RFC 8414 want https)."""
    if not public_url:
        return None
    issuer = public_url.rstrip("/")
    parts = urlsplit(issuer)
    if parts.query or parts.fragment or not parts.hostname:
        return None
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return None
    return issuer


def resource_url(issuer: str) -> str:
    """The protected resource, the audience every access token is bound to: this orvad's /mcp."""
    return issuer.rstrip("/") + "/mcp"


def same_resource(given: str, ours: str) -> bool:
    """RFC 8707 resource indicators compared as URLs: scheme and host case-insensitive, a trailing slash ignored."""
    a, b = urlsplit(given.strip()), urlsplit(ours)
    if a.query or a.fragment or not a.scheme or not a.netloc:
        return False
    return (
        a.scheme.lower() == b.scheme.lower()
        and a.netloc.lower() == b.netloc.lower()
        and (a.path.rstrip("/") or "/") == (b.path.rstrip("/") or "/")
    )


def hash_secret(plaintext: str) -> str:
    """SHA-256 hex, as API keys and channel tokens are hashed."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def looks_like_access_token(value: str) -> bool:
    return value.startswith(ACCESS_PREFIX)


def scope_list(scopes: str) -> list[str]:
    return [s for s in scopes.split() if s]


@dataclass
class Pending:
    """An authorization request waiting for the user's consent (the consent page's ``request``)."""

    id: str
    client_id: str
    scopes: list[str]
    code_challenge: str
    redirect_uri: str
    redirect_uri_provided_explicitly: bool
    state: str | None
    resource: str
    expires_at: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    seen: bool = False  # its consent page was shown to a signed-in user: evicted last


@dataclass(frozen=True)
class Code:
    client_id: str
    scopes: list[str]
    code_challenge: str
    redirect_uri: str
    redirect_uri_provided_explicitly: bool
    resource: str
    subject: str
    expires_at: float


@dataclass(frozen=True)
class Issued:
    access_token: str
    refresh_token: str
    expires_in: int
    scopes: list[str]


@dataclass(frozen=True)
class ConnectedApp:
    client_id: str
    client_name: str
    redirect_uris: list[str]
    scopes: list[str]
    created_at: str
    last_used_at: str | None


class ClientLimit(Exception):
    """Too many registered clients (MAX_CLIENTS), even after pruning the unused ones."""


class OAuthService:
    def __init__(self, store: OAuthStore) -> None:
        self._store = store
        self._clients: dict[str, ClientRow] = {}
        self._tokens: dict[str, TokenRow] = {}
        self._pending: dict[str, Pending] = {}
        self._codes: dict[str, Code] = {}
        self._used_codes: dict[
            str, tuple[str, float]
        ] = {}  # code hash -> (family, until): a replay revokes it
        self._last_touch: dict[str, float] = {}
        self._pruned_at = 0.0

    async def _prune_expired(self) -> None:
        now = time.time()
        self._pruned_at = now
        self._tokens = {h: t for h, t in self._tokens.items() if t.expires_at > now}
        await self._store.delete_expired(int(now))

    async def load(self) -> None:
        await self._prune_expired()
        self._clients = {c.client_id: c for c in await self._store.clients()}
        self._tokens = {t.token_hash: t for t in await self._store.tokens()}

    # clients (RFC 7591)

    def client(self, client_id: str) -> ClientRow | None:
        return self._clients.get(client_id)

    def check_secret(self, client: ClientRow, presented: str | None) -> bool:
        if client.secret_hash is None:
            return True
        return presented is not None and hmac.compare_digest(client.secret_hash, hash_secret(presented))

    async def register(
        self, client_id: str, client_name: str, metadata: str, secret: str | None
    ) -> ClientRow:
        if len(self._clients) >= MAX_CLIENTS:
            await self._make_room()
            if len(self._clients) >= MAX_CLIENTS:
                raise ClientLimit(f"this orvad holds {MAX_CLIENTS} OAuth clients with a live grant already")
        row = ClientRow(
            client_id=client_id,
            client_name=client_name,
            metadata=metadata,
            secret_hash=hash_secret(secret) if secret else None,
            created_at=now_iso(),
            last_used_at=None,
        )
        await self._store.insert_client(row)
        self._clients[client_id] = row
        return row

    async def _make_room(self) -> None:
        """Registration is open to anyone: at MAX_CLIENTS, the registrations holding no grant go, the
        oldest first, until one fits (with their pending consents and codes). Clients the user approved
        stay; a flood of registrations can only push out other registrations never approved, and a
        client's own between its registration and its first token only if the flood outruns it."""
        granted = {t.client_id for t in self._tokens.values()}
        unused = sorted(
            (c for c in self._clients.values() if c.client_id not in granted),
            key=lambda c: (c.created_at, c.client_id),
        )
        stale = [c.client_id for c in unused[: len(self._clients) - MAX_CLIENTS + 1]]
        if stale:
            await self._store.delete_clients(stale)
            gone = set(stale)
            for client_id in stale:
                self._clients.pop(client_id, None)
            self._pending = {k: p for k, p in self._pending.items() if p.client_id not in gone}
            self._codes = {h: c for h, c in self._codes.items() if c.client_id not in gone}

    # consent and codes

    def begin(self, pending: Pending) -> Pending:
        now = time.time()
        self._pending = {k: p for k, p in self._pending.items() if p.expires_at > now}
        while len(self._pending) >= MAX_PENDING:
            # anyone can start requests (registration is open): a flood pushes out the oldest request
            # no user has looked at yet, never one whose consent page a signed-in user has open
            victim = next((k for k, p in self._pending.items() if not p.seen), None)
            self._pending.pop(victim if victim is not None else next(iter(self._pending)))
        self._pending[pending.id] = pending
        return pending

    def pending(self, request_id: str) -> Pending | None:
        found = self._pending.get(request_id)
        if found is None or found.expires_at <= time.time() or found.client_id not in self._clients:
            return None
        return found

    def finish(self, request_id: str) -> None:
        self._pending.pop(request_id, None)

    def grant_code(self, pending: Pending, subject: str, scopes: list[str]) -> str:
        """A one-use code for the consented request (the pending request is spent)."""
        self.finish(pending.id)
        code = secrets.token_urlsafe(32)
        now = time.time()
        self._codes = {k: c for k, c in self._codes.items() if c.expires_at > now}
        self._codes[hash_secret(code)] = Code(
            client_id=pending.client_id,
            scopes=scopes,
            code_challenge=pending.code_challenge,
            redirect_uri=pending.redirect_uri,
            redirect_uri_provided_explicitly=pending.redirect_uri_provided_explicitly,
            resource=pending.resource,
            subject=subject,
            expires_at=now + CODE_TTL_S,
        )
        return code

    async def load_code(self, code: str) -> Code | None:
        """The live code, or None; a code already exchanged revokes what it was exchanged for."""
        digest = hash_secret(code)
        used = self._used_codes.get(digest)
        if used is not None:
            family, until = used
            if until > time.time():
                await self.revoke_family(family)
            return None
        return self._codes.get(digest)

    async def exchange_code(self, code: str, found: Code) -> Issued:
        digest = hash_secret(code)
        if self._codes.pop(digest, None) is None:  # spent by a concurrent exchange
            raise LookupError("the code was already used")
        family = secrets.token_hex(16)
        now = time.time()
        self._used_codes = {k: v for k, v in self._used_codes.items() if v[1] > now}
        self._used_codes[digest] = (family, found.expires_at)
        return await self._issue(found.client_id, found.scopes, found.resource, found.subject, family)

    # tokens

    async def _issue(
        self,
        client_id: str,
        scopes: list[str],
        resource: str,
        subject: str,
        family: str,
        rotated: str | None = None,
    ) -> Issued:
        if time.time() - self._pruned_at >= _PRUNE_EVERY_S:
            await self._prune_expired()
        access = ACCESS_PREFIX + secrets.token_hex(32)
        refresh = REFRESH_PREFIX + secrets.token_hex(32)
        now, created = int(time.time()), now_iso()
        rows = [
            TokenRow(hash_secret(access), "access", client_id, family, " ".join(scopes), resource, subject,
                     now + ACCESS_TTL_S, None, created),
            TokenRow(hash_secret(refresh), "refresh", client_id, family, " ".join(scopes), resource, subject,
                     now + REFRESH_TTL_S, None, created),
        ]  # fmt: skip
        await self._store.insert_tokens(rows, rotated, now)
        for row in rows:
            self._tokens[row.token_hash] = row
        return Issued(access, refresh, ACCESS_TTL_S, scopes)

    def _live(self, plaintext: str, kind: str) -> TokenRow | None:
        digest = hash_secret(plaintext)
        row = self._tokens.get(digest)
        if row is None or row.kind != kind or not hmac.compare_digest(row.token_hash, digest):
            return None
        if row.expires_at <= time.time():
            return None
        return row

    def authenticate(self, token: str) -> TokenRow | None:
        """The live access token for this plaintext, or None (unknown, revoked or expired). From memory;
        the client's last_used_at through the batch writer, at most once a minute."""
        if not looks_like_access_token(token):
            return None
        row = self._live(token, "access")
        if row is None or row.client_id not in self._clients:
            return None
        self._touch(row.client_id)
        return row

    def access_token(self, token: str) -> TokenRow | None:
        return self._live(token, "access") if looks_like_access_token(token) else None

    def _touch(self, client_id: str) -> None:
        stamp = time.time()
        if stamp - self._last_touch.get(client_id, 0.0) >= _TOUCH_EVERY_S:
            self._last_touch[client_id] = stamp
            now = now_iso()
            client = self._clients.get(client_id)
            if client is not None:
                self._clients[client_id] = replace(client, last_used_at=now)
            self._store.touch_client(client_id, now)

    async def load_refresh(self, token: str) -> TokenRow | None:
        """The live refresh token, or None. A rotated one presented again revokes its family (RFC 9700
        4.14.2: either the attacker or the client holds a stolen copy; neither may go on)."""
        if not token.startswith(REFRESH_PREFIX):
            return None
        row = self._live(token, "refresh")
        if row is None:
            return None
        if row.rotated_at is not None:
            await self.revoke_family(row.family)
            return None
        return row

    async def rotate(self, token: str, row: TokenRow, scopes: list[str]) -> Issued:
        """New access and refresh tokens for a live refresh token, which is spent. Marked in memory
        before any await, so two concurrent refreshes with one token cannot both succeed."""
        current = self._tokens.get(row.token_hash)
        if current is None or current.rotated_at is not None:
            await self.revoke_family(row.family)
            raise LookupError("the refresh token was already used")
        now = int(time.time())
        self._tokens[row.token_hash] = current.rotated(now)
        self._touch(row.client_id)
        return await self._issue(row.client_id, scopes, row.resource, row.subject, row.family, row.token_hash)

    async def revoke_family(self, family: str) -> None:
        self._tokens = {h: t for h, t in self._tokens.items() if t.family != family}
        await self._store.delete_family(family)

    async def revoke(self, token: str) -> None:
        """RFC 7009: the token's whole grant (its access and refresh tokens) stops at once."""
        row = self._tokens.get(hash_secret(token))
        if row is not None:
            await self.revoke_family(row.family)

    def token_row(self, token: str) -> TokenRow | None:
        return self._tokens.get(hash_secret(token))

    # connected apps (the REST surface)

    def connected_apps(self) -> list[ConnectedApp]:
        """Clients holding a live grant (a refresh token not yet rotated, or an access token), newest first."""
        now = time.time()
        scopes: dict[str, set[str]] = {}
        for t in self._tokens.values():
            if t.expires_at > now and t.rotated_at is None:
                scopes.setdefault(t.client_id, set()).update(scope_list(t.scopes))
        apps = []
        for client_id, granted in scopes.items():
            client = self._clients.get(client_id)
            if client is None:
                continue
            meta: dict[str, Any] = json.loads(client.metadata)
            apps.append(
                ConnectedApp(
                    client_id=client_id,
                    client_name=client.client_name,
                    redirect_uris=[str(u) for u in meta.get("redirect_uris") or []],
                    scopes=[s for s in SCOPES if s in granted],
                    created_at=client.created_at,
                    last_used_at=client.last_used_at,
                )
            )
        return sorted(apps, key=lambda a: a.created_at, reverse=True)

    async def disconnect(self, client_id: str) -> None:
        """Cut a client off: its tokens revoked at once, its codes and consents dropped, its registration removed."""
        if client_id not in self._clients:
            raise NotFound(f"no OAuth client {client_id!r}", hint=_HINT, details={"client_id": client_id})
        self._tokens = {h: t for h, t in self._tokens.items() if t.client_id != client_id}
        self._codes = {h: c for h, c in self._codes.items() if c.client_id != client_id}
        self._pending = {k: p for k, p in self._pending.items() if p.client_id != client_id}
        self._clients.pop(client_id, None)
        await self._store.delete_client(client_id)
