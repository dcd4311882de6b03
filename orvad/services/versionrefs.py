"""What a client types to name one of a function's versions: a deployment id or a code hash, whole or
as a unique prefix (at least 6 characters), resolved within that function only.

A code hash prefix is hex; a deployment id prefix is the start of a UUIDv7 (hex and dashes). Their
first characters are a timestamp, so a short id prefix often names several deployments made the
same day: that answers 409 AMBIGUOUS with the candidates, never a guess.
"""

from __future__ import annotations

import re
from typing import Protocol

from orvad.errors import Ambiguous, ValidationError
from orvad.models import Deployment, Function

MIN_PREFIX = 6
MAX_CANDIDATES = 20
_HASH = re.compile(r"^[0-9a-f]{6,64}$")
_ID_PREFIX = re.compile(r"^[0-9a-f][0-9a-f-]{5,35}$")


class VersionStore(Protocol):
    async def deployment(self, deployment_id: str) -> Deployment | None: ...
    async def deployment_ids_starting(self, function_id: str, prefix: str, limit: int) -> list[str]: ...
    async def succeeded_hashes_starting(self, function_id: str, prefix: str, limit: int) -> list[str]: ...


def _one(found: list[str], fn: Function, field: str, typed: str, what: tuple[str, str]) -> str | None:
    if len(found) <= 1:
        return found[0] if found else None
    many = f"more than {MAX_CANDIDATES}" if len(found) > MAX_CANDIDATES else str(len(found))
    raise Ambiguous(
        f"{field} {typed} matches {many} {what[1]} of function {fn.name}",
        details={"field": field, "candidates": found[:MAX_CANDIDATES]},
        hint=f"send more characters of the {what[0]}: enough to tell details.candidates apart "
        f"(GET /api/v1/functions/{fn.name}/deployments lists them)",
    )


async def resolve_code_hash(store: VersionStore, fn: Function, typed: str) -> str | None:
    """The one code hash of fn's succeeded deployments that starts with ``typed``; None when none does."""
    wanted = typed.lower()
    if not _HASH.fullmatch(wanted):
        raise ValidationError(
            f"code_hash must be {MIN_PREFIX} to 64 hex characters: a code hash or a unique prefix of one",
            details={"field": "code_hash", "min_length": MIN_PREFIX},
            hint=f"the hashes are in GET /api/v1/functions/{fn.name}/deployments",
        )
    found = await store.succeeded_hashes_starting(fn.id, wanted, MAX_CANDIDATES + 1)
    return _one(found, fn, "code_hash", typed, ("code hash", "code hashes"))


async def resolve_deployment(store: VersionStore, fn: Function, typed: str, field: str) -> Deployment | None:
    """The deployment ``typed`` names: a whole id (of any function: the caller checks whose), else a unique
    prefix of one of fn's deployment ids; None when nothing matches."""
    dep = await store.deployment(typed)
    if dep is not None:
        return dep
    wanted = typed.lower()
    if not _ID_PREFIX.fullmatch(wanted):
        return None
    found = _one(
        await store.deployment_ids_starting(fn.id, wanted, MAX_CANDIDATES + 1),
        fn,
        field,
        typed,
        ("deployment id", "deployment ids"),
    )
    return await store.deployment(found) if found else None
