"""The audit trail of management calls: who called (key, session or anonymous), what (method, path,
the id it names), the answer's status. The guard (orvad/auth/guard.py) tells it of every /api/v1 call:
a state-changing one once answered, a read (GET, HEAD) when its answer starts, so an open event stream
(GET /api/v1/events) is one row, with its status, when it opens (never one per event). Rows go to the
store through the batched writer: nothing on the request's path waits on the database.

Reads are rows only when a key or a session made them (``record_call``): anonymous reads are the public
routes (GET /api/v1/auth/status, /api/v1/openapi.json), which anyone could call without bound. The health
probe GET /api/v1/system/health (a container's HEALTHCHECK every few seconds) is never a row nor counted,
and neither are /health/* or a scraper's GET /metrics (the guard does not tell of those).

Every MCP tool call (operator and channel mode) is a row too (``record_mcp``): method ``MCP``, path
``/mcp tools/call <tool>``, the actor the credential names (a key, a channel, later an OAuth client).

Webhook deliveries are rows too (``record_webhook``): method ``WEBHOOK``, inbound (a verified delivery
to ``/webhook/<id>``) or outbound (orvad's delivery of an event to a receiver).

Each row, once committed, is published on the bus as the event ``activity`` (the activity feed's live
view, GET /api/v1/events?types=activity): an after-commit callback of the batched writer, so nothing on the
caller's path waits on the database.

Anonymous refused calls get no row (anyone who reaches the port could write them without bound):
they are counted by reason in ``orva_audit_refused_total`` (orvad/store/audit.py ``refused_reason``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from orvad.clock import now_iso
from orvad.ids import uuid7
from orvad.services.metrics import Metrics
from orvad.store.audit import READ_METHODS, AuditStore, activity_row, refused_reason

MCP_METHOD = "MCP"  # the audit rows of /mcp tool calls (GET /api/v1/audit-log?method=MCP)
ASSISTANT_METHOD = "AI"  # the AI assistant's tool calls (GET /api/v1/audit-log?method=AI)
WEBHOOK_METHOD = "WEBHOOK"  # webhook deliveries, inbound and outbound (GET /api/v1/activity?source=webhook)
ACTIVITY_EVENT = "activity"  # the bus topic of committed rows
PROBES = frozenset({"/api/v1/system/health"})  # health probes: neither rows nor counted
NO_ANSWER_STATUS = 502  # an outbound delivery the receiver never answered (refused, timed out)

if TYPE_CHECKING:
    from orvad.auth.guard import Principal

log = logging.getLogger(__name__)


class AuditTrail:
    def __init__(
        self,
        store: AuditStore,
        metrics: Metrics,
        publish: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._publish = publish  # the bus's publish: each committed row as an `activity` event

    def _record(self, row: dict[str, Any]) -> None:
        publish = self._publish
        try:
            if publish is None:
                self._store.record(row)
                return
            self._store.record(row, lambda stored: publish(ACTIVITY_EVENT, activity_row(stored)))
        except (
            RuntimeError
        ):  # the batched writer is stopped (shutdown, a restore's reload): the answer goes on
            log.warning(
                "audit row not recorded, the batched writer is stopped: %s %s", row["method"], row["path"]
            )

    def record_call(self, scope: Any, principal: Principal | None, status: int) -> None:
        """Record one management call (who, what, on which id, with what result): every call a key or a
        session made, reads included; an anonymous one only when it changed something and succeeded
        (login, onboarding). Health probes are neither rows nor counted."""
        method = scope["method"]
        if scope["path"] in PROBES and method in READ_METHODS:
            return
        if principal is None and status >= 400:  # anyone could write these without bound: counted, not stored
            self._metrics.audit_refused.labels(refused_reason(status)).inc()
            return
        if principal is None and method in READ_METHODS:  # the public reads (auth/status, openapi.json)
            return
        parts = scope["path"].split("/")
        target = parts[4] if len(parts) > 4 and parts[:3] == ["", "api", "v1"] else None
        actor_kind, actor_id, actor_name = "anonymous", None, None
        if principal is not None and principal.key is not None:
            actor_kind, actor_id, actor_name = "key", principal.key.id, principal.key.name
        elif principal is not None and principal.session is not None:
            actor_kind, actor_id, actor_name = (
                "session",
                principal.session.user.id,
                principal.session.user.username,
            )
        client = scope.get("client")
        self._record(
            {
                "id": uuid7(),
                "ts": now_iso(),
                "actor_kind": actor_kind,
                "actor_id": actor_id,
                "actor_name": actor_name,
                "method": method,
                "path": scope["path"],
                "target_id": target,
                "status": status,
                "request_id": scope.get("state", {}).get("request_id", "-"),
                "client_ip": client[0] if client else None,
            }
        )

    def record_mcp(
        self,
        *,
        actor_kind: str,
        actor_id: str,
        actor_name: str | None,
        tool: str,
        target_id: str | None,
        status: int,
        request_id: str | None,
        client_ip: str | None,
    ) -> None:
        """Record one MCP tool call: who (``actor_kind``: key, channel, or another credential kind /mcp
        accepts), which tool, on which id, and the status its result stands for (200, or the error's)."""
        self._record(
            {
                "id": uuid7(),
                "ts": now_iso(),
                "actor_kind": actor_kind,
                "actor_id": actor_id,
                "actor_name": actor_name,
                "method": MCP_METHOD,
                "path": f"/mcp tools/call {tool}",
                "target_id": target_id,
                "status": status,
                "request_id": request_id or "-",
                "client_ip": client_ip,
            }
        )

    def record_assistant(
        self,
        *,
        conversation_id: str,
        actor_id: str,
        actor_name: str | None,
        tool: str,
        target_id: str | None,
        status: int,
        request_id: str | None,
        client_ip: str | None,
    ) -> None:
        """Record one tool call of the AI assistant (run, or rejected by the operator: 403): actor_kind
        ``assistant`` with the id and name of the operator it acted for (who started or approved it),
        path ``/api/v1/ai/conversations/<id> tools/call <tool>``."""
        self._record(
            {
                "id": uuid7(),
                "ts": now_iso(),
                "actor_kind": "assistant",
                "actor_id": actor_id,
                "actor_name": actor_name,
                "method": ASSISTANT_METHOD,
                "path": f"/api/v1/ai/conversations/{conversation_id} tools/call {tool}",
                "target_id": target_id,
                "status": status,
                "request_id": request_id or "-",
                "client_ip": client_ip,
            }
        )

    def record_webhook(
        self,
        *,
        direction: Literal["inbound", "outbound"],
        webhook_id: str,
        webhook_name: str | None,
        status: int | None,
        target_id: str | None = None,
        event: str | None = None,
        request_id: str | None = None,
        client_ip: str | None = None,
    ) -> None:
        """Record one webhook delivery (source ``webhook`` in the activity feed).

        ``inbound``: a delivery to ``POST /webhook/<webhook_id>`` whose signature was verified (record
        refused ones only as metrics: anyone can send them), ``target_id`` the function it ran, ``status``
        the answer given. ``outbound``: one attempt to deliver ``event`` to a receiver, ``target_id`` the
        delivery's id, ``status`` the receiver's answer or None when it gave none (stored as 502). Never
        the URL, headers, body or signature. Actor: ``webhook`` with the webhook's id and name."""
        if direction == "inbound":
            path = f"/webhook/{webhook_id}"
        else:
            path = f"/api/v1/webhooks/{webhook_id} deliver {event or '-'}"
        self._record(
            {
                "id": uuid7(),
                "ts": now_iso(),
                "actor_kind": "webhook",
                "actor_id": webhook_id,
                "actor_name": webhook_name,
                "method": WEBHOOK_METHOD,
                "path": path,
                "target_id": target_id,
                "status": NO_ANSWER_STATUS if status is None else status,
                "request_id": request_id or "-",
                "client_ip": client_ip,
            }
        )
