-- Request capture and saved test requests (issue 23, "Replay and saved requests").
-- functions.capture_requests: each execution keeps its request (on by default; 0 turns it off).
ALTER TABLE functions ADD COLUMN capture_requests INTEGER NOT NULL DEFAULT 1;

-- One execution's request as orvad received it, credentials redacted (orvad/invoke/capture.py).
-- headers: a JSON list of [name, value] pairs (lower-case names, repeats kept, credentials' values
-- replaced by "[redacted]"). body: at most 1 MiB; body_size is the request's whole size and
-- body_truncated says the body kept is its first 1 MiB. Pruned with its execution (retention, the
-- function's delete): ON DELETE CASCADE.
CREATE TABLE execution_requests (
    execution_id   TEXT PRIMARY KEY REFERENCES executions(id) ON DELETE CASCADE,
    method         TEXT NOT NULL,
    path           TEXT NOT NULL,
    query          TEXT NOT NULL,
    headers        TEXT NOT NULL,
    body           BLOB NOT NULL,
    body_size      INTEGER NOT NULL,
    body_truncated INTEGER NOT NULL
);

-- Saved test requests per function (the dashboard's Test tab, orva fixtures).
CREATE TABLE function_fixtures (
    id          TEXT PRIMARY KEY,
    function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    query       TEXT NOT NULL,
    headers     TEXT NOT NULL,              -- JSON object name -> value
    body        BLOB NOT NULL,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (function_id, name)
);
