"""Version garbage collection: keep the newest N built versions, the active one, and any in use.

A version is built when its marker ``versions/<hash>.built`` exists. The marker lives beside the
tree, never in it, so nothing a build or an archive put in the tree can fake it or make orvad
write through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from orvad.builder.safetree import remove_tree

log = logging.getLogger(__name__)

MARKER_SUFFIX = ".built"
_LEGACY_MARKER = ".orva-built"  # inside the tree, written by orvad before 0.2; read with lstat only


def marker(version: Path) -> Path:
    return version.with_name(version.name + MARKER_SUFFIX)


def mark_built(version: Path) -> None:
    marker(version).touch()


def is_built(version: Path) -> bool:
    """True when the version folder holds a finished build (never following a link in the tree)."""
    try:
        if not stat.S_ISDIR(os.stat(version, follow_symlinks=False).st_mode):
            return False
    except OSError:
        return False
    if marker(version).is_file():
        return True
    try:
        legacy = os.stat(version / _LEGACY_MARKER, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(legacy.st_mode)


def collectable(
    on_disk: list[str], newest_first: list[str], active: str | None, in_use: set[str], keep: int
) -> list[str]:
    """Pure decision: which of the hashes on disk may go."""
    kept = set(newest_first[:keep]) | in_use | ({active} if active else set())
    return sorted(h for h in on_disk if h not in kept)


def _remove(version: Path) -> None:
    """Unmark, move aside (atomic), then delete: a folder named by a code hash is always a whole build."""
    with contextlib.suppress(FileNotFoundError):
        marker(version).unlink()
    trash = version.with_name(f".trash-{version.name}-{secrets.token_hex(4)}")
    try:
        version.rename(trash)
    except FileNotFoundError:
        return
    try:
        remove_tree(trash)  # any depth, never following a link the build left in the tree
    except OSError as exc:
        log.error("a collected version could not be removed", extra={"path": str(trash), "error": str(exc)})


async def collect(
    versions_dir: Path, newest_first: list[str], active: str | None, in_use: Callable[[], set[str]], keep: int
) -> list[str]:
    """Remove collectable version folders; returns the hashes removed."""
    if not versions_dir.is_dir():
        return []
    on_disk = [p.name for p in versions_dir.iterdir() if p.is_dir() and not p.is_symlink()]
    doomed = collectable(on_disk, newest_first, active, in_use(), keep)
    for code_hash in doomed:
        await asyncio.to_thread(_remove, versions_dir / code_hash)
        log.info("collected version", extra={"code_hash": code_hash, "path": str(versions_dir)})
    return doomed
