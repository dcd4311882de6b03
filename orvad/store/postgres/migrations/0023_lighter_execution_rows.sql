-- Twin of SQLite's 0023 (issue 23, less database work per execution written): a captured request checks no
-- foreign key when written; it goes with its execution through the trigger below (once per statement over
-- the deleted rows, as executions_spans_delete in the baseline). WITHOUT ROWID has no PostgreSQL meaning.
-- The trace entries are read without the partial index executions_trace_roots.
ALTER TABLE execution_requests DROP CONSTRAINT execution_requests_execution_id_fkey;

CREATE FUNCTION executions_requests_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM execution_requests WHERE execution_id IN (SELECT id FROM deleted_executions);
    RETURN NULL;
END
$$;
CREATE TRIGGER executions_requests_delete AFTER DELETE ON executions
    REFERENCING OLD TABLE AS deleted_executions
    FOR EACH STATEMENT EXECUTE FUNCTION executions_requests_delete();

DROP INDEX executions_trace_roots;
