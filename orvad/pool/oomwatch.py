"""Whether the kernel OOM-killed inside one worker's memory cgroup (cgroup v1), told apart from other SIGKILLs.

nsjail removes the worker's cgroup, and the ``oom_kill`` counter in it, before orvad learns that the worker
exited. So the watch registers an eventfd on the cgroup's ``memory.oom_control`` when the worker starts: the
kernel signals it when the cgroup runs out of memory, and once more when the cgroup is removed. On each
signal the counter is read while the cgroup still exists (the usual case: the dying process frees its memory
before nsjail can remove the cgroup); if the cgroup was gone first, two signals (out of memory, then removal)
against one (removal only) decide. Paths come from the kernel (/proc/<pid>/cgroup), never from a tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

V1_MEMORY = "/sys/fs/cgroup/memory"
REMOVAL_WAIT_S = 0.5  # how long the verdict waits for the removal signal when the cgroup went first


class OomWatch:
    def __init__(self, loop: asyncio.AbstractEventLoop, efd: int, ofd: int) -> None:
        self._loop = loop
        self._efd, self._ofd = efd, ofd
        self.signals = 0  # eventfd signals: OOM events, plus one when the cgroup is removed
        self.oom_kills = 0  # the cgroup's own count, read while it existed
        self.gone = False
        loop.add_reader(efd, self._on_signal)

    @classmethod
    def attach(cls, pid: int | None) -> OomWatch | None:
        """Watch the v1 memory cgroup of ``pid`` (the jailed process); None where there is none to watch."""
        if pid is None:
            return None
        try:
            with open(f"/proc/{pid}/cgroup") as fh:
                path = next(
                    (line.split(":", 2)[2].strip() for line in fh if line.split(":")[1:2] == ["memory"]), None
                )
        except OSError:
            return None
        if not path or path == "/":
            return None
        folder = V1_MEMORY + path
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            ofd = os.open(f"{folder}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(efd)
            return None
        try:
            with open(f"{folder}/cgroup.event_control", "w") as control:
                control.write(f"{efd} {ofd}")
        except OSError:
            os.close(efd)
            os.close(ofd)
            return None
        return cls(asyncio.get_running_loop(), efd, ofd)

    def _on_signal(self) -> None:
        try:
            self.signals += os.eventfd_read(self._efd)
        except (BlockingIOError, OSError):
            return
        self._look()

    def _look(self) -> None:
        if self.gone:
            return
        try:
            text = os.pread(self._ofd, 512, 0)
        except OSError:  # ENODEV: the cgroup was removed
            self.gone = True
            return
        for line in text.splitlines():
            if line.startswith(b"oom_kill "):
                self.oom_kills = max(self.oom_kills, int(line.split()[1]))

    async def verdict(self) -> bool:
        """After the worker exited: did the kernel OOM-kill in its cgroup?"""
        self._on_signal()
        self._look()
        if self.oom_kills or not self.gone:
            return self.oom_kills > 0
        deadline = time.monotonic() + REMOVAL_WAIT_S
        while self.signals < 2 and time.monotonic() < deadline:  # the removal signal may still be on its way
            await asyncio.sleep(0.02)
            self._on_signal()
        return self.signals >= 2

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._efd)
        for fd in (self._efd, self._ofd):
            with contextlib.suppress(OSError):
                os.close(fd)
