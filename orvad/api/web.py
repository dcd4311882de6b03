"""The dashboard: its built page at /web/, hashed assets cached for good, `/` sent to /web/.

The page holds no data and no secrets: it calls the public /api/v1 with the session cookie.
Headers forbid inline script (CSP), framing and MIME sniffing.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from orvad.errors import DashboardNotBuilt, NotFound
from orvad.resources import data_dir

# Inline styles are allowed (the editor and the chart set style attributes); scripts never.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_.-]+-[A-Za-z0-9]{6,}\.(js|css|woff2|svg|png)$")
_MEDIA_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "woff2": "font/woff2",
    "svg": "image/svg+xml",
    "png": "image/png",
}


def _root() -> Path:
    try:
        root = data_dir("web")
    except FileNotFoundError:
        root = None
    if root is None or not (root / "index.html").is_file():
        raise DashboardNotBuilt(
            "the dashboard is not built",
            retry_after_s=60,
            hint="run `make web` (npm ci and the esbuild bundle) or install orva from a wheel; "
            "the API at /api/v1 works without it",
        )
    return root


async def index(request: Request) -> Response:
    return FileResponse(
        _root() / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**_PAGE_HEADERS, "Cache-Control": "no-cache"},
    )


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    match = _ASSET_NAME.match(name)
    path = _root() / "assets" / name
    if match is None or not path.is_file():
        raise NotFound(f"no dashboard asset {name}", hint="reload /web/: the dashboard was rebuilt")
    # the content hash is in the name, so a name never changes meaning
    headers = {
        **_PAGE_HEADERS,
        "Cache-Control": "public, max-age=31536000, immutable",
        "Vary": "Accept-Encoding",
    }
    gzipped = path.with_name(name + ".gz")
    if "gzip" in request.headers.get("accept-encoding", "") and gzipped.is_file():
        path, headers["Content-Encoding"] = gzipped, "gzip"
    return FileResponse(path, media_type=_MEDIA_TYPES[match.group(1)], headers=headers)


async def to_dashboard(request: Request) -> Response:
    return RedirectResponse("/web/", status_code=302)


routes = [
    Route("/", to_dashboard, methods=["GET", "HEAD"]),
    Route("/web", to_dashboard, methods=["GET", "HEAD"]),
    Route("/web/", index, methods=["GET", "HEAD"]),
    Route("/web/assets/{name}", asset, methods=["GET", "HEAD"]),
]
