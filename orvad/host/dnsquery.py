"""A small DNS stub resolver: A and AAAA answers with their TTLs, asked of named servers over UDP.

orvad resolves the hostnames of egress rules itself (docs/NETWORK.md, "Egress rules") and asks the same
servers egress sandboxes are given, so that both see the same answers; ``getaddrinfo`` gives no TTL and
asks whatever the host is configured with. Only addresses come out: a name never reaches nftables.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import struct
from dataclasses import dataclass

A, AAAA, CNAME = 1, 28, 5
MAX_ADDRESSES = 64  # per name: more are dropped (a DNS answer may hold many)


class DNSError(RuntimeError):
    pass


@dataclass(frozen=True)
class Answer:
    addresses: tuple[str, ...]
    ttl: int  # the shortest TTL among the records (seconds)


def _query(name: str, qtype: int) -> tuple[int, bytes]:
    qid = secrets.randbits(16)
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # recursion desired
    qname = b"".join(bytes([len(label)]) + label.encode("ascii") for label in name.split(".")) + b"\0"
    return qid, header + qname + struct.pack("!HH", qtype, 1)


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        if offset >= len(data):
            raise DNSError("truncated name")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        if length == 0:
            return offset + 1
        offset += 1 + length


def parse_answer(data: bytes, qid: int, qtype: int) -> tuple[list[str], int, int]:
    """(addresses of type qtype, min TTL, rcode) from a reply; raises DNSError on a malformed one."""
    if len(data) < 12:
        raise DNSError("short reply")
    rid, flags, qdcount, ancount = struct.unpack("!HHHH", data[:8])
    if rid != qid or not flags & 0x8000:
        raise DNSError("reply does not match the query")
    rcode = flags & 0xF
    offset = 12
    for _ in range(qdcount):
        offset = _skip_name(data, offset) + 4
    found: list[str] = []
    ttl = 2**31
    for _ in range(ancount):
        offset = _skip_name(data, offset)
        if offset + 10 > len(data):
            raise DNSError("truncated record")
        rtype, _cls, rttl, rdlen = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        if offset + rdlen > len(data):
            raise DNSError("truncated record")
        rdata = data[offset : offset + rdlen]
        offset += rdlen
        if rtype == qtype and rtype in (A, AAAA) and len(rdata) == (4 if rtype == A else 16):
            found.append(str(ipaddress.ip_address(rdata)))
            ttl = min(ttl, rttl)
        elif rtype == CNAME:
            ttl = min(ttl, rttl)
    return found, (ttl if found else 0), rcode


class _Proto(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.replies.put_nowait(data)

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable: no server there
        self.replies.put_nowait(exc)


async def _ask(server: str, name: str, qtype: int, timeout: float, port: int) -> tuple[list[str], int, int]:
    loop = asyncio.get_running_loop()
    family = 10 if ":" in server else 2  # AF_INET6 / AF_INET
    transport, proto = await loop.create_datagram_endpoint(_Proto, remote_addr=(server, port), family=family)
    try:
        qid, packet = _query(name, qtype)
        transport.sendto(packet)
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise DNSError(f"no answer from {server} within {timeout:g} s")
            data = await asyncio.wait_for(proto.replies.get(), remaining)
            if isinstance(data, Exception):
                raise DNSError(f"{server}: {data}")
            try:
                return parse_answer(data, qid, qtype)
            except DNSError:
                continue  # a stray or forged datagram: keep waiting for ours
    except TimeoutError:
        raise DNSError(f"no answer from {server} within {timeout:g} s") from None
    finally:
        transport.close()


async def resolve(name: str, servers: list[str], timeout: float = 2.0, port: int = 53) -> Answer:
    """A and AAAA records of ``name`` from the first server that answers; DNSError when none does.
    An NXDOMAIN or an empty answer is an Answer with no addresses (TTL 0)."""
    if not servers:
        raise DNSError("no DNS server is configured (PUT /api/v1/firewall/dns)")
    errors = []
    for server in servers:
        try:
            results = await asyncio.gather(*(_ask(server, name, t, timeout, port) for t in (A, AAAA)))
        except (DNSError, OSError) as exc:
            errors.append(f"{server}: {exc}")
            continue
        addresses = [a for found, _, _ in results for a in found][:MAX_ADDRESSES]
        ttls = [ttl for found, ttl, _ in results if found]
        if any(rcode not in (0, 3) for _, _, rcode in results) and not addresses:
            errors.append(f"{server}: answered with an error (rcode {max(r for _, _, r in results)})")
            continue
        return Answer(tuple(dict.fromkeys(addresses)), min(ttls) if ttls else 0)
    raise DNSError("; ".join(errors))
