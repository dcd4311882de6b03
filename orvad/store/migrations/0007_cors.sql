-- Per-function CORS (issue 19): a JSON list of origins (or ["*"]) whose pages may call /fn/<id> and
-- its custom routes. NULL (every existing function) inherits ORVA_CORS_ORIGINS; '[]' turns orvad's
-- CORS off for the function.
ALTER TABLE functions ADD COLUMN cors_origins TEXT;
