"""The one error tree of orvad.

Domain code raises an ``OrvaError`` subclass; ``app.py`` renders every one of them as the
envelope ``{"error": {"code", "message", "request_id", "hint"?, "retry_after_s"?, "details"?}}``
with ``Retry-After`` when ``retry_after_s`` is set. No framework imports here.

    OrvaError (500 INTERNAL)
    ├── BadRequest           400 BAD_REQUEST
    ├── ToolNameCollision    400 TOOL_NAME_COLLISION
    ├── InvalidJSON          400 INVALID_JSON
    ├── ValidationError      400 VALIDATION
    ├── Unauthorized         401 UNAUTHORIZED
    │   └── WebhookSignatureInvalid 401 WEBHOOK_SIGNATURE_INVALID
    ├── InvalidCredentials   401 INVALID_CREDENTIALS
    ├── Forbidden            403 FORBIDDEN
    │   └── InboundWebhookDisabled 403 INBOUND_WEBHOOK_DISABLED
    ├── NotFound             404 NOT_FOUND
    │   └── VersionNotFound  404 VERSION_NOT_FOUND
    ├── MethodNotAllowed     405 METHOD_NOT_ALLOWED
    ├── Conflict             409 CONFLICT
    │   ├── AlreadySetup     409 ALREADY_SETUP
    │   ├── NotActive        409 NOT_ACTIVE
    │   ├── NotDeployed      409 NOT_DEPLOYED
    │   ├── Ambiguous        409 AMBIGUOUS
    │   ├── KvVersionConflict 409 KV_VERSION_CONFLICT
    │   ├── KvNotInteger     409 KV_NOT_INTEGER
    │   ├── KvQuotaExceeded  409 KV_QUOTA_EXCEEDED
    │   ├── CronLimitReached 409 CRON_LIMIT_REACHED
    │   ├── VacuumRunning    409 VACUUM_RUNNING
    │   ├── WebhookReplay    409 WEBHOOK_REPLAY
    │   ├── RestoreRunning   409 RESTORE_RUNNING
    │   └── NotReplayable    409 NOT_REPLAYABLE
    ├── VersionGCd           410 VERSION_GCD
    ├── PayloadTooLarge      413 PAYLOAD_TOO_LARGE
    ├── BuildFailedError     422 BUILD_FAILED
    ├── BackupInvalid        422 BACKUP_INVALID
    ├── HeadersTooLarge      431 HEADERS_TOO_LARGE
    ├── RateLimited          429 RATE_LIMITED
    ├── FunctionBusy         429 FUNCTION_BUSY
    ├── FunctionError        500 FUNCTION_ERROR
    ├── WorkerCrashed        502 WORKER_CRASHED
    ├── ProviderError        502 PROVIDER_ERROR
    ├── InsufficientStorage  507 INSUFFICIENT_STORAGE
    ├── CallDepthExceeded    508 CALL_DEPTH_EXCEEDED
    ├── CallCycle            508 CALL_CYCLE
    ├── Unavailable          503 UNAVAILABLE (the family: catch it, raise a subclass)
    │   ├── Building             BUILDING
    │   ├── BuildQueueFull       BUILD_QUEUE_FULL
    │   ├── PoolAtCapacity       POOL_AT_CAPACITY
    │   ├── MemoryExhausted      MEMORY_EXHAUSTED
    │   ├── SandboxUnavailable   SANDBOX_UNAVAILABLE
    │   ├── EgressUnavailable    EGRESS_UNAVAILABLE
    │   ├── RuntimeUnavailable   RUNTIME_UNAVAILABLE
    │   ├── DashboardNotBuilt    DASHBOARD_NOT_BUILT
    │   └── ShuttingDown         SHUTTING_DOWN
    └── Timeout              504 TIMEOUT

A code is a class: raise sites never pass a code (tests/test_errors.py walks every module's raises to keep
it so). A new code is a new class here and a row in docs/ERRORS.md.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import Any


class OrvaError(Exception):
    code = "INTERNAL"
    status = 500
    default_hint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        retry_after_s: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.retry_after_s = retry_after_s
        self.details = details
        self.headers = headers or {}  # extra response headers, e.g. Allow on a 405

    def name_execution(self, execution_id: str) -> None:
        """The invoke path recorded this error as execution ``execution_id``: a class whose default hint points
        at the execution's logs names the real one here (see FunctionError)."""

    def envelope(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "request_id": request_id}
        if self.hint:
            body["hint"] = self.hint
        if self.retry_after_s is not None:
            body["retry_after_s"] = self.retry_after_s
        if self.details:
            body["details"] = self.details
        return {"error": body}


