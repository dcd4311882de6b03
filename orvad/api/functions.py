"""/api/v1/functions: CRUD, deploys (inline and archive), deployments, rollback, source, diff."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from orvad.api.common import (
    daemon_of,
    listing,
    paging,
    principal_of,
    read_object,
    trusted_needs_admin,
)
from orvad.api.deployments import deploy_answer, deployed, wait_timeout
from orvad.api.pools import update_with_pool
from orvad.api.settled import until_served
from orvad.builder.diff import compare, unified
from orvad.builder.gc import is_built
from orvad.errors import Forbidden, NotFound, ValidationError, VersionGCd, VersionNotFound
from orvad.models import Deployment, DeploymentStatus, Function, FunctionStatus
from orvad.services.functions import SETTABLE, WORKER_FIELDS, validate_entrypoint
from orvad.services.runtimes import FALLBACK_HEADER
from orvad.services.serialisers import deployment_json, function_json, last_deployment_json, pool_config_json
from orvad.services.versionrefs import resolve_deployment

ARCHIVE_TYPES = (
    "application/gzip",
    "application/x-gzip",
    "application/zip",
    "application/octet-stream",
    "application/x-tar",
)


async def list_functions(request: Request) -> Response:
    """Functions, newest first, each with its newest deployment (`last_deployment`, one query for the
    page); filters ?status=, ?runtime= (an id, or a language: python matches python3.12 too) and ?q=
    (name or description contains it); paging ?limit= with ?cursor= or ?offset=; ``total`` counts every
    function the filters match."""
    daemon = daemon_of(request)
    page = paging(request, "/api/v1/functions")
    params = request.query_params
    fns = daemon.functions.list(
        status=params.get("status"), runtime=params.get("runtime"), text=params.get("q")
    )
    after = [f for f in fns if page.cursor is None or f.id < page.cursor]
    window = after[page.offset : page.offset + page.limit + 1]
    latest = await daemon.function_store.latest_deployments([f.id for f in window[: page.limit]])
    items = [{**function_json(f), "last_deployment": last_deployment_json(latest.get(f.id))} for f in window]
    return listing("functions", items, page.limit, total=len(fns))


def _unsandboxing_needs_admin(request: Request, body: dict[str, object]) -> None:
    """csp_sandbox false lets the function's pages act as whoever opens them on the dashboard's origin
    (the operator): only an admin may grant that, never a write key."""
    principal = principal_of(request)
    if body.get("csp_sandbox") is False and (principal is None or not principal.can("admin")):
        raise Forbidden(
            "turning csp_sandbox off needs the admin permission: the function's pages would act as "
            "the operator who opens them",
            details={"required": "admin", "field": "csp_sandbox"},
            hint="ask an operator with an admin key or the dashboard to set it, or serve functions "
            "from their own origin (ORVA_FUNCTIONS_ORIGIN) instead",
        )


def _may_invoke_needs_invoke(request: Request, body: dict[str, object]) -> None:
    """may_invoke lets the function call the functions it names whatever their auth_mode (orvad/invoke/f2f.py):
    granting that needs the invoke permission as well as write, so a write-only key cannot reach through a
    function what it could not call itself."""
    principal = principal_of(request)
    if body.get("may_invoke") not in (None, []) and (principal is None or not principal.can("invoke")):
        raise Forbidden(
            "setting may_invoke needs the invoke permission too: the function could then call the functions "
            "it names, whatever their auth_mode",
            details={"required": "invoke", "field": "may_invoke"},
            hint='use a key with both write and invoke (POST /api/v1/keys {"permissions": ["write", "invoke"]}), '
            'or send "may_invoke": [] to take every grant away',
        )


async def create_function(request: Request) -> Response:
    """Create a function record (no code yet: status `created`)."""
    body = await read_object(request, SETTABLE)
    _unsandboxing_needs_admin(request, body)
    _may_invoke_needs_invoke(request, body)
    fallback = None
    if "runtime" in body:
        body["runtime"], fallback = daemon_of(request).runtimes.map_requested(
            body["runtime"]
        )  # ORVA_RUNTIME_FALLBACK
    fn = await daemon_of(request).functions.create(body)
    return JSONResponse(
        {**function_json(fn), **({"runtime_fallback": fallback} if fallback else {})},
        status_code=201,
        headers={"Location": f"/api/v1/functions/{fn.id}", **_fallback_header(fallback)},
    )


def _fallback_header(fallback: dict[str, str] | None) -> dict[str, str]:
    return {FALLBACK_HEADER: f"{fallback['requested']} -> {fallback['runtime']}"} if fallback else {}


async def get_function(request: Request) -> Response:
    """One function by id or name."""
    return JSONResponse(function_json(daemon_of(request).functions.resolve(request.path_params["id"])))


async def update_function(request: Request) -> Response:
    """Partial update; status may be set to active or inactive, `pool` changes the pool settings in the
    same all-or-nothing write. Answers once the next invocation runs with the new settings."""
    daemon = daemon_of(request)
    body = await read_object(request, (*SETTABLE, "status", "pool"))
    sent_pool, pool = "pool" in body, body.pop("pool", None)
    fallback = None
    if "runtime" in body:
        body["runtime"], fallback = daemon.runtimes.map_requested(body["runtime"])  # ORVA_RUNTIME_FALLBACK
    _unsandboxing_needs_admin(request, body)
    _may_invoke_needs_invoke(request, body)
    if body != {"csp_sandbox": True}:  # sandboxing a trusted function again is always allowed
        trusted_needs_admin(request, daemon.functions.resolve(request.path_params["id"]))
    if sent_pool:
        fn, config = await update_with_pool(daemon, request.path_params["id"], body, pool)
    else:
        fn, config = await daemon.functions.update(request.path_params["id"], body), None
    await until_served(
        daemon,
        fn,
        ", ".join(f for f in WORKER_FIELDS if f in body) or "the settings",
        f"change them again (PUT /api/v1/functions/{fn.name})",
    )
    return JSONResponse(
        {
            **function_json(fn),
            **({"pool": pool_config_json(config)} if config is not None else {}),
            **({"runtime_fallback": fallback} if fallback else {}),
        },
        headers=_fallback_header(fallback),
    )


async def delete_function(request: Request) -> Response:
    """Delete the function, its versions on disk, secrets, routes and pool."""
    fn = await daemon_of(request).functions.delete(request.path_params["id"])
    return JSONResponse({"id": fn.id, "deleted": True})


async def deploy_inline(request: Request) -> Response:
    """Deploy code from JSON ({code, filename?, dependencies?}); 202, the build runs asynchronously
    (?wait=true: 200 once the new version serves, 422 BUILD_FAILED)."""
    daemon = daemon_of(request)
    timeout_s = wait_timeout(request)
    fn = daemon.functions.resolve(request.path_params["id"])
    trusted_needs_admin(request, fn)
    body = await read_object(request, ("code", "filename", "dependencies"))
    code = body.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ValidationError("code must be a non-empty string", details={"field": "code"})
    language = daemon.runtimes.language_of(fn.runtime) or "python"
    filename = validate_entrypoint(body.get("filename", fn.entrypoint), language)
    deps = body.get("dependencies")
    if deps is not None and not isinstance(deps, str):
        raise ValidationError("dependencies must be a string", details={"field": "dependencies"})
    return await deployed(request, await daemon.builder.submit_inline(fn, code, filename, deps), timeout_s)


async def deploy_archive(request: Request) -> Response:
    """Deploy a .tar.gz or .zip (multipart field `file` or `code`, or the raw body); 202, built asynchronously
    (?wait=true: 200 once the new version serves, 422 BUILD_FAILED)."""
    daemon = daemon_of(request)
    timeout_s = wait_timeout(request)
    fn = daemon.functions.resolve(request.path_params["id"])
    trusted_needs_admin(request, fn)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file", form.get("code"))  # `code`: the Go original's CLI field
            if upload is None or isinstance(upload, str):
                raise ValidationError(
                    "send the archive in the multipart field `file` (or `code`)", details={"field": "file"}
                )
            data = await upload.read()
    elif content_type in ARCHIVE_TYPES:
        data = await request.body()
    else:
        raise ValidationError(
            "send multipart/form-data with a `file` field, or the archive as the body",
            hint="curl -F file=@fn.tar.gz .../deploy",
            details={"field": "file"},
        )
    if not data:
        raise ValidationError("the archive is empty", details={"field": "file"})
    return await deployed(request, await daemon.builder.submit_archive(fn, data), timeout_s)


async def list_deployments(request: Request) -> Response:
    """Deployment history of a function, newest first (?limit= with ?cursor= or ?offset=; ``total``: all of them)."""
    daemon = daemon_of(request)
    fn = daemon.functions.resolve(request.path_params["id"])
    page = paging(request, f"/api/v1/functions/{fn.name}/deployments", maximum=500)
    deps = await daemon.function_store.deployments(fn.id, page.limit + 1, page.cursor, page.offset)
    return listing(
        "deployments",
        [deployment_json(d) for d in deps],
        page.limit,
        total=await daemon.function_store.count_deployments(fn.id),
    )


async def rollback(request: Request) -> Response:
    """Switch back to a built version ({deployment_id} or {code_hash}); 200 with a `rollback` deployment."""
    daemon = daemon_of(request)
    fn = daemon.functions.resolve(request.path_params["id"])
    trusted_needs_admin(request, fn)
    body = await read_object(request, ("deployment_id", "code_hash"))
    for field in ("deployment_id", "code_hash"):
        if field in body and not isinstance(body[field], str):
            raise ValidationError(f"{field} must be a string", details={"field": field})
    dep = await daemon.builder.rollback(fn, body.get("deployment_id"), body.get("code_hash"))
    return JSONResponse(deploy_answer(dep))


async def source(request: Request) -> Response:
    """The active version's handler and dependency manifest."""
    daemon = daemon_of(request)
    fn = daemon.functions.resolve(request.path_params["id"])
    dep = await daemon.function_store.deployment(fn.active_deployment_id) if fn.active_deployment_id else None
    if dep is None or dep.code_hash is None:
        raise NotFound(f"function {fn.name} has no active version", hint="deploy code first")
    root = daemon.builder.version_dir(fn.id, dep.code_hash)
    files = await asyncio.to_thread(compare, root, root, fn.entrypoint, fn.entrypoint)
    manifest = next((f for f in files if f["kind"] == "manifest"), None)
    return JSONResponse(
        {
            "function_id": fn.id,
            "deployment_id": dep.id,
            "code_hash": dep.code_hash,
            "filename": fn.entrypoint,
            "code": files[0]["after"],
            "dependencies": manifest["after"] if manifest else "",
            "manifest": manifest["path"] if manifest else None,
        }
    )


