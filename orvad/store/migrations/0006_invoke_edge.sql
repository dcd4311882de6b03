-- Signed invocations and function pages on the dashboard's origin (issue 16).
-- signature_version: 1 signs "<timestamp>.<raw body>" (the only form before this migration, so
-- every existing function keeps it); 2 signs "<timestamp>.<METHOD>.<path?query>.<raw body>",
-- the default for functions created from now on.
ALTER TABLE functions ADD COLUMN signature_version INTEGER NOT NULL DEFAULT 1;
-- csp_sandbox: replies served on the dashboard's origin carry Content-Security-Policy: sandbox.
ALTER TABLE functions ADD COLUMN csp_sandbox INTEGER NOT NULL DEFAULT 1;

-- Signatures accepted within their window: each is accepted once, across restarts.
CREATE TABLE signature_replays (
    signature  TEXT PRIMARY KEY,   -- sha256=<64 hex>, exactly as accepted
    expires_at REAL NOT NULL       -- unix seconds: its timestamp + the window; refused by age after that
);
CREATE INDEX signature_replays_expiry ON signature_replays(expires_at);

-- Whether the last orvad stopped cleanly (its queued replay rows were all written): one row.
CREATE TABLE replay_state (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    clean INTEGER NOT NULL
);
-- A database with no function yet cannot have accepted a signature: its memory is complete. One that
-- had functions before this migration kept its replay memory in RAM only: not complete.
INSERT INTO replay_state (id, clean) SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM functions) THEN 0 ELSE 1 END;
