"""Inbound webhooks (issue 24; docs/WEBHOOKS.md): a function triggered by GitHub, Stripe, Slack or any
HMAC-signing sender at ``POST /webhook/{id}``, with no Orva key.

``InboundWebhooks`` keeps every webhook in memory (its secret opened) and writes through to
``orvad/store/inbound_webhooks.py``; the public trigger touches no disk. A delivery is refused before the
function runs, in this order: an unknown id (404, the same answer as any unknown path), a disabled
webhook (403), a body over ORVA_MAX_BODY_BYTES (413, from ``BodyLimit``), a signature that is missing,
malformed, wrong or stale (401, ``inbound_formats.py``), a function not deployed or not active (checked
after the body has arrived, with the webhook and function looked up again; before the replay memory, so the
sender's retry of such a delivery is not a replay), a delivery seen before within the tolerance window (409:
the invoke path's replay memory, ``SignatureChecker.claim``, keyed by the MAC's bytes, persisted through the
batched writer and loaded back at start). A verified delivery runs through ``Invoker.serve`` (trigger
``webhook``, the webhook's grant, the sender's headers and raw body), or in ``async`` mode becomes a
job (trigger ``webhook``) answered 202 at once.

The secret is sealed with AES-256-GCM under orvad's master key (the one function secrets and AI provider
keys use) with associated data of its own, ``orva-inbound-webhook\\0<id>``; it is shown once, in the
create and rotate answers.
"""

from __future__ import annotations

import json
import logging
import re
import secrets as pysecrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from orvad import sealing
from orvad.clock import now_iso
from orvad.errors import (
    Building,
    Conflict,
    EgressUnavailable,
    FunctionBusy,
    InboundWebhookDisabled,
    MethodNotAllowed,
    NotActive,
    NotDeployed,
    NotFound,
    PoolAtCapacity,
    RateLimited,
    RuntimeUnavailable,
    SandboxUnavailable,
    ValidationError,
    WebhookReplay,
    WebhookSignatureInvalid,
)
from orvad.invoke.admission import gate, refuse_undeployed
from orvad.invoke.connection import read_body
from orvad.invoke.dispatch import Invoker
from orvad.invoke.request import Grant, InvokeRequest
from orvad.invoke.signatures import SignatureChecker
from orvad.models import Function
from orvad.sealing import Unsealable
from orvad.services.changes import Change, FunctionDeleted
from orvad.services.functions import FunctionService
from orvad.store.inbound_webhooks import InboundWebhookRow, InboundWebhookStore, NameTaken
from orvad.webhooks import inbound_formats as formats

log = logging.getLogger(__name__)

