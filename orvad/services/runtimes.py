"""The runtime catalogue: which interpreters this host really has, with their discovered versions.

Runtime ids: ``python`` and ``node`` (the newest found) plus a versioned id per interpreter
(``python3.11``, ``node20``). Only interpreters that run inside the jail with system paths bound
read-only are offered (Debian's ``/usr/bin/python3.X`` and ``/usr/bin/node``), plus the Node runtimes
installed into the data dir (``node22``, ``node24``: orvad/services/runtime_install.py), whose folder is bound
read-only into node jails at ``/opt/orva-runtimes`` (not at its own path: a data dir under /tmp would be
hidden by the jail's private /tmp).

The Go original's ids: ``node22``/``node24`` are accepted before they are installed (the function's
first build installs them); ``python313``/``python314`` are refused with the list of what is installed,
unless ``ORVA_RUNTIME_FALLBACK`` maps them (and uninstalled node ids) to the nearest installed runtime
of the language (``map_requested``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orvad.errors import ValidationError
from orvad.host.hostcheck import SandboxData
from orvad.host.process import run_sync
from orvad.resources import data_dir
from orvad.services.runtime_install import (
    INSTALLED_DIR,
    PINS,
    RuntimeInstallError,
    install,
    install_command,
    is_installed,
    node_binary,
    node_version,
)

log = logging.getLogger(__name__)

PYTHON_GLOB = "/usr/bin/python3.*"
NODE_PATHS = ("/usr/bin/node",)
_PY_NAME = re.compile(r"^python3\.(\d+)$")
# the Go original's runtime ids: language and version (major.minor) each names
ORIGINAL_IDS = {
    "node22": ("node", "22"),
    "node24": ("node", "24"),
    "python313": ("python", "3.13"),
    "python314": ("python", "3.14"),
}
FALLBACK_HEADER = "X-Orva-Runtime-Fallback"
JAIL_RUNTIMES = "/opt/orva-runtimes"  # where <data>/runtimes-installed appears in node jails


@dataclass(frozen=True)
class Runtime:
    id: str
    language: str  # python | node
    version: str  # discovered, e.g. 3.11.2 or 20.20.2
    interpreter: str  # absolute path in the jail (for the host's runtimes, the same on the host)
    default_entrypoint: str
    source: str = "system"  # system (the host's) | installed (<data>/runtimes-installed)
    host_path: str | None = None  # an installed runtime's binary on the host (its folder is bound elsewhere)

    @property
    def adapter_dir(self) -> Path:
        return data_dir("runtimes") / self.language

    def as_json(self, aliases: list[str]) -> dict[str, Any]:
        return {
            "id": self.id,
            "language": self.language,
            "version": self.version,
            "interpreter": self.interpreter,
            "default_entrypoint": self.default_entrypoint,
            "aliases": aliases,
            "source": self.source,
            "path": self.host_path or self.interpreter,
        }


def _version(argv: list[str]) -> str | None:
    try:
        out = run_sync(argv, timeout_s=10)
        out.check_returncode()
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).decode(errors="replace").strip()
    match = re.search(r"(\d+\.\d+\.\d+)", text)
    return match.group(1) if match else None


def precompile_adapter(runtime: Runtime) -> bool:
    """Write the Python adapter's bytecode beside it (``__pycache__``) with the runtime's own
    interpreter, and the orva SDK's: workers import them from there instead of compiling them at every
    start (~5 ms of a cold start). Best effort: where the installation is read-only, workers only start
    slower."""
    adapter = runtime.adapter_dir / "adapter.py"
    sdk = sorted((runtime.adapter_dir / "orva").glob("*.py"))  # the orva SDK, imported when a handler uses it
    try:
        run_sync(
            [
                runtime.interpreter,
                "-S",
                "-c",
                "import py_compile, sys\nfor path in sys.argv[1:]: py_compile.compile(path, doraise=True)",
                str(adapter),
                *map(str, sdk),
            ],
            timeout_s=10,
        ).check_returncode()
    except (OSError, subprocess.SubprocessError) as exc:
        log.info(
            "the Python adapter's bytecode could not be written; workers compile it at start",
            extra={"runtime": runtime.id, "reason": str(exc)[:200]},
        )
        return False
    return True


def _sort_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


class RuntimeCatalog:
    def __init__(self, runtimes: list[Runtime], data_dir: Path | None = None) -> None:
        self._by_id: dict[str, Runtime] = {}
        self._aliases: dict[str, str] = {}
        self.data_dir = data_dir  # where installed runtimes live; None: none are installable
        self.fallback = False  # ORVA_RUNTIME_FALLBACK
        for runtime in runtimes:
            self.add(runtime)

    def add(self, runtime: Runtime) -> None:
        """Add (or replace) a runtime; the language's alias moves to the newest."""
        self._by_id[runtime.id] = runtime
        found = sorted(
            (r for r in self._by_id.values() if r.language == runtime.language),
            key=lambda r: _sort_key(r.version),
        )
        self._aliases[runtime.language] = found[-1].id

    def newly_installed(self) -> list[Runtime]:
        """Runtimes installed since start (e.g. by `orvad runtimes install` beside a running orvad) and not yet
        in the catalogue; blocking (a stat per pinned runtime, a --version run per new one): call it in a thread,
        then ``add`` each on the event loop."""
        if self.data_dir is None:
            return []
        return [
            r for r in installed_runtimes(self.data_dir, skip=set(self._by_id)) if r.id not in self._by_id
        ]

    def get(self, runtime_id: str) -> Runtime | None:
        return self._by_id.get(self._aliases.get(runtime_id, runtime_id))

    def installable(self) -> list[str]:
        """Pinned runtimes this orvad could install and has not."""
        return [] if self.data_dir is None else sorted(r for r in PINS if r not in self._by_id)

    def language_of(self, runtime_id: str) -> str | None:
        """The language of an installed runtime, or of one the function's first build will install."""
        found = self.get(runtime_id)
        if found is not None:
            return found.language
        return ORIGINAL_IDS[runtime_id][0] if runtime_id in self.installable() else None

    def refusal(self, runtime_id: object) -> ValidationError:
        """The 400 for a runtime id this host cannot run (python313 and friends get their own words)."""
        installed = self.ids()
        hint = f"GET /api/v1/runtimes lists the installed runtimes: {', '.join(installed)}"
        if isinstance(runtime_id, str) and runtime_id in ORIGINAL_IDS:
            language, version = ORIGINAL_IDS[runtime_id]
            ours = ", ".join(r.id for r in self._sorted(language)) or "none"
            message = (
                f"runtime {runtime_id} (the Go Orva's {LANGUAGE_TITLES[language]} {version}) is not installed on "
                f"this host: its {LANGUAGE_TITLES[language]} runtimes are {ours}"
            )
            hint += (
                f"; use {self._aliases.get(language, installed[0] if installed else language)}, or ask the "
                f"operator to set ORVA_RUNTIME_FALLBACK=true to map {runtime_id} to the nearest installed one"
            )
        else:
            message = f"runtime must be one of {', '.join(installed)}"
        return ValidationError(
            message,
            hint=hint,
            details={"field": "runtime", "allowed": installed, "installable": self.installable()},
        )

    def map_requested(self, runtime_id: object) -> tuple[object, dict[str, str] | None]:
        """The runtime a create/update request's id stands for, and a note when fallback changed it.

        Only the Go original's ids that are not installed are mapped, only with ORVA_RUNTIME_FALLBACK, and
        only to an installed runtime of the same language (the nearest version; the newer on a tie). Without
        an installed one of that language, node ids stay (their first build installs them)."""
        if not self.fallback or not isinstance(runtime_id, str) or runtime_id not in ORIGINAL_IDS:
            return runtime_id, None
        if runtime_id in self._by_id:
            return runtime_id, None
        language, version = ORIGINAL_IDS[runtime_id]
        candidates = self._sorted(language)
        if not candidates:
            return runtime_id, None
        wanted = _sort_key(version)

        def distance(r: Runtime) -> tuple[int, ...]:
            have = _sort_key(r.version)[: len(wanted)]
            return tuple(abs(a - b) for a, b in zip(have, wanted, strict=True))

        nearest = min(reversed(candidates), key=distance)  # reversed: on a tie the newer one wins
        return nearest.id, {
            "requested": runtime_id,
            "runtime": nearest.id,
            "version": nearest.version,
            "reason": f"{runtime_id} is not installed here; ORVA_RUNTIME_FALLBACK=true maps it to "
            f"the nearest installed {LANGUAGE_TITLES[language]} runtime",
        }

    async def ensure_for_build(self, runtime_id: str, say: Callable[[str], Awaitable[None]]) -> None:
        """The builder's first step: a pinned runtime not installed yet is installed now (its lines go to the
        build log); a failure fails the build with the reason and the command that installs it by hand."""
        if self.get(runtime_id) is not None or runtime_id not in PINS or self.data_dir is None:
            return
        for runtime in await asyncio.to_thread(self.newly_installed):
            self.add(runtime)
        if self.get(runtime_id) is not None:
            return
        await say(f"runtime {runtime_id} is not installed on this host yet: installing it now (once)")
        from orvad.builder.installer import BuildFailed

        try:
            await install(self.data_dir, runtime_id, say)
        except RuntimeInstallError as exc:
            raise BuildFailed(
                f"runtime {runtime_id} could not be installed: {exc}. Install it on the server with "
                f"`{install_command(runtime_id)}`, then deploy again"
            ) from None
        for runtime in await asyncio.to_thread(self.newly_installed):
            self.add(runtime)
        if self.get(runtime_id) is None:
            raise BuildFailed(
                f"runtime {runtime_id} was installed but its node does not start (see orvad's log); "
                f"remove {installed_folder(self.data_dir) / runtime_id} and run "
                f"`{install_command(runtime_id)}`"
            )

    def _sorted(self, language: str) -> list[Runtime]:
        return sorted(
            (r for r in self._by_id.values() if r.language == language), key=lambda r: _sort_key(r.version)
        )

    def interpreter_of(self, runtime_id: str) -> str:
        found = self.get(runtime_id)
        if found is None:
            raise KeyError(runtime_id)
        return found.interpreter

    def ids(self) -> list[str]:
        return sorted([*self._aliases, *self._by_id])

    def list(self) -> list[dict[str, Any]]:
        return [
            r.as_json(sorted(a for a, target in self._aliases.items() if target == r.id))
            for r in sorted(self._by_id.values(), key=lambda r: r.id)
        ]


