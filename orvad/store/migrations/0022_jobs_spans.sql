-- Session 11 (issue 23): SDK calls are spans. A span row is a user span (`orva.trace.span`, reported by the
-- handler) or an SDK call's span (`kv.get`, `jobs.enqueue`, `invoke`...: orvad's own record of the call).
ALTER TABLE spans ADD COLUMN kind TEXT NOT NULL DEFAULT 'user';  -- user | sdk

-- Jobs (issue 23, the drain at the pool's throughput): the runner claims jobs ahead of the slots that run them,
-- and records in its next write which attempts started. An attempt that never started is not an attempt: a
-- crash or stop before it started gives the job back uncounted (its row deleted); one that started and was cut
-- is `lost` (counted after a crash). Rows written before this column existed were started at their claim.
ALTER TABLE job_attempts ADD COLUMN started INTEGER NOT NULL DEFAULT 1;
