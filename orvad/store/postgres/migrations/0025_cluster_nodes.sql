-- Twin of SQLite's 0025: the node registry (orvad/cluster/nodes.py). Times stay RFC 3339 text (each node
-- writes its own), pools and load JSON text, as in every other table of the baseline.
CREATE TABLE cluster_nodes (
    id           TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL,
    address      TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    left_at      TEXT,
    pools        TEXT NOT NULL DEFAULT '{}',
    load         TEXT NOT NULL DEFAULT '{}'
);
