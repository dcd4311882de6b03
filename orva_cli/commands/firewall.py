"""`orva firewall`: egress rules (issue 24, docs/NETWORK.md "Egress rules"): the global deny list, what a
name resolves to and which rules match it, the DNS servers egress sandboxes use. Admin keys only."""

from __future__ import annotations

from typing import Any

import click

from orva_cli.context import App, json_option, pass_app
from orva_cli.output import Col

RULE_COLUMNS = (
    Col("ID", "id", short=True),
    Col("TARGET", "target"),
    Col("KIND", "kind"),
    Col("PORTS", "ports_text"),
    Col("BLOCKS", "addresses_text", flex=True),
    Col("DESCRIPTION", "description", flex=True),
)


@click.group()
def firewall() -> None:
    """Egress rules for network_mode egress functions (admin).

    \b
    A deny rule is a CIDR (IPv4/IPv6), a hostname (resolved by orvad, re-resolved
    when its DNS TTL ends) or a *.wildcard (the names under it that orvad resolves).
    A function's own allow list is its egress_allow setting
    (orva functions update NAME --egress-allow ...).

    \b
    Examples:
      orva firewall rules add 203.0.113.0/24 --description "partner range"
      orva firewall rules add smtp.example.com --port 25
      orva firewall resolve api.example.com
      orva firewall dns set 198.51.100.53
    """


def _rows(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        r
        | {
            "ports_text": ",".join(str(p) for p in r["ports"]) or "all",
            "addresses_text": ", ".join(r.get("addresses") or []) or (r.get("error") or "-"),
        }
        for r in rules
    ]


def _show_rule(app: App, rule: dict[str, Any]) -> None:
    app.out.show(rule, lambda r: app.out.table(_rows([r]), RULE_COLUMNS))


@firewall.group()
def rules() -> None:
    """The global deny list (every egress function).

    \b
    Example:
      orva firewall rules add 203.0.113.0/24 --description "a partner's old range"
      orva firewall rules list
    """


@rules.command("list")
@json_option
@pass_app
def list_rules(app: App) -> None:
    """List the deny rules and what each blocks now.

    \b
    Example:
      orva firewall rules list
    """
    data = app.get("/api/v1/firewall/rules")

    def render(d: dict[str, Any]) -> None:
        app.out.table(_rows(d["rules"]), RULE_COLUMNS)
        if not d["egress"]["ok"]:
            app.out.text(f"egress is not available here, rules apply once it is: {d['egress']['detail']}")

    app.out.show(data, render)


def _body(
    target: str | None, ports: tuple[int, ...], all_ports: bool, description: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if target is not None:
        body["target"] = target
    if ports:
        body["ports"] = list(ports)
    elif all_ports:
        body["ports"] = []
    if description is not None:
        body["description"] = description
    return body


@rules.command("add")
@click.argument("target")
@click.option(
    "--port",
    "ports",
    type=click.IntRange(1, 65535),
    multiple=True,
    help="Only this port (TCP and UDP); repeat.",
)
@click.option("--description", help="Why the rule exists.")
@json_option
@pass_app
def add(app: App, target: str, ports: tuple[int, ...], description: str | None) -> None:
    """Deny TARGET (a CIDR, hostname or *.wildcard) to every egress function.

    \b
    Examples:
      orva firewall rules add 203.0.113.0/24
      orva firewall rules add 2001:db8::/32
      orva firewall rules add tracker.example.com --description "no telemetry"
      orva firewall rules add mail.example.com --port 25 --port 587
    """
    _show_rule(app, app.post("/api/v1/firewall/rules", _body(target, ports, False, description)))


@rules.command("update")
@click.argument("rule_id")
@click.option("--target", help="A new CIDR, hostname or *.wildcard.")
@click.option(
    "--port", "ports", type=click.IntRange(1, 65535), multiple=True, help="Only these ports; repeat."
)
@click.option("--all-ports", is_flag=True, help="Every port again.")
@click.option("--description", help="A new description.")
@json_option
@pass_app
def update(
    app: App,
    rule_id: str,
    target: str | None,
    ports: tuple[int, ...],
    all_ports: bool,
    description: str | None,
) -> None:
    """Change a rule (the options given).

    \b
    Example:
      orva firewall rules update 01a2... --port 443
    """
    body = _body(target, ports, all_ports, description)
    if not body:
        raise click.UsageError("give at least one of --target, --port, --all-ports, --description")
    _show_rule(app, app.put(f"/api/v1/firewall/rules/{rule_id}", body))


@rules.command("delete")
@click.argument("rule_id")
@json_option
@pass_app
def delete(app: App, rule_id: str) -> None:
    """Delete a rule: what it blocked is reachable again at once.

    \b
    Example:
      orva firewall rules delete 01a2...
    """
    gone = app.delete(f"/api/v1/firewall/rules/{rule_id}")
    app.out.show(gone, lambda g: app.out.text(f"deleted {g['id']} ({g['target']})"))


@firewall.command("resolve")
@click.argument("host")
@json_option
@pass_app
def resolve(app: App, host: str) -> None:
    """Show what HOST resolves to (asked of the egress DNS servers now) and which rules match it.

    \b
    Example:
      orva firewall resolve api.example.com
    """
    data = app.post("/api/v1/firewall/resolve", {"host": host})

    def render(d: dict[str, Any]) -> None:
        app.out.record(
            d | {"addresses": ", ".join(d["addresses"]) or "-", "servers": ", ".join(d["servers"])},
            ["host", "kind", "addresses", "ttl", "servers", "error", "blocked"],
        )
        if d["rules"]:
            app.out.table(_rows(d["rules"]), RULE_COLUMNS, title="matching rules")
        else:
            app.out.text("no rule matches")

    app.out.show(data, render)


@firewall.group()
def dns() -> None:
    """The DNS servers egress sandboxes (and orvad's rule lookups) use.

    \b
    Example:
      orva firewall dns set 192.0.2.53 192.0.2.54
      orva firewall dns get
    """


def _show_dns(app: App, data: dict[str, Any]) -> None:
    app.out.show(
        data,
        lambda d: app.out.record(
            d | {"servers": ", ".join(d["servers"]) or "-", "effective": ", ".join(d["effective"]) or "-"},
            ["servers", "source", "effective", "sandbox_resolv_conf"],
        ),
    )


@dns.command("get")
@json_option
@pass_app
def dns_get(app: App) -> None:
    """Show the DNS servers (none set: the host's /etc/resolv.conf).

    \b
    Example:
      orva firewall dns get
    """
    _show_dns(app, app.get("/api/v1/firewall/dns"))


@dns.command("set")
@click.argument("servers", nargs=-1)
@json_option
@pass_app
def dns_set(app: App, servers: tuple[str, ...]) -> None:
    """Set the DNS servers (at most 4 IP addresses; none: back to the host's resolv.conf).

    \b
    Examples:
      orva firewall dns set 198.51.100.53 198.51.100.54
      orva firewall dns set
    """
    _show_dns(app, app.put("/api/v1/firewall/dns", {"servers": list(servers)}))


commands = [firewall]
