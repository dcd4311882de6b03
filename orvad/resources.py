"""Where orvad's data files live: inside the package in a wheel, at the repository top in a checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    """Return the folder `name` (runtimes, seccomp, sandbox, web) shipped with orvad."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"orvad data folder {name!r} is missing from the installation")
