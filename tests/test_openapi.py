"""The OpenAPI document is generated from the route table and states each route's auth rule."""

from __future__ import annotations

from starlette.routing import Route

from orvad.app import create_app
from orvad.auth.guard import requirement
from orvad.config import load_settings
from orvad.daemon import Daemon
from tests.conftest import Orvad


def test_openapi_covers_every_route_with_its_auth(orvad: Orvad, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with orvad.client() as c:
        r = c.get("/api/v1/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.")
    app = create_app(Daemon(load_settings({"data_dir": str(tmp_path)}, environ={})))
    expected = {(m.lower(), route.path) for route in app.routes if isinstance(route, Route)
                for m in (route.methods or set()) - {"HEAD"}}
    published = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert published == expected
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert op["x-orva-auth"] == requirement(method.upper(), path)
            assert op["summary"]
            assert (op["security"] == []) == (op["x-orva-auth"] == "public")
    assert spec["paths"]["/api/v1/keys"]["post"]["x-orva-auth"] == "admin"
    assert spec["paths"]["/api/v1/keys/{id}"]["delete"]["parameters"][0]["name"] == "id"


def test_permission_map() -> None:
    assert requirement("GET", "/api/v1/system/health") == "public"
    assert requirement("POST", "/api/v1/auth/login") == "public"
    assert requirement("GET", "/health/ready") == "public"
    assert requirement("GET", "/api/v1/auth/me") == "session"
    assert requirement("GET", "/api/v1/keys") == "admin"
    assert requirement("PUT", "/api/v1/pool/config") == "admin"
    assert requirement("GET", "/api/v1/pool/config") == "read"
    assert requirement("GET", "/api/v1/functions") == "read"
    assert requirement("HEAD", "/api/v1/functions") == "read"
    assert requirement("DELETE", "/api/v1/functions/x") == "write"
    assert requirement("GET", "/api/v1/audit-log") == "admin"


def test_the_session_scheme_names_the_cookie_in_use(make_orvad) -> None:  # type: ignore[no-untyped-def]
    server = make_orvad(env={"ORVA_SECURE_COOKIES": "true"})
    with server.client() as c:
        scheme = c.get("/api/v1/openapi.json").json()["components"]["securitySchemes"]["session"]
    assert scheme == {"type": "apiKey", "in": "cookie", "name": "__Host-orva_session"}
