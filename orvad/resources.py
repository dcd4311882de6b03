"""Where orvad's data files live: inside the package in a wheel, at the repository top in a checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# In a checkout the dashboard is served from its build output, not its sources.
_CHECKOUT_PATHS = {"web": Path("web") / "dist"}


@cache
def data_dir(name: str) -> Path:
    """Return the folder `name` (runtimes, seccomp, sandbox, web) shipped with orvad.

    The dashboard (`web`) exists only once built (`make web`); callers handle its absence.
    """
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / _CHECKOUT_PATHS.get(name, Path(name))):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"orvad data folder {name!r} is missing from the installation")
