"""SQL for shared versions (issue 25; orvad/builder/shared.py, docs/CLUSTER.md "Shared versions").

``version_blobs`` holds packed version trees under the SHA-256 of their bytes (one row per content, however
many deployments name it); ``deployments.blob_hash`` says which blob a build stored, ``deployments.build_node``
which node claimed the build. The claim is one conditional UPDATE: on PostgreSQL every orvad write transaction
holds the cluster-wide write lock (orvad/store/postgres/driver.py), and a single conditional UPDATE is atomic
on its own anyway (a second node's UPDATE waits for the row, re-reads it and matches nothing), so exactly one
node's claim changes the row. The statements are in the dialect SQLite and PostgreSQL both accept
(tests/cluster/test_pg_statements.py).

``version_blobs.location`` (migration 0027) says where a blob's bytes are: ``database`` (its ``bytes``) or
``bucket`` (ORVA_BLOB_URL's ``<prefix>/<hash>``, orvad/builder/blob_bucket.py; the row's ``bytes`` are then
empty). A node names an existing blob only while the row exists (one conditional UPDATE, under the write
lock), and the sweep deletes a bucket row's object before the row, in the same write transaction: so a
deployment of the same tree at the moment its last deployment is swept either names the row before the
sweep (and the sweep leaves it) or finds it gone and stores the object again after the sweep.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the protocol only types the collaborator: either driver's database
    from orvad.store.sql import Database

# a deployment still to build, unclaimed or claimed by this node (a restarted node resumes its own builds)
_CLAIM = (
    "UPDATE deployments SET build_node = ? WHERE id = ? AND status IN ('queued', 'building')"
    " AND (build_node IS NULL OR build_node = ?)"
)
_HOLDER = "SELECT build_node FROM deployments WHERE id = ?"
# unfinished builds claimed by a node not seen since ? (gone, left and not back, or forgotten): only it held
# the upload, so no other node can build them
_ORPHANED = (
    "SELECT d.id, d.build_node FROM deployments d WHERE d.status IN ('queued', 'building')"
    " AND d.build_node IS NOT NULL AND d.build_node <> ? AND NOT EXISTS"
    " (SELECT 1 FROM cluster_nodes n WHERE n.id = d.build_node AND n.last_seen_at >= ?) ORDER BY d.id"
)
# one live node takes an orphaned build over (to record its failure): the conditional write decides which
_TAKE_ORPHAN = "UPDATE deployments SET build_node = ? WHERE id = ? AND status IN ('queued', 'building') AND build_node = ?"
_PUT_BLOB = (
    "INSERT INTO version_blobs (hash, size, bytes, created_at, location) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (hash) DO NOTHING"
)
_NAME_BLOB = "UPDATE deployments SET blob_hash = ? WHERE id = ?"
# the same tree built again: named only while its row is there (never a hash a sweep just removed)
_NAME_STORED_BLOB = "UPDATE deployments SET blob_hash = ? WHERE id = ? AND EXISTS (SELECT 1 FROM version_blobs WHERE hash = ?)"
# the blob of a function's version: the newest deployment of that code hash that stored one
_BLOB_OF = (
    "SELECT blob_hash FROM deployments WHERE function_id = ? AND code_hash = ? AND blob_hash IS NOT NULL"
    " ORDER BY id DESC LIMIT 1"
)
_BLOB_OF_DEPLOYMENT = "SELECT blob_hash FROM deployments WHERE id = ?"
_HAS_BLOB = "SELECT size FROM version_blobs WHERE hash = ?"
_GET_BLOB = "SELECT size, bytes, location FROM version_blobs WHERE hash = ?"
_UNNAMED = (
    "SELECT hash, location FROM version_blobs WHERE NOT EXISTS"
    " (SELECT 1 FROM deployments WHERE deployments.blob_hash = version_blobs.hash) ORDER BY hash"
)
_SWEEP_ONE = (
    "DELETE FROM version_blobs WHERE hash = ? AND NOT EXISTS"
    " (SELECT 1 FROM deployments WHERE deployments.blob_hash = version_blobs.hash)"
)

Location = Literal["database", "bucket"]


@dataclass(frozen=True)
class StoredBlob:
    """A ``version_blobs`` row: the packed size, where the bytes are, and the bytes when in the database."""

    size: int
    location: Location
    data: bytes  # empty for a blob in the bucket


class VersionBlobStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim_build(self, deployment_id: str, node_id: str) -> str | None:
        """Claim the build of a deployment for ``node_id``; None when claimed (or already this node's), else
        the node that holds it ('' when it is no longer waiting to be built)."""
        async with self._db.transaction() as tx:
            if await tx.execute(_CLAIM, (node_id, deployment_id, node_id)) == 1:
                return None
            row = await tx.fetchone(_HOLDER, (deployment_id,))
        return "" if row is None or row[0] is None else str(row[0])

    async def orphaned(self, node_id: str, seen_since: str) -> list[tuple[str, str]]:
        """(deployment id, holder) of the unfinished builds claimed by another node not seen since ``seen_since``."""
        return [(str(r[0]), str(r[1])) for r in await self._db.fetchall(_ORPHANED, (node_id, seen_since))]

    async def take_orphan(self, deployment_id: str, holder: str, node_id: str) -> bool:
        """Take an orphaned build from ``holder`` for ``node_id``; False when another node took it first (or it
        ended, or its node came back and built it)."""
        async with self._db.transaction() as tx:
            return await tx.execute(_TAKE_ORPHAN, (node_id, deployment_id, holder)) == 1

    async def holder(self, deployment_id: str) -> str | None:
        row = await self._db.fetchone(_HOLDER, (deployment_id,))
        return None if row is None or row[0] is None else str(row[0])

    async def store(
        self, deployment_id: str, blob_hash: str, data: bytes, created_at: str, *, in_bucket: bool = False
    ) -> bool:
        """Store a packed version (once per hash) and name it from the deployment, in one transaction (so a
        sweep never sees the blob unnamed); True when this call inserted the row. ``in_bucket``: the bytes
        were put in the bucket already; the row records the hash, size and time, with no bytes."""
        row = (
            (blob_hash, len(data), b"", created_at, "bucket")
            if in_bucket
            else (blob_hash, len(data), data, created_at, "database")
        )
        async with self._db.transaction() as tx:
            added = await tx.execute(_PUT_BLOB, row)
            await tx.execute(_NAME_BLOB, (blob_hash, deployment_id))
        return added == 1

    async def has(self, blob_hash: str) -> bool:
        return await self._db.fetchone(_HAS_BLOB, (blob_hash,)) is not None

    async def name(self, deployment_id: str, blob_hash: str) -> bool:
        """Name an existing blob from another deployment (the same tree built again); False when there is no
        such blob (never stored, or swept meanwhile): the caller stores it."""
        async with self._db.transaction() as tx:
            return await tx.execute(_NAME_STORED_BLOB, (blob_hash, deployment_id, blob_hash)) == 1

    async def blob_of(self, function_id: str, code_hash: str, deployment_id: str | None = None) -> str | None:
        """The blob hash of a function's version: the deployment's own when it stored one, else the newest
        deployment's of that code hash."""
        if deployment_id:
            row = await self._db.fetchone(_BLOB_OF_DEPLOYMENT, (deployment_id,))
            if row is not None and row[0] is not None:
                return str(row[0])
        row = await self._db.fetchone(_BLOB_OF, (function_id, code_hash))
        return None if row is None else str(row[0])

    async def get(self, blob_hash: str) -> bytes | None:
        found = await self.stored(blob_hash)
        return None if found is None else found.data

    async def stored(self, blob_hash: str) -> StoredBlob | None:
        row = await self._db.fetchone(_GET_BLOB, (blob_hash,))
        if row is None:
            return None
        return StoredBlob(int(row[0]), "bucket" if row[2] == "bucket" else "database", bytes(row[1]))

    async def sweep(self, delete_objects: Callable[[Sequence[str]], Awaitable[None]] | None = None) -> int:
        """Remove blobs no deployment names any more (their functions were deleted); returns how many.
        Blobs in the bucket: their objects are deleted first (``delete_objects``), in the same write
        transaction, and the rows only when that succeeded (else they stay for the next sweep); without
        ``delete_objects`` (a node with no ORVA_BLOB_URL) they are left for a node that has it."""
        removed = 0
        async with self._db.transaction() as tx:
            unnamed = [(str(r[0]), str(r[1])) for r in await tx.fetchall(_UNNAMED)]
            in_bucket = [h for h, where in unnamed if where == "bucket"]
            if in_bucket and delete_objects is not None:
                await delete_objects(in_bucket)
            for blob_hash, where in unnamed:
                if where != "bucket" or delete_objects is not None:
                    removed += await tx.execute(_SWEEP_ONE, (blob_hash,))
        return removed
