"""Functions and their code: list, get, create, update, delete; deploy inline (one file or a map of
files), a deployment's status and build log, the deployment history, rollback, the diff between two
builds and the active source. The same services and builder the REST API's functions and deployments
modules call."""

from __future__ import annotations

import asyncio
import io
import posixpath
import tarfile
from typing import TYPE_CHECKING, Any

from orvad.builder.diff import compare, unified
from orvad.builder.gc import is_built
from orvad.errors import BuildFailedError, Forbidden, NotFound, VersionGCd, VersionNotFound
from orvad.mcp.catalog.base import FUNCTION, LIMIT, admin_for_unsandboxed, obj, text, tool
from orvad.mcp.results import Caller, bad, limit_arg, string_arg
from orvad.models import Deployment, DeploymentStatus, Function, FunctionStatus
from orvad.services.functions import CHOICES, SETTABLE, validate_entrypoint
from orvad.services.serialisers import deployment_json, function_json
from orvad.services.versionrefs import resolve_deployment

if TYPE_CHECKING:
    from orvad.daemon import Daemon

WAIT_DEFAULT_S, WAIT_MAX_S = 120, 600
LOG_TAIL_LINES = 20
MAX_FILES = 200

_SETTINGS: dict[str, Any] = {
    "name": text("unique name: lowercase letters, digits and -"),
    "runtime": text("a runtime id (python3.12, node22, ...) or a language (python, node)"),
    "entrypoint": text("the handler file inside the code (default handler.py or handler.js)"),
    "description": text("what the function does (shown to agents in channels)"),
    "memory_mb": {"type": "integer", "minimum": 16, "maximum": 4096},
    "cpus": {"type": "number", "description": "CPU share, e.g. 0.5 or 1"},
    "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 900000},
    "env_vars": {"type": "object", "additionalProperties": {"type": "string"}},
    **{field: {"type": "string", "enum": list(values)} for field, values in CHOICES.items()},
    "max_concurrency": {"type": "integer", "minimum": 0, "description": "0: unlimited"},
    "rate_limit_per_min": {"type": "integer", "minimum": 0, "description": "0: unlimited"},
    "signature_version": {"type": "integer", "minimum": 1, "maximum": 2},
    "csp_sandbox": {"type": "boolean", "description": "false needs the admin permission"},
    "cors_origins": {"type": ["array", "null"], "items": {"type": "string"}},
    "input_schema": {
        "type": ["object", "null"],
        "description": "the JSON Schema of its channel tool's arguments (top-level type object); null: the "
        "request's parts (body, query, headers, method, path)",
    },
    "may_invoke": {
        "type": "array",
        "items": {"type": "string"},
        "description": 'function names it may call with orva.invoke, ["*"] for any, [] for none (the default); '
        "anything but [] needs the invoke permission too",
    },
    "capture_requests": {
        "type": "boolean",
        "description": "each execution keeps its request, credentials redacted, for replay (default true)",
    },
    "egress_allow": {
        "type": "array",
        "items": {"type": "string"},
        "description": "network_mode egress only to these addresses, CIDRs or hostnames; [] (default): anywhere "
        "the egress rules allow",
    },
}
assert set(SETTABLE) <= set(_SETTINGS), "a function setting is missing from the operator tools' schema"
_SETTINGS = {field: _SETTINGS[field] for field in SETTABLE}


def _settings(args: dict[str, Any], caller: Caller, daemon: Daemon) -> tuple[dict[str, Any], Any]:
    body = {k: v for k, v in args.items() if k in SETTABLE}
    if body.get("csp_sandbox") is False and not caller.can("admin"):
        raise Forbidden(
            "turning csp_sandbox off needs the admin permission: the function's pages would act as the "
            "operator who opens them",
            details={"required": "admin", "field": "csp_sandbox"},
            hint="use an API key with admin, or serve functions from their own origin (ORVA_FUNCTIONS_ORIGIN)",
        )
    if body.get("may_invoke") not in (None, []) and not caller.can("invoke"):
        raise Forbidden(
            "setting may_invoke needs the invoke permission too: the function could then call the functions "
            "it names, whatever their auth_mode",
            details={"required": "invoke", "field": "may_invoke"},
            hint="use an API key with both write and invoke, or pass may_invoke [] to take every grant away",
        )
    fallback = None
    if "runtime" in body:
        body["runtime"], fallback = daemon.runtimes.map_requested(body["runtime"])  # ORVA_RUNTIME_FALLBACK
    return body, fallback


