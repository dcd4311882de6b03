"""Egress rules (docs/NETWORK.md, "Egress rules"): the global deny list, the DNS servers of egress
sandboxes, and the name resolution behind hostname rules and functions' ``egress_allow`` lists.

Enforcement is the nftables sets of orvad/host/egress.py; this service turns rules into networks and
replaces the sets in one transaction whenever a rule, a DNS answer or a live sandbox changes:
* a CIDR rule is its network;
* a hostname rule is the addresses orvad resolves for it, asking the egress DNS servers (the ones the
  sandboxes are given), re-asked when the answer's TTL ends (at least every MIN_REFRESH_S, at most every
  MAX_REFRESH_S; a failed lookup keeps the last addresses and is retried after FAIL_RETRY_S);
* a wildcard rule (``*.example.com``) is the addresses of the names under it that orvad resolves: names
  of hostname rules and of live functions' egress_allow lists. It cannot block a name orvad never hears
  of (a function that looks up x.example.com itself reaches it, unless other rules cover the address);
* a function's ``egress_allow`` restricts its sandboxes to those networks (plus the DNS servers on port
  53); deny rules win over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orvad.clock import now_iso
from orvad.errors import Conflict, FirewallApplyFailed, NotFound, ValidationError
from orvad.host.dnsquery import Answer, DNSError, resolve
from orvad.host.egress import DenySets, EgressError, EgressNetwork
from orvad.ids import uuid7
from orvad.netrules import (
    MAX_DESCRIPTION,
    MAX_RULES,
    Target,
    is_hostname,
    parse_ports,
    parse_target,
    target_matches,
    wildcard_matches,
)
from orvad.store.firewall import FirewallStore

log = logging.getLogger(__name__)
MIN_REFRESH_S = 5.0
MAX_REFRESH_S = 300.0
FAIL_RETRY_S = 30.0
MAX_DNS_SERVERS = 4
WATCH_S = 5.0  # how often the egress table is checked (EgressNetwork.guard)
MAX_NAMES = 2048  # names kept resolved; a hostname rule's name is never the one left out (_todo)
PARALLEL_LOOKUPS = 64  # names looked up at once (two UDP sockets each)
UNUSED_GRACE_S = 60.0  # a name no rule or live sandbox uses is forgotten after this
RULE_FIELDS = ("target", "ports", "description")
Resolver = Callable[[str, list[str]], Awaitable[Answer]]


@dataclass
class Resolved:
    addresses: tuple[str, ...]
    ttl: int
    resolved_at: str | None
    due: float  # time.monotonic() of the next lookup
    error: str | None = None
    looked_up: float = field(default_factory=time.monotonic)


def host_nameservers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    """Every name server of the host's resolv.conf (loopback ones too: orvad asks from the host)."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                with contextlib.suppress(ValueError):
                    found.append(str(ipaddress.ip_address(parts[1])))
    return found


