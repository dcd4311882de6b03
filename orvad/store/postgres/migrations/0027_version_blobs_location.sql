-- Twin of SQLite's 0027: where a shared version's bytes are, 'database' (version_blobs.bytes) or 'bucket'
-- (ORVA_BLOB_URL's <prefix>/<hash>, the row's bytes empty as on SQLite, though BYTEA could be NULL).
ALTER TABLE version_blobs ADD COLUMN location TEXT NOT NULL DEFAULT 'database'
    CHECK (location IN ('database', 'bucket'));
