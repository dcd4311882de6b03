"""Writes the next invocation must see (secrets, env_vars and the other worker settings) answer only
once the function's workers run with them; a replacement whose workers fail to start is an error
envelope naming what was saved and how to fix it (docs/API.md, "When a change takes effect")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orvad.errors import Timeout, WorkerCrashed
from orvad.models import Function
from orvad.pool.manager import SETTLE_TIMEOUT_S

if TYPE_CHECKING:
    from orvad.daemon import Daemon


async def until_served(daemon: Daemon, fn: Function, what: str, fix: str) -> None:
    """Return once new invocations of ``fn`` see ``what`` (already saved); ``fix`` is the hint's remedy."""
    failure = await daemon.reconciler.settle(fn.id)
    if failure is None:
        return
    details = {"function_id": fn.id, "function_name": fn.name, "saved": True}
    if isinstance(failure, Timeout):
        raise Timeout(
            f"{what} saved, but new workers of {fn.name} did not start within {SETTLE_TIMEOUT_S:g} s",
            details=details,
            hint=f"the next invocation of {fn.name} starts its worker itself (a cold start); if the "
            "sandbox is at fault, GET /api/v1/system/health says so",
        )
    raise WorkerCrashed(
        f"{what} saved, but new workers of {fn.name} fail to start with it: {failure.message}",
        details={**details, "cause": failure.code},
        hint=f"invocations of {fn.name} fail the same way until this is fixed: {fix}",
    )