async def kill(request: Request) -> Response:
    """Pause the function and cancel its in-flight executions (recorded as killed); workers are stopped."""
    daemon = daemon_of(request)
    fn = daemon.functions.resolve(request.path_params["id"])
    if fn.status == FunctionStatus.ACTIVE:
        fn = await daemon.functions.update(fn.id, {"status": FunctionStatus.INACTIVE.value})
    cancelled = daemon.invoker.kill(fn.id)
    return JSONResponse({"id": fn.id, "status": str(fn.status), "killed": cancelled})


async def _built(daemon: Any, fn: Function, deployment_id: str | None, field: str) -> Deployment:
    """The succeeded deployment ?field= names: a whole id, or a unique prefix of one of fn's ids."""
    if not deployment_id:
        raise ValidationError(f"?{field}= (a deployment id) is required", details={"field": field})
    dep = await resolve_deployment(daemon.function_store, fn, deployment_id, field)
    if dep is None:
        raise VersionNotFound(
            f"no deployment {deployment_id}",
            details={field: deployment_id},
            hint=f"GET /api/v1/functions/{fn.name}/deployments lists its deployments",
        )
    if dep.function_id != fn.id:
        raise ValidationError(
            f"deployment {deployment_id} belongs to another function", details={"field": field}
        )
    if dep.status != DeploymentStatus.SUCCEEDED or dep.code_hash is None:
        raise ValidationError(
            f"deployment {deployment_id} is not a succeeded build", details={"field": field}
        )
    return dep


