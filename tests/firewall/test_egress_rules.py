"""Egress rules through HTTP against real egress workers: deny CIDRs, ports and hostnames reach a warm
worker at once, a name's new address replaces its old one, allow lists make a function deny-by-default.

Only addresses in namespaces this test makes (tests/firewall/netfixtures.py): two HTTP servers and a DNS
server on TEST-NET-3; the DNS servers of orvad's egress sandboxes are pointed at that DNS server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.firewall.netfixtures import DNS, PROBE, ZONE, A, B, Internet, internet, nft_table
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

NAME = f"svc.{ZONE}"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Internet]:
    folder = tmp_path_factory.mktemp("fwnet")
    folder.chmod(0o755)
    with internet(folder) as world:
        yield world


def probe(c: httpx.Client, fn: dict[str, Any], *targets: str) -> tuple[str, dict[str, str]]:
    r = c.get(f"/fn/{fn['id']}/", params={"targets": json.dumps(list(targets))}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    return body["worker"], body["got"]


def reachable(result: str) -> bool:
    return result.startswith("ok:HTTP/1.0 200")


def egress_function(c: httpx.Client, name: str, **extra: Any) -> dict[str, Any]:
    fn = create_function(c, name, network_mode="egress", timeout_ms=30000, **extra)
    c.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 0, "max_warm": 1})
    assert wait_deployed(c, deploy_inline(c, fn["id"], PROBE)["id"])["status"] == "succeeded"
    return fn


def test_deny_rules_reach_a_warm_worker_at_once_and_names_follow_their_dns(
    make_orvad: Callable[..., Orvad], net: Internet
) -> None:
    net.set_records({NAME: [A], f"api.bad.{ZONE}": [B]})
    server = make_orvad()
    with server.admin() as c:
        dns = c.put("/api/v1/firewall/dns", json={"servers": [DNS]})
        assert dns.status_code == 200 and dns.json()["servers"] == [DNS], dns.text
        fn = egress_function(c, "fw-probe")
        a, b = f"{A}:8080", f"{B}:8080"
        worker, got = probe(c, fn, a, b, f"{NAME}:8080")
        assert reachable(got[a]) and reachable(got[b]) and reachable(got[f"{NAME}:8080"]), got

        # a CIDR rule: A refused, B still reachable, on the same warm worker
        rule = c.post("/api/v1/firewall/rules", json={"target": f"{A}/32", "description": "test"})
        assert rule.status_code == 201, rule.text
        assert rule.json()["kind"] == "cidr" and rule.json()["addresses"] == [f"{A}/32"]
        same, got = probe(c, fn, a, b)
        assert same == worker
        assert not reachable(got[a]) and reachable(got[b]), got
        assert f"{A} . " not in nft_table(server.port) and A in nft_table(server.port)

        # narrowed to another port: port 8080 is open again
        upd = c.put(f"/api/v1/firewall/rules/{rule.json()['id']}", json={"ports": [8081]})
        assert upd.status_code == 200 and upd.json()["ports"] == [8081], upd.text
        same, got = probe(c, fn, a)
        assert same == worker and reachable(got[a]), got
        assert f"{A} . 8081" in nft_table(server.port)

        # deleted: nothing left in the sets
        assert c.delete(f"/api/v1/firewall/rules/{rule.json()['id']}").json()["deleted"] is True
        assert A not in nft_table(server.port)

        # a hostname rule: orvad resolves it through the egress DNS server
        host_rule = c.post("/api/v1/firewall/rules", json={"target": NAME.upper()})
        assert host_rule.status_code == 201, host_rule.text
        assert host_rule.json()["target"] == NAME and host_rule.json()["addresses"] == [A], host_rule.text
        same, got = probe(c, fn, f"{NAME}:8080", a, b)
        assert same == worker
        assert not reachable(got[f"{NAME}:8080"]) and not reachable(got[a]) and reachable(got[b]), got
        seen = c.post("/api/v1/firewall/resolve", json={"host": NAME}).json()
        assert seen["addresses"] == [A] and seen["blocked"] is True
        assert [r["id"] for r in seen["rules"]] == [host_rule.json()["id"]]
        by_address = c.post("/api/v1/firewall/resolve", json={"host": A}).json()
        assert [r["id"] for r in by_address["rules"]] == [host_rule.json()["id"]]

        # the name moves to B: within its (clamped) TTL the set follows, on the same worker
        net.set_records({NAME: [B]})

        def moved() -> bool:
            rules = c.get("/api/v1/firewall/rules").json()["rules"]
            return rules[0]["addresses"] == [B]

        wait_for(moved, 30, "the hostname rule to be re-resolved")
        same, got = probe(c, fn, a, b)
        assert same == worker and reachable(got[a]) and not reachable(got[b]), got

        # a wildcard matches the names orvad resolves under it, and says so
        wild = c.post("/api/v1/firewall/rules", json={"target": f"*.{ZONE}", "ports": [9]})
        assert wild.status_code == 201, wild.text
        assert wild.json()["names"] == [NAME] and wild.json()["addresses"] == [B]
        matched = c.post("/api/v1/firewall/resolve", json={"host": f"other.{ZONE}"}).json()
        assert wild.json()["id"] in [r["id"] for r in matched["rules"]] and matched["addresses"] == []
        assert c.delete(f"/api/v1/firewall/rules/{host_rule.json()['id']}").status_code == 200
        same, got = probe(c, fn, a, b)
        assert same == worker and reachable(got[a]) and reachable(got[b]), got

        # the rules survive a restart and are in nftables before the first worker starts
        server.stop()
        server.start()
    with server.admin() as c:
        rules = c.get("/api/v1/firewall/rules").json()["rules"]
        assert [r["target"] for r in rules] == [f"*.{ZONE}"]
        assert c.get("/api/v1/firewall/dns").json()["servers"] == [DNS]


def test_allow_list_makes_a_function_deny_by_default(make_orvad: Callable[..., Orvad], net: Internet) -> None:
    net.set_records({NAME: [A]})
    server = make_orvad()
    with server.admin() as c:
        assert c.put("/api/v1/firewall/dns", json={"servers": [DNS]}).status_code == 200
        only_a = egress_function(c, "fw-only-a", egress_allow=[A])
        by_name = egress_function(c, "fw-by-name", egress_allow=[NAME])
        free = egress_function(c, "fw-free")
        assert c.get(f"/api/v1/functions/{only_a['id']}").json()["egress_allow"] == [f"{A}/32"]
        a, b = f"{A}:8080", f"{B}:8080"

        _, got = probe(c, only_a, a, b)
        assert reachable(got[a]) and not reachable(got[b]), got
        _, got = probe(c, by_name, f"{NAME}:8080", b)  # DNS still answers a restricted sandbox
        assert reachable(got[f"{NAME}:8080"]) and not reachable(got[b]), got
        _, got = probe(c, free, a, b)
        assert reachable(got[a]) and reachable(got[b]), got

        # a deny rule wins over an allow list
        rule = c.post("/api/v1/firewall/rules", json={"target": f"{A}/30"}).json()
        _, got = probe(c, only_a, a)
        assert not reachable(got[a]), got
        c.delete(f"/api/v1/firewall/rules/{rule['id']}")

        # the allow list changed: new workers with the new list
        upd = c.put(f"/api/v1/functions/{only_a['id']}", json={"egress_allow": [B]})
        assert upd.status_code == 200 and upd.json()["egress_allow"] == [f"{B}/32"], upd.text

        def swapped() -> bool:
            _, got = probe(c, only_a, a, b)
            return not reachable(got[a]) and reachable(got[b])

        wait_for(swapped, 30, "workers with the new allow list")
        # [] again: anywhere
        c.put(f"/api/v1/functions/{only_a['id']}", json={"egress_allow": []})

        def opened() -> bool:
            _, got = probe(c, only_a, a, b)
            return reachable(got[a]) and reachable(got[b])

        wait_for(opened, 30, "workers without an allow list")
        # every restricted sandbox gone: no allowed pair left behind
        c.delete(f"/api/v1/functions/{by_name['id']}")
        wait_for(lambda: f". {A}" not in nft_table(server.port), 30, "the allow entries to be removed")


def test_the_dns_setting_is_what_egress_sandboxes_resolve_with(
    make_orvad: Callable[..., Orvad], net: Internet
) -> None:
    net.set_records({NAME: [B]})
    server = make_orvad()
    with server.admin() as c:
        assert c.get("/api/v1/firewall/dns").json()["source"] == "host"
        # never the host's resolver for a test name: first a server address with no DNS server behind it
        assert c.put("/api/v1/firewall/dns", json={"servers": [A]}).json()["effective"] == [A]
        fn = egress_function(c, "fw-dns")
        _, got = probe(c, fn, f"{NAME}:8080")
        assert not reachable(got[f"{NAME}:8080"]), got
        assert c.put("/api/v1/firewall/dns", json={"servers": [DNS]}).json()["source"] == "configured"
        # running workers see the new resolv.conf too (it is written in place)
        _, got = probe(c, fn, f"{NAME}:8080")
        assert reachable(got[f"{NAME}:8080"]), got
        assert c.put("/api/v1/firewall/dns", json={"servers": []}).json()["source"] == "host"
