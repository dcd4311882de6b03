"""Functions: validation of every field, and the in-memory catalogue the invoke path reads.

The catalogue (by id and by name) is loaded once at start and updated by the same calls that
write the database, so resolving ``/fn/<id-or-name>`` never queries SQLite.

FunctionService is the one writer of function rows: the API changes settings through it, and the
builder asks it to record a build's start and end (``build_submitted``, ``build_ended``) instead of
writing rows itself. Each write holds the service's lock from reading the row to remembering the new
one, then publishes ``FunctionChanged`` / ``FunctionDeleted`` (orvad/services/changes.py) after the lock.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from typing import Any, Protocol

from orvad.clock import now_iso
from orvad.corsorigins import validate_field as validate_cors_origins
from orvad.envnames import REFUSAL, host_sensitive
from orvad.errors import Conflict, NotFound, ValidationError
from orvad.ids import uuid7
from orvad.inputschema import ready as input_schema_ready
from orvad.inputschema import validate_field as validate_input_schema
from orvad.jsonvalues import json_int
from orvad.models import (
    SETTABLE_STATUSES,
    AuthMode,
    ConcurrencyPolicy,
    Deployment,
    DeploymentStatus,
    Function,
    FunctionStatus,
    NetworkMode,
)
from orvad.netrules import parse_allow
from orvad.services.changes import Changes, FunctionChanged, FunctionCreated, FunctionDeleted
from orvad.store.functions import FunctionStore

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
NAME_RULE = "1..63 characters of a-z 0-9 - _, starting with a letter"
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_FAMILY_RE = re.compile(r"^[a-z]+")
ENTRYPOINT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,254}$")
RESERVED_ENV_PREFIX = "ORVA_"
MAX_ENV_VALUE = 32 * 1024
MAX_ENV_TOTAL = 64 * 1024
MAX_MAY_INVOKE = 100  # names in a function's may_invoke
ANY_FUNCTION = "*"  # may_invoke: ["*"] allows every function
EXTENSIONS = {"python": (".py",), "node": (".js", ".mjs", ".cjs")}

# Fields whose change must reach new workers (the pool replaces its workers in the background).
WORKER_FIELDS = (
    "env_vars",
    "memory_mb",
    "cpus",
    "timeout_ms",
    "network_mode",
    "entrypoint",
    "runtime",
    "egress_allow",
)
SETTABLE = (
    "name",
    "runtime",
    "entrypoint",
    "description",
    "memory_mb",
    "cpus",
    "timeout_ms",
    "env_vars",
    "network_mode",
    "auth_mode",
    "max_concurrency",
    "concurrency_policy",
    "rate_limit_per_min",
    "signature_version",
    "csp_sandbox",
    "cors_origins",
    "input_schema",
    "may_invoke",
    "capture_requests",
    "egress_allow",
)
_CHOICE_TYPES: dict[str, type[StrEnum]] = {
    "network_mode": NetworkMode,
    "auth_mode": AuthMode,
    "concurrency_policy": ConcurrencyPolicy,
}
CHOICES = {field: tuple(member.value for member in enum) for field, enum in _CHOICE_TYPES.items()}
# values the Go original's clients send, stored and answered as the value they stand for
CHOICE_ALIASES = {"auth_mode": {"platform_key": "api_key"}}


class RuntimeLookup(Protocol):
    """What functions and builds need from the runtime catalogue (orvad/services/runtimes.py)."""

    def language_of(self, runtime_id: str) -> str | None: ...
    def interpreter_of(self, runtime_id: str) -> str: ...
    def ids(self) -> list[str]: ...
    def list(self) -> list[dict[str, Any]]: ...


def _bad(field: str, message: str, hint: str | None = None, **details: Any) -> ValidationError:
    return ValidationError(f"{field} {message}", hint=hint, details={"field": field, **details})


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise _bad(
            "name",
            f"must be {NAME_RULE}",
            hint="for example hello-world or hello_world: the name is part of the URL /fn/NAME",
        )
    return value


def _description(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 1024:
        raise _bad("description", "must be a string of at most 1024 characters")
    return value


def _integer(field: str, lo: int, hi: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        number = json_int(value)
        if number is None or not lo <= number <= hi:
            raise _bad(field, f"must be an integer in {lo}..{hi}", min=lo, max=hi)
        return number

    return check


def _cpus(value: Any) -> float:
    cores = os.cpu_count() or 1
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.1 <= value <= cores:
        raise _bad("cpus", f"must be a number in 0.1..{cores} (the host's cores)", min=0.1, max=cores)
    return float(value)


def _boolean(field: str) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        if not isinstance(value, bool):
            raise _bad(field, "must be true or false")
        return value

    return check


def _choice(field: str, enum: type[StrEnum]) -> Callable[[Any], StrEnum]:
    """One of the enum's values (or an alias the Go original's clients send for one)."""
    allowed = CHOICES[field]

    def check(value: Any) -> StrEnum:
        if isinstance(value, str):
            value = CHOICE_ALIASES.get(field, {}).get(value, value)
        if value not in allowed:
            raise _bad(field, f"must be one of {', '.join(allowed)}", allowed=list(allowed))
        return enum(value)

    return check


def _env_vars(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _bad("env_vars", "must be an object of NAME: string value")
    total = 0
    for name, val in value.items():
        if not ENV_NAME_RE.fullmatch(name):
            raise _bad(
                "env_vars", f"has an invalid variable name {name!r} (letters, digits, _; not a digit first)"
            )
        if name.upper().startswith(RESERVED_ENV_PREFIX):
            raise _bad("env_vars", f"may not set {name!r}: the ORVA_ prefix is reserved")
        if host_sensitive(name):
            raise _bad("env_vars", f"may not set {name!r}: it {REFUSAL}")
        if not isinstance(val, str):
            raise _bad("env_vars", f"value of {name} must be a string")
        if "\x00" in val:
            raise _bad(
                "env_vars", f"value of {name} contains a NUL byte, which a process environment cannot carry"
            )
        if len(val.encode()) > MAX_ENV_VALUE:
            raise _bad("env_vars", f"value of {name} exceeds {MAX_ENV_VALUE} bytes")
        total += len(name) + len(val.encode())
    if total > MAX_ENV_TOTAL:
        raise _bad("env_vars", f"total size exceeds {MAX_ENV_TOTAL} bytes")
    return dict(value)


def _may_invoke(value: Any) -> tuple[str, ...]:
    """The functions this one may call with orva.invoke: names (resolved when the call is made, so one
    that does not exist yet is allowed), or ["*"] alone for any function; [] for none."""
    example = 'for example {"may_invoke": ["resize", "notify"]}, ["*"] for any function, or [] for none'
    if not isinstance(value, list) or len(value) > MAX_MAY_INVOKE:
        raise _bad("may_invoke", f"must be a list of at most {MAX_MAY_INVOKE} function names", hint=example)
    names: list[str] = []
    for index, name in enumerate(value):
        if name == ANY_FUNCTION:
            if len(value) != 1:
                raise _bad(
                    "may_invoke",
                    '"*" stands alone: it already allows every function',
                    hint=example,
                    index=index,
                )
        elif not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise _bad(
                "may_invoke",
                f"has {str(name)[:70]!r}, which is not a function name ({NAME_RULE})",
                hint=example + "; name functions, not ids: a name is what stays when code is redeployed",
                index=index,
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def may_invoke_allows(allowed: tuple[str, ...], target_name: str) -> bool:
    """Whether a function whose may_invoke is ``allowed`` may call the function named ``target_name`` now."""
    return ANY_FUNCTION in allowed or target_name in allowed


def runtime_family(runtime_id: str) -> str:
    """The language a runtime id names by its letters: python3.12 -> python, node22 -> node (also for a
    runtime no longer installed on this host)."""
    match = _FAMILY_RE.match(runtime_id)
    return match.group(0) if match else runtime_id


def validate_entrypoint(entrypoint: Any, language: str) -> str:
    if (
        not isinstance(entrypoint, str)
        or not ENTRYPOINT_RE.fullmatch(entrypoint)
        or ".." in entrypoint.split("/")
        or not entrypoint.endswith(EXTENSIONS[language])
    ):
        raise _bad(
            "entrypoint",
            f"must be a relative path inside the code ending in {' or '.join(EXTENSIONS[language])}",
            allowed_extensions=list(EXTENSIONS[language]),
        )
    return entrypoint


# Checks of the fields whose rules do not depend on the runtime, in the order their errors are reported.
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "description": _description,
    "memory_mb": _integer("memory_mb", 16, 4096),
    "timeout_ms": _integer("timeout_ms", 100, 900_000),
    "max_concurrency": _integer("max_concurrency", 0, 10_000),
    "rate_limit_per_min": _integer("rate_limit_per_min", 0, 1_000_000),
    "signature_version": _integer("signature_version", 1, 2),
    "cpus": _cpus,
    "env_vars": _env_vars,
    "csp_sandbox": _boolean("csp_sandbox"),
    "cors_origins": validate_cors_origins,  # null inherits ORVA_CORS_ORIGINS; [] turns orvad's CORS off (cors.py)
    "input_schema": validate_input_schema,  # null: the MCP tool takes the request's parts (orvad/inputschema.py)
    "may_invoke": _may_invoke,  # names or ["*"]: whom orva.invoke may call (orvad/invoke/f2f.py)
    "capture_requests": _boolean("capture_requests"),  # false: executions keep no request (no replay)
    "egress_allow": parse_allow,  # network_mode egress only to these (docs/NETWORK.md "Egress rules")
    **{field: _choice(field, enum) for field, enum in _CHOICE_TYPES.items()},
}


def _after_build(
    fn: Function | None, deployment_id: str, error: str | None, now: str
) -> tuple[DeploymentStatus, Function | None]:
    """How a build ends (succeeded, failed, superseded) and the function's record after it (None: unchanged)."""
    if error is not None:
        if fn is not None and fn.active_deployment_id is None and fn.status == FunctionStatus.BUILDING:
            return DeploymentStatus.FAILED, replace(fn, status=FunctionStatus.ERROR, updated_at=now)
        return DeploymentStatus.FAILED, None
    if fn is None:  # deleted meanwhile
        return DeploymentStatus.SUCCEEDED, None
    if (fn.active_deployment_id or "") >= deployment_id:
        return DeploymentStatus.SUPERSEDED, None
    status = FunctionStatus.INACTIVE if fn.status == FunctionStatus.INACTIVE else FunctionStatus.ACTIVE
    return DeploymentStatus.SUCCEEDED, replace(
        fn, active_deployment_id=deployment_id, status=status, updated_at=now
    )


