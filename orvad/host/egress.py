"""Network namespaces for egress workers and for builds: a veth pair to the host each, and an
nftables table that keeps them away from the host and from each other.

Rules (table ``inet orva_egress_<port>``, owned and removed by orvad):
* input: nothing arriving from a worker veth reaches a host socket (orvad, other services,
  any host address); from a build veth only the build proxy's port is reachable;
* forward: from a worker veth, drop traffic to another worker or build veth, link-local/metadata
  (169.254.0.0/16) and, with ``egress_deny_private``, RFC 1918, CGNAT and reserved ranges (the
  host's DNS servers stay reachable on port 53; ``egress_allow_cidrs`` re-opens named ranges);
  everything else may leave, masqueraded; nothing is forwarded to or from a build veth (a build's
  only way out is the proxy, see buildproxy.py);
* IPv6 is not routed (no address is given).
* egress rules (docs/NETWORK.md "Egress rules", orvad/services/firewall.py): nft sets ``deny4``/``deny4p``
  (and ``deny6``/``deny6p``) rejected for every worker, and per-sandbox allow lists: a sandbox whose
  source address is in ``restricted`` may reach only its ``allowed`` (saddr . daddr) pairs and the
  ``dns`` servers on port 53. The sets are replaced together in one ``nft -f`` transaction (sync), so a
  change reaches running workers at once. Only ``ipaddress``-printed addresses are ever written.
Namespaces are made on demand and deleted when their worker or build ends; leftovers of a crashed
orvad are removed at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orvad.host.buildproxy import PROXY_PORT
from orvad.host.process import DEVNULL, PIPE, spawn

log = logging.getLogger(__name__)
TABLE_PREFIX = "orva_egress_"
DEFAULT_RANGE = "10.231.0.0/16"
DERIVED = "derived"  # the default egress_cidr: a /20 of DEFAULT_RANGE picked per instance (derived_range)
SLOT_PREFIX = 20
# dropped for egress workers with egress_deny_private: RFC 1918, CGNAT, "this network", multicast, reserved
PRIVATE_RANGES = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
# a port rule covers every protocol with ports a sandbox can open (UDP-Lite needs no privilege; SCTP
# and DCCP load on demand on many kernels), not just TCP and UDP
PORTED = "tcp, udp, udplite, sctp, dccp"
Kind = Literal["e", "b"]  # an egress worker, a build


class EgressError(RuntimeError):
    pass


async def _run(*argv: str, stdin: str | None = None, timeout: float = 10.0) -> str:
    """Run ``ip``/``nft``; past ``timeout`` (TimeoutError) or when cancelled, the command takes orvad's kill
    path (orvad.host.process: TERM, grace, KILL its group, reaped) instead of running on behind orvad's back."""
    proc = await spawn(
        argv, stdin=PIPE if stdin else DEVNULL, stdout=PIPE, stderr=PIPE, start_new_session=True
    )
    out, err = await proc.communicate(stdin.encode() if stdin else None, timeout_s=timeout, term_grace_s=1.0)
    if proc.returncode != 0:
        raise EgressError(f"{' '.join(argv[:3])} failed: {err.decode(errors='replace').strip()[:300]}")
    return out.decode()


