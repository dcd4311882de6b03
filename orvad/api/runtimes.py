"""/api/v1/runtimes and /api/v1/syscalls: what this host runs functions with, and what it refuses."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of
from orvad.seccomp import load_catalog


async def list_runtimes(request: Request) -> Response:
    """Runtimes discovered on this host (id, language, version, interpreter, aliases)."""
    return JSONResponse({"runtimes": daemon_of(request).runtimes.list()})


async def list_syscalls(request: Request) -> Response:
    """The seccomp policy catalog: every refused syscall, its number, category and why."""
    return JSONResponse(load_catalog())


routes = [Route("/api/v1/runtimes", list_runtimes, methods=["GET"]),
          Route("/api/v1/syscalls", list_syscalls, methods=["GET"])]
