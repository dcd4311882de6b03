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


MAX_DEPTH = 256  # folders a walked tree may nest; deeper trees are refused (TooDeep), never recursed into
_OPEN_WINDOW = 64  # folder descriptors remove_tree keeps open at most; deeper levels are reopened by name


class UnsafeTree(ValueError):
    """A tree holds something orvad will not serve (a device, FIFO or socket); the message names it."""


class TooDeep(UnsafeTree):
    """A tree nests folders deeper than the walk's cap; the message shows the start of the path."""


@dataclass(frozen=True)
class Node:
    rel: str  # '/'-separated, relative to the walked root
    mode: int  # lstat st_mode
    blocks: int  # lstat st_blocks (512-byte units)
    size: int = 0  # lstat st_size


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
    return bool(
        _at(
            root,
            rel,
            lambda parent, name: stat.S_ISREG(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode),
        )
    )


def _entries(fd: int) -> list[os.DirEntry[str]]:
    with os.scandir(fd) as it:
        return sorted(it, key=lambda e: e.name)


def _walk_fd(
    root_fd: int, max_depth: int, on_too_deep: Callable[[str], None] | None
) -> Iterator[tuple[Node, int, str]]:
    """(node, parent fd, name) for everything beneath ``root_fd``; the fds live during the yield.

    Iterative (an explicit stack of folder descriptors, so no depth makes it recurse). A folder
    more than ``max_depth`` folders down raises TooDeep, or (``on_too_deep`` given) is reported
    to it and not entered.
    """
    stack: list[tuple[int, str, Iterator[os.DirEntry[str]]]] = [(root_fd, "", iter(_entries(root_fd)))]
    try:
        while stack:
            fd, prefix, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                if fd != root_fd:
                    os.close(fd)
                continue
            st = entry.stat(follow_symlinks=False)
            rel = f"{prefix}{entry.name}"
            yield Node(rel, st.st_mode, st.st_blocks, st.st_size), fd, entry.name
            if not stat.S_ISDIR(st.st_mode):
                continue
            if len(stack) >= max_depth:
                if on_too_deep is None:
                    raise TooDeep(f"folders nested deeper than {max_depth}: {_shown(rel)}")
                on_too_deep(rel)
                continue
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
            except OSError:  # replaced under us by a link or removed: not entered
                continue
            try:
                stack.append((child, rel + "/", iter(_entries(child))))
            except BaseException:
                os.close(child)
                raise
    finally:
        for fd, _, _ in stack:
            if fd != root_fd:
                os.close(fd)


def _shown(rel: str) -> str:
    return rel if len(rel) <= 120 else rel[:120] + "..."


def walk(
    root: Path, *, max_depth: int = MAX_DEPTH, on_too_deep: Callable[[str], None] | None = None
) -> Iterator[tuple[Node, int, str]]:
    """Every entry beneath ``root`` (not root itself), depth first, names sorted, links not entered.

    Folders nested deeper than ``max_depth`` raise TooDeep (see ``_walk_fd``).
    """
    root_fd = open_root(root)
    try:
        yield from _walk_fd(root_fd, max_depth, on_too_deep)
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


ENTRY_BYTES = 4096  # what an entry costs at least: one inode (and on most filesystems one block)


def disk_usage(*roots: Path) -> int:
    """Bytes allocated beneath the roots (lstat blocks; links not followed; vanished entries skipped).

    Every entry costs at least ``ENTRY_BYTES``: an empty file holds no block but an inode, and a build
    creating empty files by the hundred thousand exhausted the filesystem's inodes while its blocks
    stayed near zero (found by the red-team pass). Real files take a block anyway, so this changes
    nothing for ordinary trees; it caps a build at ``build_disk_mb`` / 4 KiB entries.
    """
    total = 0
    for root in roots:
        with contextlib.suppress(OSError):
            for node, _, _ in walk(root):
                total += max(node.blocks * 512, ENTRY_BYTES)
    return total