LANGUAGE_TITLES = {"python": "Python", "node": "Node.js"}


def installed_runtimes(data_dir: Path, skip: set[str] | frozenset[str] = frozenset()) -> list[Runtime]:
    """The pinned runtimes installed in ``data_dir`` (but those in ``skip``), each with the version its binary
    answers."""
    found = []
    for runtime_id in sorted(PINS):
        if runtime_id not in skip and is_installed(data_dir, runtime_id):
            binary = node_binary(data_dir, runtime_id)
            version = node_version(binary)
            if version is None:
                log.error(
                    "an installed runtime does not start; reinstall it",
                    extra={"runtime": runtime_id, "binary": str(binary), "fix": install_command(runtime_id)},
                )
                continue
            found.append(
                Runtime(
                    runtime_id,
                    "node",
                    version,
                    f"{JAIL_RUNTIMES}/{runtime_id}/bin/node",
                    "handler.js",
                    source="installed",
                    host_path=str(binary),
                )
            )
    return found


def installed_folder(data_dir: Path) -> Path:
    """Bound read-only into node jails (workers and builds), at the same path."""
    return data_dir / INSTALLED_DIR


@dataclass(frozen=True)
class _WithInstalled(SandboxData):
    installed: str = ""

    def binds_for(self, language: str, *, build: bool = False) -> tuple[str, ...]:
        binds = super().binds_for(language, build=build)
        if language == "node" and os.path.isdir(self.installed):
            return (*binds, f"{self.installed}:{JAIL_RUNTIMES}")  # nsjail's -R host:jail
        return binds


