"""Admission: may this call run at all? The function's status, the dashboard's cookie scope, the
rate limit, the caller's credentials, the concurrency gate; in that order, cheapest first."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from orvad.auth.guard import csrf_header_sent, identify
from orvad.auth.keys import KeyService
from orvad.auth.sessions import SessionService
from orvad.errors import Building, Forbidden, NotActive, NotDeployed, Unauthorized
from orvad.http.origins import Origins, client_address
from orvad.invoke.limits import ConcurrencyGate, RateLimiter
from orvad.invoke.request import InvokeRequest
from orvad.invoke.signatures import SignatureChecker
from orvad.models import Function

_SIGNING_HEADERS = (b"x-orva-timestamp", b"x-orva-signature")
_SERVICE_WORKER = (b"service-worker", b"script")  # what a browser sends when it fetches a worker's script


def refuse_undeployed(fn: Function) -> None:
    """A function that never had code deployed: refused before the call is recorded (no execution row)."""
    if fn.status == "created" and fn.active_deployment_id is None:
        raise NotDeployed(
            f"function {fn.name} has no deployed code",
            hint=f"deploy first: POST /api/v1/functions/{fn.name}/deploy-inline",
            details={"function_id": fn.id, "status": fn.status},
        )


def gate(fn: Function) -> None:
    """Only an active function with a built version runs."""
    if fn.status == "inactive":
        raise NotActive(
            f"function {fn.name} is inactive",
            details={"function_id": fn.id, "status": fn.status},
            hint=f'set it active with PUT /api/v1/functions/{fn.name} {{"status": "active"}}',
        )
    if fn.status == "error":
        raise NotActive(
            f"function {fn.name} never had a successful build",
            details={"function_id": fn.id, "status": fn.status},
            hint=f"deploy a version that builds (POST /api/v1/functions/{fn.name}/deploy-inline); the "
            f"failed build's log is listed by GET /api/v1/functions/{fn.name}/deployments",
        )
    if fn.active_deployment_id is None:
        raise Building(
            f"function {fn.name} has no built version yet",
            retry_after_s=5,
            hint=f"wait for the deployment to finish (GET /api/v1/functions/{fn.name}/deployments)",
            details={"function_id": fn.id},
        )


class Admission:
    def __init__(
        self,
        *,
        origins: Origins,
        rate_limiter: RateLimiter,
        concurrency: ConcurrencyGate,
        trusted_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
        signatures: SignatureChecker,
        signing_secret: Callable[[str], Awaitable[str | None]],
        keys: KeyService,
        sessions: SessionService,
    ) -> None:
        self.concurrency = concurrency
        self._origins, self._rate_limiter, self._trusted = origins, rate_limiter, trusted_networks
        self._signatures, self._signing_secret = signatures, signing_secret
        self._keys, self._sessions = keys, sessions

    def shares_cookies(self, request: InvokeRequest) -> bool:
        """Whether the reply lands where the dashboard's cookies live (only HTTP replies land anywhere)."""
        return request.scope is not None and self._origins.shares_cookies(request.scope)

    def check(self, request: InvokeRequest) -> None:
        """The checks before the body is read: status, service workers, the rate limit."""
        fn = request.function
        gate(fn)
        if _SERVICE_WORKER in request.headers and self.shares_cookies(request):
            raise Forbidden(
                "function content cannot become a service worker where the dashboard's cookies live",
                hint="serve functions from their own origin (ORVA_FUNCTIONS_ORIGIN) to register one",
            )
        if fn.rate_limit_per_min > 0:
            forwarded = request.header(b"x-forwarded-for")
            self._rate_limiter.take(
                fn.id, client_address(request.client, forwarded, self._trusted), fn.rate_limit_per_min
            )

    async def authorize(self, request: InvokeRequest, body: bytes) -> None:
        """The function's auth mode: a signature over the request, or a key (a session) allowed to invoke.
        A call from /mcp carries the grant the MCP layer gave it (orvad/invoke/request.py ``Grant``: a
        channel bundling the function, or an operator caller holding invoke); HTTP never sets one."""
        fn = request.function
        if fn.auth_mode == "none" or (request.grant is not None and request.grant.satisfies(fn.auth_mode)):
            return
        if fn.auth_mode == "signed":
            await self._verify_signature(request, body)
            return
        if fn.auth_mode == "api_key":
            await self._check_caller(request)
            return
        raise Unauthorized(f"function {fn.name} has an unknown auth_mode {fn.auth_mode!r}")

    async def _verify_signature(self, request: InvokeRequest, body: bytes) -> None:
        fn = request.function
        sent = [(k, v.decode("latin-1")) for k, v in request.headers if k in _SIGNING_HEADERS]
        headers = dict(sent)
        if len(headers) != len(sent):
            raise Unauthorized(
                "X-Orva-Timestamp and X-Orva-Signature may each be sent once", hint="send one of each"
            )
        await self._signatures.verify(
            await self._signing_secret(fn.id),
            headers.get(b"x-orva-timestamp"),
            headers.get(b"x-orva-signature"),
            body,
            version=fn.signature_version,
            method=request.method,
            target=request.target(),
        )

    async def _check_caller(self, request: InvokeRequest) -> None:
        fn = request.function
        scope = request.scope if request.scope is not None else {"type": "http", "headers": request.headers}
        principal = await identify(scope, self._keys, self._sessions)
        if principal is None:
            raise Unauthorized(f"function {fn.name} needs an API key with the invoke permission")
        if principal.kind == "session" and not csrf_header_sent(scope):
            # the operator's cookie rides along with any same-site request (another port, a function
            # page): only the dashboard, which adds this header, may invoke with it
            raise Forbidden(
                f"function {fn.name} was called with the dashboard's session but without X-Orva-CSRF: 1",
                details={"required": "X-Orva-CSRF"},
                hint="call it with an API key (X-Orva-API-Key) that has the invoke permission; "
                "the dashboard's Test tab sends the header itself",
            )
        if not principal.can("invoke"):
            raise Forbidden(
                "this API key lacks the 'invoke' permission",
                details={"required": "invoke"},
                hint='call with a key that has it (POST /api/v1/keys {"permissions": ["invoke"]})',
            )
