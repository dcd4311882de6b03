-- Custom routes, per-function pool configuration, executions and their logs.
CREATE TABLE routes (
    id          TEXT PRIMARY KEY,
    path        TEXT NOT NULL UNIQUE,          -- '/exact' or '/prefix/*'
    function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    methods     TEXT NOT NULL,                 -- '*' or 'GET,POST'
    created_at  TEXT NOT NULL
);

CREATE TABLE pool_config (
    function_id        TEXT PRIMARY KEY REFERENCES functions(id) ON DELETE CASCADE,
    min_warm           INTEGER NOT NULL,
    max_warm           INTEGER NOT NULL,
    idle_ttl_seconds   INTEGER NOT NULL,
    target_concurrency INTEGER NOT NULL,
    scale_to_zero      INTEGER NOT NULL,
    updated_at         TEXT NOT NULL
);

CREATE TABLE executions (
    id             TEXT PRIMARY KEY,
    function_id    TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    function_name  TEXT NOT NULL,
    code_hash      TEXT,
    trigger        TEXT NOT NULL,
    method         TEXT NOT NULL,
    path           TEXT NOT NULL,
    status         TEXT NOT NULL,              -- success | error | timeout | crashed | rejected | killed
    status_code    INTEGER NOT NULL,
    cold_start     INTEGER NOT NULL,
    duration_ms    REAL NOT NULL,
    queue_ms       REAL NOT NULL,
    request_bytes  INTEGER NOT NULL,
    response_bytes INTEGER NOT NULL,
    error_code     TEXT,
    error_message  TEXT,
    started_at     TEXT NOT NULL,
    finished_at    TEXT NOT NULL
);
CREATE INDEX executions_function ON executions(function_id, id);
CREATE INDEX executions_started ON executions(started_at);

CREATE TABLE execution_logs (
    execution_id TEXT PRIMARY KEY REFERENCES executions(id) ON DELETE CASCADE,
    logs         TEXT NOT NULL,
    truncated    INTEGER NOT NULL DEFAULT 0
);
