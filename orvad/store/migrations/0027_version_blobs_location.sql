-- Shared versions in an S3-compatible bucket (ORVA_BLOB_URL; docs/CLUSTER.md "Shared versions";
-- orvad/builder/blob_bucket.py). version_blobs.location says where a blob's bytes are: 'database' (in
-- version_blobs.bytes, every row stored before this migration) or 'bucket' (the object <prefix>/<hash> in
-- the bucket ORVA_BLOB_URL names; the row's bytes are then empty, X'', since SQLite cannot drop a column's
-- NOT NULL in place; size is still the packed size). Hash and created_at are recorded either way.
ALTER TABLE version_blobs ADD COLUMN location TEXT NOT NULL DEFAULT 'database'
    CHECK (location IN ('database', 'bucket'));
