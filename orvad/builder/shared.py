"""Shared versions (issue 25; docs/CLUSTER.md "Shared versions"): a version built on one node, served by all.

After a build the node packs the version tree (``pack``: tar in the walk's sorted order, fixed owners,
modes and times, gzip with no name or time in its header, so the same tree gives the same bytes), names the
packed bytes by their SHA-256 and stores them once in ``version_blobs``, named from the deployment
(``deployments.blob_hash``). A node that must start a worker of a version it does not have (its pools at
start, a change event, an invoke) fetches the blob by that hash, checks the bytes against it, and unpacks it
the way an uploaded archive is unpacked: in a child running as the jail user beneath a fresh folder, links
created and never followed (archive.extract_into's ``version_blob`` mode), nothing absolute, no ``..``, no
device, no set-id bit, capped entries and bytes. Then, root-side: every link is resolved and one pointing
outside refuses the whole blob; the tree is sealed (root's, read-only to the jail) and renamed into place in
one step, its ``.built`` marker written after. Concurrent needs of one version on a node share one fetch.

A build is claimed by one node (``claim``): the node that received the upload claims it when it stores the
deployment, so another node starting meanwhile leaves it alone instead of failing it, and a node resuming
builds at start builds only what it holds or nobody does (VersionBlobStore says why one UPDATE is enough).

Blobs are stored only on PostgreSQL (``enabled``): one SQLite node never fetches its own versions, and the
packed copy would double the disk its versions take. Claims are made on both (they cost one UPDATE).

Where the bytes go: the ``version_blobs`` row itself, or, with ORVA_BLOB_URL, an S3-compatible bucket
(``bucket``, orvad/builder/blob_bucket.py): the object ``<prefix>/<sha256>`` is put first, then the row
records the hash, size, time and ``location = 'bucket'`` with no bytes. A build whose version cannot be put
in the bucket fails, naming the bucket and the cause (the other nodes could not run it); a fetch reads the
place the row names (rows stored before the bucket was configured stay in the database) and checks the hash
the same way; the sweep deletes a swept row's object too. The bucket is checked once at start (``check``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import logging
import os
import secrets
import stat
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from orvad.builder.archive import ArchiveError
from orvad.builder.blob_bucket import BlobBucket, BucketError
from orvad.builder.gc import is_built, mark_built
from orvad.builder.installer import BuildFailed
from orvad.builder.safetree import UnsafeTree, escaping_links, remove_tree, seal, walk
from orvad.builder.unpack import unpack
from orvad.clock import now_iso
from orvad.errors import VersionUnavailable
from orvad.store.version_blobs import VersionBlobStore

log = logging.getLogger(__name__)

MAX_BLOB_BYTES = (
    512 * 1024 * 1024
)  # a packed version past this is not shared (a PostgreSQL value's cap is 1 GiB)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_UNPACK_TIMEOUT_S = 300.0
_RETRY_S = 30


class TooLarge(ValueError):
    """The packed tree passed the blob cap."""


class _Capped(io.BytesIO):
    def __init__(self, cap: int) -> None:
        super().__init__()
        self._cap = cap

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self._cap:
            raise TooLarge(f"the packed version passes {self._cap} bytes")
        return super().write(data)


def pack(root: Path, cap: int = MAX_BLOB_BYTES) -> tuple[bytes, int]:
    """The version tree beneath ``root`` as gzip'd tar bytes, the same bytes for the same tree; and its
    entry count. Walked without following a link (links are packed as links); a special file refuses."""
    out = _Capped(cap)
    entries = 0
    with (
        gzip.GzipFile(filename="", fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for node, parent, name in walk(root):
            info = tarfile.TarInfo(node.rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            entries += 1
            if stat.S_ISDIR(node.mode):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif stat.S_ISLNK(node.mode):
                info.type, info.mode = tarfile.SYMTYPE, 0o777
                info.linkname = os.readlink(name, dir_fd=parent)
                tar.addfile(info)
            elif stat.S_ISREG(node.mode):
                with os.fdopen(os.open(name, _FILE_FLAGS, dir_fd=parent), "rb") as f:
                    st = os.fstat(f.fileno())
                    if not stat.S_ISREG(st.st_mode):  # replaced meanwhile: versions are never changed
                        raise UnsafeTree(f"{node.rel!r} changed while it was packed")
                    info.size = st.st_size
                    info.mode = 0o755 if st.st_mode & 0o100 else 0o644
                    tar.addfile(info, f)
            else:
                raise UnsafeTree(f"the version holds a special file (device, FIFO or socket): {node.rel!r}")
    return out.getvalue(), entries


@dataclass(frozen=True)
class Shared:
    """What ``publish`` did: the blob's hash and size, whether this call stored it, and how long packing took."""

    blob_hash: str
    size: int
    entries: int
    added: bool
    pack_ms: float