class BadRequest(OrvaError):
    """The request itself is malformed or ambiguous HTTP (framing, Host), before any field is read."""

    code, status = "BAD_REQUEST", 400


class ToolNameCollision(OrvaError):
    """Two functions of one channel snake_case to the same MCP tool name: details {tool, functions}."""

    code, status = "TOOL_NAME_COLLISION", 400
    default_hint = "leave one of the functions named in details.functions out of the channel, or rename it"


class InvalidJSON(OrvaError):
    code, status = "INVALID_JSON", 400
    default_hint = "send a valid JSON object with Content-Type: application/json"


class ValidationError(OrvaError):
    code, status = "VALIDATION", 400
    default_hint = "correct the field named in details.field and send the request again"


class Unauthorized(OrvaError):
    code, status = "UNAUTHORIZED", 401
    default_hint = "send an API key in X-Orva-API-Key (or Authorization: Bearer) or log in for a session"


class InvalidCredentials(OrvaError):
    code, status = "INVALID_CREDENTIALS", 401
    default_hint = "check the username and password"


class WebhookSignatureInvalid(Unauthorized):
    """POST /webhook/{id} whose signature is missing, malformed, wrong or outside the webhook's tolerance
    (docs/WEBHOOKS.md): the function did not run. details {format, header}."""

    code = "WEBHOOK_SIGNATURE_INVALID"
    default_hint = "sign the delivery as the webhook's format says (docs/WEBHOOKS.md) with its secret"


class Forbidden(OrvaError):
    code, status = "FORBIDDEN", 403


class InboundWebhookDisabled(Forbidden):
    """POST /webhook/{id} of a webhook an operator disabled: the function did not run."""

    code = "INBOUND_WEBHOOK_DISABLED"


class NotFound(OrvaError):
    code, status = "NOT_FOUND", 404


class VersionNotFound(NotFound):
    """Rollback or diff names a deployment id or code hash (or a prefix of one) the function never built."""

    code = "VERSION_NOT_FOUND"


class MethodNotAllowed(OrvaError):
    code, status = "METHOD_NOT_ALLOWED", 405


class Conflict(OrvaError):
    code, status = "CONFLICT", 409


class AlreadySetup(Conflict):
    code = "ALREADY_SETUP"
    default_hint = "an admin user exists already; log in with POST /api/v1/auth/login"


class NotActive(Conflict):
    """Raisers name the function in their hint (PUT /api/v1/functions/NAME ...)."""

    code = "NOT_ACTIVE"


class Ambiguous(Conflict):
    """A typed prefix (of a code hash or deployment id) names more than one version: details {field, candidates}."""

    code = "AMBIGUOUS"
    default_hint = "send more characters: enough to tell details.candidates apart"


class NotDeployed(Conflict):
    """An invocation of a function that never had code deployed (status ``created``); nothing is recorded."""

    code = "NOT_DEPLOYED"


class TurnRunning(Conflict):
    """The AI assistant's conversation has a turn running (or tool calls awaiting approval) already."""

    code = "TURN_RUNNING"


class StepLimit(Conflict):
    """The AI assistant's turn reached its tool-step cap (``max_tool_steps`` in /api/v1/ai/settings)."""

    code = "STEP_LIMIT"


class KvVersionConflict(Conflict):
    """A KV write conditional on a version (if_version) found another: details {key, version (0: absent)}."""

    code = "KV_VERSION_CONFLICT"


class KvNotInteger(Conflict):
    """A KV increment of a key holding something other than a 64-bit integer (or one it would overflow)."""

    code = "KV_NOT_INTEGER"


class KvQuotaExceeded(Conflict):
    """A KV write past the function's quota (ORVA_KV_MAX_KEYS / ORVA_KV_MAX_BYTES): details {keys, bytes,
    max_keys, max_bytes}."""

    code = "KV_QUOTA_EXCEEDED"


class CronLimitReached(Conflict):
    """A new schedule past the function's limit (ORVA_CRON_MAX_PER_FUNCTION): details {count, max}."""

    code = "CRON_LIMIT_REACHED"


