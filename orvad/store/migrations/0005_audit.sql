-- The audit trail of state-changing management calls (never bodies or secrets).
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    ts          TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,      -- key | session | anonymous
    actor_id    TEXT,               -- key id or user id
    actor_name  TEXT,               -- key name or username
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    target_id   TEXT,
    status      INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    client_ip   TEXT
);
CREATE INDEX audit_ts ON audit_log(ts);
