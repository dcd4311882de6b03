-- Inbound webhooks (issue 24): a function triggered by GitHub, Stripe, Slack or any HMAC-signing sender at
-- POST /webhook/{id}. The secret is stored only sealed (AES-256-GCM under the master key, associated data
-- "orva-inbound-webhook\0<id>": orvad/webhooks/inbound.py); it is shown once, on create and rotate.
-- Deliveries already seen are remembered in signature_replays (keys "webhook:<id>:..."), beside the signed
-- invocations' signatures: the same replay memory and its clean-stop flag.
CREATE TABLE inbound_webhooks (
    id               TEXT PRIMARY KEY,          -- iwh_<random>: unguessable, it is the public URL's last segment
    function_id      TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    format           TEXT NOT NULL,             -- github | stripe | slack | hmac_sha256_hex | hmac_sha256_base64
    header           TEXT,                      -- hmac_* formats: the header carrying the signature
    prefix           TEXT NOT NULL DEFAULT '',  -- hmac_* formats: text before the signature (e.g. sha256=)
    tolerance_s      INTEGER NOT NULL DEFAULT 300,
    mode             TEXT NOT NULL DEFAULT 'sync',  -- sync: the reply goes back; async: a job, 202 at once
    enabled          INTEGER NOT NULL DEFAULT 1,
    secret_nonce     BLOB NOT NULL,
    secret_sealed    BLOB NOT NULL,
    deliveries       INTEGER NOT NULL DEFAULT 0,    -- verified deliveries (each ran or was queued)
    last_delivery_at TEXT,
    last_status      INTEGER,                   -- the last verified delivery's answer (202: queued)
    last_execution_id TEXT,                     -- its execution (sync), or NULL
    last_job_id      TEXT,                      -- its job (async), or NULL
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    rotated_at       TEXT,
    UNIQUE (function_id, name)
);
CREATE INDEX inbound_webhooks_function ON inbound_webhooks(function_id);