class VacuumRunning(Conflict):
    """POST /api/v1/system/vacuum while a vacuum runs: details {started_at, mode}."""

    code = "VACUUM_RUNNING"


class SqliteOnly(Conflict):
    """An operation on the embedded SQLite file (vacuum, backup, restore) asked of an orvad on PostgreSQL
    (ORVA_DATABASE_URL): the database server's own tools do it (docs/CLUSTER.md)."""

    code = "SQLITE_ONLY"


class RestoreRunning(Conflict):
    """POST /api/v1/restore (or a backup) while a restore runs: one at a time (orvad/backup/service.py)."""

    code = "RESTORE_RUNNING"


class WebhookReplay(Conflict):
    """POST /webhook/{id} of a delivery orvad accepted already within the webhook's tolerance window (the same
    delivery id, signature or timestamp and signature): the function did not run again."""

    code = "WEBHOOK_REPLAY"


class NotReplayable(Conflict):
    """POST /api/v1/executions/{id}/replay of an execution whose request cannot run again as captured (a
    ``signed`` function: its signature covered a timestamp and is remembered): details {function, auth_mode}."""

    code = "NOT_REPLAYABLE"


class JobNotCancellable(Conflict):
    """DELETE /api/v1/jobs/{id} of a job that has ended (succeeded, dead or cancelled): details {job_id, status}."""

    code = "JOB_NOT_CANCELLABLE"


class JobNotRetryable(Conflict):
    """POST /api/v1/jobs/{id}/retry of a job that is pending, running or succeeded (or whose cancelled attempt
    still runs): details {job_id, status}."""

    code = "JOB_NOT_RETRYABLE"


class WebhookDisabled(Conflict):
    """POST /api/v1/webhooks/{id}/test, or a retry of a delivery, while the outbound webhook is disabled
    (nothing is sent to it): details {webhook_id}."""

    code = "WEBHOOK_DISABLED"


class VersionGCd(OrvaError):
    code, status = "VERSION_GCD", 410


class PayloadTooLarge(OrvaError):
    """A request body over ORVA_MAX_BODY_BYTES, or a request too large to hand to a worker in one frame."""

    code, status = "PAYLOAD_TOO_LARGE", 413


class BuildFailedError(OrvaError):
    """A deploy made with ?wait=true whose build failed (details: deployment_id, function_id, log_tail)."""

    code, status = "BUILD_FAILED", 422


class BackupInvalid(OrvaError):
    """POST /api/v1/restore with an archive orvad will not restore (orvad/backup/archive.py says what is
    checked); nothing was changed. The message names the entry and the reason."""

    code, status = "BACKUP_INVALID", 422
    default_hint = "upload an archive made by GET /api/v1/backup (or orva backup download), unchanged"


class HeadersTooLarge(OrvaError):
    code, status = "HEADERS_TOO_LARGE", 431
    default_hint = (
        "send a shorter URL and fewer or smaller headers (cookies included): at most 16 KiB together"
    )


class RateLimited(OrvaError):
    code, status = "RATE_LIMITED", 429


class FunctionBusy(OrvaError):
    code, status = "FUNCTION_BUSY", 429


class FunctionError(OrvaError):
    code, status = "FUNCTION_ERROR", 500
    default_hint = "the handler raised; its traceback is in the execution's logs"

    def name_execution(self, execution_id: str) -> None:
        if self.hint == self.default_hint:
            self.hint = (
                f"the handler raised; read its traceback at GET /api/v1/executions/{execution_id}/logs"
            )


class FirewallApplyFailed(OrvaError):
    """nftables refused an egress-rule change (docs/NETWORK.md, "Egress rules"): nothing was changed."""

    code, status = "FIREWALL_APPLY_FAILED", 500


class WorkerCrashed(OrvaError):
    code, status = "WORKER_CRASHED", 502
    default_hint = (
        "orvad replaced the worker; the reason is in details.reason, and what it printed in the "
        "execution's logs; retry if the request is idempotent"
    )

    def name_execution(self, execution_id: str) -> None:
        if self.hint == self.default_hint:
            self.hint = (
                "orvad replaced the worker; the reason is in details.reason, and what it printed in the "
                f"execution's logs (GET /api/v1/executions/{execution_id}/logs); retry if the request is "
                "idempotent"
            )


