"""Cross-origin requests (CORS, issue 19): which pages of other origins may call the API and functions.

Off unless configured: with ``ORVA_CORS_ORIGINS`` empty and no function's ``cors_origins`` set, no
response carries a CORS header and every OPTIONS request goes where it went before.

- ``ORVA_CORS_ORIGINS`` (comma list of exact origins, or ``*``) applies to ``/api/v1`` and, for every
  function whose ``cors_origins`` is null, to ``/fn/<id>`` and its custom routes.
- A function's ``cors_origins`` (a list, or ``["*"]``) replaces it for that function; ``[]`` turns
  orvad's CORS off for the function (its handler may answer preflights and set the headers itself).
- Where a list applies, orvad answers preflights itself (204 with the grant for a listed origin, 403
  FORBIDDEN for any other; the function is never invoked) and, on every other response, drops the
  handler's own ``Access-Control-*`` headers and adds its grant for a listed origin: the operator's
  list wins over the handler.
- No response ever carries ``Access-Control-Allow-Credentials``, so a browser never lets a page of
  another origin read a reply to a request it sent with cookies, nor send a preflighted one with them;
  ``X-Orva-CSRF`` is never granted either. The dashboard's session therefore stays usable only from
  the dashboard's own origin (docs/API.md, CORS).

Origins are compared exactly as browsers send them (``https://app.example.com``: lower case, no
default port, no path), so only that form is accepted in the settings (anything else is refused
with the form to write).

Not Starlette's CORSMiddleware: its refusals are plain-text 400s (ours are the error envelope), it
has one list per app (functions have their own) and it leaves a handler's own CORS headers beside
its grant.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orvad.corsorigins import MAX_ORIGIN_CHARS, setting_list
from orvad.errors import Forbidden, NotFound, OrvaError

MAX_AGE_S = 600  # how long a browser may keep a preflight's grant (changes reach browsers within 10 minutes)
_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")

API_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
FN_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
API_HEADERS = "Content-Type, Authorization, X-Orva-API-Key, X-Request-ID"
# what a function's caller authenticates with, granted even when the preflight did not ask
FN_HEADERS = (
    "Content-Type",
    "Authorization",
    "X-Orva-API-Key",
    "X-Orva-Timestamp",
    "X-Orva-Signature",
    "X-Request-ID",
)
# never granted to another origin: the dashboard's CSRF proof, and what a browser sets itself
NEVER_GRANTED = frozenset({"x-orva-csrf", "cookie", "host", "origin", "content-length"})
API_EXPOSED = "X-Request-ID, Location, Retry-After"
FN_EXPOSED = ("X-Orva-Execution-Id", "X-Orva-Cold-Start", "X-Orva-Duration-Ms", "X-Request-ID", "Retry-After")
# response headers a page reads without a grant, or never (Set-Cookie), or that are CORS itself
_NOT_EXPOSED = frozenset(
    {
        b"cache-control",
        b"content-language",
        b"content-length",
        b"content-type",
        b"expires",
        b"last-modified",
        b"pragma",
        b"set-cookie",
        b"set-cookie2",
        b"vary",
    }
)


class Cors:
    """The CORS layer of one stack (the API's, /fn's, the functions origin's).

    ``api``: this stack serves /api/v1 (which ``origins_setting`` covers). ``function_for(scope)``
    names the function a /fn or custom-route request reaches (None for anything else), as
    ``(list, name, methods)``: its ``cors_origins`` (None = inherit), its name for hints, and the
    methods its route allows (None = any).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        origins_setting: str,
        api: bool,
        function_for: Callable[[Scope], tuple[list[str] | None, str, frozenset[str] | None] | None],
        host_allowed: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.listed = setting_list(origins_setting)
        self.api = api
        self.function_for = function_for
        self.host_allowed = host_allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        kind, name, methods = "api", "", None
        if self.api and (path.startswith("/api/v1/") or path == "/api/v1"):
            allowed: list[str] | tuple[str, ...] | None = self.listed
        else:
            found = self.function_for(scope)
            if found is None:
                await self.app(scope, receive, send)
                return
            own, name, methods = found
            allowed, kind = (self.listed if own is None else own), "fn"
        if not allowed:  # no CORS here: responses untouched, OPTIONS goes where it always went
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        any_origin = "*" in allowed
        granted = origin is not None and (any_origin or origin in allowed)
        if (
            scope["method"] == "OPTIONS"
            and origin is not None
            and _header(scope, b"access-control-request-method")
        ):
            if kind == "api" and self.host_allowed is not None and not self.host_allowed(scope):
                await self.app(scope, receive, send)  # the Host check refuses it
                return
            await self._preflight(scope, send, origin, granted, any_origin, kind, name, methods)
            return
        grant: list[tuple[bytes, bytes]] = []
        if origin is not None and granted:
            grant.append((b"access-control-allow-origin", b"*" if any_origin else origin.encode("latin-1")))
        # also with *: a request without Origin gets no grant, so a cache must not hand that reply to a page
        grant.append((b"vary", b"Origin"))
        started = False

        async def send_granted(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not k.lower().startswith(b"access-control-")
                ]
                if granted:
                    headers.append((b"access-control-expose-headers", _exposed(kind, headers)))
                message["headers"] = headers + grant
            await send(message)

        try:
            await self.app(scope, receive, send_granted)
        except OrvaError as exc:
            if not started:  # rendered by an outer layer: it carries the grant too
                extra = {k.decode(): v.decode("latin-1") for k, v in grant}
                if granted:
                    extra["Access-Control-Expose-Headers"] = (
                        API_EXPOSED if kind == "api" else ", ".join(FN_EXPOSED)
                    )
                exc.headers = {**exc.headers, **extra}
            raise

    @staticmethod
    async def _preflight(
        scope: Scope,
        send: Send,
        origin: str,
        granted: bool,
        any_origin: bool,
        kind: str,
        name: str,
        methods: frozenset[str] | None,
    ) -> None:
        vary = b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        if not granted:
            shown = origin if len(origin) <= MAX_ORIGIN_CHARS else origin[:MAX_ORIGIN_CHARS] + "..."
            where = (
                "ORVA_CORS_ORIGINS (comma list of scheme://host[:port])"
                if kind == "api"
                else f'the function\'s cors_origins (PUT /api/v1/functions/{name} {{"cors_origins": [...]}}) or, '
                "if it has none, ORVA_CORS_ORIGINS"
            )
            raise Forbidden(
                f"cross-origin requests from {shown} are not allowed here",
                hint=f"add the page's exact origin to {where}",
                details={"origin": shown, "reason": "cors"},
                headers={"Vary": vary.decode()},
            )
        requested = _header(scope, b"access-control-request-method") or ""
        if kind == "api":
            allow_methods, allow_headers = API_METHODS, API_HEADERS
        else:
            offered = [
                m for m in FN_METHODS if methods is None or m in methods or (m == "HEAD" and "GET" in methods)
            ]
            if methods is None and requested not in offered and _TOKEN_RE.fullmatch(requested):
                offered.append(requested)
            allow_methods = ", ".join(offered)
            names = [*FN_HEADERS]
            seen = {n.lower() for n in names}
            for part in (_header(scope, b"access-control-request-headers") or "").split(","):
                asked = part.strip()
                if asked and _TOKEN_RE.fullmatch(asked) and asked.lower() not in seen | NEVER_GRANTED:
                    seen.add(asked.lower())
                    names.append(asked)
            allow_headers = ", ".join(names)
        headers = [
            (b"access-control-allow-origin", b"*" if any_origin else origin.encode("latin-1")),
            (b"access-control-allow-methods", allow_methods.encode()),
            (b"access-control-allow-headers", allow_headers.encode("latin-1")),
            (b"access-control-max-age", str(MAX_AGE_S).encode()),
            (b"vary", vary),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _exposed(kind: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """What a granted page may read: orvad's own headers, and (for functions) every header the reply carries."""
    if kind == "api":
        return API_EXPOSED.encode()
    names = list(FN_EXPOSED)
    seen = {n.lower() for n in names}
    for key, _ in headers:
        text = key.decode("latin-1")
        if key.lower() not in _NOT_EXPOSED and text.lower() not in seen:
            seen.add(text.lower())
            names.append(text)
    return ", ".join(names).encode("latin-1")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def function_lookup(
    daemon: Any,
) -> Callable[[Scope], tuple[list[str] | None, str, frozenset[str] | None] | None]:
    """``function_for`` of the daemon: /fn/<id-or-name> (an unknown one inherits ORVA_CORS_ORIGINS, so its 404
    is readable), else the custom route serving the path; /api, /web, /health and / are no function's."""

    def lookup(scope: Scope) -> tuple[list[str] | None, str, frozenset[str] | None] | None:
        path = scope["path"]
        if path.startswith("/fn/"):
            ident = path[4:].partition("/")[0]
            try:
                fn = daemon.functions.resolve(ident)
            except NotFound:
                return None, ident, None
            return fn.cors_origins, fn.name, None
        if path in ("/", "/api", "/web") or path.startswith(("/api/", "/web/", "/health")):
            return None
        match = daemon.routes.table.match(path)
        if match is None:
            return None
        fn = daemon.functions.get(match.route.function_id)
        if fn is None:
            return None
        return fn.cors_origins, fn.name, match.route.methods

    return lookup
