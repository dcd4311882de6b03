-- Twin of SQLite's 0024: the activity feed filtered by actor reads newest first within that actor.
CREATE INDEX audit_actor ON audit_log(actor_id, id);