class ProviderError(OrvaError):
    """An AI provider of the assistant failed: an HTTP error, no connection, an error or a break mid-stream.
    Raisers name the provider's label in the message and hint (details: provider, provider_id, status?)."""

    code, status = "PROVIDER_ERROR", 502


class InsufficientStorage(OrvaError):
    """A write hit a full disk (ENOSPC, EDQUOT, or SQLite's "database or disk is full")."""

    code, status = "INSUFFICIENT_STORAGE", 507
    default_hint = (
        "the disk holding orvad's data dir is full: free space there (GET /api/v1/system/health "
        "shows the disk check) and send the request again; orvad recovers by itself"
    )


_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_SQLITE_FULL = 13  # the primary result code; extended codes carry it in their low byte


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is a write that found no space: ENOSPC or EDQUOT from the
    kernel, SQLITE_FULL from SQLite, or shutil.copytree's collected errors naming either."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, InsufficientStorage):
            return True
        # sqlite3.Error, known by its attribute: SQLite belongs to the store layer, not to this leaf
        if (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF == _SQLITE_FULL:
            return True
        if isinstance(exc, shutil.Error):
            text = str(exc)
            if any(os.strerror(code) in text for code in _DISK_FULL_ERRNOS):
                return True
        elif isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class Unavailable(OrvaError):
    """The 503 family: catch this one; raise one of its subclasses (each its own code)."""

    code, status = "UNAVAILABLE", 503


class Building(Unavailable):
    """The function has no built version yet."""

    code = "BUILDING"


class BuildQueueFull(Unavailable):
    code = "BUILD_QUEUE_FULL"


class PoolAtCapacity(Unavailable):
    """Every worker is busy and the pool is at max_warm (details: current, limit)."""

    code = "POOL_AT_CAPACITY"


class MemoryExhausted(Unavailable):
    """Starting a worker would exceed the host memory gate."""

    code = "MEMORY_EXHAUSTED"


class SandboxUnavailable(Unavailable):
    """This host cannot start sandboxed workers (nsjail or the kernel features it needs are missing)."""

    code = "SANDBOX_UNAVAILABLE"
    default_hint = "see the sandbox check in GET /api/v1/system/health"


class EgressUnavailable(Unavailable):
    """A function with network_mode egress, on a host where egress networking is not set up."""

    code = "EGRESS_UNAVAILABLE"
    default_hint = "see the egress check in GET /api/v1/system/health and docs/NETWORK.md"


class RuntimeUnavailable(Unavailable):
    """The function's runtime is not installed on this host."""

    code = "RUNTIME_UNAVAILABLE"


class VersionUnavailable(Unavailable):
    """A cluster node cannot get a version built on another node (no shared blob, or one refused)."""

    code = "VERSION_UNAVAILABLE"
    default_hint = "deploy the function again; docs/CLUSTER.md (Shared versions) says why a node lacks one"


class DashboardNotBuilt(Unavailable):
    code = "DASHBOARD_NOT_BUILT"


class ShuttingDown(Unavailable):
    """orvad got SIGTERM/SIGINT: a request that arrived during the drain, or one still running when
    the grace ended (recorded as ``shutting_down``)."""

    code = "SHUTTING_DOWN"
    default_hint = (
        "orvad is stopping; retry after Retry-After seconds (a restarted orvad, or another instance)"
    )


class Restoring(Unavailable):
    """A request that waited for a restore's reload (POST /api/v1/restore) longer than orvad holds one."""

    code = "RESTORING"
    default_hint = "a backup is being restored; retry after Retry-After seconds (GET /health/ready answers 200 when it is done)"


class TurnInterrupted(Unavailable):
    """An AI assistant turn that was running when orvad stopped (marked at the next start)."""

    code = "TURN_INTERRUPTED"
    default_hint = "send the message again, or regenerate the reply"


class Timeout(OrvaError):
    code, status = "TIMEOUT", 504


class CallDepthExceeded(OrvaError):
    """A function-to-function call from a function already at the deepest chain (orvad/invoke/f2f.py)."""

    code, status = "CALL_DEPTH_EXCEEDED", 508


class CallCycle(OrvaError):
    """A function-to-function call back to a function already waiting on the chain (orvad/invoke/f2f.py)."""

    code, status = "CALL_CYCLE", 508
