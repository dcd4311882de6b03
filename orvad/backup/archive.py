"""Backup archives: what one holds, how it is written from a data dir, how it is checked and unpacked.

A backup is a gzip-compressed tar (``.tar.gz``) with these entries and nothing else:

    orva.db                                   the database, a consistent copy (``VACUUM INTO``)
    master.key                                the secrets' master key (absent when ORVA_MASTER_KEY is used)
    functions/<function id>/versions/<hash>/  every built version the database names (the retained ones)
    manifest.json                             written last: {"format": "orva-backup", "format_version",
                                              "orvad_version", "created_at", "schema_version", "files":
                                              {name: {"sha256", "size"}}, "links": {name: target},
                                              "versions": [[function id, hash], ...]}

Unpacking (``stage``) runs root-side on an archive an admin uploaded, so it trusts nothing in it: entries
are created one component at a time beneath a directory descriptor with ``O_NOFOLLOW`` and ``O_EXCL``
(orvad/builder/safetree.py ``open_dirs``), names are cleaned as deploy archives' are (absolute paths and
``..`` refused), hard links, devices and FIFOs are refused, a symbolic link is allowed only inside a
version folder and only to a relative target inside that same version, every name must sit where the
layout above puts it, bytes are counted while decompressing against the caps, and only after the last
entry is the manifest compared with what was written: every file's size and sha256, every link, nothing
extra and nothing missing. The database must then pass ``PRAGMA integrity_check`` and carry a schema no
newer than this orvad's. Any failure raises ``BackupRefused`` and the caller removes the staging folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import posixpath
import re
import secrets
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from orvad.builder.archive import ArchiveError
from orvad.builder.archive import _clean as clean_name
from orvad.builder.gc import is_built, mark_built
from orvad.builder.safetree import ENTRY_BYTES, escaping_links, open_dirs, open_root, seal, walk
from orvad.clock import now_iso
from orvad.services.secrets import MASTER_KEY_ENV, MasterKeyError, load_master_key, open_sealed
from orvad.store.backup import (
    DatabaseRefused,
    check_restorable,
    check_schema,
    retained_versions,
    schema_version,
    sealed_sample,
    snapshot_into,
)

FORMAT = "orva-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATABASE = "orva.db"
MASTER_KEY = "master.key"
FUNCTIONS = "functions"
MAX_MANIFEST_BYTES = 32 << 20
MAX_ENTRIES = 500_000
_MAX_KEY_BYTES = 4096  # a master key file is 65 bytes; anything much larger is not one
_NAME = re.compile(
    r"(?!.*\.built$)[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}"
)  # a function id or code hash (no .built)
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class BackupRefused(ValueError):
    """The archive is not a backup orvad will restore; the message says which entry and why."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int  # unpacked bytes, all files together
    max_entries: int = MAX_ENTRIES


# writing ------------------------------------------------------------------------------------------------


