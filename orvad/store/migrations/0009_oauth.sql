-- OAuth 2.1 for /mcp (issue 21, remote connectors): dynamically registered clients and the tokens
-- a user's consent grants them. Only SHA-256 hashes of client secrets and tokens are stored.
CREATE TABLE oauth_clients (
    client_id    TEXT PRIMARY KEY,
    client_name  TEXT NOT NULL DEFAULT '',
    metadata     TEXT NOT NULL,            -- the registered client metadata (RFC 7591), JSON, without the secret
    secret_hash  TEXT,                     -- sha256 of client_secret; NULL for a public client (auth method none)
    created_at   TEXT NOT NULL,
    last_used_at TEXT
);

-- Access (orva_oat_) and refresh (orva_ort_) tokens. A family is one consent's grant: every token
-- refreshed from it shares it, and reuse of a rotated refresh token revokes the whole family.
CREATE TABLE oauth_tokens (
    token_hash TEXT PRIMARY KEY,           -- sha256 of the full token
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    client_id  TEXT NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    family     TEXT NOT NULL,
    scopes     TEXT NOT NULL,              -- space separated
    resource   TEXT NOT NULL,              -- the audience: this orvad's /mcp URL when issued
    subject    TEXT NOT NULL,              -- the id of the user who consented
    expires_at INTEGER NOT NULL,           -- unix seconds
    rotated_at INTEGER,                    -- refresh tokens: when exchanged (kept to detect reuse)
    created_at TEXT NOT NULL
);
CREATE INDEX oauth_tokens_family ON oauth_tokens(family);
CREATE INDEX oauth_tokens_client ON oauth_tokens(client_id);
