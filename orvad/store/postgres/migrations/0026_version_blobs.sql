-- Twin of SQLite's 0026: shared versions (orvad/builder/shared.py). The packed tree is BYTEA (the
-- baseline's BLOB mapping), its size BIGINT; one row per SHA-256, referenced from deployments.blob_hash.
CREATE TABLE version_blobs (
    hash       TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    bytes      BYTEA NOT NULL,
    created_at TEXT NOT NULL
);
ALTER TABLE deployments ADD COLUMN blob_hash TEXT;
ALTER TABLE deployments ADD COLUMN build_node TEXT;
CREATE INDEX deployments_blob ON deployments(blob_hash);
