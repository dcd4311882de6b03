-- Outbound webhooks (issue 24): receivers orvad tells what happened, and the outbox of their deliveries.
-- orvad/store/webhooks.py holds the SQL, orvad/webhooks/outbound.py the service and the sender.

-- A receiver. events: a JSON list of event types (or ["*"]). function_id: only events about this function
-- (no foreign key: the filter outlives the function, so its function.deleted is still delivered).
-- The signing secret (whsec_...) is stored only sealed: AES-256-GCM under the master key with the
-- associated data "orva-webhook\0<id>" (secret_nonce, secret_sealed).
CREATE TABLE webhooks (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    events        TEXT NOT NULL,
    function_id   TEXT,
    enabled       INTEGER NOT NULL DEFAULT 1,
    description   TEXT NOT NULL DEFAULT '',
    secret_nonce  BLOB NOT NULL,
    secret_sealed BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- The outbox: one row per (event, matching webhook), written before the first attempt. body: the exact
-- JSON sent (and signed) on every attempt. status: pending (due at next_attempt_at, Unix seconds),
-- delivered, or failed (give_up_at passed). A pending row is sent again after a crash (at least once).
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    function_id      TEXT,
    body             BLOB NOT NULL,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    give_up_at       REAL NOT NULL,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_of_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_ended ON webhook_deliveries (finished_at) WHERE status != 'pending';

-- Each attempt of a delivery: when, how long, the receiver's status code and the first 1 KiB of its answer,
-- or the error (timeout, connection refused, ...) when it gave none.
CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    started_at  TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    status_code INTEGER,
    response    TEXT,
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
