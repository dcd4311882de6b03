"""/api/v1/runtimes: the interpreters this host really offers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of


async def list_runtimes(request: Request) -> Response:
    """Runtimes discovered on this host (id, language, version, interpreter, aliases)."""
    return JSONResponse({"runtimes": daemon_of(request).runtimes.list()})


routes = [Route("/api/v1/runtimes", list_runtimes, methods=["GET"])]
