"""Outbound webhooks (issue 24): orvad tells other systems what happened (docs/WEBHOOKS.md).

Receivers (``/api/v1/webhooks``) are kept in memory and written through to the store; each has a signing
secret (``whsec_...``, orvad/webhooks/signing.py) sealed under the master key and opened once at start.

Events come from the seams that already exist, each a small typed subscriber wired in orvad/daemon.py:
the change channel (``function.created|updated|deleted``), the bus's ``deployment`` events
(``deployment.succeeded|failed``), the settler's execution hooks (``execution.error``) and the job
runner's end hook (``job.succeeded|failed``, and ``cron.failed`` for a cron run's job). ``publish`` only
appends to a bounded in-memory queue (no database, no network: it runs on the invoke path); past the bound
events are dropped and counted (``orva_webhook_events_dropped_total``).

The sender (``run``, a daemon task) writes the queued events to the outbox (one delivery row per matching
receiver) and then sends due deliveries: each attempt a POST with a timeout, signed anew, no redirects
followed; a 2xx answer delivers it, anything else (another status, a timeout, a refused connection) waits
``backoff`` (exponential with jitter) and is due again until its window (``retry_window_s``) has passed:
then it is ``failed``. At most ``per_receiver`` attempts run at once per receiver. Each attempt claims its
row first (``WebhookStore.claim``: a conditional UPDATE on status, attempts and due time that one claimer
wins, returning the row as it is now), so a row read before another attempt's end was written is never sent
again, and its end is written only if the attempts count still matches. A delivery is pending
until an attempt's end is written, so one cut by a crash is sent again at the next start (at least once:
receivers dedupe by ``webhook-id``). A clean stop writes the events still queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from orvad import __version__, sealing
from orvad.clock import epoch_iso, now_iso
from orvad.errors import NotFound, ValidationError, WebhookDisabled
from orvad.ids import uuid7
from orvad.imports import imported
from orvad.jobs.service import Job
from orvad.models import Function, FunctionStatus
from orvad.services.bus import Bus
from orvad.services.changes import Change, FunctionChanged, FunctionCreated, FunctionDeleted
from orvad.services.functions import FunctionService
from orvad.store.jobs import Finish
from orvad.store.webhooks import (
    DELIVERY_STATUSES,
    AttemptRow,
    DeliveryRow,
    NewDelivery,
    WebhookRow,
    WebhookStore,
)
from orvad.webhooks import signing

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "deployment.succeeded",
    "deployment.failed",
    "function.created",
    "function.updated",
    "function.deleted",
    "execution.error",
    "job.succeeded",
    "job.failed",
    "cron.failed",
)
PING = "ping"  # POST /api/v1/webhooks/{id}/test: to that receiver only, whatever its events
MAX_URL_CHARS = 2048
MAX_DESCRIPTION_CHARS = 500
RESPONSE_CHARS = 1024  # an attempt keeps this much of the receiver's answer
ERROR_CHARS = 500
MAX_CLAIMED = 512  # deliveries taken into memory for sending at once (all receivers)
CLAIMED_PER_RECEIVER_FACTOR = 4  # and per receiver: this x its concurrency
RETENTION_S = 30 * 86400.0  # delivered and failed deliveries are kept this long
_PRUNE_EVERY_S = 3600.0
LEASE_SLACK_S = 5.0  # a claimed delivery is due again this long after its attempt's timeout (store.claim)
_AAD_PREFIX = b"orva-webhook\0"
_USER_AGENT = f"Orva-Webhooks/{__version__}"
_UNCHANGED = frozenset({"updated_at", "active_deployment_id", "status"})  # builds move these: not "updated"
_USER_STATUSES = frozenset({FunctionStatus.ACTIVE, FunctionStatus.INACTIVE})


def _aad(webhook_id: str) -> bytes:
    return _AAD_PREFIX + webhook_id.encode()


def seal_secret(master: bytes, webhook_id: str, secret: str) -> tuple[bytes, bytes]:
    return sealing.seal(master, secret, _aad(webhook_id))


def open_secret(master: bytes, webhook_id: str, nonce: bytes, sealed: bytes) -> str:
    return sealing.unseal(master, nonce, sealed, _aad(webhook_id))


def check_url(value: Any) -> str:
    """An http(s) URL with a host, no userinfo, no spaces or control characters. Any address is allowed (a
    receiver on the LAN is normal for a self-hosted orvad); redirects are never followed."""
    hint = "send an http:// or https:// URL, such as https://example.com/hooks/orva"
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_URL_CHARS:
        raise ValidationError(
            f"url must be a string of 1..{MAX_URL_CHARS} characters", hint=hint, details={"field": "url"}
        )
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValidationError(
            "url may not contain spaces or control characters", hint=hint, details={"field": "url"}
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"url is not a valid URL: {exc}", hint=hint, details={"field": "url"}) from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError(
            f"url must use http or https, not {parts.scheme or 'no scheme'!r}",
            hint=hint,
            details={"field": "url", "scheme": parts.scheme},
        )
    if "@" in parts.netloc:
        raise ValidationError(
            "url may not carry a user name or password (user@host)",
            hint="put a receiver's credential in the URL's path or query instead; every delivery is signed "
            "with the webhook's secret",
            details={"field": "url"},
        )
    if not parts.hostname or port == 0:
        raise ValidationError("url has no host", hint=hint, details={"field": "url"})
    import httpx  # noqa: PLC0415 (at first use: see the sender's _transport)

    try:
        httpx.URL(value)  # what the sender parses: a host that is no IDNA name failed every attempt
    except httpx.InvalidURL as exc:
        raise ValidationError(f"url is not a valid URL: {exc}", hint=hint, details={"field": "url"}) from None
    return value


def check_events(value: Any) -> tuple[str, ...]:
    hint = f'send a list of {", ".join(EVENT_TYPES)}, or ["*"] for all of them'
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValidationError(
            "events must be a non-empty list of event types", hint=hint, details={"field": "events"}
        )
    unknown = sorted({v for v in value if v != "*" and v not in EVENT_TYPES})
    if unknown:
        raise ValidationError(
            f"unknown event type(s): {', '.join(unknown)}",
            hint=hint,
            details={"field": "events", "unknown": unknown},
        )
    return ("*",) if "*" in value else tuple(t for t in EVENT_TYPES if t in value)


def function_brief(fn: Function) -> dict[str, Any]:
    return {
        "id": fn.id,
        "name": fn.name,
        "runtime": fn.runtime,
        "status": str(fn.status),
        "description": fn.description,
        "active_deployment_id": fn.active_deployment_id,
        "created_at": fn.created_at,
        "updated_at": fn.updated_at,
    }


def ended_job_json(finish: Finish) -> dict[str, Any]:
    """A job as its last attempt ended it: GET /api/v1/jobs/{id}'s record, that attempt's execution and status
    code, and for a cron run its schedule's id."""
    job = Job(finish.job).to_json()
    job.update(
        status=finish.next_status,
        attempts=finish.job.attempts,
        finished_at=epoch_iso(finish.ended),
        updated_at=epoch_iso(finish.ended),
        lease_until=None,
        execution_id=finish.execution_id,
        status_code=finish.status_code,
    )
    if finish.error:
        with contextlib.suppress(ValueError):
            job["last_error"] = json.loads(finish.error)
    if finish.job.trigger == "cron":
        with contextlib.suppress(ValueError, KeyError, TypeError):
            headers = dict(json.loads(finish.job.request)["headers"])
            job["schedule_id"] = headers.get("x-orva-cron-id")
    return job


