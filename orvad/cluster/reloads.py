"""How each cache a node holds is read again after another node's write (orvad/cluster/propagation.py).

A reload reads the committed rows and replaces the cache in one step (requests never see it empty). The
function catalogue, pool configs and secrets are compared with what the node holds first: each
difference is published as the local typed change (orvad/services/changes.py) on ``remote``, the
channel of the node-local consequences (pools replaced or drained, a deleted function's files), exactly
as if the write had been made here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from orvad.auth.keys import KeyService
from orvad.cluster.propagation import Reload
from orvad.cron.service import CronService
from orvad.pool.tunables import PoolConfig
from orvad.services.changes import (
    Changes,
    FunctionChanged,
    FunctionCreated,
    FunctionDeleted,
    PoolConfigChanged,
    SecretsChanged,
)
from orvad.services.channels import ChannelService
from orvad.services.firewall import FirewallService
from orvad.services.functions import FunctionService
from orvad.services.oauth import OAuthService
from orvad.services.poolconfigs import FIELDS, PoolConfigService
from orvad.services.routing import RouteService
from orvad.services.secrets import SecretService
from orvad.store.functions import FunctionStore
from orvad.store.postgres.notify import Kind
from orvad.store.secrets import SecretStore
from orvad.webhooks.inbound import InboundWebhooks
from orvad.webhooks.outbound import OutboundWebhooks


@dataclass
class Caches:
    """The caches of one node, and the channel their changes are published on when another node made them."""

    remote: Changes
    functions: FunctionService
    function_store: FunctionStore
    keys: KeyService
    routes: RouteService
    secrets: Callable[[], SecretService]  # made at start (the master key)
    secret_store: SecretStore
    pool_configs: PoolConfigService
    channels: ChannelService
    oauth: OAuthService
    firewall: FirewallService
    inbound_webhooks: InboundWebhooks
    webhooks: OutboundWebhooks
    cron: CronService

    def __post_init__(self) -> None:
        self._secret_versions: dict[str, frozenset[tuple[str, bytes]]] | None = None

    def reloads(self) -> dict[Kind, Reload]:
        return {
            "functions": self.reload_functions,
            "keys": self.keys.load,  # one assignment: a revoked key is gone from the next lookup on
            "routes": self.reload_routes,
            "secrets": self.reload_secrets,
            "pool_configs": self.reload_pool_configs,
            "channels": self.channels.load,
            "oauth": self.reload_oauth,
            "firewall": self.firewall.reload,  # under the service's lock (SELF_GATED)
            "inbound_webhooks": self.inbound_webhooks.load,
            "webhooks": self.reload_webhooks,
            "cron": self.reload_cron,
        }

    async def reload_functions(self) -> None:
        """Read under the catalogue's lock (a local write in flight finishes first, so a read from before it
        never replaces it), remember the differences, then publish them."""
        fns = self.functions
        published: list[FunctionCreated | FunctionChanged | FunctionDeleted] = []
        async with fns._lock:
            rows = {fn.id: fn for fn in await self.function_store.all_functions()}
            for fid, old in list(fns._by_id.items()):
                if fid not in rows:
                    fns._forget(old)
                    published.append(FunctionDeleted(old))
            for fid, new in rows.items():
                held = fns._by_id.get(fid)
                if held is None:
                    fns._remember(new)
                    published.append(FunctionCreated(new))
                elif held != new:
                    fns._swap(held, new)
                    published.append(FunctionChanged(held, new))
        for change in published:
            await self.remote.publish(change)

    async def reload_routes(self) -> None:
        fresh = RouteService(self.routes._store)
        await fresh.load()
        self.routes.table = fresh.table

    async def reload_secrets(self) -> None:
        """Which functions' secrets changed (a new seal has a new nonce): their signing secret is read again,
        and SecretsChanged replaces their workers (started with the old values)."""
        now: dict[str, set[tuple[str, bytes]]] = {}
        for row in await self.secret_store.all_encrypted():
            now.setdefault(row["function_id"], set()).add((row["key"], bytes(row["nonce"])))
        versions = {fid: frozenset(keys) for fid, keys in now.items()}
        before, self._secret_versions = self._secret_versions, versions
        if before is None:  # the first read: what start loaded is current
            return
        for fid in sorted(set(before) | set(versions)):
            if before.get(fid) != versions.get(fid):
                self.secrets()._signing.pop(fid, None)
                await self.remote.publish(SecretsChanged(fid))

    async def reload_pool_configs(self) -> None:
        svc = self.pool_configs
        rows = {
            row["function_id"]: PoolConfig(**{f: row[f] for f in FIELDS})
            for row in await svc._store.all_pool_configs()
        }
        changed = [fid for fid, config in rows.items() if svc._configs.get(fid) != config]
        for fid in [fid for fid in svc._configs if fid not in rows]:  # the function went: its pool with it
            del svc._configs[fid]
        for fid in changed:
            svc._configs[fid] = rows[fid]
            await self.remote.publish(PoolConfigChanged(fid, rows[fid]))

    async def reload_oauth(self) -> None:
        store = self.oauth._store
        rows, tokens = await store.clients(), {t.token_hash: t for t in await store.tokens()}
        held = self.oauth._clients  # no await from here to the assignment
        clients = {}
        for row in rows:  # last_used_at is set in memory first and written by the batched writer later
            mine = held.get(row.client_id)
            if mine is not None and (mine.last_used_at or "") > (row.last_used_at or ""):
                row = replace(row, last_used_at=mine.last_used_at)
            clients[row.client_id] = row
        self.oauth._clients, self.oauth._tokens = clients, tokens

    async def reload_webhooks(self) -> None:
        hooks = self.webhooks
        rows = await hooks._store.all()
        for row in rows:
            hooks._remember(row)
        for gone in set(hooks._receivers) - {r.id for r in rows}:
            hooks._receivers.pop(gone, None)
        hooks._refresh()

    async def reload_cron(self) -> None:
        self.cron.wake()  # the scheduler reads the schedules from the database: it looks again now
