"""Version garbage collection: keep the newest N built versions, the active one, and any in use."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def collectable(on_disk: list[str], newest_first: list[str], active: str | None, in_use: set[str], keep: int) -> list[str]:
    """Pure decision: which of the hashes on disk may go."""
    kept = set(newest_first[:keep]) | in_use | ({active} if active else set())
    return sorted(h for h in on_disk if h not in kept)


async def collect(versions_dir: Path, newest_first: list[str], active: str | None,
                  in_use: Callable[[], set[str]], keep: int) -> list[str]:
    """Remove collectable version folders; returns the hashes removed."""
    if not versions_dir.is_dir():
        return []
    on_disk = [p.name for p in versions_dir.iterdir() if p.is_dir()]
    doomed = collectable(on_disk, newest_first, active, in_use(), keep)
    for code_hash in doomed:
        await asyncio.to_thread(shutil.rmtree, versions_dir / code_hash, True)
        log.info("collected version", extra={"code_hash": code_hash, "path": str(versions_dir)})
    return doomed