def is_execution_error(row: dict[str, Any]) -> bool:
    """``execution.error``: the handler failed (error), ran out of time (timeout) or its worker crashed, or
    it answered with a 5xx status itself. Refusals before a handler ran (rate limits, a full pool) are not."""
    status = row.get("status")
    if status in ("error", "timeout", "crashed"):
        return True
    code = row.get("status_code")
    return status == "success" and isinstance(code, int) and code >= 500


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any]
    function_id: str | None
    id: str = field(default_factory=lambda: "evt_" + uuid7().replace("-", ""))
    created_at: str = field(default_factory=now_iso)
    only: str | None = None  # a ping: this webhook only

    def body(self) -> bytes:
        return json.dumps(
            {"id": self.id, "type": self.type, "created_at": self.created_at, "data": self.data},
            separators=(",", ":"),
        ).encode()


@dataclass(slots=True)
class Receiver:
    row: WebhookRow
    events: tuple[str, ...]
    key: bytes | None  # None: its secret does not open under this master key (rotate it)
    gate: asyncio.Semaphore
    claimed: int = 0

    @property
    def id(self) -> str:
        return self.row.id

    def wants(self, event: Event) -> bool:
        if event.only is not None:
            return event.only == self.row.id
        if not self.row.enabled:
            return False
        if self.row.function_id is not None and event.function_id != self.row.function_id:
            return False
        return "*" in self.events or event.type in self.events


