-- Session 12 (issue 23, "the SDK channel adds no cost"): less database work per execution written.
--
-- A captured request (execution_requests, 0017) is one B-tree keyed by its execution's id (WITHOUT ROWID)
-- instead of a rowid table and a separate index on execution_id, and its insert checks no foreign key (a
-- lookup in executions per row). It still goes when its execution goes: the trigger below (retention, a
-- function's delete through the executions' own cascade), as spans do (0012); the batched writer never
-- writes a captured request whose execution's row was refused (orvad/store/batch.py, `parent`).
ALTER TABLE execution_requests RENAME TO execution_requests_0017;
CREATE TABLE execution_requests (
    execution_id   TEXT PRIMARY KEY,
    method         TEXT NOT NULL,
    path           TEXT NOT NULL,
    query          TEXT NOT NULL,
    headers        TEXT NOT NULL,
    body           BLOB NOT NULL,
    body_size      INTEGER NOT NULL,
    body_truncated INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO execution_requests (execution_id, method, path, query, headers, body, body_size, body_truncated)
    SELECT execution_id, method, path, query, headers, body, body_size, body_truncated FROM execution_requests_0017;
DROP TABLE execution_requests_0017;

CREATE TRIGGER executions_requests_delete AFTER DELETE ON executions BEGIN
    DELETE FROM execution_requests WHERE execution_id = OLD.id;
END;

-- The trace entries (GET /api/v1/traces: trace_root = 1, newest first) are read from the executions'
-- primary key walked backwards, or (function_id, id) for one function: most executions are roots (every
-- HTTP invocation), so a page finds its rows within a few steps, and no execution pays for an index
-- entry of its own in this partial index.
DROP INDEX executions_trace_roots;
