"""Which pool serves which version: the one owner of that answer, and of how changes reach pools.

The reconciler holds the code hash of every built deployment a function may serve (its active
one, and a new build's between ``VersionBuilt`` and the record naming it), answers the invoke
path's ``pool_for(fn)`` and a write's ``settle(function_id)``, and reacts to the typed changes
services publish (orvad/services/changes.py):

    VersionBuilt       warm a pool for the new version, without switching to it (the import
                       check's worker first); the switch comes with the FunctionChanged below
    FunctionChanged    paused: drain the pool; a new active version or a changed worker setting:
                       replace the pool in the background (a pre-warmed one at once); then the
                       ``function`` bus event
    SecretsChanged     a new secrets generation (a new key), and the pool replaced
    PoolConfigChanged  min/max warm applied to the serving pool now
    FunctionDeleted    the pool drained; its routes, pool config and recipe forgotten

Ordering: a build publishes VersionBuilt before it records the new active deployment (under the
functions' lock) and the record's FunctionChanged follows, so traffic never sees a version before
it is active and never a cold one; a write that must be seen by the next invocation (secrets,
env_vars) awaits ``settle``, which looks the wanted recipe up again after every change, so a
deploy or secret written meanwhile is waited for too (orvad/pool/manager.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from orvad.builder.importcheck import CheckedWorker, check_import
from orvad.errors import NotFound, OrvaError, VersionUnavailable
from orvad.models import Deployment, Function
from orvad.pool.manager import PoolManager
from orvad.pool.pool import Pool
from orvad.services.bus import Bus
from orvad.services.changes import (
    Change,
    FunctionChanged,
    FunctionCreated,
    FunctionDeleted,
    PoolConfigChanged,
    SecretsChanged,
    VersionBuilt,
)
from orvad.services.functions import WORKER_FIELDS, FunctionService
from orvad.services.poolconfigs import PoolConfigService
from orvad.services.routing import RouteService
from orvad.services.spawner import Spawner, WorkerRecipe


class Reconciler:
    def __init__(
        self,
        *,
        pools: PoolManager,
        functions: FunctionService,
        pool_configs: PoolConfigService,
        routes: RouteService,
        bus: Bus,
        code_hash_of: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        self._pools = pools
        # issue 25: the code hash of a deployment another node built and activated (a change event names
        # only the function's new active deployment; its version is fetched at the first worker's start)
        self._code_hash_of = code_hash_of
        self._functions = functions
        self._pool_configs = pool_configs
        self._routes = routes
        self._bus = bus
        self._hashes: dict[str, str] = {}  # deployment id -> code hash (active ones, and builds about to be)
        self._spawner: Spawner  # needs the host check: given to start()

    async def start(self, spawner: Spawner, active_hashes: dict[str, str]) -> None:
        """Know every function's active version (deployment id -> code hash, from the store) and start
        the autoscaler; the pools themselves come with ``serve_active``."""
        self._spawner = spawner
        self._hashes.update(active_hashes)
        self._pools.start()

    def serve_active(self) -> None:
        """Warm a pool for every active function (in the background)."""
        for fn in self._functions.list(status="active", runtime=None):
            self._replace(fn)

    async def stop(self) -> None:
        await self._pools.stop()

    # answers
    def active_hash(self, fn: Function) -> str | None:
        """The code hash ``fn`` serves (its active deployment's); None when it has none built."""
        return self._hashes.get(fn.active_deployment_id or "")

    def pool_for(self, fn: Function) -> Pool:
        """The pool that serves ``fn`` now (the invoke path's PoolSource); a missing one is created."""
        code_hash = self._hashes.get(fn.active_deployment_id or "")
        if code_hash is None:  # activated on another node a moment ago: its change event is being applied
            raise VersionUnavailable(
                f"this node is still learning of the active version of {fn.name}",
                retry_after_s=1,
                details={"function": fn.id, "deployment_id": fn.active_deployment_id},
                hint="retry in a second",
            )
        recipe = self._spawner.recipe(fn, code_hash)
        current = self._pools.current(fn.id, recipe.key)
        if current is not None:  # the usual case: the recipe is memoised, nothing is built
            return current
        if self._functions.get(fn.id) is None:  # deleted while the call waited (its pool was drained)
            raise NotFound(
                f"function {fn.name} was deleted",
                details={"function": fn.id},
                hint="list functions with GET /api/v1/functions",
            )
        return self._pools.ensure(fn.id, recipe)

    async def settle(self, function_id: str) -> OrvaError | None:
        """Wait until the next invocation runs on workers started with the function's current settings
        and secrets (PoolManager.settle); returns why they failed to start, if they did."""
        return await self._pools.settle(function_id, lambda: self._recipe(self._functions.get(function_id)))

    async def check_import(self, fn: Function, dep: Deployment) -> CheckedWorker:
        """A new build's handler must import on a worker started as the pool would start it (the builder's
        VersionHost)."""
        assert dep.code_hash is not None
        current = self._functions.get(fn.id) or fn
        recipe = self._spawner.recipe(current, dep.code_hash)
        return await check_import(recipe.spawn, recipe.key, current.entrypoint)

    def hashes_in_use(self, function_id: str) -> set[str]:
        """Code hashes some worker of the function runs (or is warmed for): GC keeps them."""
        return self._pools.hashes_in_use(function_id)

    def _recipe(self, fn: Function | None) -> WorkerRecipe | None:
        """What the function's pool is built from now; None when it serves nothing (paused, never built)."""
        code_hash = self._hashes.get(fn.active_deployment_id or "") if fn is not None else None
        if fn is None or code_hash is None or fn.status != "active":
            return None
        return self._spawner.recipe(fn, code_hash)

    def _replace(self, fn: Function) -> None:
        recipe = self._recipe(fn)
        if recipe is not None:
            self._pools.replace(fn.id, recipe)

    # reactions
    async def apply(self, change: Change) -> None:
        match change:
            case VersionBuilt(fn, deployment, _, checked):
                await self._version_built(fn, deployment, checked)
            case FunctionChanged(old, new):
                await self._learn(new)
                self._function_changed(old, new)
            case FunctionCreated(fn):  # another node's, already deployed when this node heard of it
                await self._learn(fn)
                self._replace(fn)
            case SecretsChanged(function_id):
                self._spawner.secrets_changed(function_id)
                served = self._functions.get(function_id)
                if served is not None:
                    self._replace(served)
            case PoolConfigChanged(function_id, _):
                self._pools.retune(function_id)
            case FunctionDeleted(fn):
                self._pools.remove(fn.id)
                self._routes.forget_function(fn.id)
                self._pool_configs.forget(fn.id)
                self._spawner.forget(fn.id)

    async def _learn(self, fn: Function) -> None:
        """Know the code hash of ``fn``'s active deployment when another node built it."""
        dep_id = fn.active_deployment_id
        if dep_id and dep_id not in self._hashes and self._code_hash_of is not None:
            code_hash = await self._code_hash_of(dep_id)
            if code_hash is not None:
                self._hashes[dep_id] = code_hash

    async def _version_built(self, fn: Function, dep: Deployment, checked: CheckedWorker | None) -> None:
        """A new version gets warm workers before it takes traffic (the import check's worker first)."""
        assert dep.code_hash is not None
        current = self._functions.get(fn.id)
        if current is None:  # deleted meanwhile: nothing to serve (the builder stops the checked worker)
            return
        self._hashes[dep.id] = dep.code_hash  # a paused function serves it once set active
        if current.status == "inactive":
            return
        recipe = self._spawner.recipe(current, dep.code_hash)
        if checked is not None and checked.key == recipe.key:
            recipe = WorkerRecipe(
                recipe.key, checked.first_then(recipe.spawn), recipe.memory_mb, recipe.details
            )
        await self._pools.warm_now(fn.id, recipe)

    def _function_changed(self, old: Function, new: Function) -> None:
        if new.status != "active":
            self._pools.remove(new.id)  # paused: drain the pool
        elif (
            old.active_deployment_id != new.active_deployment_id
            or old.status != "active"
            or any(getattr(old, f) != getattr(new, f) for f in WORKER_FIELDS)
        ):
            self._replace(new)
        self._bus.publish(
            "function", {"id": new.id, "function_id": new.id, "name": new.name, "status": new.status}
        )
