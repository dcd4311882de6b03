"""orvad's DNS stub resolver (orvad/host/dnsquery.py) against hostile replies: a reply is input from the network
that ends up as nftables elements, so only well-formed A/AAAA records of the query asked become addresses.
The servers are UDP sockets on 127.0.0.1 in this test."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from orvad.host.dnsquery import AAAA, A, DNSError, _query, parse_answer
from orvad.host.dnsquery import resolve as dns_resolve


def _reply(
    qid: int,
    question: bytes,
    records: list[tuple[int, bytes, int]],
    rcode: int = 0,
    name: bytes = b"\xc0\x0c",
) -> bytes:
    header = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(records), 0, 0)
    body = b"".join(
        name + struct.pack("!HHIH", rtype, 1, ttl, len(data)) + data for rtype, data, ttl in records
    )
    return header + question + body


def test_parse_answer_takes_only_well_formed_records_of_the_type_asked() -> None:
    qid, packet = _query("svc.orva-test.example", A)
    question = packet[12:]
    good = _reply(
        qid, question, [(A, socket.inet_aton("203.0.113.2"), 60), (A, socket.inet_aton("203.0.113.3"), 30)]
    )
    assert parse_answer(good, qid, A) == (["203.0.113.2", "203.0.113.3"], 30, 0)
    # an AAAA record in an A answer, a 5-byte "A" record, a TXT record: ignored
    mixed = _reply(
        qid,
        question,
        [
            (AAAA, socket.inet_pton(socket.AF_INET6, "2001:db8::1"), 5),
            (A, b"\x01\x02\x03\x04\x05", 5),
            (16, b"\x05hello", 5),
        ],
    )
    assert parse_answer(mixed, qid, A) == ([], 0, 0)
    with pytest.raises(DNSError):
        parse_answer(good, qid ^ 1, A)  # another query's id: a forged or stray reply
    with pytest.raises(DNSError):
        parse_answer(good[:11], qid, A)
    with pytest.raises(DNSError):
        parse_answer(good[:-3], qid, A)  # truncated record
    loop = _reply(qid, question, [(A, socket.inet_aton("203.0.113.9"), 5)], name=b"\x3f" + b"a" * 10)
    with pytest.raises(DNSError):
        parse_answer(loop, qid, A)  # a label running past the end
    nx = _reply(qid, question, [], rcode=3)
    assert parse_answer(nx, qid, A) == ([], 0, 3)
    with pytest.raises(DNSError):
        parse_answer(good[:2] + b"\x01\x00" + good[4:], qid, A)  # a query, not a reply


def test_resolve_ignores_forged_datagrams_and_keeps_waiting_for_its_reply() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        port = sock.getsockname()[1]

        async def serve() -> None:
            while True:
                data, peer = await loop.sock_recvfrom(sock, 2048)
                qid, qtype = struct.unpack("!H", data[:2])[0], struct.unpack("!H", data[-4:-2])[0]
                question = data[12:]
                forged = _reply(qid ^ 0xFFFF, question, [(A, socket.inet_aton("6.6.6.6"), 5)])
                await loop.sock_sendto(sock, forged, peer)  # wrong id first
                await loop.sock_sendto(sock, b"\x00garbage", peer)
                rec = [(A, socket.inet_aton("203.0.113.2"), 7)] if qtype == A else []
                await loop.sock_sendto(sock, _reply(qid, question, rec), peer)

        server = asyncio.create_task(serve())
        try:
            answer = await dns_resolve("svc.orva-test.example", ["127.0.0.1"], port=port)
            assert answer.addresses == ("203.0.113.2",) and answer.ttl == 7
            # no server listening: an ICMP error ends the lookup at once, with a DNSError
            dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            dead.bind(("127.0.0.1", 0))
            dead_port = dead.getsockname()[1]
            dead.close()
            started = loop.time()
            with pytest.raises(DNSError, match="127.0.0.1"):
                await dns_resolve("svc.orva-test.example", ["127.0.0.1"], timeout=5, port=dead_port)
            assert loop.time() - started < 2  # not the 5 s timeout
            with pytest.raises(DNSError):
                await dns_resolve("svc.orva-test.example", [])
        finally:
            server.cancel()
            sock.close()

    asyncio.run(scenario())
