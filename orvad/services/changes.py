"""Typed change events and the one channel they travel on.

Services that own state (functions, secrets, pool configs, builds) publish what changed; the
reconciler (orvad/services/reconciler.py) and the builder (a deleted function's files) subscribe. A
publisher awaits every subscriber in subscription order, so when ``publish`` returns, every
consequence the change has (a pool replaced or drained, files removed) has been started, in
that order, before the publisher answers its own caller. A service built alone (a CLI command,
a unit test) publishes to a channel nobody reads.

    FunctionService    -> FunctionCreated(fn), FunctionChanged(old, new), FunctionDeleted(fn)
    SecretService      -> SecretsChanged(function_id)
    PoolConfigService  -> PoolConfigChanged(function_id, config)
    Builder            -> VersionBuilt(fn, deployment, path, checked)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from orvad.models import Deployment, Function
from orvad.pool.tunables import PoolConfig

if TYPE_CHECKING:
    from orvad.builder.importcheck import CheckedWorker


@dataclass(frozen=True, slots=True)
class FunctionCreated:
    """A function entered the catalogue (no version yet: nothing for pools to do; outbound webhooks tell)."""

    fn: Function


@dataclass(frozen=True, slots=True)
class FunctionChanged:
    """A function's record changed (settings, status, active deployment); ``new`` is in the catalogue."""

    old: Function
    new: Function


@dataclass(frozen=True, slots=True)
class FunctionDeleted:
    """A function left the catalogue and the database."""

    fn: Function


@dataclass(frozen=True, slots=True)
class SecretsChanged:
    """A secret of the function was written or removed: workers started before hold the old values."""

    function_id: str


@dataclass(frozen=True, slots=True)
class PoolConfigChanged:
    """A function's pool settings (min/max warm, idle TTL, ...) were saved."""

    function_id: str
    config: PoolConfig


@dataclass(frozen=True, slots=True)
class VersionBuilt:
    """A version finished building and is about to be activated (published before the function's record
    names it); ``checked`` is the worker that passed the import check, if one did."""

    fn: Function
    deployment: Deployment
    path: Path
    checked: CheckedWorker | None


Change = (
    FunctionCreated | FunctionChanged | FunctionDeleted | SecretsChanged | PoolConfigChanged | VersionBuilt
)
Subscriber = Callable[[Change], Awaitable[None]]


class Changes:
    """The channel: ``publish`` awaits each subscriber in the order they subscribed (wired once, in
    orvad/daemon.py); a subscriber's exception reaches the publisher."""

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers = (*self._subscribers, subscriber)

    async def publish(self, change: Change) -> None:
        for subscriber in self._subscribers:
            await subscriber(change)