class _Hashing(io.RawIOBase):
    """Reads from ``inner`` and keeps the sha256 and count of what was read."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_fd(tar: tarfile.TarFile, name: str, fd: int, manifest: dict[str, Any]) -> None:
    st = os.fstat(fd)
    with os.fdopen(fd, "rb") as fh:
        reader = _Hashing(fh)
        tar.addfile(_info(name, tarfile.REGTYPE, 0o755 if st.st_mode & 0o111 else 0o644, st.st_size), reader)
    manifest["files"][name] = {"sha256": reader.digest.hexdigest(), "size": reader.size}


def _add_version(tar: tarfile.TarFile, base: str, root: Path, manifest: dict[str, Any]) -> None:
    tar.addfile(_info(base, tarfile.DIRTYPE, 0o755))
    for node, parent, entry in walk(root):
        name = f"{base}/{node.rel}"
        if stat.S_ISDIR(node.mode):
            tar.addfile(_info(name, tarfile.DIRTYPE, 0o755))
        elif stat.S_ISLNK(node.mode):
            target = os.readlink(entry, dir_fd=parent)
            tar.addfile(_info(name, tarfile.SYMTYPE, 0o777, link=target))
            manifest["links"][name] = target
        elif stat.S_ISREG(node.mode):
            _add_fd(tar, name, os.open(entry, _READ_FILE, dir_fd=parent), manifest)
        # anything else: a sealed version holds none (safetree.seal refuses them); never archived


def write_backup(data_dir: Path, out: Path, *, orvad_version: str, compresslevel: int = 6) -> dict[str, Any]:
    """Write a backup of ``data_dir`` to ``out`` (a temp name beside it, fsync, rename); returns the manifest.

    The database is copied with VACUUM INTO (consistent while orvad writes); the versions are the built
    ones that copy names. Blocking: run it in a thread."""
    work = out.parent / f".{out.name}.{secrets.token_hex(6)}.tmp"
    work.mkdir(mode=0o700)
    partial = work / "archive.tar.gz"
    try:
        db_copy = work / DATABASE
        snapshot_into(data_dir / DATABASE, db_copy)
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "orvad_version": orvad_version,
            "created_at": now_iso(),
            "schema_version": schema_version(db_copy),
            "files": {},
            "links": {},
            "versions": [],
        }
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with (
            os.fdopen(fd, "wb") as raw,
            tarfile.open(
                fileobj=raw, mode="w:gz", compresslevel=compresslevel, format=tarfile.PAX_FORMAT
            ) as tar,
        ):
            _add_fd(tar, DATABASE, os.open(db_copy, _READ_FILE), manifest)
            key = data_dir / MASTER_KEY
            with contextlib.suppress(FileNotFoundError):
                _add_fd(tar, MASTER_KEY, os.open(key, _READ_FILE), manifest)
            tar.addfile(_info(FUNCTIONS, tarfile.DIRTYPE, 0o755))
            for function_id, code_hash in retained_versions(db_copy):
                version = data_dir / FUNCTIONS / function_id / "versions" / code_hash
                if not (_NAME.fullmatch(function_id) and _NAME.fullmatch(code_hash)) or not is_built(version):
                    continue  # removed by version GC since (its row stays: the API answers VERSION_GCD)
                base = f"{FUNCTIONS}/{function_id}/versions/{code_hash}"
                _add_version(tar, base, version, manifest)
                manifest["versions"].append([function_id, code_hash])
            body = json.dumps(manifest, indent=1, sort_keys=True).encode()
            tar.addfile(_info(MANIFEST, tarfile.REGTYPE, 0o644, len(body)), io.BytesIO(body))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out)
        _fsync_dir(out.parent)
        return manifest
    finally:
        for leftover in (partial, work / DATABASE):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        with contextlib.suppress(OSError):
            work.rmdir()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# reading ------------------------------------------------------------------------------------------------


def _place(name: str) -> tuple[str, int]:
    """Where ``name`` may sit: ('top', 0) for the three top-level files, ('functions', depth) beneath
    functions/, ('version', n) inside a version folder; raises BackupRefused for anything else."""
    parts = name.split("/")
    if len(parts) == 1 and parts[0] in (MANIFEST, DATABASE, MASTER_KEY, FUNCTIONS):
        return ("top", 0)
    if parts[0] != FUNCTIONS:
        raise BackupRefused(
            f"{name!r} is not part of an orva backup (expected only {MANIFEST}, {DATABASE}, {MASTER_KEY} "
            f"and {FUNCTIONS}/)"
        )
    if len(parts) >= 3 and parts[2] != "versions":
        raise BackupRefused(f"{name!r} is not a version folder (functions/<id>/versions/<hash>/...)")
    if not all(_NAME.fullmatch(p) for p in parts[1:4:2]) or (
        len(parts) > 3 and not _NAME.fullmatch(parts[3])
    ):
        raise BackupRefused(f"{name!r} does not name a function id and code hash")
    return ("version", len(parts) - 4) if len(parts) > 4 else ("functions", len(parts))


class _Capped(io.RawIOBase):
    """The decompressed stream, failing once more than ``cap`` bytes came out of it (a gzip bomb)."""

    def __init__(self, inner: IO[bytes], cap: int) -> None:
        self.inner, self.cap, self.count = inner, cap, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        self.count += len(data)
        if self.count > self.cap:
            raise BackupRefused(f"the archive unpacks to more than {self.cap} bytes")
        buffer[: len(data)] = data
        return len(data)


@dataclass
class _Written:
    files: dict[str, tuple[str, int]]
    links: dict[str, str]
    total: int = 0


def _write_file(root_fd: int, name: str, source: IO[bytes], declared: int, mode: int, seen: _Written) -> None:
    parts = name.split("/")
    parent = _folder(root_fd, parts[:-1], name)
    try:
        try:
            # 0600 always for the top-level files (the master key, the database: never the archive's mode);
            # a version's file keeps only its executable bit (seal() later clears set-id and group/other write)
            executable = parts[0] == FUNCTIONS and mode & 0o111
            fd = os.open(parts[-1], _NEW_FILE, 0o755 if executable else 0o600, dir_fd=parent)
        except FileExistsError:
            raise BackupRefused(f"the archive lists {name!r} twice") from None
        except IsADirectoryError:
            raise BackupRefused(f"the archive lists {name!r} as a folder and as a file") from None
    finally:
        os.close(parent)
    digest, size = hashlib.sha256(), 0
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(_CHUNK):
            size += len(chunk)
            if size > declared:
                raise BackupRefused(f"{name!r} unpacks larger than its header says")
            digest.update(chunk)
            out.write(chunk)
    seen.files[name] = (digest.hexdigest(), size)


def _folder(root_fd: int, parts: list[str], name: str) -> int:
    try:
        return open_dirs(root_fd, parts, create=True)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.EEXIST):
            raise BackupRefused(f"{name!r} needs a folder where the archive has a file or a link") from None
        raise


def _link(root_fd: int, name: str, target: str, depth: int, seen: _Written) -> None:
    """A symbolic link inside a version folder, to a relative target inside that version."""
    if depth < 1:
        raise BackupRefused(f"symbolic link {name!r} is only allowed inside a version folder")
    inside = posixpath.normpath(posixpath.join(posixpath.dirname(name.split("/", 4)[4]), target))
    if not target or target.startswith("/") or inside == ".." or inside.startswith("../") or "\0" in target:
        raise BackupRefused(f"symbolic link {name!r} points outside its version ({target!r})")
    parts = name.split("/")
    parent = _folder(root_fd, parts[:-1], name)
    try:
        os.symlink(target, parts[-1], dir_fd=parent)
    except FileExistsError:
        raise BackupRefused(f"the archive lists {name!r} twice") from None
    finally:
        os.close(parent)
    seen.links[name] = target


def _charge(seen: _Written, name: str, info: tarfile.TarInfo, limits: Limits) -> None:
    """Count what ``info`` takes on disk against ORVA_RESTORE_MAX_BYTES: its declared size, and at least
    ENTRY_BYTES for any entry (an inode and a block: 100,000 empty folders, a 1 MB upload, took 394 MB
    of disk while their bytes counted 0), as build outputs are counted (safetree.disk_usage)."""
    size = info.size if info.isreg() else 0
    cost = max(size, ENTRY_BYTES)
    if size < 0 or seen.total + cost > limits.max_bytes:
        raise BackupRefused(
            f"{name!r} declares {size} bytes: the archive would unpack to more than {limits.max_bytes} bytes "
            "(ORVA_RESTORE_MAX_BYTES; every entry counts at least 4 KiB, a file's inode and block)"
        )
    seen.total += cost


def _entry_name(info: tarfile.TarInfo) -> str:
    try:
        name = clean_name(info.name)
    except ArchiveError as exc:
        raise BackupRefused(str(exc)) from None
    if not name:
        raise BackupRefused(f"entry {info.name!r} has no name")
    if "\0" in name:  # os.open would raise ValueError (a 500), not a refusal
        raise BackupRefused(f"entry {info.name!r} has a NUL character in its name")
    return name


def _unpack(archive: Path, root_fd: int, limits: Limits) -> _Written:
    seen = _Written({}, {})
    dirs: set[str] = set()
    count = 0
    cap = limits.max_bytes + 4096 * (limits.max_entries + 2)
    with open(archive, "rb") as raw:
        stream = _Capped(zlib_reader(raw), cap)
        with tarfile.open(fileobj=io.BufferedReader(stream, _CHUNK), mode="r|") as tar:
            for info in tar:
                count += 1
                if count > limits.max_entries:
                    raise BackupRefused(f"the archive has more than {limits.max_entries} entries")
                name = _entry_name(info)
                where, depth = _place(name)
                if name in dirs or name in seen.files or name in seen.links:
                    raise BackupRefused(f"the archive lists {name!r} twice")
                _charge(seen, name, info, limits)
                if info.islnk():
                    raise BackupRefused(f"hard link {name!r} is not allowed in a backup")
                if info.issym():
                    _link(root_fd, name, info.linkname, depth if where == "version" else 0, seen)
                elif info.isdir():
                    if where == "top" and name != FUNCTIONS:
                        raise BackupRefused(f"{name!r} must be a file")
                    os.close(_folder(root_fd, name.split("/"), name))
                    dirs.add(name)
                elif info.isreg():
                    if where == "functions" or name == FUNCTIONS:
                        raise BackupRefused(f"{name!r} must be a folder")
                    if name == MANIFEST and info.size > MAX_MANIFEST_BYTES:
                        raise BackupRefused(f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
                    source = tar.extractfile(info)
                    assert source is not None
                    with source:
                        _write_file(root_fd, name, source, info.size, info.mode, seen)
                else:
                    raise BackupRefused(f"special file {name!r} (device, FIFO or socket) is not allowed")
    if count == 0:
        raise BackupRefused("the archive holds no entries")
    return seen


def zlib_reader(raw: IO[bytes]) -> IO[bytes]:
    """The gzip stream of ``raw`` decompressed (a backup is always .tar.gz)."""
    import gzip

    head = raw.read(2)
    raw.seek(0)
    if head != b"\x1f\x8b":
        raise BackupRefused("not a gzip-compressed tar (.tar.gz): an orva backup starts with the gzip magic")
    return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]


def _manifest(staged: Path) -> dict[str, Any]:
    try:
        fd = os.open(staged / MANIFEST, _READ_FILE)
    except FileNotFoundError:
        raise BackupRefused(f"the archive has no {MANIFEST}: it is not an orva backup") from None
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(MAX_MANIFEST_BYTES + 1)
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupRefused(f"{MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupRefused(f"{MANIFEST} is not an orva backup manifest (format must be {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BackupRefused(f"{MANIFEST} has no integer format_version")
    if version > FORMAT_VERSION or version < 1:
        raise BackupRefused(
            f"the backup has format version {version}; this orvad reads format {FORMAT_VERSION}: restore it "
            "with the orvad version that made it (or a newer one)"
        )
    if not isinstance(manifest.get("files"), dict) or not isinstance(manifest.get("links", {}), dict):
        raise BackupRefused(f"{MANIFEST} must hold a files object and a links object")
    return manifest


def _compare(manifest: dict[str, Any], seen: _Written) -> None:
    files: dict[str, Any] = manifest["files"]
    listed = set(files)
    written = set(seen.files) - {MANIFEST}
    if missing := sorted(listed - written):
        raise BackupRefused(f"{MANIFEST} lists {missing[0]!r} but the archive does not hold it")
    if extra := sorted(written - listed):
        raise BackupRefused(f"the archive holds {extra[0]!r}, which {MANIFEST} does not list")
    for name in sorted(listed):
        entry = files[name]
        digest, size = seen.files[name]
        if not isinstance(entry, dict) or entry.get("size") != size:
            raise BackupRefused(f"{name!r} has {size} bytes, not the size {MANIFEST} gives")
        if entry.get("sha256") != digest:
            raise BackupRefused(f"{name!r} does not match its sha256 in {MANIFEST}: the file was changed")
    links: dict[str, Any] = manifest.get("links", {})
    if links != seen.links:
        odd = sorted(set(links.items()) ^ set(seen.links.items()))
        raise BackupRefused(f"the symbolic links do not match {MANIFEST} (first: {odd[0][0]!r})")
    if DATABASE not in seen.files:
        raise BackupRefused(f"the archive has no {DATABASE}")


def stage(
    archive: Path, staging: Path, *, newest_schema: int, limits: Limits, kept_key: Path | None = None
) -> dict[str, Any]:
    """Unpack and check ``archive`` into the new, empty folder ``staging``; returns the manifest.
    ``kept_key``: the data dir's master.key, which stays when the archive has none.

    Raises BackupRefused with a reader-facing message; ``staging`` is then left for the caller to remove.
    Blocking: run it in a thread."""
    root_fd = open_root(staging)
    try:
        try:
            seen = _unpack(archive, root_fd, limits)
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise BackupRefused(f"not a readable .tar.gz (truncated or corrupt): {exc}") from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise BackupRefused(
                f"the archive could not be read: {exc.strerror or type(exc).__name__}"
            ) from None
    finally:
        os.close(root_fd)
    manifest = _manifest(staging)
    _compare(manifest, seen)
    for name in (DATABASE, MASTER_KEY):
        if name in seen.files and not stat.S_ISREG(os.stat(staging / name, follow_symlinks=False).st_mode):
            raise BackupRefused(f"{name!r} must be a file")
    key = staging / MASTER_KEY
    if key.exists() and not _valid_key(key):
        raise BackupRefused(f"{MASTER_KEY} must hold 64 hex characters")
    try:
        check_restorable(staging / DATABASE, newest_schema)
        check_schema(staging / DATABASE, newest_schema)
    except DatabaseRefused as exc:
        raise BackupRefused(str(exc)) from None
    _check_key_opens(staging / DATABASE, key if key.exists() else kept_key)
    versions = staging / FUNCTIONS
    if versions.exists():
        for function_dir in sorted(versions.iterdir()):
            for version in (
                sorted((function_dir / "versions").iterdir()) if (function_dir / "versions").exists() else []
            ):
                if bad := escaping_links(version):
                    raise BackupRefused(f"a link in {version.name} points outside it: {bad[0]!r}")
                seal(version, 0 if os.geteuid() == 0 else None)
                mark_built(version)
    return manifest


def _check_key_opens(database: Path, key_file: Path | None) -> None:
    """The master key orvad uses after the swap (ORVA_MASTER_KEY when set, else ``key_file``) must open the
    database's secrets; otherwise the restore "succeeds" and every function with a secret then fails to
    start with Unsealable (a backup of another orvad, a master.key swapped in the archive)."""
    sample = sealed_sample(database)
    if sample is None:
        return
    if os.environ.get(MASTER_KEY_ENV) is None and (key_file is None or not key_file.exists()):
        raise BackupRefused(
            f"the database holds secrets but the archive has no {MASTER_KEY}, nor has this data dir one (or "
            f"{MASTER_KEY_ENV}): they could not be read"
        )
    used = MASTER_KEY_ENV if os.environ.get(MASTER_KEY_ENV) is not None else f"the {MASTER_KEY} it would use"
    try:
        master = load_master_key(key_file or Path(os.devnull))
        open_sealed(master, *sample)
    except (MasterKeyError, ValueError):  # Unsealable too
        raise BackupRefused(
            f"the master key ({used}) does not open the database's secrets: the backup was taken with "
            "another master key; restore it with that key (the archive's master.key, or ORVA_MASTER_KEY)"
        ) from None


def _valid_key(path: Path) -> bool:
    """The whole file read as orvad's start reads it (services/secrets.py load_master_key): a key that
    passed here but failed there would stop the reload after the swap."""
    fd = os.open(path, _READ_FILE)
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(_MAX_KEY_BYTES + 1)
    if len(raw) > _MAX_KEY_BYTES:
        return False
    try:
        load_master_key(path, environ={})
    except (MasterKeyError, ValueError, OSError):  # ValueError: UnicodeDecodeError too
        return False
    return True