# the ASGI types (what starlette.types spells; only the web layer imports Starlette)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PATH_PREFIX = "/webhook/"
_AAD_PREFIX = b"orva-inbound-webhook\x00"
_ID = re.compile(r"iwh_[A-Za-z0-9_-]{22}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
MODES = ("sync", "async")
SECRET_MIN, SECRET_MAX = 16, 256
NAME_MAX, PREFIX_MAX = 100, 50
FIELDS = ("name", "format", "header", "prefix", "tolerance_s", "mode", "enabled", "secret")
# refusals raised before a handler runs: a delivery turned away so is forgotten by the replay memory (the
# sender's retry of it runs)
_NOT_RUN = (
    RateLimited,
    FunctionBusy,
    PoolAtCapacity,
    SandboxUnavailable,
    EgressUnavailable,
    RuntimeUnavailable,
    Building,
    NotActive,
    NotDeployed,
)
# never handed to the function: Orva's own headers (a sender may not fake X-Orva-Trigger or a job id)
_DROPPED_PREFIX = b"x-orva-"


def _aad(webhook_id: str) -> bytes:
    return _AAD_PREFIX + webhook_id.encode()


def seal_secret(master: bytes, webhook_id: str, secret: str) -> tuple[bytes, bytes]:
    return sealing.seal(master, secret, _aad(webhook_id))


def open_secret(master: bytes, webhook_id: str, nonce: bytes, sealed: bytes) -> str:
    return sealing.unseal(master, nonce, sealed, _aad(webhook_id))


def new_secret() -> str:
    return "whsec_" + pysecrets.token_urlsafe(32)


@dataclass(frozen=True)
class Hook:
    """A webhook as the public trigger needs it: its row and its opened secret."""

    row: InboundWebhookRow
    secret: bytes

    @property
    def settings(self) -> formats.Settings:
        return formats.Settings(self.row.header, self.row.prefix, self.row.tolerance_s)


def _unknown(path: str) -> NotFound:
    # the answer of any unknown path: nothing tells an id that never existed from a deleted one
    return NotFound(f"no such endpoint: {path}", hint="check the webhook's URL with its owner")


class InboundWebhooks:
    def __init__(
        self,
        store: InboundWebhookStore,
        functions: FunctionService,
        signatures: SignatureChecker,
        invoker: Invoker,
        *,
        enqueue: Callable[[InvokeRequest, str], Awaitable[dict[str, Any]]],
        base_url: str,
        audit: Callable[..., None] | None = None,
    ) -> None:
        self._store, self._functions, self._signatures, self._invoker = store, functions, signatures, invoker
        self._enqueue = enqueue
        self._audit = audit  # AuditTrail.record_webhook: each verified delivery is an activity row
        self.base_url = base_url.rstrip("/")
        self._hooks: dict[str, Hook] = {}
        self._master: bytes | None = None

    # lifecycle
    def unlock(self, master: bytes) -> None:
        self._master = master

    def _key(self) -> bytes:
        if self._master is None:
            raise RuntimeError("inbound webhooks are locked (the master key is read at start)")
        return self._master

    async def load(self) -> None:
        """Every webhook into memory; one whose secret does not open (another master key) stays out, logged."""
        hooks = {}
        rows = await self._store.all()
        if rows:
            await sealing.ready()
        for row in rows:
            try:
                secret = open_secret(self._key(), row.id, row.secret_nonce, row.secret_sealed)
            except Unsealable:
                log.error(
                    "inbound webhook secret does not open with the master key", extra={"webhook": row.id}
                )
                continue
            hooks[row.id] = Hook(row, secret.encode())
        self._hooks = hooks

    async def apply(self, change: Change) -> None:
        """A deleted function's webhooks go (their rows went with the function's: ON DELETE CASCADE)."""
        if isinstance(change, FunctionDeleted):
            for wid in [w for w, h in self._hooks.items() if h.row.function_id == change.fn.id]:
                del self._hooks[wid]

    async def reseal(self, new_master: bytes) -> int:
        """Every secret sealed again under ``new_master`` in one transaction."""
        count = await reseal(self._store, self._key(), new_master)
        self._master = new_master
        return count

    # what the API shows
    def url(self, webhook_id: str) -> str:
        return f"{self.base_url}{PATH_PREFIX}{webhook_id}"

    def to_json(self, row: InboundWebhookRow) -> dict[str, Any]:
        """A webhook as every answer shows it: never its secret."""
        return {
            "id": row.id,
            "function_id": row.function_id,
            "name": row.name,
            "format": row.format,
            "header": row.header if row.format in formats.HMAC_FORMATS else None,
            "prefix": row.prefix,
            "tolerance_s": row.tolerance_s,
            "mode": row.mode,
            "enabled": row.enabled,
            "url": self.url(row.id),
            "signature_headers": list(formats.FORMATS[row.format].headers(Hook(row, b"").settings)),
            "deliveries": row.deliveries,
            "last_delivery_at": row.last_delivery_at,
            "last_status": row.last_status,
            "last_execution_id": row.last_execution_id,
            "last_job_id": row.last_job_id,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "rotated_at": row.rotated_at,
        }

    async def list_for(self, fn: Function) -> list[dict[str, Any]]:
        rows = [r for r in await self._store.all() if r.function_id == fn.id]
        return [self.to_json(r) for r in sorted(rows, key=lambda r: (r.created_at, r.id))]

    async def _row(self, fn: Function, webhook_id: str) -> InboundWebhookRow:
        row = await self._store.get(webhook_id) if webhook_id in self._hooks else None
        if row is None or row.function_id != fn.id:
            raise NotFound(
                f"function {fn.name} has no inbound webhook {webhook_id!r}",
                hint=f"list them with GET /api/v1/functions/{fn.name}/inbound-webhooks",
                details={"function": fn.name, "webhook_id": webhook_id},
            )
        return row

    async def get(self, fn: Function, webhook_id: str) -> dict[str, Any]:
        return self.to_json(await self._row(fn, webhook_id))

    # changes
    async def create(self, fn: Function, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """(the webhook, its secret: shown this once)."""
        fields = _check(body, creating=True)
        fmt = fields["format"]
        secret = fields.get("secret") or new_secret()
        webhook_id = "iwh_" + pysecrets.token_urlsafe(16)
        nonce, sealed = seal_secret(self._key(), webhook_id, secret)
        stamp = now_iso()
        row = InboundWebhookRow(
            id=webhook_id,
            function_id=fn.id,
            name=fields["name"],
            format=fmt,
            header=fields.get("header") if fmt in formats.HMAC_FORMATS else None,
            prefix=fields.get("prefix") or "",
            tolerance_s=fields.get("tolerance_s") or formats.DEFAULT_TOLERANCE_S,
            mode=fields.get("mode") or "sync",
            enabled=fields.get("enabled", True) is not False,
            secret_nonce=nonce,
            secret_sealed=sealed,
            deliveries=0,
            last_delivery_at=None,
            last_status=None,
            last_execution_id=None,
            last_job_id=None,
            created_at=stamp,
            updated_at=stamp,
            rotated_at=None,
        )
        await self._save(fn, row, secret)
        return self.to_json(row), secret

    async def update(self, fn: Function, webhook_id: str, body: dict[str, Any]) -> dict[str, Any]:
        row = await self._row(fn, webhook_id)
        fields = _check(body, creating=False)
        fmt = fields.get("format", row.format)
        if fmt not in formats.HMAC_FORMATS and (fields.get("header") or fields.get("prefix")):
            raise ValidationError(
                f"header and prefix are settings of the hmac formats, not of {fmt}",
                hint="leave header and prefix out, or set format to hmac_sha256_hex or hmac_sha256_base64",
                details={"field": "header" if fields.get("header") else "prefix"},
            )
        hmac_kind = fmt in formats.HMAC_FORMATS
        secret = fields.get("secret")
        nonce, sealed = (
            seal_secret(self._key(), row.id, secret) if secret else (row.secret_nonce, row.secret_sealed)
        )
        new = replace(
            row,
            name=fields.get("name", row.name),
            format=fmt,
            header=(fields["header"] if "header" in fields else row.header) if hmac_kind else None,
            prefix=(fields["prefix"] if fields.get("prefix") is not None else row.prefix)
            if hmac_kind
            else "",
            tolerance_s=fields.get("tolerance_s") or row.tolerance_s,
            mode=fields.get("mode") or row.mode,
            enabled=row.enabled if fields.get("enabled") is None else bool(fields["enabled"]),
            secret_nonce=nonce,
            secret_sealed=sealed,
            updated_at=now_iso(),
            rotated_at=now_iso() if secret else row.rotated_at,
        )
        opened = secret or self._hooks[row.id].secret.decode()
        await self._save(fn, new, opened)
        return self.to_json(new)

    async def rotate(self, fn: Function, webhook_id: str) -> tuple[dict[str, Any], str]:
        """A new secret, generated by orvad: the old one stops working at once."""
        row = await self._row(fn, webhook_id)
        secret = new_secret()
        nonce, sealed = seal_secret(self._key(), row.id, secret)
        stamp = now_iso()
        new = replace(row, secret_nonce=nonce, secret_sealed=sealed, updated_at=stamp, rotated_at=stamp)
        await self._save(fn, new, secret)
        return self.to_json(new), secret

    async def delete(self, fn: Function, webhook_id: str) -> dict[str, Any]:
        row = await self._row(fn, webhook_id)
        self._hooks.pop(row.id, None)  # refused from now on, before the row goes
        await self._store.delete(row.id)
        return {"id": row.id, "name": row.name, "function_id": fn.id, "deleted": True}

    async def _save(self, fn: Function, row: InboundWebhookRow, secret: str) -> None:
        try:
            await self._store.save(row)
        except NameTaken:
            raise Conflict(
                f"function {fn.name} has an inbound webhook named {row.name!r} already",
                hint="choose another name, or find that one with GET "
                f"/api/v1/functions/{fn.name}/inbound-webhooks and change it with PUT",
                details={"field": "name", "name": row.name},
            ) from None
        self._hooks[row.id] = Hook(row, secret.encode())

    # the public trigger
    async def endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI app for ``/webhook/{id}`` (behind RequestContext and BodyLimit only, like ``/fn/``)."""
        path: str = scope["path"]
        webhook_id = path[len(PATH_PREFIX) :].rstrip("/")
        hook = self._hooks.get(webhook_id) if _ID.fullmatch(webhook_id) else None
        fn = self._functions.get(hook.row.function_id) if hook is not None else None
        if hook is None or fn is None:
            raise _unknown(path)
        if scope["method"] != "POST":
            raise MethodNotAllowed(
                f"{scope['method']} is not allowed on {PATH_PREFIX}{{id}}",
                hint="senders deliver with POST",
                headers={"Allow": "POST"},
            )
        self._require_enabled(hook, fn)
        body = await read_body(receive)  # BodyLimit answers 413 past ORVA_MAX_BODY_BYTES
        # the body may take a while: the webhook (disabled, deleted, rotated) and its function (deleted) as
        # they are now
        hook = self._hooks.get(webhook_id)
        fn = self._functions.get(hook.row.function_id) if hook is not None else None
        if hook is None or fn is None:
            raise _unknown(path)
        self._require_enabled(hook, fn)
        raw: dict[str, list[str]] = {}
        for key, value in scope["headers"]:
            raw.setdefault(key.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        now = time.time()
        verified = self._verify(hook, raw, body, now)
        asks_async = hook.row.mode == "async" or _asks_async(scope.get("query_string", b""))
        request = InvokeRequest(
            fn,
            subpath="/",
            trigger="webhook",
            method="POST",
            headers=[
                *((k, v) for k, v in scope["headers"] if not k.lower().startswith(_DROPPED_PREFIX)),
                (b"x-orva-webhook-id", hook.row.id.encode()),
            ],
            query=scope.get("query_string", b""),
            body=body,
            client=(scope.get("client") or ("",))[0],
            request_id=scope.get("state", {}).get("request_id", ""),
            grant=Grant("webhook", hook.row.id),
            webhook_id=hook.row.id,
        )
        # refusals that come before the function runs come before the replay memory: a delivery refused so
        # (not deployed, inactive, rate limited in async mode) is not spent, and the sender's retry of it runs
        refuse_undeployed(fn)
        gate(fn)
        if asks_async:
            self._invoker.admission.check(request)  # status, rate limit: refused now, not in the queue
        await self._claim(hook, verified, now)
        try:
            if asks_async:
                accepted = await self._enqueue(request, "webhook")
            else:
                await self._run(hook, request, send)
        except Exception as exc:
            if asks_async or isinstance(exc, _NOT_RUN):  # not queued, or turned away before it ran
                for key in verified.keys:
                    await self._signatures.forget_everywhere(f"webhook:{hook.row.id}:{key}")
            raise
        if asks_async:
            await self._accepted(hook, request, accepted, send)

    @staticmethod
    def _require_enabled(hook: Hook, fn: Function) -> None:
        if not hook.row.enabled:
            raise InboundWebhookDisabled(
                "this webhook is disabled",
                hint=f"enable it with PUT /api/v1/functions/{fn.name}/inbound-webhooks/{hook.row.id} "
                '{"enabled": true}',
            )

    def _verify(self, hook: Hook, headers: dict[str, list[str]], body: bytes, now: float) -> formats.Verified:
        """The signature (and the timestamp where the format has one); the replay memory is ``_claim``'s."""
        row = hook.row
        try:
            verified = formats.verify(row.format, headers, body, hook.secret, hook.settings, now)
        except formats.SignatureRefused as exc:
            raise WebhookSignatureInvalid(
                str(exc), hint=exc.hint, details={"format": row.format, "stale": exc.stale}
            ) from None
        if verified.timestamp is not None and verified.timestamp < self._signatures.not_before:
            raise WebhookSignatureInvalid(
                "the delivery's timestamp is older than orvad's start, and orvad cannot tell whether it was "
                "accepted before (its replay memory may have lost rows in a crash)",
                hint="send a fresh delivery",
                details={"format": row.format, "stale": True},
            )
        return verified

    async def _claim(self, hook: Hook, verified: formats.Verified, now: float) -> None:
        """Each of the delivery's replay keys remembered (on a cluster, on every node), or WEBHOOK_REPLAY
        when one was seen already."""
        row = hook.row
        fresh = [
            await self._signatures.claim_everywhere(f"webhook:{row.id}:{key}", verified.expires_at, now)
            for key in verified.keys
        ]
        if not all(fresh):
            raise WebhookReplay(
                "this delivery was accepted already (a replay); the function did not run again",
                hint="send each delivery once; a sender's retry of a failed delivery is a new delivery",
                details={"format": row.format},
            )

    async def _run(self, hook: Hook, request: InvokeRequest, send: Send) -> None:
        seen: dict[str, Any] = {"status": 0, "execution_id": None}

        async def relay(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                seen["execution_id"] = next(
                    (v.decode() for k, v in message.get("headers", ()) if k == b"x-orva-execution-id"), None
                )
            await send(message)

        try:
            await self._invoker.serve(request, relay)
        except Exception as exc:
            status = getattr(exc, "status", 500)
            execution = (getattr(exc, "details", None) or {}).get("execution_id")
            self._delivered(hook, request, status, execution, None)
            raise
        self._delivered(hook, request, seen["status"], seen["execution_id"], None)

    def _delivered(
        self, hook: Hook, request: InvokeRequest, status: int, execution_id: str | None, job_id: str | None
    ) -> None:
        """A verified delivery's figures on its row and its activity row (both through the batched writer)."""
        self._store.delivered(hook.row.id, now_iso(), status, execution_id, job_id)
        if self._audit is not None:
            self._audit(
                direction="inbound",
                webhook_id=hook.row.id,
                webhook_name=hook.row.name,
                status=status,
                target_id=request.function.id,
                request_id=request.request_id or None,
                client_ip=request.client or None,
            )

    async def _accepted(
        self, hook: Hook, request: InvokeRequest, accepted: dict[str, Any], send: Send
    ) -> None:
        """The 202 of an async delivery, queued as a job."""
        job_id = str(accepted.get("job_id", ""))
        self._delivered(hook, request, 202, None, job_id)
        payload = {"job_id": job_id, "status": accepted.get("status", "pending"), "webhook_id": hook.row.id}
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"x-orva-job-id", job_id.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


async def reseal(store: InboundWebhookStore, old_master: bytes, new_master: bytes) -> int:
    """Every webhook secret sealed again under ``new_master`` in one transaction (``orvad rotate-master-key``,
    offline); nothing changes when one does not open under ``old_master``."""
    rows = []
    for row in await store.all():
        try:
            secret = open_secret(old_master, row.id, row.secret_nonce, row.secret_sealed)
        except Unsealable:
            raise RuntimeError(
                f"the secret of inbound webhook {row.id} does not open with the current master key; "
                "nothing was changed"
            ) from None
        nonce, sealed = seal_secret(new_master, row.id, secret)
        rows.append((nonce, sealed, row.id))
    await store.replace_secrets(rows)
    return len(rows)


def _asks_async(query: bytes) -> bool:
    return any(part in (b"async=1", b"async=true") for part in query.split(b"&"))


def _utf8(value: str, field: str) -> str:
    """JSON may carry a lone surrogate, which is not text (SQLite and the cipher cannot take it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"{field} holds a lone surrogate, which is not text",
            hint="send UTF-8 text",
            details={"field": field},
        ) from None
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= NAME_MAX:
        raise ValidationError(f"name must be a string of 1..{NAME_MAX} characters", details={"field": "name"})
    return _utf8(value, "name")


def _format(value: Any) -> str:
    if not isinstance(value, str) or value not in formats.FORMATS:
        raise ValidationError(
            f"format must be one of {', '.join(formats.FORMATS)}",
            hint="github, stripe and slack follow those senders; hmac_sha256_hex and hmac_sha256_base64 "
            "take a header name (and an optional prefix)",
            details={"field": "format", "allowed": list(formats.FORMATS)},
        )
    return str(value)


def _header(value: Any) -> str:
    if not isinstance(value, str) or not _HEADER_NAME.fullmatch(value):
        raise ValidationError(
            "header must be an HTTP header name (letters, digits, and -_.!#$%&'*+^`|~; 1..100)",
            details={"field": "header"},
        )
    return value


def _prefix(value: Any) -> str:
    if not isinstance(value, str) or len(value) > PREFIX_MAX:
        raise ValidationError(
            f"prefix must be a string of at most {PREFIX_MAX} characters", details={"field": "prefix"}
        )
    return _utf8(value, "prefix")


def _tolerance(value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != int(value)
        or not formats.MIN_TOLERANCE_S <= value <= formats.MAX_TOLERANCE_S
    ):
        raise ValidationError(
            f"tolerance_s must be whole seconds in {formats.MIN_TOLERANCE_S}..{formats.MAX_TOLERANCE_S}",
            details={"field": "tolerance_s"},
        )
    return int(value)


def _mode(value: Any) -> str:
    if not isinstance(value, str) or value not in MODES:
        raise ValidationError("mode must be sync or async", details={"field": "mode"})
    return str(value)


def _enabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("enabled must be true or false", details={"field": "enabled"})
    return value


def _secret(value: Any) -> str:
    if not isinstance(value, str) or not SECRET_MIN <= len(value) <= SECRET_MAX:
        raise ValidationError(
            f"secret must be a string of {SECRET_MIN}..{SECRET_MAX} characters",
            hint="leave it out and orvad generates one (shown once)",
            details={"field": "secret"},
        )
    return _utf8(value, "secret")


# field -> its check; null means "absent" (the default, or the value kept) for every optional field
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "name": _name,
    "format": _format,
    "header": _header,
    "prefix": _prefix,
    "tolerance_s": _tolerance,
    "mode": _mode,
    "enabled": _enabled,
    "secret": _secret,
}


def _check(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The fields of a create or update body, checked (unknown fields were refused by the API)."""
    out: dict[str, Any] = {}
    for field, check in _CHECKS.items():
        required = creating and field in ("name", "format")
        if field in body and (body[field] is not None or field in ("name", "format")):
            out[field] = check(body[field])
        elif required:
            out[field] = check(None)
    if creating and out["format"] not in formats.HMAC_FORMATS and (out.get("header") or out.get("prefix")):
        raise ValidationError(
            f"header and prefix are settings of the hmac formats, not of {out['format']}",
            hint="leave header and prefix out, or use format hmac_sha256_hex or hmac_sha256_base64",
            details={"field": "header" if out.get("header") else "prefix"},
        )
    return out
