"""The runtime catalogue: which interpreters this host really has, with their discovered versions.

Runtime ids: ``python`` and ``node`` (the newest found) plus a versioned id per interpreter
(``python3.11``, ``node20``). Only interpreters that run inside the jail with system paths bound
read-only are offered (Debian's ``/usr/bin/python3.X`` and ``/usr/bin/node``).
"""

from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orvad.resources import data_dir

log = logging.getLogger(__name__)

PYTHON_GLOB = "/usr/bin/python3.*"
NODE_PATHS = ("/usr/bin/node",)
_PY_NAME = re.compile(r"^python3\.(\d+)$")


@dataclass(frozen=True)
class Runtime:
    id: str
    language: str             # python | node
    version: str              # discovered, e.g. 3.11.2 or 20.20.2
    interpreter: str          # absolute path on the host (and in the jail)
    default_entrypoint: str

    @property
    def adapter_dir(self) -> Path:
        return data_dir("runtimes") / self.language

    def as_json(self, aliases: list[str]) -> dict[str, Any]:
        return {"id": self.id, "language": self.language, "version": self.version,
                "interpreter": self.interpreter, "default_entrypoint": self.default_entrypoint,
                "aliases": aliases}


def _version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip()
    match = re.search(r"(\d+\.\d+\.\d+)", text)
    return match.group(1) if match else None


def precompile_adapter(runtime: Runtime) -> bool:
    """Write the Python adapter's bytecode beside it (``__pycache__``) with the runtime's own
    interpreter: workers import it from there instead of compiling it at every start (~5 ms of a
    cold start). Best effort: where the installation is read-only, workers only start slower."""
    adapter = runtime.adapter_dir / "adapter.py"
    try:
        subprocess.run([runtime.interpreter, "-S", "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True)",
                        str(adapter)], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("the Python adapter's bytecode could not be written; workers compile it at start",
                 extra={"runtime": runtime.id, "reason": str(exc)[:200]})
        return False
    return True


def _sort_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


class RuntimeCatalog:
    def __init__(self, runtimes: list[Runtime]) -> None:
        self._by_id: dict[str, Runtime] = {r.id: r for r in runtimes}
        self._aliases: dict[str, str] = {}
        for language in ("python", "node"):
            found = sorted((r for r in runtimes if r.language == language), key=lambda r: _sort_key(r.version))
            if found:
                self._aliases[language] = found[-1].id

    def get(self, runtime_id: str) -> Runtime | None:
        return self._by_id.get(self._aliases.get(runtime_id, runtime_id))

    def language_of(self, runtime_id: str) -> str | None:
        found = self.get(runtime_id)
        return found.language if found else None

    def interpreter_of(self, runtime_id: str) -> str:
        found = self.get(runtime_id)
        if found is None:
            raise KeyError(runtime_id)
        return found.interpreter

    def ids(self) -> list[str]:
        return sorted([*self._aliases, *self._by_id])

    def list(self) -> list[dict[str, Any]]:
        return [r.as_json(sorted(a for a, target in self._aliases.items() if target == r.id))
                for r in sorted(self._by_id.values(), key=lambda r: r.id)]


def discover() -> RuntimeCatalog:
    """Probe the host once at start (each probe is a `--version` call with a deadline)."""
    found: list[Runtime] = []
    for path in sorted(Path("/usr/bin").glob(PYTHON_GLOB.rsplit("/", 1)[1])):
        match = _PY_NAME.match(path.name)
        if match and (version := _version([str(path), "--version"])):
            found.append(Runtime(path.name, "python", version, str(path), "handler.py"))
            precompile_adapter(found[-1])
    for node in NODE_PATHS:
        if Path(node).exists() and (version := _version([node, "--version"])):
            found.append(Runtime(f"node{version.split('.')[0]}", "node", version, node, "handler.js"))
    return RuntimeCatalog(found)