class FunctionService:
    def __init__(self, store: FunctionStore, runtimes: RuntimeLookup, changes: Changes | None = None) -> None:
        self._store = store
        self._runtimes = runtimes
        self._changes = changes if changes is not None else Changes()  # FunctionChanged, FunctionDeleted
        self._by_id: dict[str, Function] = {}
        self._by_name: dict[str, str] = {}
        self._lock = asyncio.Lock()  # every write of a row: read, check (the name is free), write, remember

    async def load(self) -> None:
        for fn in await self._store.all_functions():
            self._remember(fn)

    # reads (memory only)
    def resolve(self, id_or_name: str) -> Function:
        fn = self._by_id.get(id_or_name) or self._by_id.get(self._by_name.get(id_or_name, ""))
        if fn is None:
            raise NotFound(
                f"no function {id_or_name!r}",
                hint="list functions with GET /api/v1/functions",
                details={"function": id_or_name},
            )
        return fn

    def get(self, function_id: str) -> Function | None:
        return self._by_id.get(function_id)

    def list(self, *, status: str | None, runtime: str | None, text: str | None = None) -> list[Function]:
        """Newest first. ``runtime``: an exact id, or a language (``python`` matches python3.12 too);
        ``text``: a case-insensitive substring of the name or the description."""
        fns = sorted(self._by_id.values(), key=lambda f: f.id, reverse=True)
        needle = text.casefold() if text else None
        return [
            f
            for f in fns
            if (status is None or f.status == status)
            and (runtime is None or runtime in (f.runtime, runtime_family(f.runtime)))
            and (needle is None or needle in f.name.casefold() or needle in f.description.casefold())
        ]

    # writes
    async def create(self, body: dict[str, Any]) -> Function:
        if body.get("input_schema") is not None:
            await input_schema_ready()
        for required in ("name", "runtime"):
            if required not in body:
                raise _bad(required, "is required")
        language = self._language(body["runtime"])
        now = now_iso()
        fields = {
            "name": body["name"],
            "runtime": body["runtime"],
            "description": "",
            "entrypoint": "handler.py" if language == "python" else "handler.js",
            "memory_mb": 128,
            "cpus": 1.0,
            "timeout_ms": 30000,
            "env_vars": {},
            "network_mode": NetworkMode.NONE,
            "auth_mode": AuthMode.NONE,
            "max_concurrency": 0,
            "concurrency_policy": ConcurrencyPolicy.QUEUE,
            "rate_limit_per_min": 0,
            "signature_version": 2,
            "csp_sandbox": True,
            "cors_origins": None,
            "input_schema": None,
            "may_invoke": (),
            "capture_requests": True,
            "egress_allow": (),
        }
        fields.update(self._validate({**fields, **body}, set(body)))
        fn = Function(
            id=uuid7(),
            status=FunctionStatus.CREATED,
            active_deployment_id=None,
            created_at=now,
            updated_at=now,
            **fields,
        )
        async with self._lock:
            self._check_name_free(fn.name)
            await self._store.insert_function(fn)
            self._remember(fn)
        await self._changes.publish(FunctionCreated(fn))
        return fn

    async def update(self, id_or_name: str, body: dict[str, Any]) -> Function:
        if body.get("input_schema") is not None:
            await input_schema_ready()
        async with self._lock:
            old = self.resolve(id_or_name)
            changes = self._validate({**self._fields(old), **body}, set(body) - {"status"})
            if "status" in body:
                changes["status"] = self._status_change(old, body["status"])
            if changes.get("name", old.name) != old.name:
                self._check_name_free(changes["name"])
            new = replace(old, **changes, updated_at=now_iso())
            await self._store.update_function(new)
            self._swap(old, new)
        await self._changes.publish(FunctionChanged(old, new))
        return new

    # the builder's writes (it asks; this service is the one writer of function rows)
    async def build_submitted(self, function_id: str) -> None:
        """A build was queued: a function with nothing to serve yet (created, or its first build failed)
        shows ``building`` until the build ends."""
        async with self._lock:
            old = self._by_id.get(function_id)
            if (
                old is None
                or old.active_deployment_id is not None
                or old.status not in (FunctionStatus.CREATED, FunctionStatus.ERROR)
            ):
                return
            new = replace(old, status=FunctionStatus.BUILDING, updated_at=now_iso())
            await self._store.update_function(new)
            self._swap(old, new)
        await self._changes.publish(FunctionChanged(old, new))

    async def build_ended(self, dep: Deployment, *, error: str | None, duration_ms: int | None) -> Deployment:
        """Write the end of a build (``error`` None: it built) and what it does to its function, in one
        transaction; return the deployment as written.

        A build activates its deployment unless a newer one is active already: then it ends
        ``superseded`` (the newest submitted deployment wins) and the function is left as it is. A paused
        (inactive) function stays paused, with the new version as the one it serves once set active. A
        failed build of a function with nothing to serve yet marks the function ``error``.
        """
        now = now_iso()
        async with self._lock:
            old = self._by_id.get(dep.function_id)
            status, new = _after_build(old, dep.id, error, now)
            end = dep.ended(status, at=now, error=error, duration_ms=duration_ms)
            await self._store.update_deployment(end, new)
            if old is not None and new is not None:
                self._swap(old, new)
        if old is not None and new is not None:
            await self._changes.publish(FunctionChanged(old, new))
        return end

    async def delete(self, id_or_name: str) -> Function:
        async with self._lock:
            fn = self.resolve(id_or_name)
            await self._store.delete_function(fn.id)
            self._forget(fn)
        await self._changes.publish(FunctionDeleted(fn))
        return fn

    # validation
    def _validate(self, merged: dict[str, Any], sent: set[str]) -> dict[str, Any]:
        """Check every sent field (and the entrypoint against the runtime); return the sent values."""
        out: dict[str, Any] = {}
        if "name" in sent:
            out["name"] = _name(merged["name"])
        language = self._language(merged["runtime"])
        if "runtime" in sent:
            out["runtime"] = merged["runtime"]
        if "entrypoint" in sent or "runtime" in sent:
            out["entrypoint"] = validate_entrypoint(merged["entrypoint"], language)
        for field, check in _CHECKS.items():
            if field in sent:
                out[field] = check(merged[field])
        return out

    def _language(self, runtime: Any) -> str:
        language = self._runtimes.language_of(runtime) if isinstance(runtime, str) else None
        if language is None:
            refusal = getattr(
                self._runtimes, "refusal", None
            )  # the catalogue's words (python313: what is installed)
            if refusal is not None:
                raise refusal(runtime)
            raise _bad(
                "runtime",
                f"must be one of {', '.join(self._runtimes.ids())} (GET /api/v1/runtimes)",
                allowed=self._runtimes.ids(),
            )
        return language

    @staticmethod
    def _status_change(fn: Function, status: Any) -> FunctionStatus:
        if not isinstance(status, str) or status not in SETTABLE_STATUSES:
            raise _bad(
                "status",
                "can only be set to active or inactive",
                allowed=[s.value for s in SETTABLE_STATUSES],
            )
        if status == FunctionStatus.ACTIVE and fn.active_deployment_id is None:
            raise Conflict(
                f"function {fn.name} has no successful deployment to activate",
                hint=f"deploy code with POST /api/v1/functions/{fn.name}/deploy-inline first",
            )
        return FunctionStatus(status)

    def _check_name_free(self, name: str) -> None:
        if name in self._by_name:
            raise Conflict(
                f"a function named {name!r} exists already",
                hint="pick another name",
                details={"field": "name"},
            )

    @staticmethod
    def _fields(fn: Function) -> dict[str, Any]:
        return {f: getattr(fn, f) for f in SETTABLE}

    def _swap(self, old: Function, new: Function) -> None:
        self._forget(old)
        self._remember(new)

    def _remember(self, fn: Function) -> None:
        self._by_id[fn.id] = fn
        self._by_name[fn.name] = fn.id

    def _forget(self, fn: Function) -> None:
        self._by_id.pop(fn.id, None)
        if self._by_name.get(fn.name) == fn.id:
            del self._by_name[fn.name]