@dataclass(slots=True)
class Figures:
    queued: int = 0
    dropped: int = 0
    attempts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("delivered", "retry", "failed"), 0)
    )


class _Collector(Collector):
    def __init__(self, service: OutboundWebhooks) -> None:
        self._service = service

    def collect(self) -> Iterator[Any]:
        f = self._service.figures
        queue = GaugeMetricFamily(
            "orva_webhook_queue_depth",
            "outbound webhook events waiting in memory to be written to the outbox",
        )
        queue.add_metric([], len(self._service._queue))
        dropped = CounterMetricFamily(
            "orva_webhook_events_dropped",
            "outbound webhook events dropped because the in-memory queue held ORVA_WEBHOOK_QUEUE_MAX events",
        )
        dropped.add_metric([], f.dropped)
        attempts = CounterMetricFamily(
            "orva_webhook_attempts",
            "outbound webhook delivery attempts by outcome: delivered, retry (will be tried again), failed",
            labels=["outcome"],
        )
        for outcome, n in f.attempts.items():
            attempts.add_metric([outcome], n)
        inflight = GaugeMetricFamily("orva_webhook_inflight", "outbound webhook deliveries being sent now")
        inflight.add_metric([], len(self._service._claimed))
        yield from (queue, dropped, attempts, inflight)