def tree_bytes(root: Path) -> tuple[int, list[str]]:
    """(bytes in the regular files beneath ``root``, paths of folders too deep to enter).

    Never raises on depth or on entries vanishing meanwhile; links are not followed.
    """
    deep: list[str] = []
    total = 0
    with contextlib.suppress(OSError):
        for node, _, _ in walk(root, on_too_deep=deep.append):
            if stat.S_ISREG(node.mode):
                total += node.size
    return total, deep


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything beneath it, at any depth, never following a link.

    ``path`` is orvad's own (its last component may be a link: the link itself is removed).
    Beneath it every folder is entered by descriptor with ``O_NOFOLLOW``; at most
    ``_OPEN_WINDOW`` descriptors are held, shallower levels are reopened from ``path`` by name
    when the removal climbs back to them. A missing ``path`` is not an error.
    """
    try:
        parent = open_root(path.parent)
    except FileNotFoundError:
        return
    try:
        try:
            st = os.stat(path.name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            _empty(parent, path.name)
            os.rmdir(path.name, dir_fd=parent)
        else:
            os.unlink(path.name, dir_fd=parent)
    finally:
        os.close(parent)


def _empty(base: int, name: str) -> None:
    """Remove everything beneath the folder ``name`` of ``base`` (the folder itself stays)."""
    names = [name]
    fds: list[int | None] = [os.open(name, _DIR_FLAGS, dir_fd=base)]
    try:
        while names:
            fd = fds[-1]
            if fd is None:
                fd = _reopen(base, names, fds)
            sub = None
            with os.scandir(fd) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        sub = entry.name
                        break
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.name, dir_fd=fd)
            if sub is not None:
                try:
                    child = os.open(sub, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    continue
                names.append(sub)
                fds.append(child)
                if len(fds) > _OPEN_WINDOW and fds[-_OPEN_WINDOW - 1] is not None:
                    os.close(fds[-_OPEN_WINDOW - 1])  # type: ignore[arg-type]
                    fds[-_OPEN_WINDOW - 1] = None
                continue
            os.close(fd)
            fds.pop()
            done = names.pop()
            if names:
                up = fds[-1]
                if up is None:
                    up = _reopen(base, names, fds)
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(done, dir_fd=up)
    finally:
        for fd in fds:
            if fd is not None:
                os.close(fd)


def _reopen(base: int, names: list[str], fds: list[int | None]) -> int:
    """Reopen, from ``base`` by name and without links, the deepest ``_OPEN_WINDOW`` levels of ``names``."""
    keep_from = max(0, len(names) - _OPEN_WINDOW)
    fd = os.dup(base)
    try:
        for i, part in enumerate(names):
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
            if fds[i] is None and i >= keep_from:
                fds[i] = nxt
                fd = os.dup(nxt)
    finally:
        os.close(fd)
    top = fds[-1]
    assert top is not None
    return top


class TooManyFiles(Exception):
    """A tree has more entries than the caller takes (``link_tree``'s limit)."""


def link_tree(source: Path, target: Path, *, limit: int) -> int:
    """Hard-link everything beneath ``source`` into orvad's own empty folder ``target``; the entries linked.

    A spare jail's code (orvad/services/spares.py): files (and links, as links: linkat without
    AT_SYMLINK_FOLLOW) become hard links to the same inodes, so nothing is read or copied; folders are made
    with their source's owner and mode, so the jail sees the tree it would see bound. ``walk`` never enters a
    link. Raises TooManyFiles past ``limit`` entries and OSError otherwise; the caller discards ``target``.
    """
    src_fd, dst_fd = open_root(source), open_root(target)
    try:
        _same_owner_and_mode(os.fstat(src_fd), dst_fd, None)
        count = 0
        for node, parent, name in walk(source):
            count += 1
            if count > limit:
                raise TooManyFiles(f"more than {limit} entries")
            into = open_dirs(dst_fd, node.rel.split("/")[:-1])
            try:
                if stat.S_ISDIR(node.mode):
                    os.mkdir(name, 0o700, dir_fd=into)
                    _same_owner_and_mode(os.stat(name, dir_fd=parent, follow_symlinks=False), into, name)
                else:
                    os.link(name, name, src_dir_fd=parent, dst_dir_fd=into, follow_symlinks=False)
            finally:
                os.close(into)
        return count
    finally:
        os.close(src_fd)
        os.close(dst_fd)


def _same_owner_and_mode(st: os.stat_result, fd: int, name: str | None) -> None:
    """Give orvad's own folder (``fd``, or its child ``name`` just made) the owner and mode ``st`` says."""
    if name is None:
        os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
    else:
        os.chown(name, st.st_uid, st.st_gid, dir_fd=fd, follow_symlinks=False)
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=fd)
