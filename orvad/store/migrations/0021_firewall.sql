-- Egress rules (issue 24, docs/NETWORK.md "Egress rules"): a global deny list applied to every egress
-- function through orvad's nftables table, the DNS servers egress sandboxes use, and each function's
-- allow list (deny-by-default egress when non-empty).
CREATE TABLE firewall_rules (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,          -- a CIDR (v4/v6, normalised), a hostname, or *.wildcard hostname
    kind TEXT NOT NULL,            -- cidr | host | wildcard
    ports TEXT NOT NULL DEFAULT '[]', -- JSON list of ports (TCP and UDP); [] = every port
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE firewall_settings (
    key TEXT PRIMARY KEY,          -- dns_servers
    value TEXT NOT NULL            -- JSON
);
ALTER TABLE functions ADD COLUMN egress_allow TEXT NOT NULL DEFAULT '[]';
