"""network_mode egress against a stand-in "outside": a network namespace this test makes itself.

No traffic leaves the machine: the outside is 198.51.100.2 (TEST-NET-2) inside the test's own
namespace, routed from the host over a veth pair.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orvad.host.egress import derived_ranges
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for
from tests.netns_helpers import CONNECT_CODE, host_addresses, listener_everywhere, served_namespace

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

OUT_NS, HOST_IF = "orvatest-out", "orvatest-h"
OUTSIDE = "198.51.100.2"

PROBE = (
    """
import json, socket, threading
"""
    + CONNECT_CODE
    + """

def listen(port):
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port)); srv.listen(5); srv.settimeout(8)
    def serve():
        try:
            while True:
                conn, _ = srv.accept(); conn.sendall(b"HTTP/1.0 200 worker\\r\\n\\r\\n"); conn.close()
        except Exception:
            pass
    threading.Thread(target=serve, daemon=True).start()

def my_address():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("198.51.100.2", 9)); addr = s.getsockname()[0]; s.close()
    return addr

def handler(event, context):
    q = event["query"]
    if event["path"] == "/listen":
        listen(9000)
        return my_address()
    return {t: connect(*t.rsplit(":", 1)) for t in json.loads(q["targets"])}
"""
)


@pytest.fixture(scope="module")
def outside() -> Iterator[str]:
    """A namespace with an HTTP server on 198.51.100.2:8080, routed from the host."""
    with served_namespace(OUT_NS, HOST_IF, "198.51.100.1/24", f"{OUTSIDE}/24", 8080) as address:
        yield address


@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP service on every host address: workers must not reach it."""
    with listener_everywhere() as port:
        yield port


def test_egress_reaches_the_outside_but_not_the_host_metadata_or_other_workers(
    orvad: Orvad, outside: str, host_listener: int
) -> None:
    import json

    with orvad.admin() as c:
        health = c.get("/api/v1/system/health").json()["checks"]["egress"]
        assert health["ok"], health
        probe = create_function(c, "egress-probe", network_mode="egress", timeout_ms=20000)
        other = create_function(c, "egress-other", network_mode="egress", timeout_ms=20000)
        boxed = create_function(c, "egress-none", timeout_ms=20000)
        for fn in (probe, other, boxed):
            assert wait_deployed(c, deploy_inline(c, fn["id"], PROBE)["id"])["status"] == "succeeded"
        other_ip = c.get(f"/fn/{other['id']}/listen").text
        targets = [
            f"{outside}:8080",
            "169.254.169.254:80",
            f"127.0.0.1:{orvad.port}",
            f"{other_ip}:9000",
            *(f"{ip}:{host_listener}" for ip in host_addresses()),
        ]
        answer = c.get(f"/fn/{probe['id']}/", params={"targets": json.dumps(targets)})
        got = answer.json()
        assert isinstance(got, dict) and f"{outside}:8080" in got, (answer.status_code, answer.text, other_ip)
        assert got[f"{outside}:8080"].startswith("ok:HTTP/1.0 200"), got
        for target in targets[1:]:
            assert got[target].startswith("refused:"), (target, got)
        sealed = c.get(f"/fn/{boxed['id']}/", params={"targets": json.dumps([f"{outside}:8080"])}).json()
        assert sealed[f"{outside}:8080"].startswith("refused:")


