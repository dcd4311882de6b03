-- Shared versions (issue 25; docs/CLUSTER.md "Shared versions"; orvad/builder/shared.py). A built version
-- tree packed (tar in a fixed order, gzip) and stored under the SHA-256 of the packed bytes: identical
-- trees share one row. deployments.blob_hash names the blob a build stored (NULL: none stored, e.g. on one
-- SQLite node, where nothing needs it); deployments.build_node is the node that claimed the build (the one
-- holding the uploaded source): another node never builds it. Times are RFC 3339 UTC text.
CREATE TABLE version_blobs (
    hash       TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    bytes      BLOB NOT NULL,
    created_at TEXT NOT NULL
);
ALTER TABLE deployments ADD COLUMN blob_hash TEXT;
ALTER TABLE deployments ADD COLUMN build_node TEXT;
CREATE INDEX deployments_blob ON deployments(blob_hash);
