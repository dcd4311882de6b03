"""The seccomp policy file and its catalog (GET /api/v1/syscalls)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from orvad.resources import data_dir


def policy_path() -> Path:
    return data_dir("seccomp") / "default.kafel"


@cache
def load_catalog() -> dict[str, Any]:
    return yaml.safe_load((data_dir("seccomp") / "catalog.yaml").read_text())  # type: ignore[no-any-return]


def policy_syscalls(text: str) -> set[str]:
    """The syscall names inside the ERRNO(...) { ... } block of a Kafel policy."""
    body = re.sub(r"//[^\n]*", "", text)
    match = re.search(r"ERRNO\(\d+\)\s*\{([^}]*)\}", body)
    return {name.strip() for name in match.group(1).split(",") if name.strip()} if match else set()
