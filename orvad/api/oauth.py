"""/api/v1/oauth/connected-apps: the OAuth clients holding a grant to /mcp, and cutting one off (issue 21).

Admin key or session. The authorization server itself (metadata, /oauth/*, the consent page) is
orvad/api/oauth_server.py.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from orvad.api.common import daemon_of
from orvad.services.oauth import ConnectedApp


def app_json(app: ConnectedApp) -> dict[str, Any]:
    return {
        "client_id": app.client_id,
        "client_name": app.client_name,
        "redirect_uris": app.redirect_uris,
        "scopes": app.scopes,
        "created_at": app.created_at,
        "last_used_at": app.last_used_at,
    }


async def list_apps(request: Request) -> Response:
    """The OAuth clients holding a live grant to /mcp, newest first."""
    return JSONResponse({"apps": [app_json(a) for a in daemon_of(request).oauth.connected_apps()]})


async def delete_app(request: Request) -> Response:
    """Cut a client off: its access and refresh tokens stop at once and its registration is removed."""
    await daemon_of(request).oauth.disconnect(request.path_params["client_id"])
    return Response(status_code=204)


routes = [
    Route("/api/v1/oauth/connected-apps", list_apps, methods=["GET"]),
    Route("/api/v1/oauth/connected-apps/{client_id}", delete_app, methods=["DELETE"]),
]
