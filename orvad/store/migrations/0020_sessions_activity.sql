-- Sessions (issue 24): a public id (never the cookie's token: that stays a SHA-256 in token_hash), the
-- user agent and address at login, and when the session was last seen (written at most once a minute).
ALTER TABLE sessions ADD COLUMN id TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN last_seen_at TEXT;
UPDATE sessions SET id = lower(hex(randomblob(16))) WHERE id IS NULL;
CREATE UNIQUE INDEX sessions_id ON sessions(id);

-- The activity feed (GET /api/v1/activity) is the audit log read by source: the source is the row's
-- method (MCP, AI, CLI, WEBHOOK, else an HTTP method), paged newest first by id.
CREATE INDEX audit_method ON audit_log(method, id);
