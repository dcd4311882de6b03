"""/mcp's side of OAuth (issue 21, remote connectors): the caller an ``orva_oat_`` access token stands for.

The authorization server itself (metadata, /oauth/*, the consent page) is orvad/api/oauth_server.py; the
grants are orvad/services/oauth.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orvad.auth.guard import ALL_PERMISSIONS
from orvad.mcp.results import Caller
from orvad.services.oauth import issuer_of, resource_url, same_resource, scope_list

if TYPE_CHECKING:
    from orvad.daemon import Daemon


def caller(daemon: Daemon, token: str) -> Caller | None:
    """/mcp's caller for an ``orva_oat_`` access token: live, issued for this orvad's /mcp (the audience,
    from ORVA_PUBLIC_URL now: a token issued under another URL is refused), its scopes as permissions."""
    issuer = issuer_of(daemon.settings.public_url)
    row = daemon.oauth.authenticate(token)
    if issuer is None or row is None or not same_resource(row.resource, resource_url(issuer)):
        return None
    client = daemon.oauth.client(row.client_id)
    name = client.client_name if client is not None else row.client_id
    return Caller(
        key_id=row.client_id,
        key_name=f"OAuth app {name}",
        permissions=frozenset(scope_list(row.scopes)) & ALL_PERMISSIONS,
        token=token,
    )