def test_egress_namespaces_come_and_go(orvad: Orvad, outside: str) -> None:
    def namespaces() -> set[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return {line.split()[0] for line in out.splitlines() if line.startswith(f"orva{orvad.port}e")}

    with orvad.admin() as c:
        fn = create_function(c, "egress-churn", network_mode="egress")
        c.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 0, "max_warm": 2})
        wait_deployed(c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return 'up'\n")["id"])
        before = namespaces()
        for i in range(5):  # each env change replaces the pool: its workers and namespaces
            c.put(f"/api/v1/functions/{fn['id']}", json={"env_vars": {"ROUND": str(i)}})
            wait_for(lambda: c.get(f"/fn/{fn['id']}").text == "up", 20, "the function to answer")
        c.delete(f"/api/v1/functions/{fn['id']}")
        wait_for(lambda: namespaces() <= before, 20, "the function's namespaces to be deleted")


PRIVATE_NS, PRIVATE_HOST_IF = "orvatest-prv", "orvatest-ph"
PRIVATE = "172.31.251.2"  # RFC 1918: a stand-in for a database or service on the operator's LAN


@pytest.fixture(scope="module")
def private_server() -> Iterator[str]:
    with served_namespace(PRIVATE_NS, PRIVATE_HOST_IF, "172.31.251.1/24", f"{PRIVATE}/24", 8080) as address:
        yield address


def test_egress_to_private_ranges_is_dropped_unless_allow_listed(
    make_orvad: Callable[..., Orvad], outside: str, private_server: str
) -> None:
    import json

    targets = [f"{private_server}:8080", f"{outside}:8080"]
    cases = [
        ({}, "refused:"),  # egress_deny_private defaults to true
        ({"ORVA_EGRESS_ALLOW_CIDRS": f"{private_server}/32"}, "ok:HTTP/1.0 200"),
        ({"ORVA_EGRESS_DENY_PRIVATE": "false"}, "ok:HTTP/1.0 200"),
    ]
    for env, expected in cases:
        server = make_orvad(env=env)
        with server.admin() as c:
            fn = create_function(c, "egress-private", network_mode="egress", timeout_ms=20000)
            assert wait_deployed(c, deploy_inline(c, fn["id"], PROBE)["id"])["status"] == "succeeded"
            got = c.get(f"/fn/{fn['id']}/", params={"targets": json.dumps(targets)}).json()
        assert got[f"{private_server}:8080"].startswith(expected), (env, got)
        assert got[f"{outside}:8080"].startswith("ok:HTTP/1.0 200"), (env, got)
        server.stop()


ECHO_NS, ECHO_HOST_IF, ECHO = "orvatest-echo", "orvatest-eh", "198.18.78.2"
ECHO_SERVER = f'''
import http.server
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.path.encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("{ECHO}", 8080), Echo).serve_forever()
'''
FETCH = f"""
import urllib.request

def handler(event, context):
    token = event["query"]["token"]
    return [urllib.request.urlopen("http://{ECHO}:8080/%s/%d" % (token, i), timeout=5).read().decode()
            for i in range(5)]
"""


def _egress_range(port: int) -> ipaddress.IPv4Network:
    table = subprocess.run(
        ["nft", "list", "table", "inet", f"orva_egress_{port}"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"ip saddr (\S+) oifname", table)
    assert match, table
    return ipaddress.IPv4Network(match.group(1))


def test_two_orvads_on_one_host_get_distinct_ranges_and_their_own_replies(
    make_orvad: Callable[..., Orvad], jail_tmp: Path
) -> None:
    # two data dirs whose hashes pick the same /20: the second orvad must move on to a free one
    first = jail_tmp / "data-a"
    slot = derived_ranges(str(first))[0]
    second = next(
        jail_tmp / f"data-b{i}"
        for i in range(10_000)
        if derived_ranges(str(jail_tmp / f"data-b{i}"))[0] == slot
    )
    with served_namespace(
        ECHO_NS,
        ECHO_HOST_IF,
        "198.18.78.1/30",
        f"{ECHO}/30",
        8080,
        server=[sys.executable, "-c", ECHO_SERVER],
    ):
        servers = [make_orvad(data_dir=d, env={"ORVA_EGRESS_CIDR": "derived"}) for d in (first, second)]
        ranges = [_egress_range(s.port) for s in servers]
        assert ranges[0] == slot and ranges[1] != slot, ranges
        assert all(r.prefixlen == 20 and r.subnet_of(ipaddress.IPv4Network("10.231.0.0/16")) for r in ranges)
        assert not ranges[0].overlaps(ranges[1]), ranges
        # a route that appears after start (here: the first /30 of the first range, as another orvad's
        # veth would look): the lease that would take it must skip it
        first_lease = ipaddress.IPv4Network(f"{ranges[0].network_address + 4}/30")
        subprocess.run(["ip", "route", "add", str(first_lease), "dev", ECHO_HOST_IF], check=True)
        clients = [s.admin() for s in servers]
        try:
            fns = []
            for c in clients:
                fn = create_function(c, "egress-echo", network_mode="egress", timeout_ms=20000)
                assert wait_deployed(c, deploy_inline(c, fn["id"], FETCH)["id"])["status"] == "succeeded"
                fns.append(fn)
            for round_ in range(3):  # both workers stay warm: each request must come back to its sender
                for i, (c, fn) in enumerate(zip(clients, fns, strict=True)):
                    token = f"orvad{i}-round{round_}"
                    got = c.get(f"/fn/{fn['id']}/", params={"token": token})
                    assert got.status_code == 200 and got.json() == [f"/{token}/{n}" for n in range(5)], (
                        got.text
                    )
            leased = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
            assert f"orva{servers[0].port}e1" not in leased and f"orva{servers[0].port}e2" in leased, leased
        finally:
            for c in clients:
                c.close()


def test_a_killed_orvads_egress_table_gives_its_range_back(
    make_orvad: Callable[..., Orvad], jail_tmp: Path
) -> None:
    """An orvad killed with no stop leaves its nftables table (named by its port) holding its /20: the
    next orvad that chooses a range removes a table whose owner no longer runs, and keeps one whose
    owner does (here: this test's own process, standing in for a live orvad)."""
    data = jail_tmp / "data-reclaim"
    slot, after = derived_ranges(str(data))[:2]
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs (a reused pid would have another start time)
    live_start = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    tables = {"orva_egress_1": (dead.pid, "1", slot), "orva_egress_2": (os.getpid(), live_start, after)}
    for name, (pid, start, net) in tables.items():
        script = (
            f'table inet {name} {{\n  comment "orvad pid={pid} start={start}"\n'
            f"  chain forward {{ type filter hook forward priority -10; policy accept;\n"
            f'    ip saddr {net} oifname "nothing" accept\n  }}\n}}\n'
        )
        subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)
    try:
        server = make_orvad(data_dir=data, env={"ORVA_EGRESS_CIDR": "derived"})
        assert _egress_range(server.port) == slot
        listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        assert "orva_egress_1\n" not in listed and "orva_egress_2\n" in listed, listed
    finally:
        for name in tables:
            subprocess.run(["nft", "delete", "table", "inet", name], capture_output=True)


async def test_an_egress_command_past_its_timeout_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An `ip` (or `nft`) that hangs is stopped at its timeout, with what it started: it used to run on
    after orvad gave up on it (wait_for cancelled the read, not the process)."""
    import asyncio
    import os
    import time

    from orvad.host.egress import EgressNetwork, _run

    pids = tmp_path / "pids"
    fake = tmp_path / "bin" / "ip"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ntrap '' TERM\nsleep 300 &\necho $$ $! > {pids}\nwait\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")

    def left() -> list[int]:
        alive = []
        for pid in map(int, pids.read_text().split()):
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] != "Z":  # a zombie of init's is gone for us
                        alive.append(pid)
            except FileNotFoundError:
                pass
        return alive

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await _run("ip", "netns", "list", timeout=0.5)
    assert time.monotonic() - started < 5  # TERM ignored: the group was SIGKILLed after the grace
    assert pids.exists()
    await wait_for_async(lambda: left() == [], 5)  # SIGKILLed: the kernel takes a moment to end them

    pids.unlink()
    network = EgressNetwork("0")
    network._leased["orva0e1"] = 1  # a lease whose `ip netns del` hangs: release gives up, leaves nothing
    releasing = asyncio.ensure_future(network.release("orva0e1"))
    await wait_for_async(lambda: pids.exists() and pids.read_text().strip() != "", 5)
    releasing.cancel()  # orvad stopping while the command hangs
    with pytest.raises(asyncio.CancelledError):
        await releasing
    assert releasing.cancelled()
    await wait_for_async(lambda: left() == [], 5)  # SIGKILLed: the kernel takes a moment to end them


async def wait_for_async(predicate: Callable[[], bool], timeout_s: float) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
