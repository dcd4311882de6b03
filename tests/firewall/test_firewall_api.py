"""The firewall API's trust boundary: what may become an nftables element, caps, permissions.

Nothing here is ever asked of a real DNS server: the DNS servers are set to the address of the test's own
HTTP server namespace (no DNS server there) before any hostname is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.deploy_helpers import create_function
from tests.firewall.netfixtures import A, Internet, internet, nft_table
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs root, nft and ip (the egress table)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Internet]:
    folder = tmp_path_factory.mktemp("fwnet")
    folder.chmod(0o755)
    with internet(folder) as world:
        yield world


INJECTIONS = [
    "1.2.3.4; flush ruleset",
    "1.2.3.4 } ; flush ruleset ; add element inet x y {",
    "1.2.3.4\nflush ruleset",
    "1.2.3.4/32\n",
    '1.2.3.4" accept',
    "1.2.3.4' accept",
    "evil.example; flush ruleset",
    "evil.example\nflush ruleset",
    "$(reboot).example",
    "`id`.example",
    "a b.example",
    "*.*.example",
    "*",
    "*.example",  # a wildcard needs a name with a dot under it
    "fe80::1%eth0",
    "1.2.3.4/33",
    "1.2.3",
    "300.1.1.1",
    "::g",
    "2001:db8::/129",
    "-bad.example",
    "x" * 300,
    "a..example",
    "",
    "\x00.example",
]


def test_validation_refuses_injection_and_nonsense_and_keeps_the_table_intact(
    make_orvad: Callable[..., Orvad], net: Internet
) -> None:
    server = make_orvad()
    before = nft_table(server.port)
    with server.admin() as c:
        assert c.put("/api/v1/firewall/dns", json={"servers": [A]}).status_code == 200
        for bad in INJECTIONS:
            r = c.post("/api/v1/firewall/rules", json={"target": bad})
            assert r.status_code == 400, (bad, r.text)
            assert r.json()["error"]["code"] == "VALIDATION" and r.json()["error"]["hint"], r.text
        for body in (
            {"target": 5},
            {"target": ["1.2.3.4"]},
            {"target": "1.2.3.4", "ports": [0]},
            {"target": "1.2.3.4", "ports": [65536]},
            {"target": "1.2.3.4", "ports": ["80; flush ruleset"]},
            {"target": "1.2.3.4", "ports": [True]},
            {"target": "1.2.3.4", "ports": list(range(1, 18))},
            {"target": "1.2.3.4", "description": "x" * 257},
            {"target": "1.2.3.4", "action": "accept"},
        ):
            r = c.post("/api/v1/firewall/rules", json=body)
            assert r.status_code == 400, (body, r.text)
        for servers in (
            ["1.2.3.4; flush ruleset"],
            ["127.0.0.1"],
            ["0.0.0.0"],
            ["a.example"],
            ["9.9.9.9"] * 5,
            "x",
        ):
            r = c.put("/api/v1/firewall/dns", json={"servers": servers})
            assert r.status_code == 400, (servers, r.text)
        assert c.get("/api/v1/firewall/dns").json()["servers"] == [A]
        assert c.get("/api/v1/firewall/rules").json()["rules"] == []
        assert nft_table(server.port).replace(A, "").count("flush") == before.count("flush")

        # IPv6 and overlapping rules are accepted: normalised, merged in the set, each kept as a rule
        v6 = c.post("/api/v1/firewall/rules", json={"target": "2001:DB8:0:0::1/32"})
        assert v6.status_code == 201 and v6.json()["target"] == "2001:db8::/32", v6.text
        wide = c.post("/api/v1/firewall/rules", json={"target": "198.18.0.0/15", "description": "bench"})
        narrow = c.post("/api/v1/firewall/rules", json={"target": "198.18.5.7"})
        port = c.post("/api/v1/firewall/rules", json={"target": "198.18.5.0/24", "ports": [443, 80, 443]})
        assert [r.status_code for r in (wide, narrow, port)] == [201, 201, 201], (
            wide.text,
            narrow.text,
            port.text,
        )
        assert narrow.json()["target"] == "198.18.5.7/32" and port.json()["ports"] == [80, 443]
        dup = c.post("/api/v1/firewall/rules", json={"target": "198.18.5.7/32"})
        assert dup.status_code == 409 and dup.json()["error"]["details"]["id"] == narrow.json()["id"]
        table = nft_table(server.port)
        assert "198.18.0.0/15" in table and "2001:db8::/32" in table and "198.18.5.0/24 . 80" in table
        assert "198.18.5.7" not in table  # inside 198.18.0.0/15: merged away
        # a hostname that does not resolve (no DNS server there) is kept, with its error shown
        host = c.post("/api/v1/firewall/rules", json={"target": "nothing.orva-test.example"})
        assert host.status_code == 201 and host.json()["addresses"] == [] and host.json()["error"], host.text
        # resolve: the matching rules of an address
        seen = c.post("/api/v1/firewall/resolve", json={"host": "198.18.5.9"}).json()
        assert {r["id"] for r in seen["rules"]} == {wide.json()["id"], port.json()["id"]} and seen["blocked"]
        assert c.post("/api/v1/firewall/resolve", json={"host": "1.2.3.4; flush"}).status_code == 400
        # update and delete: unknown ids are 404, bad updates change nothing
        rid = wide.json()["id"]
        assert c.put(f"/api/v1/firewall/rules/{rid}", json={"target": "1.2.3.4\n"}).status_code == 400
        assert (
            c.put("/api/v1/firewall/rules/nope", json={"description": "x"}).json()["error"]["code"]
            == "NOT_FOUND"
        )
        assert c.delete("/api/v1/firewall/rules/nope").status_code == 404
        assert [r["target"] for r in c.get("/api/v1/firewall/rules").json()["rules"]][1] == "198.18.0.0/15"

        # egress_allow: strictly parsed, capped, no wildcards
        fn = create_function(c, "fw-allow", network_mode="egress")
        for bad_allow in (
            ["*.example.com"],
            ["1.2.3.4; flush ruleset"],
            ["a.example"] * 0 + [f"{i}.0.0.1" for i in range(1, 66)],
            "1.2.3.4",
            [None],
        ):
            r = c.put(f"/api/v1/functions/{fn['id']}", json={"egress_allow": bad_allow})
            assert r.status_code == 400, (bad_allow, r.text)
            assert r.json()["error"]["details"]["field"] == "egress_allow"
        ok = c.put(
            f"/api/v1/functions/{fn['id']}",
            json={"egress_allow": ["2001:db8::1", "API.orva-test.example", "10.0.0.0/8"]},
        )
        assert ok.json()["egress_allow"] == ["2001:db8::1/128", "api.orva-test.example", "10.0.0.0/8"], (
            ok.text
        )


def test_the_firewall_is_for_admins_only(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.admin() as c:
        keys = {
            perms: c.post("/api/v1/keys", json={"name": "-".join(perms), "permissions": list(perms)}).json()[
                "key"
            ]
            for perms in (("read",), ("read", "write"), ("read", "write", "invoke"))
        }
    for key in keys.values():
        with server.client(key) as c:
            for method, path, body in (
                ("GET", "/api/v1/firewall/rules", None),
                ("POST", "/api/v1/firewall/rules", {"target": "1.2.3.4"}),
                ("PUT", "/api/v1/firewall/rules/x", {"description": "x"}),
                ("DELETE", "/api/v1/firewall/rules/x", None),
                ("POST", "/api/v1/firewall/resolve", {"host": "1.2.3.4"}),
                ("GET", "/api/v1/firewall/dns", None),
                ("PUT", "/api/v1/firewall/dns", {"servers": []}),
            ):
                r = c.request(method, path, json=body)
                assert r.status_code == 403, (key[:12], method, path, r.text)
                assert r.json()["error"]["code"] == "FORBIDDEN"
