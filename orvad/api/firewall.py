"""/api/v1/firewall: egress rules (docs/NETWORK.md, "Egress rules"). Admin only (the guard's map).

The global deny list applied to every network_mode egress function, what a name resolves to and which
rules match it, and the DNS servers egress sandboxes use. A change reaches running workers at once (the
nftables sets are replaced in one transaction before the answer); a change nftables refuses is stored
nowhere (500 FIREWALL_APPLY_FAILED).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of, read_object
from orvad.netrules import MAX_RULES
from orvad.services.firewall import RULE_FIELDS


async def list_rules(request: Request) -> Response:
    """Every deny rule with the addresses it blocks now, and whether egress networking is up."""
    daemon = daemon_of(request)
    return JSONResponse(
        {"rules": daemon.firewall.list_rules(), "max_rules": MAX_RULES, "egress": daemon.egress.check()}
    )


async def create_rule(request: Request) -> Response:
    """Add a deny rule: {"target": CIDR|hostname|*.wildcard, "ports": [...], "description": ...}."""
    body = await read_object(request, RULE_FIELDS)
    rule = await daemon_of(request).firewall.create(body)
    return JSONResponse(rule, status_code=201, headers={"Location": f"/api/v1/firewall/rules/{rule['id']}"})


async def update_rule(request: Request) -> Response:
    """Change a rule's target, ports or description (the fields sent)."""
    body = await read_object(request, RULE_FIELDS)
    return JSONResponse(await daemon_of(request).firewall.update(request.path_params["id"], body))


async def delete_rule(request: Request) -> Response:
    """Remove a rule; what it blocked is reachable again at once, running workers included."""
    return JSONResponse(await daemon_of(request).firewall.delete(request.path_params["id"]))


async def resolve(request: Request) -> Response:
    """What a name resolves to now (asked of the egress DNS servers) and which rules match it."""
    body = await read_object(request, ("host",))
    return JSONResponse(await daemon_of(request).firewall.resolve_now(body.get("host")))


async def get_dns(request: Request) -> Response:
    """The DNS servers egress sandboxes (and orvad's rule lookups) use; [] means the host's resolv.conf."""
    return JSONResponse(daemon_of(request).firewall.dns_json())


async def put_dns(request: Request) -> Response:
    """Set the DNS servers: {"servers": ["198.51.100.53"]} (at most 4; [] = the host's resolv.conf)."""
    body = await read_object(request, ("servers",))
    return JSONResponse(await daemon_of(request).firewall.set_dns(body.get("servers")))


routes = [
    Route("/api/v1/firewall/rules", list_rules, methods=["GET"]),
    Route("/api/v1/firewall/rules", create_rule, methods=["POST"]),
    Route("/api/v1/firewall/rules/{id}", update_rule, methods=["PUT"]),
    Route("/api/v1/firewall/rules/{id}", delete_rule, methods=["DELETE"]),
    Route("/api/v1/firewall/resolve", resolve, methods=["POST"]),
    Route("/api/v1/firewall/dns", get_dns, methods=["GET"]),
    Route("/api/v1/firewall/dns", put_dns, methods=["PUT"]),
]