class FirewallService:
    def __init__(
        self, store: FirewallStore, egress: EgressNetwork, data_dir: Path, resolver: Resolver | None = None
    ) -> None:
        self._store = store
        self._egress = egress
        self._resolve: Resolver = resolver or resolve
        self.resolv_path = data_dir / "egress-resolv.conf"
        self.rules: dict[str, dict[str, Any]] = {}
        self.dns_servers: list[str] = []  # configured; [] = the host's resolv.conf
        self._names: dict[str, Resolved] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._unapplied = False  # load() could not put the rules in place (run() retries)

    # --- loading and applying
    async def load(self) -> None:
        """At start: the rules and DNS servers from the database, every name resolved, put in nftables."""
        await self._load({})

    async def reload(self) -> None:
        """Another node changed the rules or the DNS servers (orvad/cluster/propagation.py): read them again
        and apply them, under the lock every local change holds across its nftables and database writes, so
        a reload never puts an older copy over this node's own change (its nftables above all). Names
        already resolved are kept; new DNS servers make every name due again, as set_dns does."""
        async with self._lock:
            servers = self.dns_servers
            await self._load(self._names)
            if self.dns_servers != servers:
                for found in self._names.values():
                    found.due = 0.0
                self._wake.set()

    async def _load(self, known: dict[str, Resolved]) -> None:
        self.rules = {r["id"]: r for r in await self._store.all_rules()}
        self.dns_servers = list(await self._store.setting("dns_servers") or [])
        await asyncio.to_thread(self._write_resolv_conf)
        names = await self._resolve_missing(self._wanted(), known)
        try:
            await self._apply(names=names)
        except FirewallApplyFailed as exc:
            self._names = names
            self._unapplied = True  # run() tries again: rules listed must not stay out of nftables
            log.error("egress rules could not be applied", extra={"error": exc.message})

    @property
    def resolv_conf(self) -> str | None:
        """The resolv.conf egress sandboxes get instead of the host's (None: the host's)."""
        return str(self.resolv_path) if self.dns_servers else None

    def _write_resolv_conf(self) -> None:
        if not self.dns_servers:
            return
        text = "".join(f"nameserver {s}\n" for s in self.dns_servers) + "options timeout:2 attempts:2\n"
        # written in place: running sandboxes bind this file's inode, so they see the change too
        fd = os.open(self.resolv_path, os.O_WRONLY | os.O_CREAT, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.truncate(0)
            fh.write(text)
        os.chmod(self.resolv_path, 0o644)

    def lookup_servers(self) -> list[str]:
        """Whom orvad asks: the configured egress DNS servers, else the host's."""
        return list(self.dns_servers) or host_nameservers()

    def _sandbox_dns(self) -> tuple[str, ...]:
        return (
            tuple(s for s in self.dns_servers if ":" not in s) if self.dns_servers else self._egress.host_dns
        )

    def _wanted(self) -> set[str]:
        names = {r["target"] for r in self.rules.values() if r["kind"] == "host"}
        for entries in self._egress.live_allow():
            names |= {e for e in entries if is_hostname(e)}
        return names

    def _networks(self, rule: dict[str, Any], names: dict[str, Resolved] | None = None) -> list[str]:
        names = self._names if names is None else names
        kind, target = rule["kind"], rule["target"]
        if kind == "cidr":
            return [target]
        if kind == "host":
            found = names.get(target)
            return list(found.addresses) if found else []
        return [a for name, r in names.items() if wildcard_matches(target, name) for a in r.addresses]

    def _deny_sets(self, rules: dict[str, dict[str, Any]], names: dict[str, Resolved]) -> DenySets:
        nets4: list[str] = []
        nets6: list[str] = []
        ports4: list[tuple[str, int]] = []
        ports6: list[tuple[str, int]] = []
        for rule in rules.values():
            for net in self._networks(rule, names):
                v6 = ipaddress.ip_network(net).version == 6
                if rule["ports"]:
                    (ports6 if v6 else ports4).extend((net, int(p)) for p in rule["ports"])
                else:
                    (nets6 if v6 else nets4).append(net)
        return DenySets(tuple(nets4), tuple(nets6), tuple(ports4), tuple(ports6))

    async def _apply(
        self, rules: dict[str, dict[str, Any]] | None = None, names: dict[str, Resolved] | None = None
    ) -> None:
        """Put ``rules`` and ``names`` (default: the current ones) into nftables at once; the names become
        the current ones only once nftables holds them (what the API shows is what is enforced)."""
        names = self._names if names is None else names
        before = self._egress.deny, self._egress.names, self._egress.dns
        self._egress.deny = self._deny_sets(self.rules if rules is None else rules, names)
        self._egress.names = {n: r.addresses for n, r in names.items()}
        self._egress.dns = self._sandbox_dns()
        try:
            await self._egress.sync()
        except (EgressError, TimeoutError) as exc:
            # what nftables refused is not what the next lease or release syncs either
            self._egress.deny, self._egress.names, self._egress.dns = before
            raise FirewallApplyFailed(
                f"nftables refused the egress rules: {exc}",
                hint="GET /api/v1/system/health shows the egress check; the rules were not changed",
            ) from None
        self._names = names
        self._unapplied = False

    async def _lookup(self, name: str) -> Resolved:
        try:
            answer = await asyncio.wait_for(self._resolve(name, self.lookup_servers()), 10)
        except (DNSError, OSError, TimeoutError) as exc:
            old = self._names.get(name)
            return Resolved(
                old.addresses if old else (),
                old.ttl if old else 0,
                old.resolved_at if old else None,
                time.monotonic() + FAIL_RETRY_S,
                str(exc) or "DNS lookup timed out",
            )
        due = time.monotonic() + min(max(float(answer.ttl), MIN_REFRESH_S), MAX_REFRESH_S)
        return Resolved(answer.addresses, answer.ttl, now_iso(), due)

    def _rule_names(self) -> set[str]:
        return {r["target"] for r in self.rules.values() if r["kind"] == "host"}

    async def _lookup_all(self, todo: list[str]) -> dict[str, Resolved]:
        """Every name looked up, PARALLEL_LOOKUPS at a time (each lookup is bounded: _lookup)."""
        slots = asyncio.Semaphore(PARALLEL_LOOKUPS)

        async def one(name: str) -> Resolved:
            async with slots:
                return await self._lookup(name)

        return dict(zip(todo, await asyncio.gather(*(one(n) for n in todo)), strict=True))

    def _todo(
        self,
        names: set[str],
        base: dict[str, Resolved],
        *,
        due_only: bool = False,
        rules: Collection[str] = (),
    ) -> list[str]:
        """The names of ``names`` to look up: new ones, and with ``due_only`` those due. New names beyond
        MAX_NAMES are left out, never a hostname rule's (``rules`` and the stored rules): allow lists (a
        tenant's to write) cannot crowd a deny rule out of the sets."""
        now = time.monotonic()
        first = self._rule_names() | set(rules)
        due = [n for n in names if n in base and due_only and base[n].due <= now]
        fresh = sorted(n for n in names if n not in base)
        room = max(0, MAX_NAMES - len(base) - sum(n in first for n in fresh))
        return due + [n for n in fresh if n in first] + [n for n in fresh if n not in first][:room]

    async def _resolve_missing(
        self, names: set[str], base: dict[str, Resolved], *, rules: Collection[str] = ()
    ) -> dict[str, Resolved]:
        """``base`` with the names of ``names`` not in it looked up."""
        return {**base, **await self._lookup_all(self._todo(names, base, rules=rules))}

    async def _merge(self, found: dict[str, Resolved], before: dict[str, Resolved | None]) -> None:
        """Under the lock: lookups made without it become current (a name looked up again meanwhile
        keeps the newer answer), names unused for UNUSED_GRACE_S are forgotten; applied if that changes
        an address."""
        wanted = self._wanted()
        now = time.monotonic()
        names = {n: r for n, r in self._names.items() if n in wanted or now - r.looked_up <= UNUSED_GRACE_S}
        changed = len(names) != len(self._names)
        for name, result in found.items():
            if self._names.get(name) is before.get(name):
                old = names.get(name)
                changed |= old is None or old.addresses != result.addresses
                names[name] = result
        if changed:
            try:
                await self._apply(names=names)
            except FirewallApplyFailed as exc:
                log.error("egress rules could not be refreshed", extra={"error": exc.message})
        else:
            self._names = names  # new due times

    async def refresh(self) -> None:
        """Re-resolve the names whose TTL ended, forget unused ones, apply when an address changed.
        The lookups run without the lock: a slow DNS answer (a tenant's own name server) holds up no
        rule change and no sandbox start."""
        todo = self._todo(self._wanted(), self._names, due_only=True)
        before = {n: self._names.get(n) for n in todo}
        found = await self._lookup_all(todo)
        async with self._lock:
            await self._merge(found, before)

    async def run(self) -> None:
        while True:
            dues = [r.due for r in self._names.values()]
            wait = min([d - time.monotonic() for d in dues] + [MAX_REFRESH_S, WATCH_S])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(1.0, wait))
            self._wake.clear()
            try:
                await self._egress.guard()  # a table removed or emptied outside orvad is put back
            except (EgressError, TimeoutError) as exc:
                log.error("the egress table could not be put back", extra={"error": str(exc)})
            if self._unapplied:
                async with self._lock:
                    try:
                        await self._apply()
                    except FirewallApplyFailed as exc:
                        log.error("egress rules could not be applied", extra={"error": exc.message})
            await self.refresh()

    async def prepare_allow(self, entries: tuple[str, ...]) -> tuple[str, ...]:
        """Before an egress sandbox with an allow list starts: its hostnames resolved (and kept)."""
        hosts = {e for e in entries if is_hostname(e)}
        if hosts - set(self._names):
            todo = self._todo(hosts, self._names)
            before = {n: self._names.get(n) for n in todo}
            found = await self._lookup_all(todo)  # without the lock (refresh)
            async with self._lock:
                await self._merge(found, before)  # a wildcard rule may cover a new name
        return entries

    # --- the API's operations
    def rule_json(self, rule: dict[str, Any]) -> dict[str, Any]:
        out = {
            k: rule[k] for k in ("id", "target", "kind", "ports", "description", "created_at", "updated_at")
        }
        out["ports"] = list(rule["ports"])
        if rule["kind"] == "cidr":
            out["addresses"] = [rule["target"]]
        else:
            out["addresses"] = sorted(set(self._networks(rule)))
            if rule["kind"] == "host":
                found = self._names.get(rule["target"])
                out["resolved_at"] = found.resolved_at if found else None
                out["error"] = found.error if found else None
            else:
                out["names"] = sorted(n for n in self._names if wildcard_matches(rule["target"], n))
        return out

    def list_rules(self) -> list[dict[str, Any]]:
        return [self.rule_json(r) for r in self.rules.values()]

    def _checked(self, body: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        target: Target | None = None
        if "target" in body or old is None:
            target = parse_target(body.get("target"))
        ports = parse_ports(body.get("ports")) if "ports" in body else tuple(old["ports"] if old else ())
        description = body.get("description", old["description"] if old else "")
        if description is None:
            description = ""
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION or "\x00" in description:
            raise ValidationError(
                f"description must be a string of at most {MAX_DESCRIPTION} characters",
                details={"field": "description"},
            )
        now = now_iso()
        rule = {
            "id": old["id"] if old else uuid7(),
            "target": target.value if target else old["target"],  # type: ignore[index]
            "kind": target.kind if target else old["kind"],  # type: ignore[index]
            "ports": list(ports),
            "description": description,
            "created_at": old["created_at"] if old else now,
            "updated_at": now,
        }
        for other in self.rules.values():
            if other["id"] != rule["id"] and (other["target"], other["ports"]) == (
                rule["target"],
                rule["ports"],
            ):
                raise Conflict(
                    f"a rule for {rule['target']} with these ports exists already",
                    details={"id": other["id"]},
                    hint=f"update it: PUT /api/v1/firewall/rules/{other['id']}",
                )
        return rule

    async def _save(self, rule: dict[str, Any]) -> dict[str, Any]:
        rules = {**self.rules, rule["id"]: rule}
        names = self._names
        if rule["kind"] == "host":
            names = await self._resolve_missing({rule["target"]}, names, rules={rule["target"]})
        await self._apply(rules, names)  # nftables first: a refused change is stored nowhere
        try:
            await self._store.upsert_rule(rule)
        except BaseException:
            await self._apply()
            raise
        self.rules = rules
        self._wake.set()
        return self.rule_json(rule)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            if len(self.rules) >= MAX_RULES:
                raise ValidationError(
                    f"there are {MAX_RULES} egress rules already (the most orvad keeps)",
                    details={"max": MAX_RULES},
                    hint="merge rules into wider CIDRs, or delete some (list them with GET /api/v1/firewall/rules)",
                )
            return await self._save(self._checked(body, None))

    def _rule(self, rule_id: str) -> dict[str, Any]:
        rule = self.rules.get(rule_id)
        if rule is None:
            raise NotFound(
                f"no egress rule {rule_id[:80]}",
                details={"id": rule_id[:80]},
                hint="GET /api/v1/firewall/rules lists the rules",
            )
        return rule

    async def update(self, rule_id: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            return await self._save(self._checked(body, self._rule(rule_id)))

    async def delete(self, rule_id: str) -> dict[str, Any]:
        async with self._lock:
            rule = self._rule(rule_id)
            rules = {k: v for k, v in self.rules.items() if k != rule_id}
            await self._apply(rules)
            await self._store.delete_rule(rule_id)
            self.rules = rules
            return {"id": rule_id, "target": rule["target"], "deleted": True}

    def dns_json(self) -> dict[str, Any]:
        return {
            "servers": list(self.dns_servers),
            "source": "configured" if self.dns_servers else "host",
            "effective": self.lookup_servers(),
            "sandbox_resolv_conf": "orvad's" if self.dns_servers else "/etc/resolv.conf of the host",
        }

    async def set_dns(self, servers: Any) -> dict[str, Any]:
        if not isinstance(servers, list) or len(servers) > MAX_DNS_SERVERS:
            raise ValidationError(
                f"servers must be a list of at most {MAX_DNS_SERVERS} IP addresses ([] = the host's)",
                details={"field": "servers", "max": MAX_DNS_SERVERS},
            )
        clean: list[str] = []
        for server in servers:
            try:
                if not isinstance(server, str) or len(server) > 64:
                    raise ValueError
                addr = ipaddress.ip_address(server)
            except ValueError:
                raise ValidationError(
                    f"servers has {str(server)[:70]!r}, which is not an IP address",
                    details={"field": "servers"},
                    hint='for example {"servers": ["198.51.100.53"]}',
                ) from None
            if addr.is_loopback or addr.is_unspecified or addr.is_multicast:
                raise ValidationError(
                    f"{addr} cannot serve sandboxes: inside a sandbox it is the sandbox's own loopback "
                    "(or no address at all)",
                    details={"field": "servers"},
                    hint="name a resolver reachable by routing; [] keeps the host's resolv.conf",
                )
            if str(addr) not in clean:
                clean.append(str(addr))
        async with self._lock:
            before = self.dns_servers
            self.dns_servers = clean
            try:
                await self._apply()
            except FirewallApplyFailed:
                self.dns_servers = before
                raise
            await self._store.put_setting("dns_servers", clean)
            await asyncio.to_thread(self._write_resolv_conf)
            for found in self._names.values():
                found.due = 0.0  # the new servers answer from now on
            self._wake.set()
        return self.dns_json()

    async def resolve_now(self, host: Any) -> dict[str, Any]:
        """What ``host`` resolves to now (asked afresh) and which rules match it or its addresses."""
        target = parse_target(host, "host")
        servers = self.lookup_servers()
        addresses: list[str] = []
        ttl, error = None, None
        if target.kind == "cidr":
            addresses = [target.value.split("/")[0]] if target.network.num_addresses == 1 else [target.value]
        elif target.kind == "host":
            try:
                answer = await asyncio.wait_for(self._resolve(target.value, servers), 10)
                addresses, ttl = list(answer.addresses), answer.ttl
            except (DNSError, OSError, TimeoutError) as exc:
                error = str(exc) or "DNS lookup timed out"
        name = None if target.kind == "cidr" else target.value
        matching = []
        for rule in self.rules.values():
            rule_target = Target(rule["kind"], rule["target"])
            if target.kind == "wildcard":
                hit = rule["target"] == target.value
            elif target.kind == "cidr":  # a CIDR rule, or a name rule whose addresses fall in it
                asked = target.network
                nets = [ipaddress.ip_network(n) for n in self._networks(rule)]
                hit = any(n.version == asked.version and n.overlaps(asked) for n in nets)
            else:
                hit = target_matches(rule_target, name, addresses)
            if hit:
                matching.append(self.rule_json(rule))
        return {
            "host": target.value,
            "kind": target.kind,
            "addresses": addresses,
            "ttl": ttl,
            "servers": servers,
            "error": error,
            "rules": matching,
            "blocked": any(not r["ports"] for r in matching),
        }
