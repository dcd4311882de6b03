"""`orva firewall rules|resolve|dns` and `orva functions update --egress-allow` against a real orvad: tables,
--json, and errors in orva's words. Only addresses are used (no name is ever looked up)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.test_cli import error_line, logged_in
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # the egress table needs root, nft and ip


def test_firewall_cli(make_orvad: Callable[..., Orvad], tmp_path: Path) -> None:
    server = make_orvad()
    with logged_in(server, tmp_path, "fwcli-") as cli:
        rule = cli.json(
            "firewall", "rules", "add", "198.18.9.0/24", "--port", "443", "--description", "cli test"
        )
        assert rule["target"] == "198.18.9.0/24" and rule["ports"] == [443] and rule["kind"] == "cidr"
        table = cli.ok("firewall", "rules", "list").stdout
        assert "TARGET" in table and "198.18.9.0/24" in table and "443" in table and "cli test" in table
        assert cli.json("firewall", "rules", "list")["rules"][0]["id"] == rule["id"]
        changed = cli.json("firewall", "rules", "update", rule["id"], "--all-ports")
        assert changed["ports"] == []
        assert "all" in cli.ok("firewall", "rules", "list").stdout
        seen = cli.json("firewall", "resolve", "198.18.9.7")
        assert seen["blocked"] is True and [r["id"] for r in seen["rules"]] == [rule["id"]]
        assert "matching rules" in cli.ok("firewall", "resolve", "198.18.9.7").stdout
        assert "no rule matches" in cli.ok("firewall", "resolve", "198.19.0.1").stdout

        bad = cli.fails(1, "firewall", "rules", "add", "1.2.3.4; flush ruleset")
        assert "not an IPv4/IPv6 address" in error_line(bad, "VALIDATION")
        missing = cli.fails(1, "firewall", "rules", "delete", "nope")
        line = error_line(missing, "NOT_FOUND")
        assert "orva firewall rules list" in line and "/api/v1" not in line, line
        assert cli.fails(2, "firewall", "rules", "update", rule["id"])  # nothing to change: usage error

        assert cli.json("firewall", "dns", "get")["source"] == "host"
        dns = cli.json("firewall", "dns", "set", "198.18.9.53")
        assert dns["servers"] == ["198.18.9.53"] and dns["source"] == "configured"
        assert "198.18.9.53" in cli.ok("firewall", "dns", "get").stdout
        assert cli.json("firewall", "dns", "set")["source"] == "host"
        assert "not an IP address" in error_line(
            cli.fails(1, "firewall", "dns", "set", "x.example"), "VALIDATION"
        )

        cli.ok("functions", "create", "fwcli-fn", "--runtime", "python", "--network-mode", "egress")
        fn = cli.json(
            "functions",
            "update",
            "fwcli-fn",
            "--egress-allow",
            "198.18.9.7",
            "--egress-allow",
            "2001:db8::/48",
        )
        assert fn["egress_allow"] == ["198.18.9.7/32", "2001:db8::/48"]
        assert cli.json("functions", "update", "fwcli-fn", "--no-egress-allow")["egress_allow"] == []
        wild = cli.fails(1, "functions", "update", "fwcli-fn", "--egress-allow", "*.example.com")
        assert "wildcard" in error_line(wild, "VALIDATION")

        assert "deleted" in cli.ok("firewall", "rules", "delete", rule["id"]).stdout
        assert cli.json("firewall", "rules", "list")["rules"] == []
