"""From a function version to a started, sandboxed worker: one ``WorkerRecipe`` per version.

A recipe holds the key (everything a worker is started with: code hash, runtime, limits,
network, env vars, secrets generation; the pool manager replaces a function's pool when it
changes), the memory each worker reserves, the pool's details, and ``spawn()``, which builds the
SandboxSpec and starts a worker. Secrets are decrypted at spawn, not in the recipe, and travel
only in nsjail's environment.
"""

from __future__ import annotations

import posixpath
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orvad.envnames import REFUSAL, host_sensitive
from orvad.errors import Conflict, EgressUnavailable, RuntimeUnavailable, SandboxUnavailable
from orvad.host.egress import EgressNetwork
from orvad.host.hostcheck import SandboxData, clean_leaked_cgroups
from orvad.host.sandbox import SYSTEM_PATH, HostFacts, SandboxSpec, build_invocation
from orvad.models import Function
from orvad.pool.worker import LOG_BYTES_PER_S, SdkCalls, Worker
from orvad.services.firewall import FirewallService
from orvad.services.runtimes import Runtime, RuntimeCatalog
from orvad.services.secrets import SecretService
from orvad.services.spares import MakeSpare, Shape, SpareJails
from orvad.tasks import Tasks

# Python imports its adapter (from the bytecode runtimes.precompile_adapter wrote) instead of running it
# as a script, which Python would compile at every start.
PYTHON_BOOT = "import sys; sys.path[0] = '/runtime'; import adapter; adapter.main()"
ARGV = {
    "python": ("{interpreter}", "-u", "-B", "-S", "-c", PYTHON_BOOT),
    "node": ("{interpreter}", "/runtime/adapter.js"),
}
# a spare jail's boot (orvad/services/spares.py): it waits for its function's environment, then boots as above
PYTHON_SPARE_BOOT = "import sys; sys.path[0] = '/runtime'; import spare; spare.main()"
SPARE_ARGV = {
    "python": ("{interpreter}", "-u", "-B", "-S", "-c", PYTHON_SPARE_BOOT),
    "node": ("{interpreter}", "/runtime/spare.js"),
}


def _sdk_binds(language: str, adapter_dir: Path) -> tuple[tuple[str, str], ...]:
    """Node resolves `require('orva')` and `import 'orva'` by walking up from /code to /node_modules: the SDK
    shipped with the adapter is bound there (a function's own node_modules/orva would win). Python's adapter
    finds its `orva` itself (runtimes/python/adapter.py)."""
    if language == "node":
        return ((str(adapter_dir / "orva"), "/node_modules/orva"),)
    return ()


@dataclass(frozen=True, slots=True, eq=False)
class WorkerRecipe:
    """How a pool of one function version starts its workers (orvad.pool.manager.Recipe)."""

    key: tuple[Any, ...]
    spawn: Callable[[], Awaitable[Worker]]
    memory_mb: int
    details: dict[str, str]  # function_id, function_name, code_hash: the pool's name and rows


def _refuse_unusable_env(function_name: str, env: dict[str, str]) -> None:
    """A value stored before NUL bytes were refused must fail the spawn with its key, not with 'embedded null byte'."""
    for key, value in env.items():
        if host_sensitive(key):  # stored before names like LD_PRELOAD were refused: never reaches nsjail
            raise Conflict(
                f"the environment of {function_name} cannot start a worker: {key} {REFUSAL}",
                details={"key": key, "reason": "configuration"},
                hint=f"remove {key} (PUT /api/v1/functions/{function_name} env_vars, or "
                f"DELETE /api/v1/functions/{function_name}/secrets/{key})",
            )
        if "\x00" in value:
            raise Conflict(
                f"the environment of {function_name} cannot start a worker: {key} contains a NUL byte",
                details={"key": key, "reason": "configuration"},
                hint=f"set {key} again without the NUL byte (PUT /api/v1/functions/{function_name} "
                f"env_vars, or POST /api/v1/functions/{function_name}/secrets)",
            )


