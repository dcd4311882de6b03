-- Jobs (issue 23): durable background invocations. A job outlives its function's row on purpose (no foreign
-- key): a job whose function was deleted ends `dead` with a reason instead of vanishing.
CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,        -- job_<uuid7>: ordered by creation
    function_id       TEXT NOT NULL,
    function_name     TEXT NOT NULL,           -- at enqueue (display; the function may be renamed or deleted)
    status            TEXT NOT NULL,           -- pending | running | failed | succeeded | dead | cancelled
    trigger           TEXT NOT NULL,           -- job | cron | event: recorded on each attempt's execution
    source            TEXT NOT NULL,           -- api | sdk | event | cron (who enqueued it)
    request           TEXT NOT NULL,           -- JSON: {method, path, query, headers: [[k, v]], body: base64}
    attempts          INTEGER NOT NULL DEFAULT 0,  -- attempts of this round (retry starts a new round)
    tries             INTEGER NOT NULL DEFAULT 0,  -- attempts ever made (job_attempts.attempt numbers)
    max_attempts      INTEGER NOT NULL,
    run_at            REAL NOT NULL,           -- Unix seconds: due from then (pending / failed)
    lease_owner       TEXT,                    -- the orvad run holding the job while an attempt runs
    lease_until       REAL,                    -- Unix seconds: past it, the attempt is presumed lost
    idempotency_key   TEXT,
    idempotency_until REAL,                    -- Unix seconds: the key matches until then
    trace_id          TEXT,
    parent_span_id    TEXT,
    last_error        TEXT,                    -- JSON {code, message} of the last failed attempt / the end
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    finished_at       TEXT
);
CREATE INDEX jobs_due ON jobs(run_at) WHERE status IN ('pending', 'failed');
CREATE INDEX jobs_leased ON jobs(lease_until) WHERE lease_owner IS NOT NULL;
CREATE INDEX jobs_function ON jobs(function_id, id);
CREATE INDEX jobs_status ON jobs(status, id);
CREATE INDEX jobs_idempotency ON jobs(function_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- One row per attempt: the execution it was (executions.id; the row may be pruned by log retention).
CREATE TABLE job_attempts (
    job_id       TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,             -- 1.. over the job's life (jobs.tries)
    execution_id TEXT,                         -- NULL: none ran (the function was gone, orvad died mid-run)
    outcome      TEXT NOT NULL,                -- running | succeeded | failed | lost
    status_code  INTEGER,
    error        TEXT,                         -- JSON {code, message}
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    PRIMARY KEY (job_id, attempt)
);
