-- Channels (issue 21): a named bundle of functions behind one static bearer token (orva_chn_...), for /mcp.
-- Only the token's sha256 is stored; the plaintext is shown once, at create and rotate.
CREATE TABLE channels (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    description  TEXT NOT NULL DEFAULT '',
    token_hash   TEXT NOT NULL UNIQUE,     -- sha256 of the full token
    prefix       TEXT NOT NULL,            -- first characters of the token, to recognise it in lists
    expires_at   TEXT,
    last_used_at TEXT,
    created_at   TEXT NOT NULL
);

-- The bundled functions; description overrides the function's own as the MCP tool's description.
CREATE TABLE channel_functions (
    channel_id  TEXT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    description TEXT,
    PRIMARY KEY (channel_id, function_id)
);
CREATE INDEX channel_functions_function ON channel_functions(function_id);
