"""The one place that knows nsjail's flags: a SandboxSpec becomes an nsjail argv and environment.

Pure: no I/O. Every jail gets a user namespace mapping it to 65534:65534 outside (``--user
65534`` alone would map to root), fresh mount/pid/ipc/uts/net/cgroup namespaces, a read-only
root made only of bind mounts, the code read-only at /code (read-write only for builds), the
adapter read-only at /runtime, a private size-limited /tmp, no capabilities, no_new_privs,
cgroup limits for memory, pids and CPU, deliberate rlimits, a blocking seccomp policy and no
wall-clock limit (orvad enforces timeouts per request). Environment values never appear on the
command line: argv carries ``-E NAME`` and the value travels in nsjail's own environment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from orvad.envnames import host_sensitive

JAIL_UID = 65534
CodeAccess = Literal["ro", "rw"]


SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"  # PATH in every jail (an installed runtime's bin goes first)


@dataclass(frozen=True)
class HostFacts:
    nsjail: str
    cgroup: Literal["v1", "v2", "none"]
    seccomp_policy: str
    cgroupv2_mount: str = "/sys/fs/cgroup"
    base_env: Mapping[str, str] = field(
        default_factory=lambda: {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "HOME": "/tmp"}
    )


@dataclass(frozen=True)
class SandboxSpec:
    argv: tuple[str, ...]  # the command inside the jail
    code_dir: str  # host folder, mounted at /code
    binds: tuple[str, ...]  # host paths bound read-only at the same path
    memory_mb: int
    cpus: float
    pids: int = 64
    tmpfs_mb: int = 64
    fsize_mb: int = 64
    nofile: int = 1024
    runtime_dir: str | None = None  # host folder of the adapter, mounted at /runtime
    extra_rw: tuple[tuple[str, str], ...] = ()  # (host, jail) read-write binds, builds only
    ro_binds: tuple[
        tuple[str, str], ...
    ] = ()  # (host, jail) read-only binds (Node: the SDK at /node_modules/orva)
    code_access: CodeAccess = "ro"
    network: Literal["none", "egress", "build"] = "none"
    netns: str | None = None  # a prepared network namespace to join (egress, build); else a fresh empty one
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "/code"
    hostname: str = "orva"


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    env: dict[str, str]


NSENTER = "/usr/bin/nsenter"  # by absolute path: never looked up in an environment a function set


def build_invocation(spec: SandboxSpec, host: HostFacts) -> Invocation:
    args = [
        host.nsjail,
        "--mode",
        "o",
        "--really_quiet",
        "--user",
        f"{JAIL_UID}:{JAIL_UID}:1",
        "--group",
        f"{JAIL_UID}:{JAIL_UID}:1",
        "--hostname",
        spec.hostname,
        "--cwd",
        spec.cwd,
        "--time_limit",
        "0",
        "--rlimit_cpu",
        "inf",
        "--rlimit_as",
        "inf",
        "--rlimit_fsize",
        str(spec.fsize_mb),
        "--rlimit_nofile",
        str(spec.nofile),
        "--rlimit_core",
        "0",
        "--rlimit_stack",
        "inf",
        "--seccomp_policy",
        host.seccomp_policy,
    ]
    for path in spec.binds:
        args += ["-R", path]
    args += ["-B" if spec.code_access == "rw" else "-R", f"{spec.code_dir}:/code"]
    if spec.runtime_dir:
        args += ["-R", f"{spec.runtime_dir}:/runtime"]
    for host_path, jail_path in spec.ro_binds:
        args += ["-R", f"{host_path}:{jail_path}"]
    for host_path, jail_path in spec.extra_rw:
        args += ["-B", f"{host_path}:{jail_path}"]
    args += ["-m", f"none:/tmp:tmpfs:size={spec.tmpfs_mb * 1024 * 1024}"]
    args += _cgroup_flags(spec, host)
    if spec.netns is not None:
        args += [
            "--disable_clone_newnet"
        ]  # egress workers and builds join a prepared namespace (nsenter below)
    env = dict(host.base_env)
    for name, value in spec.env.items():
        if host_sensitive(name):  # the last line: the spawner refuses these with a 409 before we get here
            raise ValueError(f"{name} may not reach nsjail's environment")
        args += ["-E", name]
        env[name] = value
    for name in host.base_env:
        args += ["-E", name]
    args += ["--", *spec.argv]
    if spec.netns is not None:
        # nsenter joins only the network namespace; `ip netns exec` would also remount /sys and hide the cgroups
        args = [NSENTER, f"--net=/run/netns/{spec.netns}", "--", *args]
    return Invocation(args, env)


def cpu_ms_per_sec(cpus: float) -> int:
    """A CPU share as nsjail's --cgroup_cpu_ms_per_sec (and a spare's cgroup quota, orvad/host/cgroups.py)."""
    return max(1, math.ceil(cpus * 1000))


def _cgroup_flags(spec: SandboxSpec, host: HostFacts) -> list[str]:
    memory = str(spec.memory_mb * 1024 * 1024)
    cpu_ms = str(cpu_ms_per_sec(spec.cpus))
    if host.cgroup == "v1":
        return [
            "--cgroup_mem_max",
            memory,
            "--cgroup_pids_max",
            str(spec.pids),
            "--cgroup_cpu_ms_per_sec",
            cpu_ms,
        ]
    if host.cgroup == "v2":
        return [
            "--use_cgroupv2",
            "--cgroupv2_mount",
            host.cgroupv2_mount,
            "--cgroup_mem_max",
            memory,
            "--cgroup_pids_max",
            str(spec.pids),
            "--cgroup_cpu_ms_per_sec",
            cpu_ms,
        ]
    # No usable cgroup: hostcheck reports it loudly; rlimits are the only ceiling left.
    return ["--rlimit_nproc", str(spec.pids)]
