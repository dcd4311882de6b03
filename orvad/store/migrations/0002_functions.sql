-- Functions, their deployments (versions) and build logs.
CREATE TABLE functions (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    runtime              TEXT NOT NULL,
    entrypoint           TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    memory_mb            INTEGER NOT NULL,
    cpus                 REAL NOT NULL,
    timeout_ms           INTEGER NOT NULL,
    env_vars             TEXT NOT NULL DEFAULT '{}',   -- JSON object of name: value
    network_mode         TEXT NOT NULL,
    auth_mode            TEXT NOT NULL,
    max_concurrency      INTEGER NOT NULL DEFAULT 0,   -- 0: no limit beyond the pool
    concurrency_policy   TEXT NOT NULL DEFAULT 'queue',
    rate_limit_per_min   INTEGER NOT NULL DEFAULT 0,   -- 0: no limit
    status               TEXT NOT NULL,
    active_deployment_id TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);

CREATE TABLE deployments (
    id                   TEXT PRIMARY KEY,
    function_id          TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    version              INTEGER NOT NULL,
    code_hash            TEXT,
    status               TEXT NOT NULL,               -- queued | building | succeeded | failed
    phase                TEXT NOT NULL,               -- queued | extracting | installing | activating | succeeded | failed
    phases               TEXT NOT NULL DEFAULT '[]',  -- JSON list of {phase, ts}
    source               TEXT NOT NULL,               -- inline | archive | rollback
    parent_deployment_id TEXT,
    error_message        TEXT,
    submitted_at         TEXT NOT NULL,
    started_at           TEXT,
    finished_at          TEXT,
    duration_ms          INTEGER,
    UNIQUE (function_id, version)
);
CREATE INDEX deployments_function ON deployments(function_id, id);

CREATE TABLE deployment_logs (
    deployment_id TEXT NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    stream        TEXT NOT NULL,                      -- stdout | stderr | system
    line          TEXT NOT NULL,
    ts            TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);
