"""/api/v1/templates: the starter functions shipped with orvad (orvad/templates; docs/TEMPLATES.md).

Read scope. The catalog is files in the package, read once per process. Creating a function from a template
is done with the usual calls (POST /api/v1/functions with the template's settings, then deploy-inline with
its files), as the dashboard and `orva init --template` do: there is no second way to create a function.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.errors import NotFound, ValidationError
from orvad.templates import catalog, find


async def list_templates(request: Request) -> Response:
    """The starter functions: name, title, description, runtime and tags of each (?runtime=python|node)."""
    templates = await asyncio.to_thread(catalog)  # read from the package once, then cached
    runtime = request.query_params.get("runtime") or None
    if runtime not in (None, "python", "node"):
        raise ValidationError(
            "runtime must be python or node",
            hint="GET /api/v1/templates?runtime=python (or node), or leave it out for all",
            details={"field": "runtime"},
        )
    items = [t.summary() for t in templates.values() if runtime is None or t.runtime == runtime]
    return JSONResponse({"templates": items})


async def get_template(request: Request) -> Response:
    """One template: its manifest (settings, env and secrets it reads, an example call) and its files."""
    await asyncio.to_thread(catalog)
    name = request.path_params["name"]
    template = find(name)
    if template is None:
        raise NotFound(
            f"no template {name}",
            details={"template": name},
            hint="GET /api/v1/templates lists the templates",
        )
    return JSONResponse(template.to_json())


routes = [
    Route("/api/v1/templates", list_templates, methods=["GET"]),
    Route("/api/v1/templates/{name}", get_template, methods=["GET"]),
]