async def list_functions(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fns = daemon.functions.list(
        status=string_arg(args, "status"), runtime=string_arg(args, "runtime"), text=string_arg(args, "q")
    )
    return {"functions": [function_json(f) for f in fns[: limit_arg(args)]], "total": len(fns)}


def _function(daemon: Daemon, args: dict[str, Any]) -> Function:
    return daemon.functions.resolve(string_arg(args, "function", required=True) or "")


async def get_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    return function_json(_function(daemon, args))


async def create_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    body, fallback = _settings(args, caller, daemon)
    fn = await daemon.functions.create(body)
    return {**function_json(fn), **({"runtime_fallback": fallback} if fallback else {})}


async def settled(daemon: Daemon, fn: Function, what: str) -> None:
    """Return once new invocations of ``fn`` see ``what`` (saved already), as the REST API does."""
    failure = await daemon.reconciler.settle(fn.id)
    if failure is not None:
        failure.message = (
            f"{what} saved, but new workers of {fn.name} did not start with it: {failure.message}"
        )
        failure.details = {**(failure.details or {}), "function_id": fn.id, "saved": True}
        raise failure


async def update_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = _function(daemon, args)
    body, fallback = _settings({k: v for k, v in args.items() if k != "function"}, caller, daemon)
    if "status" in args:
        body["status"] = args["status"]
    if not body:
        raise bad("function", "needs at least one setting to change", "pass the settings to change")
    if body != {"csp_sandbox": True}:  # sandboxing a trusted function again is always allowed
        admin_for_unsandboxed(caller, fn)
    fn = await daemon.functions.update(fn.id, body)
    await settled(daemon, fn, "the settings")
    return {**function_json(fn), **({"runtime_fallback": fallback} if fallback else {})}


async def delete_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = await daemon.functions.delete(string_arg(args, "function", required=True) or "")
    return {"id": fn.id, "name": fn.name, "deleted": True}


def _archive(files: dict[str, Any], limit: int) -> bytes:
    """A files map ({relative path: text}) as a .tar.gz the builder unpacks like an uploaded archive."""
    if not files or len(files) > MAX_FILES:
        raise bad("files", f"must name 1 to {MAX_FILES} files", 'pass files like {"handler.py": "..."}')
    out = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, content in sorted(files.items()):
            clean = posixpath.normpath(name)
            if (
                not isinstance(content, str)
                or name.startswith("/")
                or clean.startswith("..")
                or clean in (".", "")
                or "\x00" in name
            ):
                raise bad(
                    "files",
                    f"entry {name[:200]!r} must be a relative path inside the code with text content",
                    'pass files like {"handler.py": "...", "lib/util.py": "..."}',
                )
            data = content.encode()
            total += len(data)
            if total > limit:
                raise bad("files", f"total more than {limit} bytes", "deploy an archive with the orva CLI")
            info = tarfile.TarInfo(clean)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


async def _submit(daemon: Daemon, fn: Function, args: dict[str, Any]) -> Deployment:
    code, files = args.get("code"), args.get("files")
    if (code is None) == (files is None):
        raise bad("code", "or files is required (exactly one)", "pass the handler's code, or a files map")
    if files is not None:
        if "filename" in args or "dependencies" in args:
            raise bad(
                "files",
                "comes with its manifest and entrypoint inside: filename and dependencies go with code",
                "put requirements.txt or package.json in files, and set entrypoint with update_function",
            )
        return await daemon.builder.submit_archive(fn, _archive(files, daemon.settings.max_body_bytes))
    if not isinstance(code, str) or not code.strip():
        raise bad("code", "must be a non-empty string", "pass the handler's source code")
    language = daemon.runtimes.language_of(fn.runtime) or "python"
    filename = validate_entrypoint(args.get("filename", fn.entrypoint), language)
    return await daemon.builder.submit_inline(fn, code, filename, args.get("dependencies"))


async def _failed(daemon: Daemon, dep: Deployment) -> BuildFailedError:
    last = await daemon.function_store.last_log_seq(dep.id)
    tail = await daemon.function_store.logs(dep.id, max(0, last - LOG_TAIL_LINES), LOG_TAIL_LINES)
    return BuildFailedError(
        f"the build of deployment {dep.id} failed: {dep.error_message}",
        details={
            "deployment_id": dep.id,
            "function_id": dep.function_id,
            "log_tail": [x["line"] for x in tail],
        },
        hint=f"read the whole build log with get_build_logs (deployment_id {dep.id}), fix the code and "
        "deploy again; the previously active version keeps serving",
    )


async def deploy_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = _function(daemon, args)
    admin_for_unsandboxed(caller, fn)
    wait = args.get("wait", False)
    timeout = args.get("timeout_s", WAIT_DEFAULT_S)
    if not 1 <= timeout <= WAIT_MAX_S:
        raise bad("timeout_s", f"must be from 1 to {WAIT_MAX_S}", "pass a number of seconds")
    dep = await _submit(daemon, fn, args)
    if not wait:
        return {**deployment_json(dep), "deployment_id": dep.id}
    final = await daemon.builder.wait(dep.id, float(timeout))
    if final is None:
        current = await daemon.function_store.deployment(dep.id) or dep
        return {**deployment_json(current), "deployment_id": dep.id, "still_building": True}
    if final.status == DeploymentStatus.FAILED:
        raise await _failed(daemon, final)
    return {**deployment_json(final), "deployment_id": final.id}


async def _deployment(daemon: Daemon, args: dict[str, Any]) -> Deployment:
    wanted = string_arg(args, "deployment_id", required=True) or ""
    dep = await daemon.function_store.deployment(wanted)
    if dep is None:
        raise NotFound(f"no deployment {wanted}", hint="list a function's deployments with list_deployments")
    return dep


async def get_deployment(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    return deployment_json(await _deployment(daemon, args))


async def list_deployments(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = _function(daemon, args)
    deps = await daemon.function_store.deployments(fn.id, limit_arg(args), None, 0)
    return {
        "deployments": [deployment_json(d) for d in deps],
        "total": await daemon.function_store.count_deployments(fn.id),
        "active_deployment_id": fn.active_deployment_id,
    }


async def get_build_logs(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    dep = await _deployment(daemon, args)
    after = args.get("after_seq", 0)
    limit = args.get("limit", 1000)
    if after < 0 or not 1 <= limit <= 5000:
        raise bad("limit", "must be from 1 to 5000 (and after_seq 0 or more)", "page with after_seq")
    await daemon.batch.flush()  # a build that just ended has its last lines queued
    lines = await daemon.function_store.logs(dep.id, after, limit + 1)
    more = len(lines) > limit
    lines = lines[:limit]
    return {
        "deployment_id": dep.id,
        "status": str(dep.status),
        "lines": lines,
        "next_after_seq": lines[-1]["seq"] if more else None,
    }


async def rollback_function(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = _function(daemon, args)
    admin_for_unsandboxed(caller, fn)
    dep = await daemon.builder.rollback(fn, args.get("deployment_id"), args.get("code_hash"))
    return {**deployment_json(dep), "deployment_id": dep.id}


async def _built(daemon: Daemon, fn: Function, wanted: str, field: str) -> Deployment:
    dep = await resolve_deployment(daemon.function_store, fn, wanted, field)
    if dep is None or dep.function_id != fn.id:
        raise VersionNotFound(
            f"no deployment {wanted} of function {fn.name}",
            details={field: wanted},
            hint=f"list_deployments with function {fn.name} lists its deployments",
        )
    if dep.status != DeploymentStatus.SUCCEEDED or dep.code_hash is None:
        raise bad(field, f"names deployment {dep.id}, which is not a succeeded build", "pick a succeeded one")
    return dep


async def diff_deployments(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = _function(daemon, args)
    before = await _built(daemon, fn, string_arg(args, "from", required=True) or "", "from")
    after = await _built(daemon, fn, string_arg(args, "to", required=True) or "", "to")
    if before.id == after.id:
        raise bad("to", "is the same deployment as from", "pick two different deployments")
    roots = [daemon.builder.version_dir(fn.id, str(d.code_hash)) for d in (before, after)]
    built = await asyncio.to_thread(lambda: [is_built(root) for root in roots])
    if not all(built):
        raise VersionGCd(
            "a compared version was removed by the garbage collector",
            details={"available_hashes": await daemon.builder.available_hashes(fn.id)},
        )
    files = await asyncio.to_thread(compare, roots[0], roots[1], fn.entrypoint, fn.entrypoint)
    answer: dict[str, Any] = {"from": before.id, "to": after.id}
    if args.get("format", "json") == "unified":
        return {**answer, "diff": unified(files)}
    return {**answer, "files": files}


async def get_function_source(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = _function(daemon, args)
    dep = await daemon.function_store.deployment(fn.active_deployment_id) if fn.active_deployment_id else None
    if dep is None or dep.code_hash is None:
        raise NotFound(f"function {fn.name} has no active version", hint="deploy code with deploy_function")
    root = daemon.builder.version_dir(fn.id, dep.code_hash)
    files = await asyncio.to_thread(compare, root, root, fn.entrypoint, fn.entrypoint)
    manifest = next((f for f in files if f["kind"] == "manifest"), None)
    return {
        "function_id": fn.id,
        "deployment_id": dep.id,
        "code_hash": dep.code_hash,
        "filename": fn.entrypoint,
        "code": files[0]["after"],
        "dependencies": manifest["after"] if manifest else "",
    }


_DEPLOYMENT = text("a deployment id (or a unique prefix of one of the function's)")

TOOLS = (
    tool(
        "list_functions",
        "List the functions deployed on this Orva, newest first, optionally filtered by status, runtime "
        "or a text in the name or description.",
        obj(
            {
                "status": {"type": "string", "enum": [s.value for s in FunctionStatus]},
                "runtime": text("a runtime id or a language, e.g. python"),
                "q": text("text the name or description contains"),
                "limit": LIMIT,
            }
        ),
        "read",
        list_functions,
    ),
    tool(
        "get_function",
        "Get one function's settings (runtime, auth mode, limits, active deployment) by id or name.",
        obj({"function": FUNCTION}, ("function",)),
        "read",
        get_function,
        target="function",
    ),
    tool(
        "create_function",
        "Create a function (no code yet: status 'created'); then deploy code with deploy_function. "
        "Only name and runtime are required.",
        obj(_SETTINGS, ("name", "runtime")),
        "write",
        create_function,
        target="name",
    ),
    tool(
        "update_function",
        "Change a function's settings (only the ones passed; status active or inactive pauses it). "
        "Answers once the next invocation runs with them.",
        obj(
            {
                "function": FUNCTION,
                **_SETTINGS,
                "status": {"type": "string", "enum": ["active", "inactive"]},
            },
            ("function",),
        ),
        "write",
        update_function,
        target="function",
    ),
    tool(
        "delete_function",
        "Delete a function with its versions on disk, secrets, routes and pool. Cannot be undone.",
        obj({"function": FUNCTION}, ("function",)),
        "write",
        delete_function,
        destructive=True,
        target="function",
    ),
    tool(
        "deploy_function",
        "Deploy new code to a function: `code` (the handler file's source, with optional `filename` and "
        "`dependencies`: requirements.txt or package.json dependencies) or `files` (a map of relative "
        "path to text, manifest included). The build runs in the background: poll get_deployment until "
        "its status is succeeded or failed (read get_build_logs on failure), or pass wait: true. The "
        "active version keeps serving until the new one is built.",
        obj(
            {
                "function": FUNCTION,
                "code": text("the handler file's source code"),
                "filename": text("the file the code goes in (default: the function's entrypoint)"),
                "dependencies": text("requirements.txt lines (Python) or package.json dependencies (Node)"),
                "files": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "description": "relative path -> file content, instead of code",
                },
                "wait": {"type": "boolean", "description": "wait for the build to end (default false)"},
                "timeout_s": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": WAIT_MAX_S,
                    "description": f"with wait: how long (default {WAIT_DEFAULT_S})",
                },
            },
            ("function",),
        ),
        "write",
        deploy_function,
        target="function",
    ),
    tool(
        "get_deployment",
        "A deployment's status (queued, building, succeeded, failed, superseded), phase, version, code "
        "hash and error message.",
        obj({"deployment_id": _DEPLOYMENT}, ("deployment_id",)),
        "read",
        get_deployment,
        target="deployment_id",
    ),
    tool(
        "list_deployments",
        "A function's deployment history, newest first, and its active deployment.",
        obj({"function": FUNCTION, "limit": LIMIT}, ("function",)),
        "read",
        list_deployments,
        target="function",
    ),
    tool(
        "get_build_logs",
        "A deployment's build log lines in order (page with after_seq: next_after_seq of the last page).",
        obj(
            {
                "deployment_id": _DEPLOYMENT,
                "after_seq": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
                "limit": {"type": "integer", "minimum": 1, "maximum": 5000},
            },
            ("deployment_id",),
        ),
        "read",
        get_build_logs,
        target="deployment_id",
    ),
    tool(
        "rollback_function",
        "Switch a function back to an earlier built version (deployment_id or code_hash, exactly one); "
        "it serves at once. Undo by rolling back to the version that was active.",
        obj(
            {
                "function": FUNCTION,
                "deployment_id": _DEPLOYMENT,
                "code_hash": text("a code hash (or a unique prefix of one)"),
            },
            ("function",),
        ),
        "write",
        rollback_function,
        target="function",
    ),
    tool(
        "diff_deployments",
        "Compare the handler and manifest of two succeeded deployments of a function (format json: "
        "per file before and after; unified: a git-style diff).",
        obj(
            {
                "function": FUNCTION,
                "from": _DEPLOYMENT,
                "to": _DEPLOYMENT,
                "format": {"type": "string", "enum": ["json", "unified"]},
            },
            ("function", "from", "to"),
        ),
        "read",
        diff_deployments,
        target="function",
    ),
    tool(
        "get_function_source",
        "The active version's handler code and dependency manifest.",
        obj({"function": FUNCTION}, ("function",)),
        "read",
        get_function_source,
        target="function",
    ),
)
