"""/api/v1/runtimes and /api/v1/syscalls: what this host runs functions with, and what it refuses."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of
from orvad.host.seccomp import load_catalog
from orvad.services.functions import EXTENSIONS
from orvad.services.runtime_install import PINS, install_command

LANGUAGE_NAMES = {"python": "Python", "node": "Node.js"}


def _with_go_fields(runtime: dict[str, Any]) -> dict[str, Any]:
    """Beside today's fields, the Go original's: a display name, default_handler (the default entry file)
    and the file extensions an entry file may have."""
    language = runtime["language"]
    return {
        **runtime,
        "name": f"{LANGUAGE_NAMES.get(language, language)} {runtime['version']}",
        "default_handler": runtime["default_entrypoint"],
        "extensions": list(EXTENSIONS.get(language, ())),
    }


async def list_runtimes(request: Request) -> Response:
    """Runtimes discovered on this host (id, language, version, interpreter, aliases, source; and the Go
    original's name, default_handler, extensions), and `installable`: the pinned runtimes (node22, node24) not
    installed yet, each with the version it would install and the command that installs it (a function's first
    build on one installs it too). `fallback` says whether ORVA_RUNTIME_FALLBACK maps the Go original's ids."""
    catalog = daemon_of(request).runtimes
    for runtime in await asyncio.to_thread(
        catalog.newly_installed
    ):  # `orvad runtimes install` beside this orvad
        catalog.add(runtime)
    installable = [
        {"id": rid, "language": "node", "version": PINS[rid].version, "install": install_command(rid)}
        for rid in catalog.installable()
    ]
    return JSONResponse(
        {
            "runtimes": [_with_go_fields(r) for r in catalog.list()],
            "installable": installable,
            "fallback": catalog.fallback,
        }
    )


async def list_syscalls(request: Request) -> Response:
    """The seccomp policy catalog: every refused syscall, its number, category and why; `total` counts them."""
    catalog = load_catalog()
    return JSONResponse({**catalog, "total": len(catalog["syscalls"])})


routes = [
    Route("/api/v1/runtimes", list_runtimes, methods=["GET"]),
    Route("/api/v1/syscalls", list_syscalls, methods=["GET"]),
]
