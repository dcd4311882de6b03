"""The daemon's single object graph: store, auth services and background work, started and stopped in order."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from orvad.auth.keys import KeyService
from orvad.auth.sessions import SessionService
from orvad.auth.throttle import LoginThrottle
from orvad.builder.build import Builder
from orvad.bus import Bus
from orvad.clock import now_iso
from orvad.config import Settings
from orvad.functions import FunctionService, RuntimeLookup
from orvad.ids import uuid7
from orvad.metrics import Metrics
from orvad.poolconfig import PoolConfigService
from orvad.routing import RouteService
from orvad.runtimes import discover as discover_runtimes
from orvad.secrets import SecretService, load_master_key
from orvad.store.audit import AuditStore
from orvad.store.auth import AuthStore
from orvad.store.batch import BatchWriter
from orvad.store.db import Database, migration_files
from orvad.store.executions import ExecutionStore
from orvad.store.functions import Function, FunctionStore
from orvad.store.pools import PoolConfigStore
from orvad.store.routes import RouteStore
from orvad.store.secrets import SecretStore

log = logging.getLogger(__name__)

_HOUSEKEEPING_EVERY_S = 3600.0


class Daemon:
    def __init__(self, settings: Settings, runtimes: RuntimeLookup | None = None) -> None:
        self.settings = settings
        self.db = Database(settings.db_path)
        self.batch = BatchWriter(self.db)
        self.bus = Bus()
        self.auth_store = AuthStore(self.db, self.batch)
        self.keys = KeyService(self.auth_store)
        self.sessions = SessionService(self.auth_store, settings.session_days)
        self.login_throttle = LoginThrottle(settings.login_max_failures, settings.login_window_s)
        self.runtimes = runtimes if runtimes is not None else discover_runtimes()
        self.function_store = FunctionStore(self.db, self.batch)
        self.functions = FunctionService(self.function_store, self.runtimes)
        self.routes = RouteService(RouteStore(self.db))
        self.pool_configs = PoolConfigService(PoolConfigStore(self.db))
        self.executions = ExecutionStore(self.db, self.batch)
        self.audit = AuditStore(self.db, self.batch)
        self.metrics = Metrics()
        self._secret_store = SecretStore(self.db)
        self.secrets: SecretService  # needs the master key, read at start()
        self.builder = Builder(
            root=settings.data_dir / "functions", store=self.function_store, functions=self.functions, bus=self.bus,
            language_of=self.runtimes.language_of, interpreter_of=self.runtimes.interpreter_of, install=None,
            concurrency=settings.build_concurrency, backlog=settings.build_backlog, timeout_s=settings.build_timeout_s,
            versions_kept=settings.versions_kept,
        )
        self.functions.on_delete.append(self._function_deleted)
        self.startup_complete = False
        self.bootstrap_key: str | None = None  # plaintext, only on the start that minted it
        self._started = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def admin_key_file(self) -> os.PathLike[str]:
        return self.settings.data_dir / "admin.key"

    def uptime_s(self) -> float:
        return round(time.monotonic() - self._started, 3)

    async def start(self) -> None:
        self._prepare_data_dir()
        self.secrets = SecretService(self._secret_store, load_master_key(self.settings.data_dir / "master.key"))
        await self.db.open()
        self.batch.start()
        await self.keys.load()
        self.bootstrap_key = await self.keys.ensure_bootstrap(self.settings.data_dir / "admin.key")
        await self.functions.load()
        await self.routes.load()
        await self.pool_configs.load()
        await self.builder.start()
        self._tasks.append(asyncio.create_task(self._housekeeping(), name="orva-housekeeping"))
        self.startup_complete = True
        log.info("orvad started", extra={"data_dir": str(self.settings.data_dir),
                                         "schema_version": self.db.schema_version})

    async def stop(self) -> None:
        """Stop background loops, write every queued row, close the database."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.builder.stop()
        await self.batch.stop()
        await self.db.close()
        log.info("orvad stopped", extra={"rows_written": self.batch.rows_written})

    async def health_checks(self) -> dict[str, dict[str, Any]]:
        checks: dict[str, dict[str, Any]] = {
            "startup": {"ok": self.startup_complete, "detail": "complete" if self.startup_complete else "starting"},
        }
        try:
            await self.db.ping()
            checks["database"] = {"ok": True, "detail": str(self.settings.db_path)}
        except Exception as exc:  # any failure here is the answer, not an error
            checks["database"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        expected = len(migration_files())
        checks["migrations"] = {"ok": self.db.schema_version == expected,
                                "detail": f"schema {self.db.schema_version} of {expected}"}
        return checks

    def audit_call(self, scope: Any, principal: Any, status: int) -> None:
        """Record one state-changing management call (who, what, on which id, with what result)."""
        parts = scope["path"].split("/")
        target = parts[4] if len(parts) > 4 and parts[:3] == ["", "api", "v1"] else None
        actor_kind, actor_id, actor_name = "anonymous", None, None
        if principal is not None and principal.key is not None:
            actor_kind, actor_id, actor_name = "key", principal.key.id, principal.key.name
        elif principal is not None and principal.session is not None:
            actor_kind, actor_id, actor_name = "session", principal.session.user.id, principal.session.user.username
        client = scope.get("client")
        self.audit.record({
            "id": uuid7(), "ts": now_iso(), "actor_kind": actor_kind, "actor_id": actor_id, "actor_name": actor_name,
            "method": scope["method"], "path": scope["path"], "target_id": target, "status": status,
            "request_id": scope.get("state", {}).get("request_id", "-"), "client_ip": client[0] if client else None,
        })

    async def _function_deleted(self, fn: Function) -> None:
        self.routes.forget_function(fn.id)
        self.pool_configs.forget(fn.id)
        await self.builder.remove_function(fn.id)

    def _prepare_data_dir(self) -> None:
        data_dir = self.settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if data_dir.stat().st_mode & 0o077:
            log.warning("tightening data dir permissions to 0700", extra={"path": str(data_dir)})
            data_dir.chmod(0o700)

    async def _housekeeping(self) -> None:
        while True:
            removed = await self.auth_store.delete_expired_sessions(now_iso())
            if removed:
                log.info("removed expired sessions", extra={"count": removed})
            await asyncio.sleep(_HOUSEKEEPING_EVERY_S)
