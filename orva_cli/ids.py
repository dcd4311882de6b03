"""Short ids and hashes: the prefixes tables show, and the prefixes a user types back.

orvad's ids are UUIDv7: their first 12 hex digits are a millisecond timestamp, so ids made in the
same minute share their first 8 characters. A table shows each id by its shortest prefix that no
other id in the table shares (at least 8 characters, as git abbreviates hashes), and commands that
take an id or a hash accept any unique prefix of one.
"""

from __future__ import annotations

from collections.abc import Iterable

from orva_cli.client import CliError

MIN_SHORT = 8  # characters an id is shown with at least
MIN_PREFIX = 6  # characters a typed prefix needs (as orvad asks of code hashes)


def _common(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def short_ids(values: Iterable[str], minimum: int = MIN_SHORT) -> dict[str, str]:
    """Each distinct value mapped to its shortest prefix (>= minimum) that no other value starts with."""
    ordered = sorted(set(values))
    short = {}
    for i, value in enumerate(ordered):
        shared = max(
            _common(value, ordered[i - 1]) if i else 0,
            _common(value, ordered[i + 1]) if i + 1 < len(ordered) else 0,
        )
        length = max(minimum, shared + 1)
        if value[length - 1 : length] == "-":  # never end on a UUID's dash: 019df210- says less than it seems
            length += 1
        short[value] = value[:length]
    return short


def is_full_id(ref: str) -> bool:
    return len(ref) == 36 and ref.count("-") == 4


def resolve_prefix(ref: str, candidates: Iterable[str], what: str, hint: str, of: str = "") -> str:
    """The one candidate starting with ref (case-insensitive); CliError when none or several do.

    what names the kind in messages ("deployment"), of its owner (" of hello"); hint says where the
    values are listed."""
    wanted = ref.strip().lower()
    if len(wanted) < MIN_PREFIX:
        raise CliError(
            "VALIDATION",
            f"{ref!r} is too short to name a {what}{of}: give at least {MIN_PREFIX} characters",
            hint,
        )
    found = sorted({c for c in candidates if c.lower().startswith(wanted)})
    if not found:
        raise CliError(
            "VERSION_NOT_FOUND" if what in ("deployment", "code hash") else "NOT_FOUND",
            f"no {what}{of} starts with {ref}",
            hint,
        )
    if len(found) > 1:
        shown = ", ".join(short_ids(found).values())
        plural = what + ("es" if what.endswith(("s", "sh")) else "s")
        raise CliError(
            "AMBIGUOUS",
            f"{ref} matches {len(found)} {plural}{of}: {shown}",
            f"give more characters; {hint}",
            details={"candidates": found},
        )
    return found[0]
