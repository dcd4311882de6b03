"""Hourly retention: expired sessions, executions older than ``log_retention_days`` (their logs and captured
requests go with them: ON DELETE CASCADE), replay signatures
past their window, audit rows older than ``audit_retention_days`` (docs/CONFIGURATION.md). Runs as
one background task of the daemon (orvad/tasks.py), cancelled at stop."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from orvad.clock import iso, now_iso, utcnow
from orvad.store.audit import AuditStore
from orvad.store.auth import AuthStore
from orvad.store.executions import ExecutionStore
from orvad.store.replay import ReplayStore

log = logging.getLogger(__name__)

EVERY_S = 3600.0


class Housekeeping:
    def __init__(
        self,
        *,
        auth: AuthStore,
        executions: ExecutionStore,
        replays: ReplayStore,
        audit: AuditStore,
        log_retention_days: int,
        audit_retention_days: int,
    ) -> None:
        self._auth = auth
        self._executions = executions
        self._replays = replays
        self._audit = audit
        self._log_retention_days = log_retention_days
        self._audit_retention_days = audit_retention_days

    async def run(self) -> None:
        while True:
            await self.once()
            await asyncio.sleep(EVERY_S)

    async def once(self) -> None:
        removed = await self._auth.delete_expired_sessions(now_iso())
        if removed:
            log.info("removed expired sessions", extra={"count": removed})
        cutoff = iso(utcnow() - timedelta(days=self._log_retention_days))
        expired = await self._executions.delete_older_than(cutoff)
        await self._replays.purge(time.time())
        if expired:
            log.info("removed old executions", extra={"count": expired})
        pruned = await self._audit.delete_older_than(
            iso(utcnow() - timedelta(days=self._audit_retention_days))
        )
        if pruned:
            log.info("removed old audit rows", extra={"count": pruned})
