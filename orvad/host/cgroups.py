"""A started jail's cgroup limits, written after its start: a spare jail (orvad/services/spares.py) gets its function's
memory and CPU limits this way before anything of the function reaches it.

nsjail names a jail's cgroups NSJAIL.<pid of the jailed process> under each v1 controller's NSJAIL folder and
writes the same files at start (--cgroup_mem_max, --cgroup_cpu_ms_per_sec with a one-second period). Only the v1
layout: spares are used only where the host check found it.
"""

from __future__ import annotations

from pathlib import Path

from orvad.host.hostcheck import V1_ROOT
from orvad.host.sandbox import cpu_ms_per_sec


def write_v1_limits(jail_pid: int, *, memory_mb: int, cpus: float) -> None:
    """Set the jail's memory limit and CPU quota; OSError when a controller's folder or file is missing, or the
    kernel refuses the value (a memory limit below what the jail already uses)."""
    folder = f"NSJAIL/NSJAIL.{jail_pid}"
    _write(V1_ROOT / "memory" / folder / "memory.limit_in_bytes", memory_mb * 1024 * 1024)
    _write(V1_ROOT / "cpu" / folder / "cpu.cfs_quota_us", cpu_ms_per_sec(cpus) * 1000)


def _write(path: Path, value: int) -> None:
    with open(path, "w") as fh:  # cgroupfs: the kernel's files, never a tenant's path
        fh.write(str(value))
