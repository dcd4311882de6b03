"""Unpacking of uploaded .tar(.gz|.xz|.bz2) and .zip archives into an empty folder, link-free.

Refused: absolute paths, ``..`` components, links of any kind (symbolic or hard: a deploy
archive carries files, ``tar -h`` archives what a link points to), device files and FIFOs,
more than ``max_files`` entries, more than ``max_bytes`` once unpacked. Bytes are counted while
decompressing, so a compression bomb stops at the cap instead of after it. Every entry is
created beneath a directory file descriptor with ``O_NOFOLLOW`` and ``O_EXCL``, so nothing is
ever written through a path that is not a plain folder this extraction made. A single top-level
folder is stripped (``tar czf x.tgz myfn/`` deploys like ``tar czf x.tgz -C myfn .``).

This module runs in the unpacking child (``unpack.py``), as the jail user, never in orvad.
Error messages name entries as the archive spells them, never a host path.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import lzma
import os
import posixpath
import secrets
import stat
import tarfile
import zipfile
import zlib
from typing import IO

from orvad.builder.safetree import open_dirs

MAX_FILES = 10_000
MAX_BYTES = 256 * 1024 * 1024
# Compression ratio: code and its packages compress 3-20x; past 200x (and past 32 MiB, so small
# archives of repetitive text never trip it) the archive is a bomb, refused before the byte cap.
MAX_RATIO = 200
RATIO_FLOOR = 32 * 1024 * 1024
MAX_DEPTH = (
    64  # folders an entry may sit beneath (root-side walks refuse trees deeper than safetree.MAX_DEPTH)
)


def _check_ratio(unpacked: int, packed: int) -> None:
    if unpacked > RATIO_FLOOR and unpacked > MAX_RATIO * max(packed, 1):
        raise ArchiveError(
            f"archive expands more than {MAX_RATIO} times ({packed} bytes unpack to more than "
            f"{unpacked}); refused as a compression bomb"
        )


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 16


class ArchiveError(ValueError):
    """The archive is unsafe or unreadable; the message says which entry and why."""


def _clean(name: str) -> str:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"absolute path in archive: {name!r}")
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"path escapes the archive with '..': {name!r}")
    if len(parts) > MAX_DEPTH + 1:
        shown = name if len(name) <= 120 else name[:120] + "..."
        raise ArchiveError(
            f"entry {shown!r} is nested {len(parts) - 1} folders deep; the limit is {MAX_DEPTH} folders"
        )
    return "/".join(parts)


def _refuse_link(path: str, target: str) -> None:
    if target.startswith("/"):
        raise ArchiveError(f"link {path!r} points to an absolute path {target!r}; links are not allowed")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        raise ArchiveError(f"link {path!r} points outside the archive ({target!r}); links are not allowed")
    raise ArchiveError(
        f"symbolic link {path!r} is not allowed in a deploy archive; "
        "archive the file itself (tar -h follows links)"
    )


def _inside_target(path: str, target: str) -> str:
    """A link's target when it is relative and, read as written, stays inside the tree."""
    if not target or "\x00" in target or target.startswith("/"):
        raise ArchiveError(f"link {path!r} points to an absolute path {target!r}; only links inside are kept")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        raise ArchiveError(f"link {path!r} points outside the tree ({target!r})")
    return target


class _Capped(io.RawIOBase):
    """A read-only stream that fails once more than ``cap`` bytes came out of it."""

    def __init__(self, inner: IO[bytes], cap: int, max_bytes: int, packed: int) -> None:
        self._inner = inner
        self._left = cap
        self._max_bytes = max_bytes
        self._packed = packed
        self._out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(min(len(buffer), _CHUNK))
        self._left -= len(data)
        self._out += len(data)
        _check_ratio(self._out, self._packed)
        if self._left < 0:
            raise ArchiveError(
                f"archive unpacks to more than {self._max_bytes} bytes; the limit is {self._max_bytes}"
            )
        buffer[: len(data)] = data
        return len(data)


def _decompressed(data: bytes) -> IO[bytes]:
    raw = io.BytesIO(data)
    if data[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if data[:3] == b"BZh":
        return bz2.BZ2File(raw)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw)
    return raw


