"""Attacks on CORS (attack-19): a route's methods, floods of requested headers, and what caches learn (Vary)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox

APP = "https://app.example.com"
ECHO = "def handler(event, context):\n    return {'statusCode': 200, 'body': event['method']}\n"


def _preflight(
    c: httpx.Client, path: str, origin: str, method: str, headers: str | None = None
) -> httpx.Response:
    sent = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        sent["Access-Control-Request-Headers"] = headers
    return c.options(path, headers=sent)


def _varies_on_origin(r: httpx.Response) -> bool:
    return "origin" in [v.strip().lower() for value in r.headers.get_list("vary") for v in value.split(",")]


def test_cors_preflights_and_grants_hold_under_attack(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_CORS_ORIGINS": APP})
    with server.admin() as c:
        for name, fields in (("plain", {}), ("wide", {"cors_origins": ["*"]})):
            fn = create_function(c, name, **fields)
            assert wait_deployed(c, deploy_inline(c, fn["id"], ECHO)["id"])["status"] == "succeeded"
        r = c.post("/api/v1/routes", json={"path": "/only-post", "function_id": "plain", "methods": "POST"})
        assert r.status_code == 201, r.text
        many = [f"https://o{i}.example.com" for i in range(64)]  # at the limit: accepted, and it works
        assert c.put("/api/v1/functions/wide", json={"cors_origins": many}).status_code == 200
        assert c.put("/api/v1/functions/wide", json={"cors_origins": [*many, APP]}).status_code == 400
        assert c.put("/api/v1/functions/wide", json={"cors_origins": ["*"]}).status_code == 200
    with server.client() as c:
        # a method the route does not allow is not granted (the browser stops the request)
        r = _preflight(c, "/only-post", APP, "DELETE")
        assert r.status_code == 204 and "DELETE" not in r.headers["access-control-allow-methods"]
        assert c.request("DELETE", "/only-post", headers={"Origin": APP}).status_code == 405
        # 200 requested headers (and the never-granted ones among them): bounded by the 16 KiB head
        asked = ", ".join([*(f"x-h{i}" for i in range(200)), "X-Orva-CSRF", "Cookie", "bad name", "x" * 200])
        r = _preflight(c, "/fn/plain", APP, "POST", asked)
        granted = [h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")]
        assert r.status_code == 204 and "x-h199" in granted
        assert not {"x-orva-csrf", "cookie", "bad name", "x" * 200} & set(granted)
        r = _preflight(c, "/fn/plain", APP, "POST", "x-a," * 3000)  # repeated: granted once
        assert r.status_code == 204 and r.headers["access-control-allow-headers"].lower().count("x-a") == 1
        # every answer that depends on Origin says so to caches: grants, refusals, no Origin at all
        for path in ("/fn/plain", "/fn/wide", "/api/v1/system/health", "/fn/nothing-here"):
            for headers in ({"Origin": APP}, {"Origin": "https://evil.test"}, {}):
                r = c.get(path, headers=headers)
                assert _varies_on_origin(r), (path, headers, r.status_code, r.headers)
            r = _preflight(c, path, "https://evil.test", "GET")
            assert _varies_on_origin(r), (path, r.status_code, r.headers)
