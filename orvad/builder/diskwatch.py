"""The disk under the builds, watched as a filesystem: the space a walk of names cannot see.

A build can hold space no name shows: a file it unlinked but keeps open, an ``O_TMPFILE`` file.
The walk in build.py counts the named files of a build's folder and cache; this watch reads
``statvfs`` of the data dir's filesystem and says when a running build must stop: free space
fell below ``disk_free_floor_percent``, or free space dropped since the build started by more
than its cap (plus a slack for orvad's own writes) beyond what other builds' named files explain.
"""

from __future__ import annotations

import os
from pathlib import Path

_SLACK_MIN = 64 << 20  # orvad's own writes meanwhile (database, logs, uploads) are not the build's


class DiskLedger:
    """The data dir's filesystem, and the named bytes running builds have added (one per Builder)."""

    def __init__(self, path: Path, floor_percent: float) -> None:
        self.path = path
        self.floor_percent = floor_percent
        self.named_added = (
            0  # sum over builds of their named growth: another build's files are not this one's
        )

    def free(self) -> tuple[int, int] | None:
        """(bytes available, filesystem size) as ``df`` shows them; None when unreadable."""
        try:
            st = os.statvfs(self.path)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


class BuildDiskWatch:
    """One running build's share of the filesystem: create it (reads statvfs) just before the build starts."""

    def __init__(self, ledger: DiskLedger, cap_bytes: int, named_now: int) -> None:
        self._ledger = ledger
        self._cap = cap_bytes
        self._slack = max(_SLACK_MIN, cap_bytes // 8)
        start = ledger.free()
        self._start_free = start[0] if start else None
        # below the floor already: not this build's doing (it finds the disk full itself, and says so)
        self._floor_applies = (
            start is not None and not self._below_floor(start) and not self._inodes_below_floor()
        )
        self._start_added = ledger.named_added
        self._first_named = self._last_named = named_now

    def _below_floor(self, free: tuple[int, int]) -> bool:
        available, total = free
        return bool(total) and 100.0 * available / total < self._ledger.floor_percent

    def _inodes_below_floor(self) -> bool:
        try:
            st = os.statvfs(self._ledger.path)
        except OSError:
            return False
        return bool(st.f_files) and 100.0 * st.f_favail / st.f_files < self._ledger.floor_percent

    def named(self, used: int) -> None:
        """Record the build's named usage (its folder and cache) as the walk measured it."""
        self._ledger.named_added += used - self._last_named
        self._last_named = used

    def check(self, free: tuple[int, int] | None) -> str | None:
        """Why the build must stop now, or None."""
        if free is None:
            return None
        available, _ = free
        floor = self._ledger.floor_percent
        if self._floor_applies and self._inodes_below_floor():
            return (
                f"the filesystem holding orvad's data dir fell below {floor:g}% free inodes while this build "
                "ran (too many files); it was stopped so the disk keeps room for everything else"
            )
        if self._floor_applies and self._below_floor(free):
            return (
                f"the disk holding orvad's data dir fell below {floor:g}% free while this build ran; "
                "it was stopped so the disk keeps room for everything else; free space there (GET "
                "/api/v1/system/health shows the disk check) and deploy again"
            )
        if self._start_free is None:
            return None
        own_named = self._last_named - self._first_named
        others = (self._ledger.named_added - self._start_added) - own_named
        used = self._start_free - available - max(others, 0)
        if used > self._cap + self._slack:
            return (
                f"the build used more than {self._cap >> 20} MiB of disk (counting files it deleted but kept "
                "open); raise ORVA_BUILD_DISK_MB or install fewer dependencies"
            )
        return None
