-- Traces (issue 23): every execution is a span of a W3C trace; handlers add user spans (orva.trace.span).
-- trace_id: 32 lower-case hex; span_id: the execution's own span (16 hex); parent_span_id: the span that
-- called it (an incoming traceparent's, or the calling execution's for jobs, cron and F2F), NULL when the
-- execution began its trace. Rows written before this migration keep NULLs (they belong to no trace).
ALTER TABLE executions ADD COLUMN trace_id TEXT;
ALTER TABLE executions ADD COLUMN span_id TEXT;
ALTER TABLE executions ADD COLUMN parent_span_id TEXT;
-- 1: the execution entered its trace from outside orvad (HTTP with or without a traceparent, MCP, an API
-- job): the entries GET /api/v1/traces lists. 0: called from another execution (F2F, a job it enqueued).
ALTER TABLE executions ADD COLUMN trace_root INTEGER NOT NULL DEFAULT 0;
-- 1: slower than twice the function's rolling p95 when it finished (orvad/traces/outliers.py)
ALTER TABLE executions ADD COLUMN outlier INTEGER NOT NULL DEFAULT 0;
CREATE INDEX executions_trace ON executions(trace_id) WHERE trace_id IS NOT NULL;
CREATE INDEX executions_trace_roots ON executions(id) WHERE trace_root = 1;

-- User spans: finished spans a handler reported (trace.span). The trace is always its execution's; the
-- parent is the execution's span or another user span of the same execution (checked by orvad). No foreign
-- key to executions: spans are queued while the execution runs, before its row is written; the trigger
-- below removes them with their execution (retention, a deleted function).
CREATE TABLE spans (
    id             INTEGER PRIMARY KEY,
    trace_id       TEXT NOT NULL,
    span_id        TEXT NOT NULL,          -- 16 hex, made in the sandbox
    parent_span_id TEXT NOT NULL,
    execution_id   TEXT NOT NULL,
    function_id    TEXT NOT NULL,
    name           TEXT NOT NULL,          -- 1..200 characters
    start_ms       REAL NOT NULL,          -- Unix time in milliseconds
    duration_ms    REAL NOT NULL,
    status         TEXT NOT NULL,          -- ok | error
    attributes     TEXT NOT NULL           -- a JSON object: at most 32 attributes, 8 KiB
);
CREATE INDEX spans_trace ON spans(trace_id);
CREATE INDEX spans_execution ON spans(execution_id);

CREATE TRIGGER executions_spans_delete AFTER DELETE ON executions BEGIN
    DELETE FROM spans WHERE execution_id = OLD.id;
END;
