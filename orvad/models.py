"""Domain nouns: a function, its deployments, and the closed sets of values their fields take.

No SQL and no web here: the store (``orvad/store/functions.py``) reads and writes these records, the
services change them, ``orvad/services/serialisers.py`` turns them into the JSON the API and the event bus
send. A leaf: it imports nothing from orvad.

The enums are ``StrEnum``s whose values are exactly the strings stored in SQLite and sent in JSON, so
a member compares equal to its string (``FunctionStatus.ACTIVE == "active"``) and serialises as it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypedDict

# what an API key, a session or an OAuth grant may do, in the order answers list them
PERMISSIONS = ("invoke", "read", "write", "admin")


class FunctionStatus(StrEnum):
    CREATED = "created"  # no deployment yet
    BUILDING = "building"  # its first build runs (no version to serve yet)
    ACTIVE = "active"  # serves its active deployment
    INACTIVE = "inactive"  # paused by its owner: /fn answers 503 until set active again
    ERROR = "error"  # its first build failed (nothing to serve)


SETTABLE_STATUSES = (FunctionStatus.ACTIVE, FunctionStatus.INACTIVE)  # what PUT may set


class DeploymentStatus(StrEnum):
    QUEUED = "queued"
    BUILDING = "building"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # built, but a newer deployment was active first: never activated


FINAL_STATUSES = (DeploymentStatus.SUCCEEDED, DeploymentStatus.FAILED, DeploymentStatus.SUPERSEDED)
UNFINISHED_STATUSES = (DeploymentStatus.QUEUED, DeploymentStatus.BUILDING)


class Phase(StrEnum):
    """A deployment's ``phase``: where its build is; it ends as its final status."""

    QUEUED = "queued"
    EXTRACTING = "extracting"
    INSTALLING = "installing"
    ACTIVATING = "activating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"


class DeploymentSource(StrEnum):
    INLINE = "inline"
    ARCHIVE = "archive"
    ROLLBACK = "rollback"


class NetworkMode(StrEnum):
    NONE = "none"  # no network in the jail
    EGRESS = "egress"  # outbound through orvad's egress network (orvad/host/egress.py)


class AuthMode(StrEnum):
    NONE = "none"  # anyone may invoke
    API_KEY = "api_key"  # an API key with the invoke permission
    SIGNED = "signed"  # an HMAC signature over the request (orvad/invoke/signatures.py)


class ConcurrencyPolicy(StrEnum):
    QUEUE = "queue"  # past max_concurrency, calls wait
    REJECT = "reject"  # past max_concurrency, calls get 429


class PhaseMark(TypedDict):
    """One entry of ``Deployment.phases``: a phase and when it began."""

    phase: Phase
    ts: str


@dataclass(frozen=True)
class Function:
    """A function's settings and state (one row of ``functions``); FunctionService is its only writer."""

    id: str
    name: str
    runtime: str
    entrypoint: str
    description: str
    memory_mb: int
    cpus: float
    timeout_ms: int
    env_vars: dict[str, str]
    network_mode: NetworkMode
    auth_mode: AuthMode
    max_concurrency: int
    concurrency_policy: ConcurrencyPolicy
    rate_limit_per_min: int
    status: FunctionStatus
    active_deployment_id: str | None
    created_at: str
    updated_at: str
    signature_version: int = (
        2  # auth_mode signed: 1 signs "<ts>.<body>", 2 "<ts>.<METHOD>.<path?query>.<body>"
    )
    csp_sandbox: bool = True  # replies on the dashboard's origin get Content-Security-Policy: sandbox
    cors_origins: list[str] | None = (
        None  # None: ORVA_CORS_ORIGINS applies; []: no CORS by orvad (orvad/http/cors.py)
    )
    input_schema: dict[str, Any] | None = (
        None  # its MCP tool's arguments (orvad/inputschema.py); None: the request's parts
    )
    may_invoke: tuple[str, ...] = ()  # the functions it may call with orva.invoke: names, or "*" (any)
    capture_requests: bool = True  # each execution keeps its request (orvad/invoke/capture.py) for replay
    egress_allow: tuple[
        str, ...
    ] = ()  # egress only to these CIDRs/hostnames (orvad/netrules.py); (): anywhere


@dataclass(frozen=True)
class Deployment:
    """One build or rollback of a function (one row of ``deployments``); the builder writes it."""

    id: str
    function_id: str
    version: int
    code_hash: str | None
    status: DeploymentStatus
    phase: Phase
    phases: list[PhaseMark]
    source: DeploymentSource
    parent_deployment_id: str | None
    error_message: str | None
    submitted_at: str
    started_at: str | None
    finished_at: str | None
    duration_ms: int | None

    def entering(self, phase: Phase, ts: str) -> Deployment:
        """This deployment moved on to ``phase`` at ``ts``."""
        return replace(self, phase=phase, phases=[*self.phases, PhaseMark(phase=phase, ts=ts)])

    def ended(
        self, status: DeploymentStatus, *, at: str, error: str | None, duration_ms: int | None
    ) -> Deployment:
        """This deployment ended as ``status`` at ``at`` (its last phase is its status)."""
        phase = Phase(status.value)
        return replace(
            self,
            status=status,
            phase=phase,
            phases=[*self.phases, PhaseMark(phase=phase, ts=at)],
            error_message=error,
            finished_at=at,
            duration_ms=duration_ms,
        )
