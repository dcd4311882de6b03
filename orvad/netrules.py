"""Egress rule targets: strict parsing of what an operator or a function's ``egress_allow`` names.

A target is a CIDR (IPv4 or IPv6, a bare address meaning /32 or /128), a hostname, or a ``*.`` wildcard
hostname. Nothing a user sends ever reaches nftables as text: CIDRs are re-printed from ``ipaddress``
objects and hostnames only ever contribute the addresses orvad resolved for them (docs/NETWORK.md,
"Egress rules").
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Literal

from orvad.errors import ValidationError

MAX_RULES = 1000  # global deny rules
MAX_ALLOW = 64  # entries of one function's egress_allow
MAX_PORTS = 16  # ports of one rule
MAX_DESCRIPTION = 256
Kind = Literal["cidr", "host", "wildcard"]
_ADDRESS_CHARS = re.compile(r"^[0-9A-Fa-f:./]{2,64}$")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")  # IPv4-mapped IPv6 addresses
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
TARGET_RULE = (
    "an IPv4/IPv6 address or CIDR (203.0.113.0/24, 2001:db8::/32), a hostname (api.example.com) "
    "or a wildcard (*.example.com)"
)


@dataclass(frozen=True)
class Target:
    kind: Kind
    value: str  # normalised: the network's canonical text, or the lower-case hostname

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.value)


def _bad(field: str, message: str, hint: str | None = None, **details: Any) -> ValidationError:
    return ValidationError(f"{field} {message}", hint=hint, details={"field": field, **details})


def is_hostname(text: str) -> bool:
    if not 1 <= len(text) <= 253 or "." not in text:
        return False
    labels = text.split(".")
    return all(_LABEL.fullmatch(label) for label in labels) and not labels[-1].isdigit()


def parse_target(value: Any, field: str = "target", *, wildcards: bool = True) -> Target:
    """A CIDR, hostname or wildcard, validated by an allow-list of characters (never by escaping)."""
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise _bad(field, f"must be {TARGET_RULE}", hint="for example 203.0.113.0/24 or api.example.com")
    if _ADDRESS_CHARS.fullmatch(value) and (":" in value or value[0].isdigit()):
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError as exc:
            raise _bad(field, f"is not a valid address or CIDR: {exc}", hint=f"use {TARGET_RULE}") from None
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.subnet_of(_MAPPED):
            # ::ffff:203.0.113.2 is 203.0.113.2 on the wire (IPv4): as an IPv6 rule it would block nothing
            mapped = net.network_address.ipv4_mapped
            return Target("cidr", str(ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}")))
        return Target("cidr", str(net))
    name = value.lower().rstrip(".") if value.endswith(".") and not value.endswith("..") else value.lower()
    if name.startswith("*."):
        if not wildcards:
            raise _bad(
                field,
                "may not hold a wildcard: orvad cannot know every name under a domain, so it cannot "
                "allow them all",
                hint="list each name the function needs (api.example.com, cdn.example.com)",
                value=value[:80],
            )
        if is_hostname(name[2:]):
            return Target("wildcard", name)
    elif is_hostname(name):
        return Target("host", name)
    raise _bad(
        field, f"has {value[:80]!r}, which is not {TARGET_RULE}", hint="hostnames use a-z 0-9 - and dots"
    )


def parse_ports(value: Any, field: str = "ports") -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_PORTS:
        raise _bad(
            field, f"must be a list of at most {MAX_PORTS} ports (1..65535)", hint="[] means every port"
        )
    ports: list[int] = []
    for port in value:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise _bad(field, f"has {str(port)[:20]!r}, which is not a port in 1..65535")
        if port not in ports:
            ports.append(port)
    return tuple(sorted(ports))


def parse_allow(value: Any, field: str = "egress_allow") -> tuple[str, ...]:
    """A function's egress_allow: CIDRs and hostnames (no wildcards), at most MAX_ALLOW, normalised."""
    example = 'for example {"egress_allow": ["203.0.113.10", "api.example.com"]}, or [] for every destination'
    if not isinstance(value, list) or len(value) > MAX_ALLOW:
        raise _bad(
            field, f"must be a list of at most {MAX_ALLOW} addresses, CIDRs or hostnames", hint=example
        )
    found: list[str] = []
    for index, item in enumerate(value):
        try:
            target = parse_target(item, field, wildcards=False)
        except ValidationError as exc:
            raise ValidationError(
                exc.message, hint=exc.hint or example, details={**(exc.details or {}), "index": index}
            ) from None
        if target.value not in found:
            found.append(target.value)
    return tuple(found)


def wildcard_matches(pattern: str, name: str) -> bool:
    """``*.example.com`` matches every name under example.com (a.example.com, a.b.example.com), not the apex."""
    return pattern.startswith("*.") and name.endswith(pattern[1:]) and len(name) > len(pattern) - 1


def target_matches(target: Target, name: str | None, addresses: list[str]) -> bool:
    """Whether a rule's target covers a name (hostname or wildcard) or one of its addresses (CIDR)."""
    if target.kind == "host":
        return name == target.value
    if target.kind == "wildcard":
        return name is not None and wildcard_matches(target.value, name)
    net = target.network
    return any(ipaddress.ip_address(a) in net for a in addresses)
