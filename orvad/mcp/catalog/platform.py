"""What functions keep and queue beside their code (issue 23): a function's KV keys, its background jobs,
its schedules, and the span tree of a trace. The same services, checks and shapes as the REST API's kv,
jobs, cron and traces modules; a value goes in and comes back as the REST API's JSON (bytes as
``{"$bytes": base64}``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orvad.errors import Forbidden, KvVersionConflict, NotFound
from orvad.kv.service import (
    LIST_DEFAULT,
    check_key,
    check_ttl,
    check_version,
    encode_value,
    meta_json,
    wire_value,
)
from orvad.mcp.catalog.base import FUNCTION, LIMIT, obj, text, tool
from orvad.mcp.results import Caller, string_arg
from orvad.store.jobs import STATUSES as JOB_STATUSES
from orvad.store.kv import UNCONDITIONAL, VersionMismatch

if TYPE_CHECKING:
    from orvad.daemon import Daemon
    from orvad.models import Function


def _function(daemon: Daemon, args: dict[str, Any]) -> Function:
    return daemon.functions.resolve(string_arg(args, "function", required=True) or "")


def _missing_key(fn: Function, key: str) -> NotFound:
    return NotFound(
        f"function {fn.name} has no KV key {key!r} (or it expired)",
        hint="list its keys with the kv_list tool",
        details={"key": key},
    )


async def kv_list(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = _function(daemon, args)
    prefix = check_key(args.get("prefix", ""), "prefix", empty=True)
    cursor = string_arg(args, "cursor")
    if cursor is not None:
        check_key(cursor, "cursor")
    rows, next_cursor = await daemon.kv.list_keys(fn.id, prefix, cursor, args.get("limit", LIST_DEFAULT))
    return {
        "function_id": fn.id,
        "keys": [meta_json(m) for m in rows],
        "next_cursor": next_cursor,
        "usage": await daemon.kv.usage(fn.id),
    }


async def kv_get(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = _function(daemon, args)
    key = check_key(args.get("key"))
    entry = await daemon.kv.get(fn.id, key)
    if entry is None:
        raise _missing_key(fn, key)
    return {"function_id": fn.id, **meta_json(entry), "value": wire_value(entry.kind, entry.value)}


async def kv_put(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = _function(daemon, args)
    key = check_key(args.get("key"))
    kind, raw = encode_value(args.get("value"))
    ttl = check_ttl(args.get("ttl_s"))
    expect = check_version(args["if_version"], "if_version") if "if_version" in args else UNCONDITIONAL
    try:
        written = await daemon.kv.put(fn.id, fn.name, key, kind, raw, ttl, expect)
    except VersionMismatch as exc:
        raise KvVersionConflict(
            f"KV key {key!r} of {fn.name} is at version {exc.current}, not {expect}",
            hint="read it again with the kv_get tool and pass if_version with its version",
            details={"key": key, "version": exc.current, "expected": expect},
        ) from None
    return {"function_id": fn.id, "key": key, "type": kind, "size": len(raw), "version": written.version}


async def kv_delete(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = _function(daemon, args)
    key = check_key(args.get("key"))
    if not await daemon.kv.delete_many(fn.id, [key]):
        raise _missing_key(fn, key)
    return {"function_id": fn.id, "key": key, "deleted": True}


async def enqueue_job(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    if not caller.can("write"):  # as on POST /api/v1/jobs: write and invoke
        raise Forbidden(
            "enqueueing a job needs the write permission as well as invoke",
            details={"required": "write"},
            hint="use a key with both write and invoke",
        )
    fn = _function(daemon, args)
    if fn.auth_mode == "signed":
        raise Forbidden(
            f"function {fn.name} is signed: a job for it must come from a signed request",
            details={"field": "function", "auth_mode": "signed"},
            hint=f"send the signed request to /fn/{fn.name} with X-Orva-Invocation-Type: Event",
        )
    job = await daemon.jobs.enqueue(
        fn.id,
        args.get("payload"),
        max_attempts=args.get("max_attempts", 3),
        idempotency_key=args.get("idempotency_key"),
        source="mcp",
    )
    return job.to_json() | {"created": job.created}


async def list_jobs(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    wanted = string_arg(args, "function")
    function_id = daemon.functions.resolve(wanted).id if wanted else None
    jobs = await daemon.jobs.list_jobs(
        function_id=function_id, status=string_arg(args, "status"), cursor=None, limit=args.get("limit", 50)
    )
    return {"jobs": [job.to_json() for job in jobs]}


async def get_job(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    job_id = string_arg(args, "job_id", required=True) or ""
    job = await daemon.jobs.get(job_id)
    return job.to_json() | {"attempts": await daemon.jobs.attempts(job_id)}


async def list_schedules(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    fn = _function(daemon, args)
    return {"function_id": fn.id, "schedules": await daemon.cron.to_json(await daemon.cron.list_for(fn.id))}


async def get_trace(daemon: Daemon, caller: Caller, args: dict[str, Any]) -> Any:
    return await daemon.traces.tree(string_arg(args, "trace_id", required=True) or "")


_KEY = text("the key (up to 512 bytes of UTF-8)")
_JOB = text("a job id (enqueue_job or list_jobs)")

TOOLS = (
    tool(
        "kv_list",
        "List a function's live KV keys in byte order (metadata, not values), from `prefix`, after `cursor` "
        "(the next_cursor of the last page), with its usage against the quota.",
        obj(
            {
                "function": FUNCTION,
                "prefix": text("only keys starting with this"),
                "cursor": _KEY,
                "limit": LIMIT,
            },
            ("function",),
        ),
        "read",
        kv_list,
        target="function",
    ),
    tool(
        "kv_get",
        'One KV key of a function: its value (JSON, or bytes as {"$bytes": base64}), type, size, version, expiry.',
        obj({"function": FUNCTION, "key": _KEY}, ("function", "key")),
        "read",
        kv_get,
        target="function",
    ),
    tool(
        "kv_put",
        'Create or replace a KV key of a function (`value`: any JSON, bytes as {"$bytes": base64}; `ttl_s`; '
        "`if_version`: only when the key is at that version, 0 for absent).",
        obj(
            {
                "function": FUNCTION,
                "key": _KEY,
                "value": {"description": 'the value: any JSON, or {"$bytes": "<base64>"}'},
                "ttl_s": {"type": "number", "minimum": 0, "description": "seconds until the key expires"},
                "if_version": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "compare-and-set on this version",
                },
            },
            ("function", "key", "value"),
        ),
        "write",
        kv_put,
        target="function",
    ),
    tool(
        "kv_delete",
        "Delete a KV key of a function.",
        obj({"function": FUNCTION, "key": _KEY}, ("function", "key")),
        "write",
        kv_delete,
        destructive=True,
        target="function",
    ),
    tool(
        "enqueue_job",
        "Queue a background invocation of a function (its handler gets `payload` as the JSON body of POST /); "
        "retried with back-off up to max_attempts, then dead. Needs invoke and write.",
        obj(
            {
                "function": FUNCTION,
                "payload": {"description": "any JSON"},
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 100},
                "idempotency_key": text("a second job with this key within the window is not created"),
            },
            ("function",),
        ),
        "invoke",
        enqueue_job,
        target="function",
    ),
    tool(
        "list_jobs",
        "Background jobs, newest first, optionally of one function and with one status (dead: the dead letters).",
        obj({"function": FUNCTION, "status": {"type": "string", "enum": list(JOB_STATUSES)}, "limit": LIMIT}),
        "read",
        list_jobs,
        target="function",
    ),
    tool(
        "get_job",
        "One background job with its attempts (each an execution).",
        obj({"job_id": _JOB}, ("job_id",)),
        "read",
        get_job,
        target="job_id",
    ),
    tool(
        "list_schedules",
        "A function's cron schedules: expression, timezone, enabled, next and last run.",
        obj({"function": FUNCTION}, ("function",)),
        "read",
        list_schedules,
        target="function",
    ),
    tool(
        "get_trace",
        "A trace's span tree with timings: each execution (invocations, function-to-function calls, jobs) and "
        "the spans the handlers added.",
        obj(
            {"trace_id": text("a trace id (32 hex; an execution's trace_id or the X-Trace-Id header)")},
            ("trace_id",),
        ),
        "read",
        get_trace,
        target="trace_id",
    ),
)
