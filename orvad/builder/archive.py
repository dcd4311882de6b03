"""Safe unpacking of uploaded .tar.gz/.zip archives, and the content hash of a code tree.

Refused: absolute paths, ``..`` components, links (symbolic or hard) that leave the tree,
device files and FIFOs, more than ``max_files`` entries or ``max_bytes`` once unpacked. A single
top-level folder is stripped (``tar czf x.tgz myfn/`` deploys like ``tar czf x.tgz -C myfn .``).
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

MAX_FILES = 10_000
MAX_BYTES = 256 * 1024 * 1024


class ArchiveError(ValueError):
    """The archive is unsafe or unreadable; the message says which entry and why."""


@dataclass(frozen=True)
class Entry:
    path: str                  # normalised, relative, '/'-separated
    kind: str                  # file | dir | symlink
    mode: int
    size: int
    link_target: str | None = None


def _clean(name: str) -> str:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"absolute path in archive: {name!r}")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"path escapes the archive with '..': {name!r}")
    return "/".join(parts)


def _check_link(path: str, target: str) -> None:
    if target.startswith("/"):
        raise ArchiveError(f"link {path!r} points to an absolute path {target!r}")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        raise ArchiveError(f"link {path!r} points outside the archive ({target!r})")


def _tar_entries(tar: tarfile.TarFile) -> list[tuple[Entry, tarfile.TarInfo]]:
    out = []
    for info in tar.getmembers():
        path = _clean(info.name)
        if not path:
            continue
        if info.isdir():
            out.append((Entry(path, "dir", info.mode, 0), info))
        elif info.isreg():
            out.append((Entry(path, "file", info.mode, info.size), info))
        elif info.issym():
            _check_link(path, info.linkname)
            out.append((Entry(path, "symlink", 0o777, 0, info.linkname), info))
        elif info.islnk():
            raise ArchiveError(f"hard link {path!r} is not allowed; archive the file itself")
        else:
            raise ArchiveError(f"special file {path!r} (device, FIFO or socket) is not allowed")
    return out


def _strip_single_root(entries: list[Entry]) -> str:
    tops = {e.path.split("/", 1)[0] for e in entries}
    if len(tops) == 1:
        (top,) = tops
        if any(e.path == top and e.kind == "dir" for e in entries) or all("/" in e.path for e in entries):
            return top + "/"
    return ""


def _enforce_limits(entries: list[Entry], max_files: int, max_bytes: int) -> None:
    if len(entries) > max_files:
        raise ArchiveError(f"archive has {len(entries)} entries; the limit is {max_files}")
    total = sum(e.size for e in entries)
    if total > max_bytes:
        raise ArchiveError(f"archive unpacks to {total} bytes; the limit is {max_bytes}")


def extract(data: bytes, dest: Path, *, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES) -> None:
    """Unpack a .tar(.gz) or .zip held in ``data`` into the empty folder ``dest``."""
    if zipfile.is_zipfile(io.BytesIO(data)):
        _extract_zip(data, dest, max_files, max_bytes)
        return
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            pairs = _tar_entries(tar)
            entries = [e for e, _ in pairs]
            _enforce_limits(entries, max_files, max_bytes)
            root = _strip_single_root(entries)
            for entry, info in pairs:
                rel = entry.path[len(root):] if root else entry.path
                if not rel:
                    continue
                target = dest / rel
                if entry.kind == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                elif entry.kind == "symlink":
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(entry.link_target or "", target)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(info)
                    assert source is not None
                    with source, open(target, "xb") as out:
                        shutil.copyfileobj(source, out)
                    target.chmod(0o755 if entry.mode & 0o111 else 0o644)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, FileExistsError):
            raise ArchiveError(f"archive lists {exc.filename!r} twice") from None
        raise ArchiveError(f"not a readable .tar.gz or .zip archive: {exc}") from None


def _extract_zip(data: bytes, dest: Path, max_files: int, max_bytes: int) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            entries = []
            for info in infos:
                path = _clean(info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise ArchiveError(f"symbolic link {path!r} in a zip is not allowed; use .tar.gz")
                if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise ArchiveError(f"special file {path!r} is not allowed")
                if path:
                    entries.append(Entry(path, "dir" if info.is_dir() else "file", mode, info.file_size))
            _enforce_limits(entries, max_files, max_bytes)
            root = _strip_single_root(entries)
            for info, entry in zip([i for i in infos if _clean(i.filename)], entries, strict=True):
                rel = entry.path[len(root):] if root else entry.path
                if not rel:
                    continue
                target = dest / rel
                if entry.kind == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                written = 0
                with zf.open(info) as source, open(target, "xb") as out:
                    while chunk := source.read(1 << 16):
                        written += len(chunk)
                        if written > entry.size:  # the header lied about the size
                            raise ArchiveError(f"{rel!r} unpacks larger than its header says")
                        out.write(chunk)
                target.chmod(0o755 if entry.mode & 0o111 else 0o644)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"not a readable .zip archive: {exc}") from None


def tree_hash(root: Path) -> str:
    """SHA-256 over the sorted (path, kind, executable bit, content) of every entry under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            digest.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_dir():
            digest.update(f"D {rel}\n".encode())
        else:
            executable = "x" if path.stat().st_mode & 0o111 else "-"
            digest.update(f"F {rel} {executable} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()
