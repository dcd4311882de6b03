"""Everything the invoke path uses, named and typed: the daemon builds one ``Collaborators`` and
hands it to ``Invoker`` (the invoke package never sees the daemon)."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from orvad.auth.keys import KeyService
from orvad.auth.sessions import SessionService
from orvad.http.drain import Drain
from orvad.http.origins import Origins
from orvad.invoke.limits import ConcurrencyGate, RateLimiter
from orvad.invoke.signatures import SignatureChecker
from orvad.models import Function
from orvad.pool.pool import Pool
from orvad.services.bus import Bus
from orvad.services.functions import FunctionService
from orvad.services.metrics import Metrics
from orvad.services.routing import RouteService
from orvad.store.executions import ExecutionStore


class PoolSource(Protocol):
    """Which pool serves a function's active version now (the reconciler's answer)."""

    def pool_for(self, fn: Function) -> Pool: ...


@dataclass(frozen=True, slots=True)
class Collaborators:
    functions: FunctionService  # /fn/<id or name> and routes' functions, from memory
    routes: RouteService  # custom routes (the router's fallback)
    pools: PoolSource
    executions: ExecutionStore  # the execution row and its logs, batched
    bus: Bus  # the ``execution`` event, once its row is committed
    metrics: Metrics
    rate_limiter: RateLimiter  # per function and client
    concurrency: ConcurrencyGate  # per function: max_concurrency and its policy
    signatures: SignatureChecker  # auth_mode "signed"
    signing_secret: Callable[[str], Awaitable[str | None]]  # a function's signing secret, by function id
    keys: KeyService  # auth_mode "api_key": the caller's key ...
    sessions: SessionService  # ... or the dashboard's session
    origins: Origins  # whether a reply lands where the dashboard's cookies live
    drain: Drain  # the shutdown: which cancellations its grace's end made
    trusted_networks: tuple[
        ipaddress.IPv4Network | ipaddress.IPv6Network, ...
    ]  # proxies whose X-Forwarded-For counts
