-- Channel mode (issue 21).
-- input_schema: the JSON Schema (JSON text) of the function's MCP tool arguments; NULL (every existing
-- function) means the tool takes the request's parts (body, query, headers, method, path).
ALTER TABLE functions ADD COLUMN input_schema TEXT;
-- channel_id: the channel whose tool call ran the execution (trigger mcp in channel mode); NULL otherwise.
-- No foreign key: the record outlives a deleted channel, as it outlives its caller's API key.
ALTER TABLE executions ADD COLUMN channel_id TEXT;
