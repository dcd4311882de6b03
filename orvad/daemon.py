"""The daemon's single object graph: store, auth services and background work, started and stopped in order."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orvad import __version__
from orvad.assistant.provider_service import ProviderService
from orvad.assistant.service import AssistantService
from orvad.auth.audit import AuditTrail
from orvad.auth.keys import KeyService
from orvad.auth.sessions import SessionService
from orvad.auth.throttle import LoginThrottle
from orvad.backup import BackupService
from orvad.backup.running import hold as hold_running_lock
from orvad.backup.swap import RestoreNotLoaded
from orvad.builder.archive import MAX_BYTES, MAX_FILES
from orvad.builder.blob_bucket import S3Bucket
from orvad.builder.build import Builder
from orvad.builder.installer import BuildNetwork, sandboxed_installer
from orvad.builder.safetree import ENTRY_BYTES
from orvad.builder.shared import SharedVersions
from orvad.clock import FileClock, WallClock, parse_iso
from orvad.cluster import NodeRegistry, default_address, default_node_id
from orvad.cluster.forward import Forwarder
from orvad.config import Settings
from orvad.cron import CronService
from orvad.host.buildproxy import AllowList, BuildProxy, Upstream, discover_registries
from orvad.host.egress import EgressNetwork
from orvad.host.hostcheck import (
    DataDirUnreachable,
    HostCheck,
    check_host,
    code_path_check,
    disk_check,
    favor_cgroup_migrations,
    load_sandbox_data,
)
from orvad.http.drain import Drain
from orvad.http.origins import Origins
from orvad.invoke import Collaborators, Invoker
from orvad.invoke.f2f import FunctionCalls
from orvad.invoke.limits import ConcurrencyGate, RateLimiter
from orvad.invoke.signatures import SignatureChecker
from orvad.jobs import JobService
from orvad.kv import KvService
from orvad.pool.manager import PoolManager
from orvad.sdk.calls import SdkRouter
from orvad.services.bus import Bus
from orvad.services.changes import Changes
from orvad.services.channels import ChannelService
from orvad.services.firewall import FirewallService
from orvad.services.functions import FunctionService
from orvad.services.housekeeping import Housekeeping
from orvad.services.metrics import Metrics
from orvad.services.metrics_history import MetricsHistory
from orvad.services.oauth import OAuthService
from orvad.services.poolconfigs import PoolConfigService
from orvad.services.reconciler import Reconciler
from orvad.services.routing import RouteService, RouteTable
from orvad.services.runtimes import RuntimeCatalog, with_installed_binds
from orvad.services.runtimes import discover as discover_runtimes
from orvad.services.secrets import SecretService, load_master_key
from orvad.services.spares import MakeSpare, SpareJails
from orvad.services.spawner import Spawner
from orvad.store.ai_providers import AiProviderStore
from orvad.store.audit import AuditStore
from orvad.store.auth import AuthStore
from orvad.store.batch import BatchWriter
from orvad.store.captures import CaptureStore
from orvad.store.channels import ChannelStore
from orvad.store.cluster_nodes import NodeStore
from orvad.store.cron import CronStore
from orvad.store.db import SqliteDatabase, migration_files
from orvad.store.drivers import database_for, storage_for
from orvad.store.executions import ExecutionStore
from orvad.store.firewall import FirewallStore
from orvad.store.functions import FunctionStore
from orvad.store.inbound_webhooks import InboundWebhookStore
from orvad.store.jobs import JobStore
from orvad.store.kv import KvStore
from orvad.store.oauth import OAuthStore
from orvad.store.pools import PoolConfigStore
from orvad.store.replay import ReplayStore
from orvad.store.routes import RouteStore
from orvad.store.secrets import SecretStore
from orvad.store.traces import TraceStore
from orvad.store.version_blobs import VersionBlobStore
from orvad.store.webhooks import WebhookStore
from orvad.tasks import Tasks, every
from orvad.traces.service import TraceService
from orvad.urls import redact_url
from orvad.webhooks.inbound import InboundWebhooks
from orvad.webhooks.outbound import OutboundWebhooks

if TYPE_CHECKING:
    from orvad.cluster.propagation import Propagation  # imports asyncpg: only on PostgreSQL at run time

log = logging.getLogger(__name__)

DATA_DIR_MODE = 0o711
RESTORE_QUIESCE_S = 10.0  # a restore waits this long for running requests before it reloads


class Daemon:
    def __init__(self, settings: Settings, runtimes: RuntimeCatalog | None = None) -> None:
        self.settings = settings
        self.db = database_for(settings.database_url, settings.data_dir)
        # issue 25: on PostgreSQL each write NOTIFYs the caches it changed (orvad/cluster/propagation.py)
        if settings.database_url:
            from orvad.cluster.propagation import notifying

            self.db = notifying(self.db)
        self.batch = BatchWriter(self.db)
        self.bus = Bus()
        self.auth_store = AuthStore(self.db, self.batch)
        self.keys = KeyService(self.auth_store)
        self.sessions = SessionService(
            self.auth_store, settings.session_days, secure_cookies=settings.secure_cookies
        )
        self.login_throttle = LoginThrottle(settings.login_max_failures, settings.login_window_s)
        self.runtimes = runtimes if runtimes is not None else discover_runtimes(settings.data_dir)
        self.runtimes.fallback = settings.runtime_fallback
        self.changes = (
            Changes()
        )  # the one channel services publish typed changes on (orvad/services/changes.py)
        self.function_store = FunctionStore(self.db, self.batch)
        self.functions = FunctionService(self.function_store, self.runtimes, self.changes)
        self.channels = ChannelService(ChannelStore(self.db, self.batch), self.functions)  # issue 21
        self.oauth = OAuthService(OAuthStore(self.db, self.batch))  # issue 21: remote MCP connectors
        self.ai_providers = ProviderService(
            AiProviderStore(self.db)
        )  # issue 22: keys sealed, unlocked at start
        # issue 23: the handlers' SDK calls (orvad/sdk/calls.py); each service registers its ops on it
        self.sdk = SdkRouter()
        self.sdk.register_builtins()
        self.kv = KvService(  # issue 23: each function's KV state (orvad/kv/)
            KvStore(self.db),
            max_keys=settings.kv_max_keys,
            max_bytes=settings.kv_max_bytes,
            sweep_s=settings.kv_sweep_s,
        )
        self.kv.register(self.sdk)  # kv.get, kv.put, ... kv.cas: each on the calling function's own keys
        # issue 23: traces (orvad/traces/): user spans from handlers, the trace list and span trees
        self.traces = TraceService(TraceStore(self.db, self.batch), settings.trace_sdk_spans)
        if settings.trace_sdk_spans:  # every SDK call a span of its invocation (orvad/sdk/calls.py)
            self.sdk.on_span = self.traces.sdk_call
        self.sdk.register("trace.span", self.traces.sdk_span)
        self.routes = RouteService(RouteStore(self.db))
        self.pool_configs = PoolConfigService(PoolConfigStore(self.db), self.changes)
        self.executions = ExecutionStore(self.db, self.batch)
        self.captures = CaptureStore(self.db)  # captured requests and fixtures (issue 23, replay)
        self.audit = AuditStore(self.db, self.batch)
        # issue 24: the SQLite file's figures and vacuum (store/maintenance.py); PostgreSQL vacuums itself
        self.storage = storage_for(self.db)
        self.pools = PoolManager(
            config_of=self.pool_configs.get,
            memory_cap_mb=_memory_cap_mb(settings.memory_share),
            max_requests=settings.worker_max_requests,
        )
        # which pool serves which version, and what each change means for pools (orvad/services/reconciler.py)
        self.reconciler = Reconciler(
            pools=self.pools,
            functions=self.functions,
            pool_configs=self.pool_configs,
            routes=self.routes,
            bus=self.bus,
            code_hash_of=self._code_hash_of,  # issue 25: versions activated on another node
        )
        self.metrics = Metrics(
            pool_rows=self.pools.rows,
            reserved_bytes=lambda: self.pools.reserved_mb * 1024 * 1024,
            builds=self._build_queue_state,
        )
        self.metrics.watch_store(
            lambda: self.batch.pending, lambda: self.batch.rows_dropped, lambda: self.batch.rows_refused
        )
        self.metrics_history = MetricsHistory(self.metrics.snapshot, settings.metrics_sample_s)
        # the guard tells it of management calls; each committed row is an `activity` event (issue 24)
        self.audit_trail = AuditTrail(self.audit, self.metrics, self.bus.publish)
        self.host: HostCheck | None = None
        self.egress = EgressNetwork(
            str(settings.port),
            settings.egress_cidr,
            deny_private=settings.egress_deny_private,
            allow_cidrs=settings.egress_allow_cidrs,
            seed=str(settings.data_dir),
        )
        # issue 24: egress rules (deny list, allow lists, DNS servers) in the egress table's nft sets
        self.firewall = FirewallService(FirewallStore(self.db), self.egress, settings.data_dir)
        self.spawner: Spawner  # needs the host check, done at start()
        self.drain = Drain()  # SIGTERM: refuse new requests, give running ones the grace (orvad.cli)
        self.rate_limiter = RateLimiter()
        self.concurrency = ConcurrencyGate()
        self.replays = ReplayStore(self.db, self.batch)
        self.signatures = SignatureChecker(persist=self.replays.remember)
        if settings.database_url:  # a cluster: a signature accepted on one node is a replay on every node
            self.signatures.shared = self.replays
        self.housekeeping = Housekeeping(
            auth=self.auth_store,
            executions=self.executions,
            replays=self.replays,
            audit=self.audit,
            log_retention_days=settings.log_retention_days,
            audit_retention_days=settings.audit_retention_days,
        )
        self.origins = Origins.from_settings(
            host=settings.host,
            port=settings.port,
            public_url=settings.public_url,
            allowed_hosts=settings.allowed_hosts,
            functions_origin=settings.functions_origin,
        )
        self.invoker = Invoker(
            Collaborators(
                functions=self.functions,
                routes=self.routes,
                pools=self.reconciler,
                executions=self.executions,
                bus=self.bus,
                metrics=self.metrics,
                rate_limiter=self.rate_limiter,
                concurrency=self.concurrency,
                signatures=self.signatures,
                signing_secret=lambda function_id: self.secrets.signing_secret(function_id),
                keys=self.keys,
                sessions=self.sessions,
                origins=self.origins,
                drain=self.drain,
                trusted_networks=settings.trusted_networks,
            )
        )
        # issue 23: the optional OTLP/HTTP export of the same spans (OpenTelemetry imported only when set)
        self.otlp: Any = None
        if settings.otlp_endpoint:
            from orvad.traces.otlp import OtlpExport

            self.otlp = self.traces.exporter = OtlpExport(settings.otlp_endpoint)
            self.invoker.settler.on_execution(self.otlp.execution)
        # issue 23: function-to-function calls, the SDK's `invoke` (orvad/invoke/f2f.py)
        self.calls = FunctionCalls(self.functions, self.invoker, settings.max_body_bytes)
        self.sdk.register("invoke", self.calls.sdk_invoke)
        # issue 23: jobs, durable background invocations (orvad/jobs/): API, SDK, Event invocations, cron
        self.jobs = JobService(
            JobStore(self.db),
            self.functions,
            self.invoker,
            # per function: its max_concurrency, else twice what its pool serves at once (the second half
            # waits in the pool's queue, so a slot never idles while the runner books the next attempt)
            capacity_of=lambda fn: (
                fn.max_concurrency
                or 2
                * self.pool_configs.get(fn.id).max_warm
                * max(1, self.pool_configs.get(fn.id).target_concurrency)
            ),
            concurrency=settings.jobs_concurrency,
            lease_s=settings.jobs_lease_s,
            backoff_base_s=settings.jobs_backoff_base_s,
            backoff_max_s=settings.jobs_backoff_max_s,
            max_payload_bytes=settings.max_body_bytes,
            retention_s=settings.jobs_retention_s,
        )
        self.invoker.enqueue_event = self.jobs.enqueue_request
        self.sdk.register("jobs.enqueue", self.jobs.sdk_enqueue)
        self.sdk.register("jobs.get", self.jobs.sdk_get)
        self.sdk.register("jobs.list", self.jobs.sdk_list)
        # issue 24: inbound webhooks, POST /webhook/{id} checked by its sender's signature (orvad/webhooks/inbound.py)
        self.inbound_webhooks = InboundWebhooks(
            InboundWebhookStore(self.db, self.batch),
            self.functions,
            self.signatures,
            self.invoker,
            enqueue=self.jobs.enqueue_request,
            base_url=settings.functions_origin
            or settings.public_url
            or f"http://{settings.host}:{settings.port}",
            audit=self.audit_trail.record_webhook,  # each verified delivery: an activity row (source webhook)
        )
        # issue 23: schedules, each run a job (orvad/cron/); its clock: the system's, or a test's file
        self.cron = CronService(
            CronStore(self.db),
            clock=_cron_clock(settings.test_clock_file),
            max_per_function=settings.cron_max_per_function,
            jobs=self.jobs,
        )
        self.cron.register(self.sdk, self.functions.get)  # cron.upsert, cron.list, cron.delete
        self._secret_store = SecretStore(self.db)
        self.secrets: SecretService  # needs the master key, read at start()
        # issue 25: build claims and versions shared through the database (orvad/builder/shared.py); blobs
        # are stored on PostgreSQL only (one SQLite node never fetches its own versions), their bytes in the
        # database or in ORVA_BLOB_URL's bucket (orvad/builder/blob_bucket.py; checked at start)
        self.shared_versions = SharedVersions(
            VersionBlobStore(self.db),
            root=settings.data_dir / "functions",
            node_id=settings.node_id or default_node_id(settings.data_dir),
            enabled=bool(settings.database_url),
            max_files=max(MAX_FILES, settings.build_disk_mb * 1024 * 1024 // ENTRY_BYTES),
            max_bytes=max(MAX_BYTES, settings.build_disk_mb * 1024 * 1024),
            bucket=S3Bucket.from_url(settings.blob_url) if settings.blob_url else None,
        )
        self.builder = Builder(
            root=settings.data_dir / "functions",
            store=self.function_store,
            functions=self.functions,
            bus=self.bus,
            language_of=self.runtimes.language_of,
            interpreter_of=self.runtimes.interpreter_of,
            install=None,
            concurrency=settings.build_concurrency,
            backlog=settings.build_backlog,
            timeout_s=settings.build_timeout_s,
            versions_kept=settings.versions_kept,
            disk_mb=settings.build_disk_mb,
            disk_floor_percent=settings.disk_free_floor_percent,
            changes=self.changes,
            versions=self.reconciler,
            observe_build=self.metrics.observe_build,
            ensure_runtime=self.runtimes.ensure_for_build,  # node22/node24: installed by a first build
            shared=self.shared_versions,
        )
        self.changes.subscribe(self.reconciler.apply)  # pools first (drained, replaced, warmed) ...
        self.changes.subscribe(self.builder.apply)  # ... then a deleted function's files
        self.changes.subscribe(self.jobs.apply)  # a deleted function's waiting jobs end dead
        self.changes.subscribe(self.inbound_webhooks.apply)  # a deleted function's webhooks stop answering
        # issue 24: outbound webhooks (orvad/webhooks/outbound.py): events from the seams that exist, each
        # only appended to a bounded queue on its publisher's path; the sender task writes and sends them
        self.webhooks = OutboundWebhooks(
            WebhookStore(self.db),
            self.functions,
            bus=self.bus,  # deployment.succeeded|failed from the builder's deployment events
            retry_base_s=settings.webhook_retry_base_s,
            retry_max_s=settings.webhook_retry_max_s,
            retry_window_s=settings.webhook_retry_window_s,
            timeout_s=settings.webhook_timeout_s,
            per_receiver=settings.webhook_concurrency,
            queue_max=settings.webhook_queue_max,
            record_attempt=self.audit_trail.record_webhook,  # each attempt in the activity feed
        )
        self.metrics.registry.register(self.webhooks.collector())
        self.changes.subscribe(self.webhooks.on_change)  # function.created|updated|deleted
        self.invoker.settler.on_execution(self.webhooks.on_execution)  # execution.error
        self.jobs.on_end = self.webhooks.on_job_end  # job.succeeded|failed, cron.failed
        self.startup_complete = False
        self.bootstrap_key: str | None = None  # plaintext, only on the start that minted it
        self._started = time.monotonic()
        self.tasks = Tasks()  # background loops and work that outlives its caller (orvad/tasks.py)
        self.assistant = AssistantService(self)  # issue 22: conversations and turns (turns run in self.tasks)
        # issue 24: backup and restore (orvad/backup/); a restore reloads this graph through reload_from
        self.backups = BackupService(
            settings.data_dir,
            version=__version__,
            newest_schema=lambda: len(migration_files()),
            flush=self.batch.flush,
            reload=self.reload_from,
            # scheduled backups are of the SQLite file; on PostgreSQL pg_dump does it (docs/CLUSTER.md)
            backup_dir=Path(settings.backup_dir).expanduser().absolute()
            if settings.backup_dir and not settings.database_url
            else None,
            every_s=settings.backup_every,
            keep=settings.backup_keep,
            max_bytes=settings.restore_max_bytes,
        )
        self._running_lock: int | None = None  # orvad.lock, held shared while this orvad runs
        # issue 25: this node's row in the node registry, refreshed by a heartbeat task (orvad/cluster/)
        self.nodes = NodeRegistry(
            NodeStore(self.db),
            node_id=settings.node_id or default_node_id(settings.data_dir),
            address=settings.node_address or default_address(settings.host, settings.port),
            version=__version__,
            heartbeat_s=settings.heartbeat_s,
            pools=self._warm_pools,
            load=self._load_figures,
        )
        # issue 25: other nodes' writes reach this node's caches (orvad/cluster/propagation.py, PostgreSQL only);
        # their typed changes go to the node-local subscribers only (the writer's node did the once-only ones)
        self.remote_changes = Changes()
        for local in (self.reconciler.apply, self.builder.apply, self.inbound_webhooks.apply):
            self.remote_changes.subscribe(local)
        self.propagation: Propagation | None = self._propagation() if settings.database_url else None
        # issue 25: a synchronous call this node has no warm worker for goes to a node that has an idle one
        # (orvad/cluster/forward.py; the registry's view of the other nodes' pools, in memory)
        self.forwarder: Forwarder | None = None
        if settings.database_url and settings.forward_cold:
            self.forwarder = Forwarder(self.nodes, self._warm_here, settings.max_body_bytes)
            self.invoker.forward = self.forwarder
        # issue 25, leases (docs/CLUSTER.md "Leases: work that runs once"): a job lease names this run, and
        # the lease of a run that is not live (3 heartbeats missed) is taken, looked for every heartbeat;
        # cron knows since when the cluster is up; the outbound sender gives back claims at start only alone
        self.jobs.owner = self.nodes.run_id
        self.jobs.live_owners = self.nodes.live_runs
        self.jobs.recover_s = min(self.jobs.recover_s, max(0.5, settings.heartbeat_s))
        self.cron.cluster_up_s = self._cluster_up_s
        self.webhooks.alone = self._alone

    def _warm_here(self, function_id: str) -> bool:
        pool = self.pools.pools.get(function_id)
        return pool is not None and pool.size > 0

    def _cluster_up_s(self) -> float:
        """Seconds the live nodes were up before this one started (the registry's view, no database read)."""
        starts = [parse_iso(n.started_at).timestamp() for n in self.nodes.view if n.status == "alive"]
        return max(0.0, self.nodes.started - min(starts)) if starts else 0.0

    async def _alone(self) -> bool:
        """No other node is live (the registry, read now)."""
        return set(await self.nodes.live_runs()) <= {self.nodes.node_id}

    @property
    def database_label(self) -> str:
        """Which database this orvad uses, for health checks and logs (a URL's password never shown)."""
        if isinstance(self.db, SqliteDatabase):
            return str(self.db.path)
        return redact_url(self.settings.database_url)

    def _propagation(self) -> Propagation:
        """The change listener and its cache reloads (orvad/cluster/propagation.py, reloads.py)."""
        from orvad.cluster.propagation import NotifyingPgDatabase, Propagation
        from orvad.cluster.reloads import Caches

        assert isinstance(self.db, NotifyingPgDatabase)
        caches = Caches(
            remote=self.remote_changes,
            functions=self.functions,
            function_store=self.function_store,
            keys=self.keys,
            routes=self.routes,
            secrets=lambda: self.secrets,
            secret_store=self._secret_store,
            pool_configs=self.pool_configs,
            channels=self.channels,
            oauth=self.oauth,
            firewall=self.firewall,
            inbound_webhooks=self.inbound_webhooks,
            webhooks=self.webhooks,
            cron=self.cron,
        )
        return Propagation(
            self.db, caches.reloads(), self.bus, self.nodes.node_id, registry=self.metrics.registry
        )

    async def _code_hash_of(self, deployment_id: str) -> str | None:
        dep = await self.function_store.deployment(deployment_id)
        return dep.code_hash if dep is not None else None

    def _warm_pools(self) -> dict[str, Any]:
        """The node registry's pools: per function with live workers, its name and worker counts."""
        return {
            r["function_id"]: {"name": r["function_name"], "workers": r["workers"], "idle": r["idle"]}
            for r in self.pools.rows()
            if r["workers"]
        }

    def _load_figures(self) -> dict[str, Any]:
        """The node registry's load: invocations holding or waiting for a slot, requests, 1-min loadavg."""
        rows = self.pools.rows()
        return {
            "invocations": sum(int(r["inflight"]) + int(r["queue_depth"]) for r in rows),
            "requests": len(self.drain.work),
            "workers": sum(int(r["workers"]) for r in rows),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count() or 1,
        }

    def _build_queue_state(self) -> dict[str, int]:
        return {
            "running": len(self.builder.queue.running),
            "queued": self.builder.queue.depth,
            "workers": self.settings.build_concurrency,
        }

    @property
    def admin_key_file(self) -> os.PathLike[str]:
        return self.settings.data_dir / "admin.key"

    def uptime_s(self) -> float:
        return round(time.monotonic() - self._started, 3)

    async def start(self) -> None:
        await self.shared_versions.check()  # ORVA_BLOB_URL's bucket: BucketUnusable refuses the start
        self._prepare_data_dir()
        self._running_lock = hold_running_lock(self.settings.data_dir)  # offline backup/restore refuse
        await asyncio.to_thread(self.backups.clean_workspaces)
        self._unlock_master_key()
        self.host = await asyncio.to_thread(check_host)
        self.builder.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.host.checks["code_path"] = await asyncio.to_thread(
            code_path_check, self.builder.root, self.host.facts
        )
        if not self.host.checks["code_path"]["ok"] and self.host.facts is not None:
            raise DataDirUnreachable(self.host.checks["code_path"]["detail"])
        if self.host.facts is not None and self.host.facts.cgroup != "none":
            self.host.checks["cgroup_migrations"] = (
                await asyncio.to_thread(favor_cgroup_migrations)
                if self.settings.cgroup_favor_dynmods
                else {
                    "ok": True,
                    "required": False,
                    "detail": "favordynmods left as it is (ORVA_CGROUP_FAVOR_DYNMODS=false)",
                }
            )
        for warning in self.host.warnings:
            log.error("SANDBOX LIMIT NOT ENFORCED: " + warning)
        sandbox_data = with_installed_binds(load_sandbox_data(), self.settings.data_dir)
        if self.host.facts is not None:
            registries = discover_registries()
            allow = AllowList.parse(self.settings.build_allow_hosts, registries.hosts())
            log.info(
                "builds reach the network only through the build proxy",
                extra={"allow_hosts": allow.describe()},
            )
            network = BuildNetwork(
                self.egress,
                BuildProxy(allow, Upstream.from_env()),
                registries.env(),
                tuple(n.strip() for n in self.settings.build_env.split(",") if n.strip()),
            )
            self.builder.install = sandboxed_installer(
                self.host.facts,
                lambda language: sandbox_data.binds_for(language, build=True),
                sandbox_data.limits,
                network,
            )
        if self.host.facts is not None and os.geteuid() == 0 and shutil.which("nft") and shutil.which("ip"):
            await self.egress.start()
        else:
            self.egress.detail = "egress needs root, nft (Debian's nftables) and ip (iproute2)"
        self.spawner = Spawner(
            host=self.host.facts,
            data=sandbox_data,
            runtimes=self.runtimes,
            egress=self.egress,
            secrets=self.secrets,
            version_dir=self.builder.version_dir,
            observe_spawn=lambda runtime, s: self.metrics.spawn.labels(runtime).observe(s),
            log_bytes_per_s=self.settings.worker_log_bytes_per_s,
            observe_log_drop=self.metrics.observe_log_drop,
            tasks=self.tasks,
            sdk=self.sdk,
            firewall=self.firewall,  # egress rules: allow lists and the sandboxes' resolv.conf
            ensure_version=self.shared_versions.ensure,  # issue 25: versions built on another node
            spares=self._spare_jails,
        )
        if self.spawner.spares is not None:
            self.spawner.spares.prepare()
        await self._open_and_load()
        log.info(
            "orvad started",
            extra={"data_dir": str(self.settings.data_dir), "schema_version": self.db.schema_version},
        )

    def _spare_jails(self, make: MakeSpare) -> SpareJails:
        """Issue 26: a jail per runtime started ahead of its cold start (ORVA_SPARE_JAILS; cgroup v1 hosts)."""
        spares = SpareJails(
            folder=self.settings.data_dir / "spares",
            make=make,
            tasks=self.tasks,
            enabled=self.settings.spare_jails
            and self.host is not None
            and self.host.facts is not None
            and self.host.facts.cgroup == "v1",
            observe_used=lambda runtime: self.metrics.spares_used.labels(runtime).inc(),
            fits=self.pools.fits,
        )
        self.pools.spares = spares  # the memory gate counts them and may stop them for a worker
        self.metrics.watch_spares(spares.enabled, spares.waiting)
        return spares

    def _spares(self) -> SpareJails | None:
        """The spawner's spare jails; None before start() made the spawner (a start that failed early)."""
        spawner: Spawner | None = getattr(self, "spawner", None)
        return spawner.spares if spawner is not None else None

    def _spare_jails_check(self) -> dict[str, Any]:
        """Not required: without spares every cold start starts its jail at the request."""
        spares = self._spares()
        if spares is not None and spares.enabled:
            return {"ok": True, "required": False, "detail": f"on: {spares.waiting()} waiting"}
        if not self.settings.spare_jails:
            why = "off (ORVA_SPARE_JAILS=false)"
        elif self.host is None or self.host.facts is None:
            why = "off: no sandbox on this host"
        else:
            why = "off: spare jails need the cgroup v1 layout (cold starts start their jails at the request)"
        return {"ok": True, "required": False, "detail": why}

    def _unlock_master_key(self) -> None:
        master = load_master_key(self.settings.data_dir / "master.key")
        self.secrets = SecretService(self._secret_store, master, self.changes)
        self.ai_providers.unlock(master)  # AI provider keys: the same master key, their own AAD
        self.inbound_webhooks.unlock(master)  # inbound webhooks' secrets: the same, their own AAD
        self.webhooks.unlock(master)  # outbound webhooks' signing secrets: the same, their own AAD

    async def _open_and_load(self) -> None:
        """Open the database and load what it holds into the services; pools, builds and loops start.
        start() runs it once; a restore's reload_from again, on the restored files."""
        await self.db.open()
        self.batch.start()
        await self._load_replay_memory()
        await self.keys.load()
        self.bootstrap_key = await self.keys.ensure_bootstrap(self.settings.data_dir / "admin.key")
        await self.functions.load()
        await self.channels.load()
        await self.oauth.load()
        await self.assistant.load()  # turns a stop left mid-way are marked interrupted
        await self.routes.load()
        await self.inbound_webhooks.load()
        await self.webhooks.load()
        await self.pool_configs.load()
        await self.firewall.load()  # the egress rules are in nftables before any worker starts
        await self.reconciler.start(self.spawner, await self.function_store.active_hashes())
        await self.builder.start()
        self.reconciler.serve_active()
        await self.nodes.register()  # issue 25: this node's row, then a heartbeat every ORVA_HEARTBEAT_S
        self.tasks.start("orva-heartbeat", self.nodes.run())
        if self.propagation is not None:  # issue 25: LISTEN for other nodes' changes and events
            self.tasks.start("orva-propagation", self.propagation.run())
            # a build whose node stopped for good (its upload with it) is failed, not left queued for ever
            self.tasks.start(
                "orva-orphaned-builds",
                every(
                    self.nodes.heartbeat_s,
                    lambda: self.builder.fail_orphans(self.nodes.seen_since()),
                    "failing the builds of gone nodes",
                ),
            )
        self.tasks.start("orva-housekeeping", self.housekeeping.run())
        self.tasks.start("orva-metrics-history", self.metrics_history.run())
        self.tasks.start("orva-kv-sweeper", self.kv.run())  # expired KV keys (ORVA_KV_SWEEP_S)
        self.tasks.start("orva-jobs", self.jobs.run())  # due jobs, leased (orvad/jobs/service.py)
        self.tasks.start("orva-cron", self.cron.run())  # due schedules -> jobs (orvad/cron/service.py)
        self.tasks.start("orva-webhooks", self.webhooks.run())  # the outbox sender (orvad/webhooks/)
        self.tasks.start("orva-firewall", self.firewall.run())  # hostname rules re-resolved by TTL
        if self.backups.scheduled:  # ORVA_BACKUP_DIR: a backup every ORVA_BACKUP_EVERY (orvad/backup/)
            self.tasks.start("orva-backups", self.backups.run())
        self.startup_complete = True

    async def reload_from(self, swap: Callable[[], None], undo: Callable[[], None]) -> None:
        """A restore without a process restart (orvad/backup/service.py): new requests wait (up to
        RequestContext's RESTORE_HOLD_S), running ones get RESTORE_QUIESCE_S; stop the loops, builds and pools,
        write the queued rows, close the database; run ``swap`` in a thread (the restored files replace the
        data dir's); then forget what was loaded and load again as start() does (the previous files when
        ``swap`` failed: it puts them back). Should the restored files not load (a master key or a row
        start() cannot read), everything is stopped again, ``undo`` puts the previous files back, they are
        loaded, and RestoreNotLoaded is raised. Requests arriving meanwhile wait for the reload to end."""
        # requests arriving from now on wait for the reload (RequestContext: Drain.hold); running ones
        # get RESTORE_QUIESCE_S to finish, so none of them meets a closed database
        if not await self.drain.pause(asyncio.current_task(), RESTORE_QUIESCE_S):
            log.warning(
                "requests still running as the restore reloads", extra={"requests": len(self.drain.work)}
            )
        try:
            log.warning("reloading from restored files: loops, builds and pools stop")
            await self._unload()
            try:
                await asyncio.to_thread(swap)
            except BaseException:
                await self._load_again()  # swap put the previous files back
                raise
            try:
                await self._load_again()
            except Exception as exc:
                log.exception("the restored files could not be loaded: the previous ones are put back")
                await self._unload(after_failure=True)
                await asyncio.to_thread(undo)
                await self._load_again()
                raise RestoreNotLoaded(f"{type(exc).__name__}: {exc}") from exc
            log.warning("reloaded from restored files", extra={"schema_version": self.db.schema_version})
        finally:
            self.drain.resume()

    async def _unload(self, *, after_failure: bool = False) -> None:
        """reload_from's stop: loops, builds, pools, queued rows, the database (``after_failure``: of a load
        that stopped part way, so each step may find its part not started)."""
        self.startup_complete = False

        async def replays_close() -> None:
            if self.db.is_open or not after_failure:
                await self.replays.close()

        steps: list[Callable[[], Awaitable[Any]]] = [
            self.tasks.stop,
            lambda: asyncio.gather(self.builder.stop(), self.reconciler.stop()),
            lambda: self.tasks.stop(cancel=False),
            self.storage.close,
            self.batch.stop,
            replays_close,
            self.db.close,
        ]
        for step in steps:
            try:
                await step()
            except Exception:
                if not after_failure:
                    raise
                log.exception("stopping a partly loaded state")

    async def _load_again(self) -> None:
        """reload_from's load: the in-memory state forgotten in place (the invoke path, the guard and the
        API hold these objects, never copies), then start()'s ``_open_and_load``."""
        self.functions._by_id.clear()
        self.functions._by_name.clear()
        self.routes.table = RouteTable()
        self.pool_configs._configs.clear()
        self.webhooks._receivers.clear()  # load() adds to it: a webhook made after the backup stayed
        self.webhooks._refresh()
        # the job runner's stop leaves it stopping (no claimed job would start again) and its claims
        # belong to the database just closed
        self.jobs._stopping = False
        self.jobs._ready.clear()
        self.jobs._held.clear()
        self.jobs._finished.clear()
        self.jobs._started.clear()
        # the build queue's waiting ids are the closed database's: builder.start() submits again what the
        # loaded one has unfinished (kept, they filled the backlog and that start raised BUILD_QUEUE_FULL)
        self.builder.queue._waiting.clear()
        self.builder.queue._size = 0
        self._unlock_master_key()
        self.spawner._secrets = self.secrets
        await self._open_and_load()

    async def stop(self) -> None:
        """Stop background loops, builds and workers (together: neither waits for the other), write
        every queued row, close the database. The log line says how long each step took."""
        took: dict[str, float] = {}
        mark = time.monotonic()

        async def timed(name: str, step: Any) -> None:
            await step
            took[name] = round((time.monotonic() - mark) * 1000, 1)

        await self.tasks.stop()  # the loops
        await self.nodes.leave()  # the node registry's row says left (never raises)
        await asyncio.gather(
            timed("builds", self.builder.stop()),
            timed("workers", self.reconciler.stop()),
            spares.close() if (spares := self._spares()) is not None else asyncio.sleep(0),
        )
        await self.tasks.stop(cancel=False)  # what the workers' exits started (their namespaces' release)
        await timed("egress", self.egress.stop())
        await self.ai_providers.aclose()  # the AI providers' SDK clients
        if self.forwarder is not None:
            await self.forwarder.aclose()  # its connections to the other nodes
        await self.storage.close()  # a running vacuum ends first (it holds the writer's thread)
        await timed("rows", self.batch.stop())
        if self.otlp is not None:  # the spans still queued for the collector
            await timed("otlp", asyncio.to_thread(self.otlp.shutdown))
        await self.replays.close()  # every accepted signature is on disk: the next start may trust the memory
        await timed("database", self.db.close())
        if self._running_lock is not None:  # offline `orvad backup` / `orvad restore` may run now
            os.close(self._running_lock)
            self._running_lock = None
        log.info("orvad stopped", extra={"rows_written": self.batch.rows_written, "stop_ms": took})

    async def _load_replay_memory(self) -> None:
        """Signatures accepted in their window by earlier runs; if the memory may have gaps (a crash
        lost the last batch, or it cannot be read), timestamps older than this start are refused."""
        started = time.time()
        live, complete = await self.replays.open(started)
        if not complete:
            log.warning(
                "signature replay memory may be incomplete (first start with it, or the last run did not stop "
                "cleanly): signed requests stamped before this start are refused"
            )
        self.signatures.load(live, complete=complete, started=started)

    async def health_checks(self) -> dict[str, dict[str, Any]]:
        checks: dict[str, dict[str, Any]] = {
            "startup": {
                "ok": self.startup_complete,
                "detail": "complete" if self.startup_complete else "starting",
            },
        }
        try:
            await self.db.ping()
            checks["database"] = {"ok": True, "detail": self.database_label}
        except Exception as exc:  # any failure here is the answer, not an error
            checks["database"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        for name, check in (
            self.host.checks if self.host else {"sandbox": {"ok": False, "detail": "not checked yet"}}
        ).items():
            checks[name] = check
        checks["egress"] = {**self.egress.check(), "required": False}  # only egress functions need it
        checks["spare_jails"] = self._spare_jails_check()
        expected = len(migration_files())
        checks["migrations"] = {
            "ok": self.db.schema_version == expected,
            "detail": f"schema {self.db.schema_version} of {expected}",
        }
        full_since = (
            self.batch.full_since if self.batch.full_since is not None else self.db.storage_full_since
        )
        checks["disk"] = await asyncio.to_thread(
            disk_check,
            self.settings.data_dir,
            self.settings.disk_free_floor_percent,
            full_since,
            self.batch.pending,
            self.batch.rows_dropped,
        )
        return checks

    def _prepare_data_dir(self) -> None:
        data_dir = self.settings.data_dir
        # 0711: others may traverse (the jail, running as 65534, reaches its code through it) but
        # not list; every file holding secrets is created 0600.
        data_dir.mkdir(parents=True, exist_ok=True, mode=DATA_DIR_MODE)
        if data_dir.stat().st_mode & 0o777 != DATA_DIR_MODE:
            log.warning("setting data dir permissions to 0711", extra={"path": str(data_dir)})
            data_dir.chmod(DATA_DIR_MODE)
        if self.settings.database_url:  # PostgreSQL: no database file here
            return
        db = self.settings.db_path
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            if path.exists():
                path.chmod(0o600)
        if not db.exists():
            os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))


def _cron_clock(test_clock_file: str) -> WallClock:
    """The system clock; with ORVA_TEST_CLOCK_FILE (tests only), the time in that file."""
    if not test_clock_file:
        return WallClock()
    try:
        clock = FileClock(test_clock_file)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise OSError(f"ORVA_TEST_CLOCK_FILE {test_clock_file}: {exc}") from None
    log.warning(
        "TEST CLOCK: cron reads the time from a file (ORVA_TEST_CLOCK_FILE), not the system clock; "
        "never set this outside tests",
        extra={"path": test_clock_file, "now": clock.now().isoformat()},
    )
    return clock


def _memory_cap_mb(share: float) -> int:
    total_kb = 0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    total_kb = int(line.split()[1])
    except OSError:
        pass
    return int(total_kb / 1024 * share) if total_kb else 1 << 30
