"""Root-side access to tenant-written trees (uploads, build outputs) that never follows a link.

Every path is opened one component at a time from a directory file descriptor with
``O_NOFOLLOW``, so a symbolic link placed in a tree by an archive or a build script cannot
make orvad (root) read, write or change anything outside that tree. Walks use ``scandir``
on descriptors and ``lstat`` data; links are reported, never entered.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # O_NONBLOCK: a FIFO never blocks us


class UnsafeTree(ValueError):
    """A tree holds something orvad will not serve (a device, FIFO or socket); the message names it."""


@dataclass(frozen=True)
class Node:
    rel: str            # '/'-separated, relative to the walked root
    mode: int           # lstat st_mode
    blocks: int         # lstat st_blocks (512-byte units)


def open_root(root: Path) -> int:
    """A descriptor of ``root`` itself (orvad's own path; the last component must not be a link)."""
    return os.open(root, _DIR_FLAGS)


def open_dirs(root_fd: int, parts: list[str], *, create: bool = False) -> int:
    """A descriptor of ``root/parts...``, every component a real folder (``create``: made when missing)."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            if part in ("", ".", ".."):
                raise FileNotFoundError(part)
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)  # ELOOP on a link, ENOTDIR on a file
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _at(root: Path, rel: str, use: Callable[[int, str], T]) -> T | None:
    """``use(parent fd, name)`` for ``root/rel`` reached without links; None when that fails."""
    parts = [p for p in rel.split("/") if p]
    if not parts:
        return None
    try:
        root_fd = open_root(root)
    except OSError:
        return None
    try:
        parent = open_dirs(root_fd, parts[:-1])
        try:
            return use(parent, parts[-1])
        finally:
            os.close(parent)
    except OSError:  # ELOOP (a link), ENOENT, ENOTDIR, ...
        return None
    finally:
        os.close(root_fd)


def read_beneath(root: Path, rel: str, limit: int = 16 << 20) -> bytes | None:
    """The bytes of the regular file ``root/rel``, or None when it is missing, a link or not a file."""
    def read(parent: int, name: str) -> bytes | None:
        with os.fdopen(os.open(name, _FILE_FLAGS, dir_fd=parent), "rb") as f:
            return f.read(limit) if stat.S_ISREG(os.fstat(f.fileno()).st_mode) else None

    return _at(root, rel, read)


def read_text_beneath(root: Path, rel: str) -> str | None:
    data = read_beneath(root, rel)
    return None if data is None else data.decode(errors="replace")


def is_file_beneath(root: Path, rel: str) -> bool:
    """True when ``root/rel`` is a regular file reached without any link."""
    return bool(_at(root, rel, lambda parent, name: stat.S_ISREG(
        os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)))


def _walk_fd(fd: int, prefix: str) -> Iterator[tuple[Node, int, str]]:
    """(node, parent fd, name) for everything beneath the directory ``fd``; the fds live during the yield."""
    with os.scandir(fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        st = entry.stat(follow_symlinks=False)
        rel = f"{prefix}{entry.name}"
        yield Node(rel, st.st_mode, st.st_blocks), fd, entry.name
        if stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
            except OSError:  # replaced under us by a link or removed: not entered
                continue
            try:
                yield from _walk_fd(child, rel + "/")
            finally:
                os.close(child)


def walk(root: Path) -> Iterator[tuple[Node, int, str]]:
    """Every entry beneath ``root`` (not root itself), depth first, names sorted, links not entered."""
    root_fd = open_root(root)
    try:
        yield from _walk_fd(root_fd, "")
    finally:
        os.close(root_fd)


def tree_hash(root: Path) -> str:
    """SHA-256 over the sorted (path, kind, executable bit, content) of every entry under ``root``."""
    records: list[tuple[tuple[str, ...], str]] = []
    for node, parent, name in walk(root):
        if stat.S_ISLNK(node.mode):
            records.append((tuple(node.rel.split("/")), f"L {node.rel} {os.readlink(name, dir_fd=parent)}\n"))
        elif stat.S_ISDIR(node.mode):
            records.append((tuple(node.rel.split("/")), f"D {node.rel}\n"))
        else:
            digest = hashlib.sha256()
            fd = os.open(name, _FILE_FLAGS, dir_fd=parent)
            with os.fdopen(fd, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            executable = "x" if node.mode & 0o111 else "-"
            records.append((tuple(node.rel.split("/")), f"F {node.rel} {executable} {digest.hexdigest()}\n"))
    total = hashlib.sha256()
    for _, line in sorted(records):
        total.update(line.encode())
    return total.hexdigest()


def escaping_links(root: Path) -> list[str]:
    """Relative paths of the symbolic links under ``root`` whose target resolves outside it."""
    real_root = os.path.realpath(root)
    bad = []
    for node, _, _ in walk(root):
        if stat.S_ISLNK(node.mode):
            target = os.path.realpath(os.path.join(root, node.rel))  # resolves names only; reads no content
            if target != real_root and not target.startswith(real_root + os.sep):
                bad.append(node.rel)
    return bad


def seal(root: Path, uid: int | None) -> None:
    """Make a finished tree readable by the jail and owned by ``uid`` (None: leave the owner).

    Group/other write and set-id bits are cleared; directories and executables get x for all.
    Links are left as they are (their own mode means nothing; their targets are never touched).
    """
    root_fd = open_root(root)
    try:
        _seal_fd(root_fd, uid)
        for node, parent, name in walk(root):
            if stat.S_ISLNK(node.mode):
                if uid is not None:
                    os.chown(name, uid, uid, dir_fd=parent, follow_symlinks=False)
                continue
            if not (stat.S_ISDIR(node.mode) or stat.S_ISREG(node.mode)):
                raise UnsafeTree(f"the build created a special file (device, FIFO or socket): {node.rel!r}")
            flags = _DIR_FLAGS if stat.S_ISDIR(node.mode) else _FILE_FLAGS
            fd = os.open(name, flags, dir_fd=parent)
            try:
                _seal_fd(fd, uid)
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def chown_beneath(root: Path, uid: int) -> None:
    """Give ``root`` and everything beneath it to ``uid``; links are changed themselves, never followed."""
    root_fd = open_root(root)
    try:
        os.fchown(root_fd, uid, uid)
        for _, parent, name in walk(root):
            with contextlib.suppress(FileNotFoundError):  # removed while we walked
                os.chown(name, uid, uid, dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(root_fd)


def _seal_fd(fd: int, uid: int | None) -> None:
    st = os.fstat(fd)
    if uid is not None:
        os.fchown(fd, uid, uid)
    mode = stat.S_IMODE(st.st_mode) & ~0o6022 | 0o444
    if stat.S_ISDIR(st.st_mode) or mode & 0o100:
        mode |= 0o111
    os.fchmod(fd, mode | 0o200)


def disk_usage(*roots: Path) -> int:
    """Bytes allocated beneath the roots (lstat blocks; links not followed; vanished entries skipped)."""
    total = 0
    for root in roots:
        with contextlib.suppress(OSError):
            for node, _, _ in walk(root):
                total += node.blocks * 512
    return total
