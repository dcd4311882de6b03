"""The audit trail of management calls: who called (key, session or anonymous), what (method, path,
the id it names), the answer's status. The guard (orvad/auth/guard.py) tells it of every
state-changing call once answered; rows go to the store through the batched writer.

Every MCP tool call (operator and channel mode) is a row too (``record_mcp``): method ``MCP``, path
``/mcp tools/call <tool>``, the actor the credential names (a key, a channel, later an OAuth client).

Anonymous refused calls get no row (anyone who reaches the port could write them without bound):
they are counted by reason in ``orva_audit_refused_total`` (orvad/store/audit.py ``refused_reason``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orvad.clock import now_iso
from orvad.ids import uuid7
from orvad.services.metrics import Metrics
from orvad.store.audit import AuditStore, refused_reason

MCP_METHOD = "MCP"  # the audit rows of /mcp tool calls (GET /api/v1/audit-log?method=MCP)
ASSISTANT_METHOD = "AI"  # the AI assistant's tool calls (GET /api/v1/audit-log?method=AI)

if TYPE_CHECKING:
    from orvad.auth.guard import Principal


class AuditTrail:
    def __init__(self, store: AuditStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    def record_call(self, scope: Any, principal: Principal | None, status: int) -> None:
        """Record one state-changing management call (who, what, on which id, with what result)."""
        if principal is None and status >= 400:  # anyone could write these without bound: counted, not stored
            self._metrics.audit_refused.labels(refused_reason(status)).inc()
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
        self._store.record(
            {
                "id": uuid7(),
                "ts": now_iso(),
                "actor_kind": actor_kind,
                "actor_id": actor_id,
                "actor_name": actor_name,
                "method": scope["method"],
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
        self._store.record(
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
        self._store.record(
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