class SharedVersions:
    def __init__(
        self,
        store: VersionBlobStore,
        *,
        root: Path,
        node_id: str,
        enabled: bool,
        max_files: int,
        max_bytes: int,
        max_blob_bytes: int = MAX_BLOB_BYTES,
        bucket: BlobBucket | None = None,
    ) -> None:
        self._store = store
        self.bucket = bucket if enabled else None  # ORVA_BLOB_URL: where the packed bytes go
        self.root = root  # <data>/functions
        self.node_id = node_id
        self.enabled = enabled
        self._max_files = max_files
        self._max_bytes = max_bytes
        self._max_blob_bytes = max_blob_bytes
        self._fetching: dict[tuple[str, str], asyncio.Future[None]] = {}
        self.fetches = 0  # versions this node fetched and unpacked (tests and logs)

    async def check(self) -> None:
        """At start: BucketUnusable unless ORVA_BLOB_URL's bucket exists and takes the credentials."""
        if self.bucket is not None:
            await self.bucket.check()
            log.info("shared versions are stored in a bucket", extra={"bucket": str(self.bucket)})

    def version_dir(self, function_id: str, code_hash: str) -> Path:
        return self.root / function_id / "versions" / code_hash

    # builds
    async def claim(self, deployment_id: str) -> str | None:
        """Claim a deployment's build for this node: None when it is this node's, else the holder's node id
        ('' when the deployment no longer waits for a build)."""
        return await self._store.claim_build(deployment_id, self.node_id)

    async def holder(self, deployment_id: str) -> str | None:
        return await self._store.holder(deployment_id)

    async def take_orphans(self, seen_since: str) -> list[tuple[str, str]]:
        """The unfinished builds of other nodes not seen since ``seen_since``, each taken over by this node
        (one live node takes each): (deployment id, the node that held it)."""
        taken = []
        for deployment_id, holder in await self._store.orphaned(self.node_id, seen_since):
            if await self._store.take_orphan(deployment_id, holder, self.node_id):
                taken.append((deployment_id, holder))
        return taken

    async def publish(self, deployment_id: str, version: Path) -> Shared | None:
        """Pack ``version`` and store it under its SHA-256, named from the deployment (once per content).
        None when sharing is off; raises TooLarge or UnsafeTree when the tree cannot be shared, BuildFailed when
        the bucket refused it."""
        if not self.enabled:
            return None
        began = time.monotonic()
        data, entries = await asyncio.to_thread(pack, version, self._max_blob_bytes)
        blob_hash = hashlib.sha256(data).hexdigest()
        pack_ms = (time.monotonic() - began) * 1000
        # the same tree is stored already: named, if its row is still there once the write lock is held
        if await self._store.has(blob_hash) and await self._store.name(deployment_id, blob_hash):
            return Shared(blob_hash, len(data), entries, False, pack_ms)
        if self.bucket is None:
            added = await self._store.store(deployment_id, blob_hash, data, now_iso())
        else:
            try:
                await self.bucket.put(blob_hash, data)
            except BucketError as exc:
                log.error(
                    "a built version could not be stored in the bucket",
                    extra={"deployment_id": deployment_id, "blob_hash": blob_hash, "error": str(exc)},
                )
                raise BuildFailed(
                    f"the built version could not be stored for the other nodes (ORVA_BLOB_URL): {exc}; the "
                    "build is failed so that no node is told to run a version it cannot fetch. Deploy again "
                    "once the bucket takes it (docs/CLUSTER.md, Shared versions)"
                ) from None
            added = await self._store.store(deployment_id, blob_hash, data, now_iso(), in_bucket=True)
        return Shared(blob_hash, len(data), entries, added, pack_ms)

    async def sweep(self) -> int:
        """Delete the blobs no deployment names (and their objects in the bucket); returns how many rows."""
        if not self.enabled:
            return 0
        return await self._store.sweep(self.bucket.delete if self.bucket is not None else None)

    # workers
    async def ensure(self, function_id: str, code_hash: str, deployment_id: str | None = None) -> None:
        """The version is on this node's disk when this returns (fetched from the database when it was not);
        VersionUnavailable when it cannot be. Concurrent calls for one version share one fetch."""
        if not self.enabled or await asyncio.to_thread(is_built, self.version_dir(function_id, code_hash)):
            return
        key = (function_id, code_hash)
        running = self._fetching.get(key)
        if running is None:
            running = asyncio.ensure_future(self._fetch(function_id, code_hash, deployment_id))
            self._fetching[key] = running
            running.add_done_callback(lambda _: self._fetching.pop(key, None))
        await asyncio.shield(running)  # a cancelled waiter does not cancel the others' fetch

    async def _fetch(self, function_id: str, code_hash: str, deployment_id: str | None) -> None:
        target = self.version_dir(function_id, code_hash)
        if await asyncio.to_thread(is_built, target):
            return
        blob_hash = await self._store.blob_of(function_id, code_hash, deployment_id)
        if blob_hash is None:
            raise VersionUnavailable(
                f"version {code_hash[:12]} was built on another node and no copy of it is stored in the database",
                retry_after_s=_RETRY_S,
                details={"code_hash": code_hash},
            )
        began = time.monotonic()
        data = await self._read(function_id, code_hash, blob_hash)
        got = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
        if got != blob_hash:
            log.error(
                "a version blob's bytes do not match its hash: refused",
                extra={
                    "function_id": function_id,
                    "code_hash": code_hash,
                    "blob_hash": blob_hash,
                    "got": got,
                },
            )
            raise VersionUnavailable(
                f"the stored copy of version {code_hash[:12]} does not match its hash; refused",
                retry_after_s=_RETRY_S,
                details={"code_hash": code_hash, "blob_hash": blob_hash},
            )
        fetched_ms = (time.monotonic() - began) * 1000
        try:
            await self._unpack(data, target)
        except (ArchiveError, UnsafeTree) as exc:
            log.error(
                "a version blob was refused",
                extra={"function_id": function_id, "blob_hash": blob_hash, "error": str(exc)},
            )
            raise VersionUnavailable(
                f"the stored copy of version {code_hash[:12]} was refused: {exc}",
                retry_after_s=_RETRY_S,
                details={"code_hash": code_hash, "blob_hash": blob_hash},
            ) from None
        self.fetches += 1
        log.info(
            "fetched a version built on another node",
            extra={
                "function_id": function_id,
                "code_hash": code_hash,
                "blob_hash": blob_hash,
                "bytes": len(data),
                "fetch_ms": round(fetched_ms, 1),
                "total_ms": round((time.monotonic() - began) * 1000, 1),
            },
        )

    async def _read(self, function_id: str, code_hash: str, blob_hash: str) -> bytes:
        """The blob's bytes from where its row says they are (not yet checked against the hash)."""
        details = {"code_hash": code_hash, "blob_hash": blob_hash}
        stored = await self._store.stored(blob_hash)
        data: bytes | None = None
        if stored is not None and stored.location == "database":
            data = stored.data
        elif stored is not None:
            if self.bucket is None:
                raise VersionUnavailable(
                    f"version {code_hash[:12]} is stored in the cluster's bucket and this node has no "
                    "ORVA_BLOB_URL; give every node the same ORVA_BLOB_URL",
                    retry_after_s=_RETRY_S,
                    details=details,
                )
            try:
                data = await self.bucket.get(blob_hash, self._max_blob_bytes)
            except BucketError as exc:
                log.error(
                    "a version could not be read from the bucket",
                    extra={"function_id": function_id, "blob_hash": blob_hash, "error": str(exc)},
                )
                raise VersionUnavailable(
                    f"version {code_hash[:12]} could not be read from the bucket: {exc}",
                    retry_after_s=_RETRY_S,
                    details=details,
                ) from None
        if data is None:
            where = "" if stored is None else " (no object in the bucket)"
            raise VersionUnavailable(
                f"the stored copy of version {code_hash[:12]} is gone{where}",
                retry_after_s=_RETRY_S,
                details=details,
            )
        return data

    async def _unpack(self, data: bytes, target: Path) -> None:
        """Unpack into a fresh hidden folder beside ``target``, check it, seal it, rename it into place."""
        versions = target.parent
        await asyncio.to_thread(_private_dirs, versions)
        scratch = versions / f".fetch-{target.name[:16]}-{secrets.token_hex(6)}"
        await asyncio.to_thread(scratch.mkdir, 0o700)
        try:
            await unpack(
                data,
                scratch,
                max_files=self._max_files,
                max_bytes=self._max_bytes,
                timeout_s=_UNPACK_TIMEOUT_S,
                version_blob=True,
            )
            await asyncio.to_thread(_finish, scratch, target)
        finally:
            await asyncio.to_thread(remove_tree, scratch)  # gone already when it was renamed


def _private_dirs(versions: Path) -> None:
    for path in (versions.parent, versions):
        path.mkdir(mode=0o711, exist_ok=True)
        if path.stat().st_mode & 0o777 != 0o711:
            path.chmod(0o711)


def _finish(scratch: Path, target: Path) -> None:
    escaping = escaping_links(scratch)  # resolves link names only; reads no file through them
    if escaping:
        raise UnsafeTree(f"links point outside the version: {', '.join(repr(p) for p in escaping[:5])}")
    seal(scratch, 0 if os.geteuid() == 0 else None)  # root's, set-id and group/other write bits cleared
    os.chmod(scratch, 0o755)
    if is_built(target):
        return  # another fetch or a build put it there meanwhile
    with contextlib.suppress(FileNotFoundError):
        remove_tree(target)  # a folder without its marker: a half-removed or interrupted one
    os.rename(scratch, target)
    mark_built(target)
