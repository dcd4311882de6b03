-- Function-to-function calls (issue 23): the functions a function may call with orva.invoke, as a JSON
-- list of names (["*"]: any function). Names are resolved when the call is made, so a list may name a
-- function that does not exist yet. Every existing function: [] (it may call none).
ALTER TABLE functions ADD COLUMN may_invoke TEXT NOT NULL DEFAULT '[]';