async def diff(request: Request) -> Response:
    """Compare two succeeded deployments: ?from=&to=&format=json|unified."""
    daemon = daemon_of(request)
    fn = daemon.functions.resolve(request.path_params["id"])
    params = request.query_params
    fmt = params.get("format", "json")
    if fmt not in ("json", "unified"):
        raise ValidationError("format must be json or unified", details={"field": "format"})
    before = await _built(daemon, fn, params.get("from"), "from")
    after = await _built(daemon, fn, params.get("to"), "to")
    if before.id == after.id:
        raise ValidationError("from and to are the same deployment", details={"field": "to"})
    roots = [
        daemon.builder.version_dir(fn.id, str(d.code_hash)) for d in (before, after)
    ]  # _built checked both
    built = await asyncio.to_thread(lambda: [is_built(root) for root in roots])
    missing = [d.code_hash for d, ok in zip((before, after), built, strict=True) if not ok]
    if missing:
        raise VersionGCd(
            "a compared version was removed by the garbage collector",
            details={
                "missing_hashes": missing,
                "available_hashes": await daemon.builder.available_hashes(fn.id),
            },
        )
    files = await asyncio.to_thread(compare, roots[0], roots[1], fn.entrypoint, fn.entrypoint)
    if fmt == "unified":
        return PlainTextResponse(unified(files), media_type="text/x-diff")
    return JSONResponse({"from": before.id, "to": after.id, "files": files})


routes = [
    Route("/api/v1/functions", list_functions, methods=["GET"]),
    Route("/api/v1/functions", create_function, methods=["POST"]),
    Route("/api/v1/functions/{id}", get_function, methods=["GET"]),
    Route("/api/v1/functions/{id}", update_function, methods=["PUT"]),
    Route("/api/v1/functions/{id}", delete_function, methods=["DELETE"]),
    Route("/api/v1/functions/{id}/deploy-inline", deploy_inline, methods=["POST"]),
    Route("/api/v1/functions/{id}/deploy", deploy_archive, methods=["POST"]),
    Route("/api/v1/functions/{id}/deployments", list_deployments, methods=["GET"]),
    Route("/api/v1/functions/{id}/rollback", rollback, methods=["POST"]),
    Route("/api/v1/functions/{id}/source", source, methods=["GET"]),
    Route("/api/v1/functions/{id}/diff", diff, methods=["GET"]),
    Route("/api/v1/functions/{id}/kill", kill, methods=["POST"]),
]