def with_installed_binds(sandbox: SandboxData, data_dir: Path) -> SandboxData:
    """sandbox/binds.yaml's binds plus, for node jails (workers and builds), the installed runtimes' folder,
    read-only at JAIL_RUNTIMES (once it exists). It holds only complete installs: root-owned, no group/other
    write, Node.js distributions and nothing else."""
    return _WithInstalled(sandbox.binds, sandbox.limits, installed=str(installed_folder(data_dir)))


def discover(data_dir: Path | None = None) -> RuntimeCatalog:
    """Probe the host once at start (each probe is a `--version` call with a deadline); with ``data_dir``,
    the runtimes installed there too."""
    found: list[Runtime] = []
    for path in sorted(Path("/usr/bin").glob(PYTHON_GLOB.rsplit("/", 1)[1])):
        match = _PY_NAME.match(path.name)
        if match and (version := _version([str(path), "--version"])):
            found.append(Runtime(path.name, "python", version, str(path), "handler.py"))
            precompile_adapter(found[-1])
    for node in NODE_PATHS:
        if Path(node).exists() and (version := _version([node, "--version"])):
            found.append(Runtime(f"node{version.split('.')[0]}", "node", version, node, "handler.js"))
    if data_dir is not None:
        system = {r.id for r in found}
        found += [r for r in installed_runtimes(data_dir) if r.id not in system]
    return RuntimeCatalog(found, data_dir)
