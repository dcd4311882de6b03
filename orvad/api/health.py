"""Health probes for Docker HEALTHCHECK, load balancers and orchestrators (no auth).

/api/v1/system/health and /health/ready answer 200 when every check passes, else 503 naming
the failing check; /health/live only says the process answers; /health/startup is 503 until
start-up work is done. Anyone sees the status and which check failed; each check's `detail`
(paths, the egress range, nsjail's location) only a caller with a `read` key or a session.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad import __version__
from orvad.api.common import daemon_of
from orvad.auth.guard import identify
from orvad.errors import Unauthorized

_HIDDEN = "check details need an API key with 'read' (X-Orva-API-Key) or a dashboard session"


async def _may_see_details(request: Request) -> bool:
    """A probe is public, so a bad or missing credential is not an error here: it only hides the details."""
    daemon = daemon_of(request)
    try:
        principal = await identify(request.scope, daemon.keys, daemon.sessions)
    except Unauthorized:
        return False
    return principal is not None and principal.can("read")


async def system_health(request: Request) -> Response:
    """Overall health with every check; 503 names the failing one."""
    daemon = daemon_of(request)
    checks = await daemon.health_checks()
    ok = all(c["ok"] for c in checks.values() if c.get("required", True))
    body = {
        "status": "ok" if ok else "unhealthy",
        "version": __version__,
        "uptime_s": daemon.uptime_s(),
        "checks": checks,
    }
    if not await _may_see_details(request):
        body["checks"] = {
            name: {k: v for k, v in check.items() if k in ("ok", "required")}
            for name, check in checks.items()
        }
        body["details_hidden"] = _HIDDEN
    return JSONResponse(body, status_code=200 if ok else 503)


async def live(request: Request) -> Response:
    """Liveness: the process is up and answering."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Readiness: database reachable, migrations applied, start-up done."""
    return await system_health(request)


async def startup(request: Request) -> Response:
    """200 once start-up work is complete, 503 while booting."""
    done = daemon_of(request).startup_complete
    return JSONResponse({"status": "ok" if done else "starting"}, status_code=200 if done else 503)


routes = [
    Route("/api/v1/system/health", system_health, methods=["GET"]),
    Route("/health", live, methods=["GET"]),
    Route("/healthz", live, methods=["GET"]),
    Route("/health/live", live, methods=["GET"]),
    Route("/health/ready", ready, methods=["GET"]),
    Route("/health/startup", startup, methods=["GET"]),
]
