-- KV (issue 23): each function's own key-value state, reached from its handlers (orva.kv) and by operators
-- (/api/v1/functions/{id}/kv). A function's rows go with it (ON DELETE CASCADE).
CREATE TABLE kv (
    function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,             -- 1..512 UTF-8 bytes, no control characters; ordered bytewise
    kind        TEXT NOT NULL,             -- json | bytes
    value       BLOB NOT NULL,             -- json: its compact UTF-8 JSON text; bytes: the bytes
    size        INTEGER NOT NULL,          -- bytes of value
    version     INTEGER NOT NULL,          -- from kv_usage.seq: grows with every write, never reused
    expires_at  INTEGER,                   -- Unix time in ms; NULL: never
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (function_id, key)
);
CREATE INDEX kv_expiry ON kv(expires_at) WHERE expires_at IS NOT NULL;

-- Per function: rows and bytes (key + value) held, for the quota, kept by the triggers below (the sweeper
-- and cascades included); seq: the last version handed out in the function's namespace.
CREATE TABLE kv_usage (
    function_id TEXT PRIMARY KEY REFERENCES functions(id) ON DELETE CASCADE,
    keys        INTEGER NOT NULL DEFAULT 0,
    bytes       INTEGER NOT NULL DEFAULT 0,
    seq         INTEGER NOT NULL DEFAULT 0
);

CREATE TRIGGER kv_usage_insert AFTER INSERT ON kv BEGIN
    UPDATE kv_usage SET keys = keys + 1, bytes = bytes + NEW.size + length(CAST(NEW.key AS BLOB))
    WHERE function_id = NEW.function_id;
END;

CREATE TRIGGER kv_usage_update AFTER UPDATE OF size ON kv BEGIN
    UPDATE kv_usage SET bytes = bytes - OLD.size + NEW.size WHERE function_id = NEW.function_id;
END;

CREATE TRIGGER kv_usage_delete AFTER DELETE ON kv BEGIN
    UPDATE kv_usage SET keys = keys - 1, bytes = bytes - OLD.size - length(CAST(OLD.key AS BLOB))
    WHERE function_id = OLD.function_id;
END;
