-- The node registry (issue 25; docs/CLUSTER.md "Nodes and heartbeats"; orvad/cluster/nodes.py). One row per
-- node id (ORVA_NODE_ID, by default the host name and a hash of the data dir: the same row across restarts of
-- one installation). run_id is the process start that holds the row now (a new one on every start: the owner
-- leases should name, so a restarted node's old leases are not its own). Times are RFC 3339 UTC text, written
-- by the node itself: last_seen_at moves every ORVA_HEARTBEAT_S; a row whose last_seen_at is older than three
-- heartbeats and a slack is a node gone; left_at is set by a clean stop. pools and load are JSON objects: the
-- warm workers per function (for warm-aware forwarding) and the node's running requests and load average.
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
