-- Cron (issue 23): a function's schedules. Each run is a job (orvad/jobs/); the scheduler (orvad/cron/) enqueues
-- it with an idempotency key per (schedule, tick), then moves next_run_at on. A function's schedules go with it.
CREATE TABLE cron_schedules (
    id          TEXT PRIMARY KEY,                 -- UUIDv7
    function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,                    -- unique per function: upserts (API and orva.cron) go by name
    expression  TEXT NOT NULL,                    -- 5 fields or an @hourly-style descriptor, checked by croniter
    timezone    TEXT NOT NULL,                    -- IANA name: ticks are local times of this zone
    payload     TEXT NOT NULL,                    -- compact JSON: the job's payload (the event's body)
    enabled     INTEGER NOT NULL,
    catch_up    TEXT NOT NULL,                    -- once | skip: a tick missed while orvad was down
    source      TEXT NOT NULL,                    -- api | sdk: who wrote it last
    next_run_at TEXT,                             -- RFC 3339 UTC (ms, Z); NULL while disabled
    last_run_at TEXT,                             -- when the last run was enqueued
    last_tick_at TEXT,                            -- the tick it ran for
    last_job_id TEXT,                             -- that run's job (its status is the schedule's last_status)
    version     INTEGER NOT NULL DEFAULT 1,       -- bumped by every change of the schedule, not by runs
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (function_id, name)
);
CREATE INDEX cron_schedules_due ON cron_schedules(next_run_at) WHERE enabled = 1;