class Spawner:
    def __init__(
        self,
        *,
        host: HostFacts | None,
        data: SandboxData,
        runtimes: RuntimeCatalog,
        secrets: SecretService,
        version_dir: Callable[[str, str], Path],
        observe_spawn: Callable[[str, float], None],
        egress: EgressNetwork | None = None,
        log_bytes_per_s: int = LOG_BYTES_PER_S,
        observe_log_drop: Callable[[str, int], None] | None = None,
        tasks: Tasks | None = None,
        sdk: SdkCalls | None = None,
        firewall: FirewallService | None = None,
        ensure_version: Callable[[str, str, str | None], Awaitable[None]] | None = None,
        spares: Callable[[MakeSpare], SpareJails] | None = None,
    ) -> None:
        self.host = host
        # issue 26: cold starts of functions without egress take a jail started ahead (None: always the usual way)
        self.spares = spares(self._spare_worker) if spares is not None and host is not None else None
        # issue 25: a version built on another node is fetched before its first worker starts here
        # (orvad/builder/shared.py SharedVersions.ensure: a no-op once the version is on disk)
        self._ensure_version = ensure_version
        self._sdk = sdk  # answers the handlers' SDK calls (orvad/sdk/calls.py SdkRouter)
        self._tasks = (
            tasks if tasks is not None else Tasks()
        )  # the daemon's: namespace releases finish before egress stops
        self._data = data
        self._runtimes = runtimes
        self._secrets = secrets
        self._version_dir = version_dir
        self._observe_spawn = observe_spawn
        self._egress = egress
        self._firewall = firewall
        self._log_bytes_per_s = log_bytes_per_s
        self._observe_log_drop = observe_log_drop
        self._secret_generation: dict[str, int] = {}
        self._recipes: dict[
            str, tuple[Function, str, int, WorkerRecipe]
        ] = {}  # function id -> its last recipe

    def secrets_changed(self, function_id: str) -> None:
        self._secret_generation[function_id] = self._secret_generation.get(function_id, 0) + 1

    def forget(self, function_id: str) -> None:
        self._recipes.pop(function_id, None)
        self._secret_generation.pop(function_id, None)

    def recipe(self, fn: Function, code_hash: str) -> WorkerRecipe:
        """How workers of this function version are started. Built once per version and change, not per
        request: a changed function is a new (frozen) Function object, so the object, the code hash and
        the secrets generation say when (the invoke path compares only ``recipe.key``)."""
        generation = self._secret_generation.get(fn.id, 0)
        known = self._recipes.get(fn.id)
        if known is not None and known[0] is fn and known[1] == code_hash and known[2] == generation:
            return known[3]
        key = (
            code_hash,
            fn.runtime,
            fn.entrypoint,
            fn.memory_mb,
            fn.cpus,
            fn.timeout_ms,
            fn.network_mode,
            tuple(sorted(fn.env_vars.items())),
            generation,
            fn.egress_allow,  # a new allow list: new workers (their sandboxes' nft entries are set at lease)
        )

        async def spawn() -> Worker:
            return await self._start(fn, code_hash)

        recipe = WorkerRecipe(
            key, spawn, fn.memory_mb, {"function_id": fn.id, "function_name": fn.name, "code_hash": code_hash}
        )
        self._recipes[fn.id] = (fn, code_hash, generation, recipe)
        return recipe

    async def _start(self, fn: Function, code_hash: str) -> Worker:
        """One worker: secrets decrypted, a network namespace leased (egress), the jail started."""
        if self.host is None:
            raise SandboxUnavailable("the sandbox is unavailable on this host", retry_after_s=30)
        if self._ensure_version is not None:
            await self._ensure_version(fn.id, code_hash, fn.active_deployment_id)
        netns = None
        if fn.network_mode == "egress":
            if self._egress is None or not self._egress.ready:
                detail = self._egress.detail if self._egress else "egress networking is not set up"
                raise EgressUnavailable(
                    f"network_mode egress is unavailable on this host: {detail}", retry_after_s=60
                )
            allow = fn.egress_allow
            if allow and self._firewall is not None:
                allow = await self._firewall.prepare_allow(allow)  # its hostnames resolved first
            netns = await self._egress.lease(allow=allow)
        runtime = self._runtimes.get(fn.runtime)
        if runtime is None:
            raise RuntimeUnavailable(
                f"runtime {fn.runtime} is not installed on this host",
                retry_after_s=60,
                hint="see GET /api/v1/runtimes; an installable one is installed "
                "by the function's next deploy or `orvad runtimes install`",
            )
        # an installed runtime's bin first: a handler that runs `node` by name gets its own version
        path = (
            {"PATH": f"{posixpath.dirname(runtime.interpreter)}:{SYSTEM_PATH}"}
            if runtime.source == "installed"
            else {}
        )
        env = {
            **path,
            **fn.env_vars,
            **await self._secrets.environment(fn.id),
            "ORVA_ENTRYPOINT": fn.entrypoint,
            "ORVA_FUNCTION_ID": fn.id,
            "ORVA_FUNCTION_NAME": fn.name,
        }
        _refuse_unusable_env(fn.name, env)
        code_dir = self._version_dir(fn.id, code_hash)
        name = f"{fn.name}-{code_hash[:8]}"
        if netns is None and self.spares is not None:
            spare = await self.spares.take(
                runtime,
                source=code_dir,
                environment=env,
                name=name,
                memory_mb=fn.memory_mb,
                cpus=fn.cpus,
                on_log_drop=self._log_drop_observer(fn.name),
            )
            if spare is not None:
                self._observe_spawn(runtime.language, spare.spawn_s)
                return spare
        spec = self._spec(
            runtime, ARGV, str(code_dir), env, memory_mb=fn.memory_mb, cpus=fn.cpus, netns=netns
        )
        worker = Worker(
            build_invocation(spec, self.host),
            name=name,
            memory_mb=fn.memory_mb,
            after_kill=clean_leaked_cgroups,
            on_exit=self._releaser(netns),
            log_bytes_per_s=self._log_bytes_per_s,
            on_log_drop=self._log_drop_observer(fn.name),
            sdk=self._sdk,
        )
        try:
            await worker.start()
        except BaseException:
            if netns is not None and self._egress is not None:
                await self._egress.release(netns)
            raise
        self._observe_spawn(runtime.language, worker.spawn_s)
        return worker

    def _spec(
        self,
        runtime: Runtime,
        argv: dict[str, tuple[str, ...]],
        code_dir: str,
        env: dict[str, str],
        *,
        memory_mb: int,
        cpus: float,
        netns: str | None,
    ) -> SandboxSpec:
        """The jail of a worker (or a spare) of this runtime: the one place its flags are chosen."""
        limits = self._data.limits
        spec = SandboxSpec(
            argv=tuple(a.format(interpreter=runtime.interpreter) for a in argv[runtime.language]),
            code_dir=code_dir,
            binds=self._data.binds_for(runtime.language),
            memory_mb=memory_mb,
            cpus=cpus,
            pids=limits["pids"],
            tmpfs_mb=limits["tmpfs_mb"],
            fsize_mb=limits["rlimit_fsize_mb"],
            nofile=limits["rlimit_nofile"],
            runtime_dir=str(runtime.adapter_dir),
            ro_binds=_sdk_binds(runtime.language, runtime.adapter_dir),
            env=env,
            network="egress" if netns else "none",
            netns=netns,
        )
        resolv = self._firewall.resolv_conf if netns and self._firewall is not None else None
        if resolv is not None:  # PUT /api/v1/firewall/dns: orvad's resolv.conf instead of the host's
            spec = replace(
                spec,
                binds=tuple(b for b in spec.binds if b != "/etc/resolv.conf"),
                ro_binds=(*spec.ro_binds, (resolv, "/etc/resolv.conf")),
            )
        return spec

    def _spare_worker(
        self, runtime: Runtime, folder: Path, shape: Shape, on_exit: Callable[[Worker], None]
    ) -> Worker:
        """A spare jail of this runtime (orvad/services/spares.py): no environment and no network until a function
        without egress is handed to it; its code folder is empty until then."""
        assert self.host is not None
        spec = self._spec(
            runtime, SPARE_ARGV, str(folder), {}, memory_mb=shape.memory_mb, cpus=shape.cpus, netns=None
        )
        return Worker(
            build_invocation(spec, self.host),
            name=f"spare-{runtime.id}",
            memory_mb=shape.memory_mb,
            after_kill=clean_leaked_cgroups,
            on_exit=on_exit,
            log_bytes_per_s=self._log_bytes_per_s,
            sdk=self._sdk,
        )

    def _log_drop_observer(self, function_name: str) -> Callable[[int], None] | None:
        observe = self._observe_log_drop
        return None if observe is None else lambda size: observe(function_name, size)

    def _releaser(self, netns: str | None) -> Callable[[Worker], None] | None:
        """Give a worker's network namespace back when the worker exits."""
        egress = self._egress
        if netns is None or egress is None:
            return None

        def release(_: Worker) -> None:
            self._tasks.start(f"orva-release-{netns}", egress.release(netns))

        return release
