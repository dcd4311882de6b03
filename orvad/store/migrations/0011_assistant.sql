-- The AI assistant (issue 22): provider configs (API keys sealed with the secrets cipher, own AAD),
-- its settings (one row), conversations, their messages (ordered by seq) and tool calls.
CREATE TABLE ai_providers (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,                 -- anthropic | openai (any OpenAI-compatible endpoint)
    label       TEXT NOT NULL UNIQUE,
    base_url    TEXT,                          -- NULL: the provider's own
    key_nonce   BLOB,                          -- NULL: no key (a local Ollama, say)
    key_sealed  BLOB,
    key_hint    TEXT,                          -- last 4 characters, to recognise it in lists
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE ai_settings (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    provider_id      TEXT REFERENCES ai_providers(id) ON DELETE SET NULL,
    model            TEXT,
    thinking         TEXT NOT NULL DEFAULT 'off',          -- off | low | medium | high
    approval_policy  TEXT NOT NULL DEFAULT 'all_writes',   -- all_writes | destructive_only | auto
    max_tool_steps   INTEGER NOT NULL DEFAULT 20,
    updated_at       TEXT
);
INSERT INTO ai_settings (id) VALUES (1);

CREATE TABLE ai_conversations (
    id            TEXT PRIMARY KEY,
    title         TEXT NOT NULL DEFAULT '',
    archived      INTEGER NOT NULL DEFAULT 0,
    provider_id   TEXT REFERENCES ai_providers(id) ON DELETE SET NULL,
    model         TEXT,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX ai_conversations_updated ON ai_conversations(updated_at);

CREATE TABLE ai_messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES ai_conversations(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    role            TEXT NOT NULL,                 -- user | assistant | tool
    content         TEXT NOT NULL DEFAULT '',      -- text; a tool message: the (truncated) result as JSON text
    thinking        TEXT NOT NULL DEFAULT '',
    thinking_signature TEXT NOT NULL DEFAULT '', -- Anthropic: sent back with the thinking in a tool loop
    status          TEXT NOT NULL DEFAULT 'complete', -- streaming | awaiting_approval | complete | error | cancelled
    error           TEXT,                          -- the error envelope as JSON, when status is error
    provider_id     TEXT,
    model           TEXT,
    input_tokens    INTEGER NOT NULL DEFAULT 0,
    output_tokens   INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    UNIQUE (conversation_id, seq)
);

CREATE TABLE ai_tool_calls (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES ai_conversations(id) ON DELETE CASCADE,
    message_id      TEXT NOT NULL REFERENCES ai_messages(id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,              -- the seq of the assistant message that asked for it
    provider_call_id TEXT NOT NULL,                -- the provider's own id for the call
    name            TEXT NOT NULL,
    arguments       TEXT NOT NULL,                 -- JSON
    status          TEXT NOT NULL,                 -- awaiting_approval | approved | rejected | running | done | error
    result          TEXT,                          -- JSON, as sent back to the model (truncated)
    is_error        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    resolved_at     TEXT
);
CREATE INDEX ai_tool_calls_conversation ON ai_tool_calls(conversation_id, seq);