class _Writer:
    """Creates folders and files beneath one directory descriptor, never through a link."""

    def __init__(self, root_fd: int, max_bytes: int) -> None:
        self.root_fd = root_fd
        self.max_bytes = max_bytes
        self.written = 0

    def folder(self, parts: list[str], name: str) -> int:
        try:
            return open_dirs(self.root_fd, parts, create=True)
        except OSError as exc:
            if exc.errno in (
                errno.ENOTDIR,
                errno.ELOOP,
                errno.EEXIST,
            ):  # a file or a link has a folder's name
                raise ArchiveError(f"{name!r} needs a folder where the archive has a file") from None
            raise

    def file(self, name: str, source: IO[bytes], declared: int, executable: bool) -> None:
        parts = name.split("/")
        parent = self.folder(parts[:-1], name)
        try:
            try:
                fd = os.open(parts[-1], _NEW_FILE, 0o755 if executable else 0o644, dir_fd=parent)
            except FileExistsError:
                raise ArchiveError(f"archive lists {name!r} twice") from None
            except IsADirectoryError:
                raise ArchiveError(f"archive lists {name!r} as a folder and as a file") from None
        finally:
            os.close(parent)
        with os.fdopen(fd, "wb") as out:
            size = 0
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                self.written += len(chunk)
                if size > declared:
                    raise ArchiveError(f"{name!r} unpacks larger than its header says")
                if self.written > self.max_bytes:
                    raise ArchiveError(
                        f"archive unpacks to more than {self.max_bytes} bytes; the limit is {self.max_bytes}"
                    )
                out.write(chunk)

    def link(self, name: str, target: str) -> None:
        """A symbolic link ``name`` -> ``target``, made beneath real folders only (never through a link)."""
        parts = name.split("/")
        parent = self.folder(parts[:-1], name)
        try:
            os.symlink(target, parts[-1], dir_fd=parent)
        except FileExistsError:
            raise ArchiveError(f"archive lists {name!r} twice") from None
        finally:
            os.close(parent)

    def strip_single_root(self) -> None:
        """If the tree is one folder, move its contents up (tar czf x.tgz myfn/)."""
        names = os.listdir(self.root_fd)
        if len(names) != 1 or not stat.S_ISDIR(
            os.stat(names[0], dir_fd=self.root_fd, follow_symlinks=False).st_mode
        ):
            return
        hidden = f".orva-strip-{secrets.token_hex(8)}"
        os.rename(names[0], hidden, src_dir_fd=self.root_fd, dst_dir_fd=self.root_fd)
        inner = os.open(hidden, _DIR_FLAGS, dir_fd=self.root_fd)
        try:
            for child in os.listdir(inner):
                os.rename(child, child, src_dir_fd=inner, dst_dir_fd=self.root_fd)
        finally:
            os.close(inner)
        os.rmdir(hidden, dir_fd=self.root_fd)


def extract_into(
    data: bytes,
    root_fd: int,
    *,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_BYTES,
    version_blob: bool = False,
) -> int:
    """Unpack a tar (any compression) or zip held in ``data`` beneath the empty folder ``root_fd``.

    ``version_blob``: a packed version tree (orvad/builder/shared.py): a tar only, never stripped, and
    symbolic links are kept when their target is relative and stays inside the tree as written (npm's
    ``node_modules/.bin``); a link is created, never followed: a later entry beneath it or of its name is
    refused (the caller also resolves every link once unpacked and refuses one that escapes).
    Returns the number of entries.
    """
    writer = _Writer(root_fd, max_bytes)
    try:
        if version_blob:
            count = _tar(data, writer, max_files, links=True)
        elif zipfile.is_zipfile(io.BytesIO(data)):
            count = _zip(data, writer, max_files)
        else:
            count = _tar(data, writer, max_files)
        if not version_blob:
            writer.strip_single_root()
    except ArchiveError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ArchiveError(f"not a readable .tar.gz, .tar.xz, .tar.bz2 or .zip archive: {exc}") from None
    except OSError as exc:  # gzip's BadGzipFile, the size rlimit: no path in the message
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # a full disk is not the archive's fault: the unpacker reports it as such
        raise ArchiveError(
            f"the archive could not be unpacked: {exc.strerror or type(exc).__name__}"
        ) from None
    return count


def _tar(data: bytes, writer: _Writer, max_files: int, *, links: bool = False) -> int:
    # headers, padding and pax records on top of the files' own bytes, bounded per entry
    capped = _Capped(
        _decompressed(data), writer.max_bytes + 4096 * (max_files + 2), writer.max_bytes, len(data)
    )
    count = 0
    with tarfile.open(fileobj=io.BufferedReader(capped, _CHUNK), mode="r|") as tar:
        for info in tar:
            count += 1
            if count > max_files:
                raise ArchiveError(f"archive has more than {max_files} entries; the limit is {max_files}")
            path = _clean(info.name)
            if info.issym() and links and path:
                writer.link(path, _inside_target(path, info.linkname))
                continue
            if info.issym():
                _refuse_link(path, info.linkname)
            if info.islnk():
                raise ArchiveError(f"hard link {path!r} is not allowed; archive the file itself")
            if not path:
                continue
            if info.isdir():
                os.close(writer.folder(path.split("/"), path))
            elif info.isreg():
                if writer.written + info.size > writer.max_bytes:
                    raise ArchiveError(
                        f"archive unpacks to more than {writer.max_bytes} bytes; "
                        f"the limit is {writer.max_bytes}"
                    )
                source = tar.extractfile(info)
                assert source is not None
                with source:
                    writer.file(path, source, info.size, bool(info.mode & 0o111))
            else:
                raise ArchiveError(f"special file {path!r} (device, FIFO or socket) is not allowed")
    if count == 0:
        raise ArchiveError("not a readable .tar.gz, .tar.xz, .tar.bz2 or .zip archive: it holds no entries")
    return count


def _zip(data: bytes, writer: _Writer, max_files: int) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > max_files:
            raise ArchiveError(f"archive has {len(infos)} entries; the limit is {max_files}")
        planned: list[tuple[zipfile.ZipInfo, str]] = []
        total = 0
        for info in infos:
            path = _clean(info.filename)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise ArchiveError(
                    f"symbolic link {path!r} is not allowed in a deploy archive; archive the file itself"
                )
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ArchiveError(f"special file {path!r} is not allowed")
            total += info.file_size
            if path:
                planned.append((info, path))
        if total > writer.max_bytes:
            raise ArchiveError(f"archive unpacks to {total} bytes; the limit is {writer.max_bytes}")
        _check_ratio(total, len(data))
        for info, path in planned:
            if info.is_dir():
                os.close(writer.folder(path.split("/"), path))
                continue
            with zf.open(info) as source:
                writer.file(path, source, info.file_size, bool((info.external_attr >> 16) & 0o111))
    return len(infos)
