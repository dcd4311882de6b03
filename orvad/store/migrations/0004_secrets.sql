-- Function secrets, encrypted with AES-256-GCM under the master key; the plaintext never lands here.
CREATE TABLE secrets (
    function_id TEXT NOT NULL REFERENCES functions(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (function_id, key)
);
