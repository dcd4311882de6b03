-- Users, dashboard sessions and API keys.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,          -- sha256 of the cookie value; the value itself is never stored
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,            -- first characters of the key, to recognise it in lists
    key_hash     TEXT NOT NULL UNIQUE,     -- sha256 of the full key
    permissions  TEXT NOT NULL,            -- comma-separated subset of invoke,read,write,admin
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    is_bootstrap INTEGER NOT NULL DEFAULT 0
);
