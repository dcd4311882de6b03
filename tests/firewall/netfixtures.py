"""The firewall tests' own "internet": two HTTP servers and a DNS server, each in a network namespace the
test makes (TEST-NET-3, 203.0.113.0/24). Nothing leaves the machine and no real name is ever asked."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.netns_helpers import CONNECT_CODE, served_namespace

A, B, DNS = "203.0.113.2", "203.0.113.6", "203.0.113.10"
ZONE = "orva-test.example"

# answers A queries from a JSON file {"name": ["addr", ...]} read at each query (TTL 1 s); NXDOMAIN else;
# a TCP listener on the same port tells served_namespace it is up
DNS_SERVER = r"""
import json, socket, struct, sys, threading
addr, records = sys.argv[1], sys.argv[2]
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); tcp.bind((addr, 53)); tcp.listen(8)
threading.Thread(target=lambda: [tcp.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind((addr, 53))
while True:
    data, peer = udp.recvfrom(2048)
    qid, = struct.unpack("!H", data[:2])
    i, labels = 12, []
    while data[i]:
        labels.append(data[i + 1 : i + 1 + data[i]].decode()); i += 1 + data[i]
    qtype, = struct.unpack("!H", data[i + 1 : i + 3])
    question = data[12 : i + 5]
    name = ".".join(labels).lower()
    try:
        table = json.load(open(records))
    except Exception:
        table = {}
    found = table.get(name)
    answers = b""
    if found and qtype == 1:
        for a in found:
            answers += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 1, 4) + socket.inet_aton(a)
    count = len(found) if found and qtype == 1 else 0
    rcode = 0 if found is not None else 3
    header = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, count, 0, 0)
    udp.sendto(header + question + answers, peer)
"""

PROBE = (
    """
import json, os, socket
"""
    + CONNECT_CODE
    + """
TOKEN = os.urandom(6).hex()  # one per worker: the same token means the same warm worker

def handler(event, context):
    targets = json.loads(event["query"]["targets"])
    return {"worker": TOKEN, "got": {t: connect(*t.rsplit(":", 1)) for t in targets}}
"""
)


@dataclass
class Internet:
    records: Path

    def set_records(self, table: dict[str, list[str]]) -> None:
        tmp = self.records.with_suffix(".tmp")
        tmp.write_text(json.dumps(table))
        tmp.replace(self.records)


@contextmanager
def internet(tmp: Path) -> Iterator[Internet]:
    records = tmp / "dns-records.json"
    records.write_text("{}")
    records.chmod(0o644)
    with ExitStack() as stack:
        stack.enter_context(served_namespace("orvafw-a", "orvafw-ha", "203.0.113.1/30", f"{A}/30", 8080))
        stack.enter_context(served_namespace("orvafw-b", "orvafw-hb", "203.0.113.5/30", f"{B}/30", 8080))
        stack.enter_context(
            served_namespace(
                "orvafw-d",
                "orvafw-hd",
                "203.0.113.9/30",
                f"{DNS}/30",
                53,
                server=[sys.executable, "-c", DNS_SERVER, DNS, str(records)],
            )
        )
        yield Internet(records)


def nft_table(port: int) -> str:
    return subprocess.run(
        ["nft", "list", "table", "inet", f"orva_egress_{port}"], capture_output=True, text=True, check=True
    ).stdout