class EgressNetwork:
    def __init__(
        self,
        instance: str,
        cidr: str = DERIVED,
        *,
        deny_private: bool = True,
        allow_cidrs: str = "",
        seed: str = "",
    ) -> None:
        # Names carry the instance (orvad's port) so two orvads on one host never touch each other's.
        self.table = f"{TABLE_PREFIX}{instance}"
        self.ns_base = f"orva{instance}"
        self.veth_base = f"o{instance}"
        self.ns_prefix = f"{self.ns_base}e"
        self.veth_prefix = f"{self.veth_base}e"
        self.build_veths = f"{self.veth_base}b"
        self.derived = cidr == DERIVED
        self.seed = seed or instance  # derived ranges hash this (the data dir): two orvads start apart
        self.network = ipaddress.ip_network(DEFAULT_RANGE if self.derived else cidr)
        self._free: list[int] = []
        self._leased: dict[str, int] = {}
        self.deny_private = deny_private
        self.allow = _collapsed(c.strip() for c in allow_cidrs.split(",") if c.strip())
        self._forward_before: str | None = None
        # egress rules: the global deny sets, the servers restricted sandboxes may ask, each restricted
        # sandbox's allow entries (CIDRs, hostnames) and what hostnames resolve to (the firewall service's)
        self.deny: DenySets = DenySets()
        self.host_dns = tuple(_collapsed(_resolvers()))  # the host's IPv4 resolvers (bound into jails)
        self.dns: tuple[str, ...] = self.host_dns  # servers egress workers may ask on port 53
        self.names: dict[str, tuple[str, ...]] = {}
        self._allow: dict[str, tuple[str, ...]] = {}
        self._sync_lock = asyncio.Lock()
        self._reference = ""  # the table as orvad made it, sets' elements left out (guard)
        self.ready = False
        self.detail = "not started"

    def _addresses(self, n: int) -> tuple[str, str]:
        base = int(self.network.network_address) + n * 4
        return str(ipaddress.ip_address(base + 1)), str(ipaddress.ip_address(base + 2))

    def host_address(self, name: str) -> str:
        """The host side of a leased namespace's veth (where a build's proxy listens)."""
        return self._addresses(self._leased[name])[0]

    async def start(self) -> None:
        try:
            await self._clean_leftovers()
            self.network = await self._choose_range()
            self._free = list(range(1, self.network.num_addresses // 4))
            before = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
            others = TABLE_PREFIX in await _run("nft", "list", "tables")
            self._forward_before = None if others else before  # another orvad already turned it on
            Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
            self.ready = True  # the sets are filled in the same transaction as the table is made
            await _run("nft", "-f", "-", stdin=self._ruleset() + self.firewall_script())
            self._reference = await self._listing()
            self.ready, self.detail = True, f"egress via {self.network}, nftables table inet {self.table}"
        except (EgressError, OSError, TimeoutError) as exc:
            self.ready, self.detail = False, f"egress unavailable: {exc}"
            log.error("egress networking unavailable", extra={"error": str(exc)})

    async def _choose_range(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The configured range, or the first free /20 of DEFAULT_RANGE from this instance's own slot
        on: never one overlapping a host route (other orvads' veths are routes) or another orvad's range."""
        taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
            route for _, route in await asyncio.to_thread(_host_routes) if route.prefixlen > 0
        ]
        taken += await self._other_ranges()
        candidates = [self.network] if not self.derived else derived_ranges(self.seed)
        for candidate in candidates:
            clash = next((str(t) for t in taken if t.overlaps(candidate)), None)
            if clash is None:
                return candidate
            if not self.derived:
                raise EgressError(
                    f"the egress range {candidate} overlaps {clash} (a host route or another "
                    "orvad's egress range); set ORVA_EGRESS_CIDR to a free range"
                )
        raise EgressError(
            f"every /{SLOT_PREFIX} of {DEFAULT_RANGE} overlaps a host route or another orvad's range; "
            "set ORVA_EGRESS_CIDR to a free range"
        )

    async def _other_ranges(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Ranges other orvads on this host hold (read from their nftables tables)."""
        found: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for line in (await _run("nft", "list", "tables")).splitlines():
            name = line.split()[-1] if line.strip() else ""
            if name.startswith(TABLE_PREFIX) and name != self.table:
                with contextlib.suppress(EgressError):  # it may be gone already
                    text = await _run("nft", "list", "table", "inet", name)
                    if _owner_gone(text):  # an orvad killed without its stop: reclaim its range
                        await _run("nft", "delete", "table", "inet", name)
                        log.warning("egress table of a stopped orvad removed", extra={"table": name})
                        continue
                    found += [ipaddress.ip_network(m, strict=False) for m in _SADDR.findall(text)]
        return found

    async def _route_clash(self, n: int, own_dev: str | None) -> str | None:
        """A host route (other than our own veth's) overlapping this lease's /30, if any."""
        net = ipaddress.ip_network(f"{self._addresses(n)[0]}/30", strict=False)
        for dev, route in await asyncio.to_thread(_host_routes):  # procfs: no exec, ~0.1 ms
            if dev != own_dev and route.prefixlen > 0 and route.overlaps(net):
                return f"{route} dev {dev}"
        return None

    def _ruleset(self) -> str:
        w = f'iifname "{self.veth_prefix}*"'
        reject = "reject with icmpx type admin-prohibited"
        return f"""table inet {self.table} {{
  comment "{_owner_mark()}"
  set deny4 {{ type ipv4_addr; flags interval; }}
  set deny4p {{ type ipv4_addr . inet_service; flags interval; }}
  set deny6 {{ type ipv6_addr; flags interval; }}
  set deny6p {{ type ipv6_addr . inet_service; flags interval; }}
  set restricted {{ type ipv4_addr; }}
  set allowed {{ type ipv4_addr . ipv4_addr; flags interval; }}
  set dns {{ type ipv4_addr; flags interval; }}
  chain restricted {{
    ip saddr . ip daddr @allowed return
    ip daddr @dns udp dport 53 return
    ip daddr @dns tcp dport 53 return
    {reject}
  }}
  chain input {{ type filter hook input priority -10; policy accept;
    iifname "{self.veth_prefix}*" drop
    iifname "{self.build_veths}*" ip daddr {self.network} tcp dport {PROXY_PORT} accept
    iifname "{self.build_veths}*" drop
    ip daddr {self.network} tcp dport {PROXY_PORT} iifname != "lo" drop
  }}
  chain forward {{ type filter hook forward priority -10; policy accept;
    iifname "{self.build_veths}*" drop
    oifname "{self.build_veths}*" drop
    iifname "{self.veth_prefix}*" oifname "{self.veth_base}*" drop
    {w} ip6 daddr @deny6 {reject}
    {w} meta l4proto {{ {PORTED} }} ip6 daddr . th dport @deny6p {reject}
    iifname "{self.veth_prefix}*" meta nfproto ipv6 drop
    {w} ip daddr @deny4 {reject}
    {w} meta l4proto {{ {PORTED} }} ip daddr . th dport @deny4p {reject}
    {w} ip saddr @restricted jump restricted
{self._destination_rules()}
    iifname "{self.veth_prefix}*" accept
    oifname "{self.veth_prefix}*" ct state established,related accept
    oifname "{self.veth_prefix}*" drop
  }}
  chain postrouting {{ type nat hook postrouting priority 100; policy accept;
    ip saddr {self.network} oifname != "{self.veth_prefix}*" masquerade
  }}
}}
"""

    def _destination_rules(self) -> str:
        """Allow-listed ranges first, then the host's resolvers (port 53), then the dropped ranges."""
        worker = f'iifname "{self.veth_prefix}*"'
        rules = [f"{worker} ip daddr {{ {', '.join(self.allow)} }} accept"] if self.allow else []
        dropped = ["169.254.0.0/16"]
        if self.deny_private:  # the egress DNS servers (set dns: the host's, or PUT /api/v1/firewall/dns)
            rules += [f"{worker} ip daddr @dns {proto} dport 53 accept" for proto in ("udp", "tcp")]
            dropped += PRIVATE_RANGES
        rules.append(f"{worker} ip daddr {{ {', '.join(dropped)} }} drop")
        return "\n".join("    " + rule for rule in rules)

    async def _clean_leftovers(self) -> None:
        for line in (await _run("ip", "netns", "list")).splitlines():
            name = line.split()[0] if line.strip() else ""
            if name.startswith((self.ns_prefix, f"{self.ns_base}b")):
                await _run("ip", "netns", "del", name)
        try:
            await _run("nft", "delete", "table", "inet", self.table)
        except EgressError:
            pass

    async def lease(self, kind: Kind = "e", allow: tuple[str, ...] = ()) -> str:
        """A fresh namespace for an egress worker ("e", default route via the host) or a build ("b",
        no route: it reaches only the host side of its veth, where its proxy listens). ``allow``
        (CIDRs, hostnames in ``names``) restricts an egress worker to those destinations: in force
        before this returns, so before anything runs in the namespace."""
        if not self.ready:
            raise EgressError(self.detail)
        await self.guard()  # never a new worker behind a table removed or emptied outside orvad
        clash = None
        for _ in range(_LEASE_TRIES):
            if not self._free:
                raise EgressError("no free egress address left")
            n = self._free.pop(0)
            clash = await self._route_clash(n, None)
            if clash is None:
                name = await self._make(kind, n)
                clash = await self._route_clash(n, f"{self.veth_base}{kind}{n}")  # someone raced us to it
                if clash is None:
                    if allow:
                        self._allow[name] = allow
                        try:
                            await self.sync()
                        except BaseException:
                            await self.release(name)
                            raise
                    return name
                await self.release(name)
            else:
                self._free.append(n)  # in use elsewhere now; try it again later
            log.warning("egress address in use by another route; skipped", extra={"lease": n, "route": clash})
        raise EgressError(
            f"the egress range {self.network} overlaps host routes ({clash}); "
            "another orvad or the host uses it: set ORVA_EGRESS_CIDR to a free range"
        )

    async def _make(self, kind: Kind, n: int) -> str:
        name, host_if, peer_if = f"{self.ns_base}{kind}{n}", f"{self.veth_base}{kind}{n}", f"orvap{n}"
        host_ip, peer_ip = self._addresses(n)
        routes = [f"route add default via {host_ip}"] if kind == "e" else []
        try:
            await _run(
                "ip",
                "-batch",
                "-",
                stdin="\n".join(
                    [
                        f"netns add {name}",
                        f"link add {host_if} type veth peer name {peer_if} netns {name}",
                        f"addr add {host_ip}/30 dev {host_if}",
                        f"link set {host_if} up",
                    ]
                )
                + "\n",
            )
            await _run(
                "ip",
                "-n",
                name,
                "-batch",
                "-",
                stdin="\n".join(
                    [
                        "link set lo up",
                        f"addr add {peer_ip}/30 dev {peer_if}",
                        f"link set {peer_if} up",
                        *routes,
                    ]
                )
                + "\n",
            )
        except (EgressError, TimeoutError):
            self._leased[name] = n
            await self.release(name)
            raise
        self._leased[name] = n
        return name

    async def release(self, name: str) -> None:
        n = self._leased.pop(name, None)
        try:
            await _run("ip", "netns", "del", name)  # the veth pair goes with it
        except EgressError:
            pass
        if self._allow.pop(name, None) is not None:
            with contextlib.suppress(EgressError, TimeoutError):
                await self.sync()  # before the address can be leased again (fails closed if not)
        if n is not None:
            self._free.append(n)

    async def stop(self) -> None:
        for name in list(self._leased):
            await self.release(name)
        was_ready, self.ready = self.ready, False  # guard() puts nothing back from here on
        if was_ready:
            try:
                await _run("nft", "delete", "table", "inet", self.table)
            except EgressError:
                pass
            others = TABLE_PREFIX in await _run("nft", "list", "tables")
            if self._forward_before is not None and not others:  # the last orvad out restores forwarding
                Path("/proc/sys/net/ipv4/ip_forward").write_text(self._forward_before + "\n")

    def check(self) -> dict[str, Any]:
        return {"ok": self.ready, "detail": self.detail}

    def live_allow(self) -> list[tuple[str, ...]]:
        """The allow lists of the restricted sandboxes alive now."""
        return list(self._allow.values())

    def allow_addresses(self, entries: tuple[str, ...]) -> list[str]:
        """The networks an allow list stands for now: its CIDRs and its hostnames' resolved addresses
        (IPv4 only: IPv6 is not routed); a name not resolved (yet) stands for nothing."""
        nets: list[str] = []
        for entry in entries:
            if entry in self.names:
                nets += [a for a in self.names[entry] if ":" not in a]
            else:
                with contextlib.suppress(ValueError):
                    if ipaddress.ip_network(entry).version == 4:
                        nets.append(entry)
        return _collapsed(nets)

    def firewall_script(self) -> str:
        """The nft transaction that replaces every egress-rule set (deny, dns, restricted, allowed) at once."""
        d = self.deny
        sets: dict[str, list[str]] = {
            "deny4": _collapsed(d.nets4),
            "deny6": _collapsed6(d.nets6),
            "deny4p": [
                f"{n} . {p}" for p, nets in sorted(_by_port(d.ports4).items()) for n in _collapsed(nets)
            ],
            "deny6p": [
                f"{n} . {p}" for p, nets in sorted(_by_port(d.ports6).items()) for n in _collapsed6(nets)
            ],
            "dns": _collapsed(a for a in self.dns if ":" not in a),
            "restricted": [],
            "allowed": [],
        }
        for name, entries in self._allow.items():
            if name not in self._leased:
                continue
            source = self._addresses(self._leased[name])[1]
            sets["restricted"].append(source)
            sets["allowed"] += [f"{source} . {net}" for net in self.allow_addresses(entries)]
        lines = []
        for set_name, elements in sets.items():
            lines.append(f"flush set inet {self.table} {set_name}")
            if elements:
                lines.append(f"add element inet {self.table} {set_name} {{ {', '.join(elements)} }}")
        return "\n".join(lines) + "\n"

    async def _listing(self) -> str:
        return await _run("nft", "-t", "list", "table", "inet", self.table)  # -t: no set elements

    async def guard(self) -> bool:
        """Put the table back, sets included, when it is gone or no longer what orvad made: an
        ``nft flush ruleset`` (a firewall reload, ``systemctl restart nftables``) or a chain flushed by
        hand would otherwise leave every egress worker unfiltered, the host included. Checked at each
        lease and every few seconds (FirewallService.run); True when it had to."""
        async with self._sync_lock:
            if not self.ready:
                return False
            try:
                if await self._listing() == self._reference:
                    return False
            except EgressError:
                pass  # no table at all
            log.error("the egress table was removed or changed outside orvad; putting it back")
            reset = f"table inet {self.table} {{}}\ndelete table inet {self.table}\n"  # gone or not
            await _run("nft", "-f", "-", stdin=reset + self._ruleset() + self.firewall_script())
            self._reference = await self._listing()
            return True

    async def sync(self) -> None:
        """Apply the egress-rule sets in one nft transaction (all or nothing); a no-op while not ready."""
        async with self._sync_lock:
            if self.ready:
                await _run("nft", "-f", "-", stdin=self.firewall_script())


@dataclass(frozen=True)
class DenySets:
    """The global deny list as networks: every port, or (network, port) pairs (TCP and UDP)."""

    nets4: tuple[str, ...] = ()
    nets6: tuple[str, ...] = ()
    ports4: tuple[tuple[str, int], ...] = ()
    ports6: tuple[tuple[str, int], ...] = ()


def _by_port(pairs: tuple[tuple[str, int], ...]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for net, port in pairs:
        grouped.setdefault(int(port), []).append(net)
    return grouped


def _collapsed6(cidrs: Iterable[str]) -> list[str]:
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    return [
        str(n) for n in ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv6Network))
    ]


_SADDR = re.compile(r"ip saddr (\d+\.\d+\.\d+\.\d+/\d+)")
_LEASE_TRIES = 8


def _host_routes() -> list[tuple[str, ipaddress.IPv4Network]]:
    """The main table's IPv4 routes as (device, network), from /proc/net/route (hex, little-endian)."""
    routes = []
    with open("/proc/net/route") as fh:
        for line in list(fh)[1:]:
            parts = line.split()
            if len(parts) >= 8:
                dest, mask = (
                    ipaddress.IPv4Address(int(v, 16).to_bytes(4, "little")) for v in (parts[1], parts[7])
                )
                routes.append((parts[0], ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)))
    return routes


_OWNER = re.compile(r'comment "orvad pid=(\d+) start=(\d+)"')


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks after boot, /proc/PID/stat field 22): with the pid, it names
    one process (a reused pid has another start time)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_mark() -> str:
    """What an egress table's comment says of the orvad that made it."""
    return f"orvad pid={os.getpid()} start={_start_time(os.getpid())}"


def _owner_gone(table: str) -> bool:
    """True when a table names its orvad and that process no longer runs (killed with no stop: its
    table would hold a /20 until the host restarts). A table without the mark is kept."""
    match = _OWNER.search(table)
    return match is not None and _start_time(int(match.group(1))) != match.group(2)


def derived_ranges(seed: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The /20s of DEFAULT_RANGE in the order an instance tries them: its own slot (a hash of the
    seed, the data dir) first, then the following ones."""
    slots: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = list(
        ipaddress.ip_network(DEFAULT_RANGE).subnets(new_prefix=SLOT_PREFIX)
    )
    first = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "big") % len(slots)
    return slots[first:] + slots[:first]


def _collapsed(cidrs: Iterable[str]) -> list[str]:
    """Distinct, non-overlapping networks (nftables refuses overlapping intervals in one set)."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    return [
        str(n) for n in ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv4Network))
    ]


def _resolvers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The host's IPv4 name servers (bound into every jail): egress workers may ask them on port 53."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                addr = ipaddress.ip_address(parts[1])
            except ValueError:
                continue
            if addr.version == 4 and not addr.is_loopback:
                found.append(str(addr))
    return found
