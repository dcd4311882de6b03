"""orva.cron: this function's own schedules (docs/SDK.md, Cron).

Every call goes to orvad over the worker's own channel; orvad acts on the calling function's schedules only.
Schedules are kept by name: ``upsert`` creates the name or changes it (fields left out keep their value),
so a handler may declare its schedules on every cold start. Sync functions, and async twins with an ``a``
prefix::

    from orva import cron
    cron.upsert("nightly", "30 2 * * *", timezone="Europe/Berlin", payload={"report": "daily"})
    for s in cron.list():
        print(s["name"], s["next_run_at"])
    cron.delete("nightly")             # True; False when there was none

Each run is a job: the function gets ``payload`` as the event's JSON body, with headers
``x-orva-trigger: cron`` and ``x-orva-cron-id: <schedule id>``. Failures raise ``orva.OrvaError``
(``.code``, ``.message``, ``.hint``), e.g. VALIDATION for a bad expression or timezone.
"""

from __future__ import annotations

from typing import Any

from orva import _channel

__all__ = ["upsert", "list", "delete", "aupsert", "alist", "adelete"]

_list = list  # `list` below is cron.list
_UNSET: Any = object()


def _args(
    name: str,
    expression: Any,
    timezone: Any,
    payload: Any,
    enabled: Any,
    catch_up: Any,
) -> dict[str, Any]:
    args: dict[str, Any] = {"name": name}
    for key, value in (
        ("expression", expression),
        ("timezone", timezone),
        ("payload", payload),
        ("enabled", enabled),
        ("catch_up", catch_up),
    ):
        if value is not _UNSET:
            args[key] = value
    return args


def upsert(
    name: str,
    expression: Any = _UNSET,
    *,
    timezone: Any = _UNSET,
    payload: Any = _UNSET,
    enabled: Any = _UNSET,
    catch_up: Any = _UNSET,
) -> dict[str, Any]:
    """Create schedule ``name`` or change it; the schedule (id, next_run_at, ..., ``created``: new or not).

    ``expression``: 5 fields ("*/5 * * * *") or @hourly, @daily, ...; ``timezone``: IANA (default UTC);
    ``payload``: JSON for each run's body; ``enabled`` (default True); ``catch_up``: "once" (default: a tick
    missed while orvad was down runs once at start) or "skip". ``expression`` is required for a new name."""
    return _channel.call("cron.upsert", _args(name, expression, timezone, payload, enabled, catch_up))


def list() -> _list[dict[str, Any]]:  # noqa: A001 - orva.cron.list, as in the other namespaces
    """This function's schedules, newest first."""
    return _channel.call("cron.list", {})["schedules"]


def delete(name: str) -> bool:
    """Delete schedule ``name``; whether it existed (runs already enqueued still run)."""
    return bool(_channel.call("cron.delete", {"name": name})["deleted"])


async def aupsert(
    name: str,
    expression: Any = _UNSET,
    *,
    timezone: Any = _UNSET,
    payload: Any = _UNSET,
    enabled: Any = _UNSET,
    catch_up: Any = _UNSET,
) -> dict[str, Any]:
    return await _channel.acall("cron.upsert", _args(name, expression, timezone, payload, enabled, catch_up))


async def alist() -> _list[dict[str, Any]]:
    return (await _channel.acall("cron.list", {}))["schedules"]


async def adelete(name: str) -> bool:
    return bool((await _channel.acall("cron.delete", {"name": name}))["deleted"])