class OutboundWebhooks:
    def __init__(
        self,
        store: WebhookStore,
        functions: FunctionService,
        *,
        bus: Bus | None = None,
        retry_base_s: float = 5.0,
        retry_max_s: float = 3600.0,
        retry_window_s: float = 86400.0,
        timeout_s: float = 10.0,
        per_receiver: int = 4,
        queue_max: int = 10_000,
        record_attempt: Callable[..., None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store, self._functions, self._bus = store, functions, bus
        self.retry_base_s, self.retry_max_s, self.retry_window_s = retry_base_s, retry_max_s, retry_window_s
        self.timeout_s, self.per_receiver, self.queue_max = timeout_s, per_receiver, queue_max
        self._record_attempt = record_attempt  # the audit trail's record_webhook (the activity feed)
        self.clock = clock
        self._master: bytes | None = None
        self._receivers: dict[str, Receiver] = {}
        self._wanted: frozenset[str] = frozenset()  # event types some enabled receiver takes ("*": all)
        self._queue: deque[Event] = deque()
        self._wake = asyncio.Event()
        self._claimed: dict[str, asyncio.Task[None]] = {}  # delivery id -> its attempt
        self._random = random.Random()
        self._transport: httpx.AsyncHTTPTransport | None = None
        self._pruned_at = 0.0
        self.figures = Figures()
        # whether this node is the only live one (orvad/cluster/nodes.py); None: one orvad, always alone. On
        # a cluster the start's release would make other nodes' claimed (in flight) deliveries due at once
        self.alone: Callable[[], Awaitable[bool]] | None = None

    # start
    def unlock(self, master: bytes) -> None:
        self._master = master

    def _key(self) -> bytes:
        if self._master is None:
            raise RuntimeError("OutboundWebhooks used before unlock(master key)")
        return self._master

    async def load(self) -> None:
        rows = await self._store.all()
        if rows:
            await sealing.ready()
        for row in rows:
            self._remember(row)
        unreadable = [r.id for r in self._receivers.values() if r.key is None]
        if unreadable:
            log.error(
                "webhook secrets that do not open under the master key: their deliveries wait; rotate each "
                "(POST /api/v1/webhooks/{id}/rotate)",
                extra={"webhooks": unreadable},
            )

    def _remember(self, row: WebhookRow) -> Receiver:
        try:
            key: bytes | None = signing.secret_key(
                open_secret(self._key(), row.id, row.secret_nonce, row.secret_sealed)
            )
        except ValueError:  # Unsealable too
            key = None
        old = self._receivers.get(row.id)
        receiver = Receiver(
            row, tuple(json.loads(row.events)), key, old.gate if old else asyncio.Semaphore(self.per_receiver)
        )
        if old is not None:
            receiver.claimed = old.claimed
        self._receivers[row.id] = receiver
        self._refresh()
        return receiver

    def _refresh(self) -> None:
        self._wanted = frozenset(t for r in self._receivers.values() if r.row.enabled for t in r.events)

    def collector(self) -> Collector:
        return _Collector(self)

    # the API
    def receivers(self) -> list[Receiver]:
        return sorted(self._receivers.values(), key=lambda r: r.id, reverse=True)

    def receiver(self, webhook_id: str) -> Receiver:
        receiver = self._receivers.get(webhook_id)
        if receiver is None:
            raise NotFound(
                f"no webhook {webhook_id!r}",
                hint="list webhooks with GET /api/v1/webhooks",
                details={"webhook_id": webhook_id},
            )
        return receiver

    def to_json(self, receiver: Receiver) -> dict[str, Any]:
        row = receiver.row
        fn = self._functions.get(row.function_id) if row.function_id else None
        return {
            "id": row.id,
            "url": row.url,
            "events": list(receiver.events),
            "function_id": row.function_id,
            "function_name": fn.name if fn is not None else None,
            "enabled": bool(row.enabled),
            "description": row.description,
            "secret_usable": receiver.key is not None,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }

    def _fields(self, body: dict[str, Any], current: WebhookRow | None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "url" in body or current is None:
            out["url"] = check_url(body.get("url"))
        if "events" in body or current is None:
            out["events"] = json.dumps(list(check_events(body.get("events"))))
        if "function" in body:
            ident = body["function"]
            if ident is None:
                out["function_id"] = None
            elif isinstance(ident, str) and 1 <= len(ident) <= 200:
                out["function_id"] = self._functions.resolve(ident).id
            else:
                raise ValidationError(
                    "function must be a function's id or name, or null (every function)",
                    details={"field": "function"},
                )
        if "enabled" in body:
            if not isinstance(body["enabled"], bool):
                raise ValidationError("enabled must be true or false", details={"field": "enabled"})
            out["enabled"] = int(body["enabled"])
        if "description" in body:
            text = body["description"]
            if not isinstance(text, str) or len(text) > MAX_DESCRIPTION_CHARS:
                raise ValidationError(
                    f"description must be a string of at most {MAX_DESCRIPTION_CHARS} characters",
                    details={"field": "description"},
                )
            out["description"] = text
        return out

    async def create(self, body: dict[str, Any]) -> tuple[Receiver, str]:
        await imported("httpx")  # check_url parses with it: imported off the event loop (orvad/imports.py)
        """A receiver and its secret (returned once: only its sealed form is kept)."""
        checked = self._fields(body, None)
        webhook_id = "wh_" + uuid7().replace("-", "")
        secret = signing.new_secret()
        nonce, sealed = seal_secret(self._key(), webhook_id, secret)
        now = now_iso()
        row = WebhookRow(
            id=webhook_id,
            url=checked["url"],
            events=checked["events"],
            function_id=checked.get("function_id"),
            enabled=checked.get("enabled", 1),
            description=checked.get("description", ""),
            secret_nonce=nonce,
            secret_sealed=sealed,
            created_at=now,
            updated_at=now,
        )
        await self._store.insert(row)
        return self._remember(row), secret

    async def update(self, webhook_id: str, body: dict[str, Any]) -> Receiver:
        await imported("httpx")  # as in create
        current = self.receiver(webhook_id).row
        checked = self._fields(body, current)
        row = WebhookRow(
            **{f.name: getattr(current, f.name) for f in fields(WebhookRow)}
            | checked
            | {"updated_at": now_iso()}
        )
        await self._store.update(row)
        receiver = self._remember(row)
        self._wake.set()  # enabled again: its waiting deliveries are due
        return receiver

    async def rotate(self, webhook_id: str) -> tuple[Receiver, str]:
        """A new secret (returned once); deliveries from now on are signed with it, retries included."""
        current = self.receiver(webhook_id).row
        secret = signing.new_secret()
        nonce, sealed = seal_secret(self._key(), webhook_id, secret)
        row = WebhookRow(
            **{f.name: getattr(current, f.name) for f in fields(WebhookRow)}
            | {"secret_nonce": nonce, "secret_sealed": sealed, "updated_at": now_iso()}
        )
        await self._store.update(row)
        receiver = self._remember(row)
        self._wake.set()
        return receiver, secret

    async def delete(self, webhook_id: str) -> None:
        self.receiver(webhook_id)
        await self._store.delete(webhook_id)
        self._receivers.pop(webhook_id, None)
        self._refresh()

    async def reseal(self, new_master: bytes) -> int:
        """Every secret sealed again under ``new_master`` (master key rotation); how many."""
        count = await reseal(self._store, self._key(), new_master)
        self._master = new_master
        return count

    async def test(self, webhook_id: str) -> dict[str, Any]:
        """A ``ping`` delivery to this receiver, written to the outbox now and sent by the sender."""
        receiver = self.receiver(webhook_id)
        self._require_enabled(receiver)
        event = Event(
            PING,
            {"webhook_id": receiver.id, "message": "a test delivery from orvad (orva webhooks test)"},
            None,
            only=receiver.id,
        )
        delivery = self._new_delivery(receiver, event, self.clock())
        await self._store.insert_deliveries([delivery])
        self._wake.set()
        row = await self._store.delivery(delivery.id)
        assert row is not None
        return self.delivery_json(row, [])

    def _require_enabled(self, receiver: Receiver) -> None:
        if not receiver.row.enabled:
            raise WebhookDisabled(
                f"webhook {receiver.id} is disabled: nothing is sent to it",
                hint=f'enable it first: PUT /api/v1/webhooks/{receiver.id} {{"enabled": true}}',
                details={"webhook_id": receiver.id},
            )

    def delivery_json(self, d: DeliveryRow, attempts: list[AttemptRow]) -> dict[str, Any]:
        return {
            "id": d.id,
            "webhook_id": d.webhook_id,
            "event_id": d.event_id,
            "event_type": d.event_type,
            "function_id": d.function_id,
            "status": d.status,
            "attempts": d.attempts,
            "next_attempt_at": epoch_iso(d.next_attempt_at) if d.status == "pending" else None,
            "give_up_at": epoch_iso(d.give_up_at),
            "last_status_code": d.last_status_code,
            "last_error": d.last_error,
            "created_at": d.created_at,
            "updated_at": d.updated_at,
            "finished_at": d.finished_at,
            "payload": json.loads(d.body),
            "attempts_list": [
                {
                    "attempt": a.attempt,
                    "started_at": a.started_at,
                    "duration_ms": a.duration_ms,
                    "status_code": a.status_code,
                    "response": a.response,
                    "error": a.error,
                }
                for a in attempts
            ],
        }

    async def deliveries(
        self, webhook_id: str, *, status: str | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        self.receiver(webhook_id)
        if status is not None and status not in DELIVERY_STATUSES:
            raise ValidationError(
                f"status must be one of {', '.join(DELIVERY_STATUSES)}",
                hint=f"for the failed ones send GET /api/v1/webhooks/{webhook_id}/deliveries?status=failed",
                details={"field": "status"},
            )
        rows = await self._store.deliveries(webhook_id, status=status, cursor=cursor, limit=limit)
        more = len(rows) > limit
        rows = rows[:limit]
        attempts = await self._store.attempts([d.id for d in rows])
        return {
            "deliveries": [self.delivery_json(d, attempts.get(d.id, [])) for d in rows],
            "next_cursor": rows[-1].id if more and rows else None,
            "counts": await self._store.counts(webhook_id),
        }

    async def retry(self, delivery_id: str) -> dict[str, Any]:
        """A delivery due now again with a fresh window (a failed one, a delivered one sent again, or a pending
        one sent now instead of at its next back-off)."""
        d = await self._store.delivery(delivery_id)
        if d is None:
            raise NotFound(
                f"no delivery {delivery_id!r}",
                hint="list the webhooks with GET /api/v1/webhooks, then a webhook's deliveries under it (/deliveries)",
                details={"delivery_id": delivery_id},
            )
        self._require_enabled(self.receiver(d.webhook_id))
        now = self.clock()
        await self._store.retry(d.id, now, now + self.retry_window_s)
        self._wake.set()
        row = await self._store.delivery(d.id)
        assert row is not None
        return self.delivery_json(row, (await self._store.attempts([d.id]))[d.id])

    # publishing (on the caller's path: memory only)
    def publish(self, event_type: str, data: dict[str, Any], function_id: str | None) -> None:
        if event_type not in self._wanted and "*" not in self._wanted:
            return
        if len(self._queue) >= self.queue_max:
            self.figures.dropped += 1
            if self.figures.dropped in (1, 10, 100) or self.figures.dropped % 1000 == 0:
                log.warning(
                    "outbound webhook events dropped: the queue is full (ORVA_WEBHOOK_QUEUE_MAX)",
                    extra={"dropped": self.figures.dropped, "queue_max": self.queue_max},
                )
            return
        self._queue.append(Event(event_type, data, function_id))
        self.figures.queued += 1
        self._wake.set()

    async def on_change(self, change: Change) -> None:
        """The change channel's subscriber: function.created, function.updated, function.deleted."""
        match change:
            case FunctionCreated(fn):
                self.publish("function.created", {"function": function_brief(fn)}, fn.id)
            case FunctionChanged(old, new):
                changed = [
                    f.name
                    for f in fields(Function)
                    if f.name not in _UNCHANGED and getattr(old, f.name) != getattr(new, f.name)
                ]
                if old.status != new.status and {old.status, new.status} <= _USER_STATUSES:
                    changed.append("status")  # paused or resumed (a build's status moves are not updates)
                if changed:
                    self.publish(
                        "function.updated", {"function": function_brief(new), "changed": changed}, new.id
                    )
            case FunctionDeleted(fn):
                self.publish("function.deleted", {"function": function_brief(fn)}, fn.id)

    def on_execution(self, row: dict[str, Any]) -> None:
        """The settler's hook (every execution, on the invoke path): execution.error."""
        if ("execution.error" in self._wanted or "*" in self._wanted) and is_execution_error(row):
            self.publish("execution.error", {"execution": row}, str(row["function_id"]))

    def on_job_end(self, finish: Finish) -> None:
        """The job runner's hook, once an attempt's end that ended its job is written: job.succeeded,
        job.failed (dead), and cron.failed for a cron run's job."""
        if finish.next_status not in ("succeeded", "dead"):
            return
        if not self._wanted:
            return
        job = ended_job_json(finish)
        function_id = finish.job.function_id
        if finish.next_status == "succeeded":
            self.publish("job.succeeded", {"job": job}, function_id)
            return
        self.publish("job.failed", {"job": job}, function_id)
        if finish.job.trigger == "cron":
            self.publish("cron.failed", {"schedule_id": job.get("schedule_id"), "job": job}, function_id)

    def on_deployment(self, dep: dict[str, Any]) -> None:
        status = dep.get("status")
        if status not in ("succeeded", "failed"):
            return
        fn = self._functions.get(str(dep.get("function_id")))
        self.publish(
            f"deployment.{status}",
            {
                "deployment": dep,
                "function": function_brief(fn) if fn is not None else {"id": dep.get("function_id")},
            },
            dep.get("function_id"),
        )

    # the sender
    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed: base x 2^(n-1), capped, with jitter
        (a uniform draw from half of it to all of it)."""
        full = min(self.retry_max_s, self.retry_base_s * 2.0 ** max(0, attempts - 1))
        return full * (0.5 + self._random.random() / 2)

    def _new_delivery(self, receiver: Receiver, event: Event, now: float) -> NewDelivery:
        return NewDelivery(
            id="msg_" + uuid7().replace("-", ""),
            webhook_id=receiver.id,
            event_id=event.id,
            event_type=event.type,
            function_id=event.function_id,
            body=event.body(),
            now=now,
            give_up_at=now + self.retry_window_s,
        )

    async def run(self) -> None:
        """Write queued events to the outbox and send due deliveries until cancelled."""
        reader = (
            asyncio.get_running_loop().create_task(self._read_bus(), name="orva-webhooks-bus")
            if self._bus is not None
            else None
        )
        try:
            with contextlib.suppress(Exception):  # not fatal: the leases then run out by themselves
                # the claims a previous run of this node left are due at once, but only when no other node
                # is live: a claim names no node, so on a cluster they run out by themselves (timeout +
                # LEASE_SLACK_S) and another node's attempt in flight is never sent a second time meanwhile
                if self.alone is None or await self.alone():
                    now = self.clock()
                    await self._store.release(now, now + self.timeout_s + LEASE_SLACK_S)
            while True:
                self._wake.clear()
                try:
                    await self._write_queued()
                    # one "now" for the claim and the sleep: a delivery due between two readings of the
                    # clock would be neither claimed (not due yet) nor waited for (due already)
                    now = self.clock()
                    await self._claim_due(now)
                    await self._prune()
                    delay = await self._sleep_for(now)
                except Exception:
                    log.exception("webhooks: the sender's pass failed; trying again")
                    delay = 1.0
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
        finally:
            if reader is not None:
                reader.cancel()
            claimed = list(self._claimed.values())
            for task in claimed:
                task.cancel()  # still pending in the outbox: sent again at the next start
            if claimed:
                await asyncio.wait(claimed, timeout=2)
            with contextlib.suppress(Exception):
                await self._write_queued()  # a clean stop loses no event
            if self._transport is not None:
                await self._transport.aclose()

    def _open_transport(self) -> httpx.AsyncHTTPTransport:
        """The connection pool, at the first delivery sent (httpx, with rich and pygments, is about 5 MB
        that an orvad with no outbound webhook does not carry). The transport alone, not a Client: no
        redirects (a 3xx is an answer, not 2xx: tried again later), no proxy from the environment, no
        cookies, and no request log line (httpx's names the URL, which may hold a receiver's token)."""
        import httpx  # noqa: PLC0415

        self._transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=MAX_CLAIMED, max_keepalive_connections=32)
        )
        return self._transport

    async def _read_bus(self) -> None:
        assert self._bus is not None
        async with self._bus.subscribe(frozenset({"deployment"}), maxsize=10_000) as sub:
            while True:
                topic, data = await sub.get()
                if topic == "deployment":
                    self.on_deployment(data)

    async def _write_queued(self) -> None:
        if not self._queue:
            return
        events = list(self._queue)
        self._queue.clear()
        now = self.clock()
        rows = [self._new_delivery(r, e, now) for e in events for r in self._receivers.values() if r.wants(e)]
        try:
            await self._store.insert_deliveries(rows)
        except BaseException:
            room = self.queue_max - len(self._queue)
            self._queue.extendleft(reversed(events[:room]))  # tried again at the next pass
            self.figures.dropped += max(0, len(events) - room)
            raise

    async def _claim_due(self, now: float) -> None:
        free = MAX_CLAIMED - len(self._claimed)
        if free <= 0:
            return
        share = self.per_receiver * CLAIMED_PER_RECEIVER_FACTOR
        due = await self._store.due(now, len(self._claimed) + free, share)
        for d in due:
            if d.id in self._claimed:
                continue
            receiver = self._receivers.get(d.webhook_id)
            if receiver is None or not receiver.row.enabled or receiver.key is None:
                continue
            if receiver.claimed >= share or free <= 0:
                continue
            receiver.claimed += 1
            free -= 1
            self._claimed[d.id] = asyncio.get_running_loop().create_task(
                self._attempt(receiver, d), name=f"orva-webhook-{d.id}"
            )

    async def _sleep_for(self, now: float) -> float:
        nxt = await self._store.next_due(now)
        if nxt is None:
            return 60.0
        return float(min(60.0, max(0.0, nxt - self.clock())))

    async def _prune(self) -> None:
        now = self.clock()
        if now - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = now
        await self._store.prune(epoch_iso(now - RETENTION_S))

    async def _attempt(self, receiver: Receiver, d: DeliveryRow) -> None:
        try:
            async with receiver.gate:
                await self._send(receiver, d)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhooks: an attempt's bookkeeping failed", extra={"delivery_id": d.id})
        finally:
            self._claimed.pop(d.id, None)
            current = self._receivers.get(receiver.id, receiver)  # a change since replaced it (count kept)
            current.claimed = max(0, current.claimed - 1)
            self._wake.set()

    async def _send(self, receiver: Receiver, claimed: DeliveryRow) -> None:
        current = self._receivers.get(receiver.id)  # rotated or changed since it was claimed
        if current is None or current.key is None or not current.row.enabled:
            return
        # ``claimed`` was read by the sender's pass, maybe before an attempt's end was written: the row as it
        # is now, taken by one conditional UPDATE (pending, due and the same attempts count), or nothing
        now = self.clock()
        d = await self._store.claim(claimed.id, claimed.attempts, now, now + self.timeout_s + LEASE_SLACK_S)
        if d is None:
            return
        timestamp = int(self.clock())
        headers = signing.headers(
            current.key, msg_id=d.id, event_type=d.event_type, timestamp=timestamp, body=d.body
        )
        started_at, started = now_iso(), time.perf_counter()
        status_code: int | None = None
        response: str | None = None
        error: str | None = None
        httpx = await imported("httpx")  # off the event loop the first time (orvad/imports.py)
        transport = self._transport or self._open_transport()
        try:
            request = httpx.Request(
                "POST",
                current.row.url,
                content=d.body,
                headers={**headers, "user-agent": _USER_AGENT, "content-type": "application/json"},
                extensions={"timeout": httpx.Timeout(self.timeout_s).as_dict()},
            )
            async with asyncio.timeout(self.timeout_s):
                answer = await transport.handle_async_request(request)
                try:
                    status_code = answer.status_code
                    response = await _snippet(answer)
                finally:
                    await answer.aclose()
        except TimeoutError:
            error = f"timed out after {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            error = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:ERROR_CHARS]
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        now = self.clock()
        ok = status_code is not None and 200 <= status_code < 300
        if error is None and not ok:
            error = f"the receiver answered {status_code}"
        attempt = AttemptRow(
            d.id, d.attempts + 1, started_at, duration_ms, status_code, response, None if ok else error
        )
        outcome: Literal["delivered", "retry", "failed"]
        if ok:
            outcome, status, next_at = "delivered", "delivered", now
        elif now >= d.give_up_at:
            outcome, status, next_at = "failed", "failed", now
        else:
            outcome, status, next_at = (
                "retry",
                "pending",
                min(d.give_up_at, now + self.backoff(d.attempts + 1)),
            )
        if not await self._store.end_attempt(d, attempt, status=status, next_attempt_at=next_at, now=now):
            log.warning(  # its attempts count moved on (another sender?) or it was deleted: not recorded
                "webhook attempt not recorded: the delivery changed while it was sent",
                extra={"webhook_id": current.id, "delivery_id": d.id, "attempt": attempt.attempt},
            )
            return
        self.figures.attempts[outcome] += 1
        if outcome == "failed":
            log.warning(
                "webhook delivery failed: its retry window passed",
                extra={"webhook_id": current.id, "delivery_id": d.id, "attempts": attempt.attempt},
            )
        if self._record_attempt is not None:
            with contextlib.suppress(Exception):
                self._record_attempt(
                    direction="outbound",
                    webhook_id=current.id,
                    webhook_name=current.row.description or None,
                    status=status_code,
                    target_id=d.id,
                    event=d.event_type,
                )


async def reseal(store: WebhookStore, old_master: bytes, new_master: bytes) -> int:
    """Every outbound webhook's signing secret sealed again under ``new_master`` in one transaction (``orvad
    rotate-master-key``, offline); nothing changes when one does not open under ``old_master``."""
    rows = []
    for row in await store.all():
        try:
            secret = open_secret(old_master, row.id, row.secret_nonce, row.secret_sealed)
        except ValueError:  # Unsealable too
            raise RuntimeError(
                f"the signing secret of webhook {row.id} does not open with the current master key; "
                f"nothing was changed (rotate that webhook's secret first: POST /api/v1/webhooks/{row.id}/rotate)"
            ) from None
        nonce, sealed = seal_secret(new_master, row.id, secret)
        rows.append((nonce, sealed, row.id))
    await store.replace_secrets(rows)
    return len(rows)


async def _snippet(answer: httpx.Response) -> str:
    """The first RESPONSE_CHARS bytes of an answer, as text (the rest is not read)."""
    kept = b""
    async for chunk in answer.stream:  # type: ignore[union-attr]
        kept += chunk
        if len(kept) >= RESPONSE_CHARS:
            break
    return kept[:RESPONSE_CHARS].decode("utf-8", "replace")
