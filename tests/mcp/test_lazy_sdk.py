"""The MCP SDK (pydantic and its models, about 37 MB of orvad's resident memory) is loaded at the first
request that needs it, not at orvad's start: /mcp past its checks, or an OAuth endpoint (issue 26: orvad
idle <= 60 MB). Seen from outside, in the process's memory map: pydantic-core's shared library. Nor is
cryptography's (orvad/sealing.py) loaded before a value is sealed or opened."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.helpers import Orvad
from tests.mcp.test_attacks import ACCEPT, INIT

LIBRARY = "pydantic_core"
SEALING = "cryptography/hazmat/bindings"  # orvad/sealing.py: at the first value sealed or opened


def _loaded(server: Orvad, library: str = LIBRARY) -> bool:
    assert server.proc is not None
    return library in Path(f"/proc/{server.proc.pid}/maps").read_text()


def test_mcp_loads_the_sdk_at_its_first_authenticated_request(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    assert not _loaded(server) and not _loaded(server, SEALING)
    with server.client() as c:
        r = c.post("/mcp", json=INIT, headers=ACCEPT)  # refused before the SDK: no credential
        assert r.status_code == 401, r.text
        assert not _loaded(server)
        r = c.post("/mcp", json=INIT, headers={**ACCEPT, "Authorization": f"Bearer {server.admin_key}"})
        assert r.status_code == 200, r.text
        assert r.headers["mcp-session-id"]
        assert _loaded(server)
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        headers = {
            **ACCEPT,
            "Authorization": f"Bearer {server.admin_key}",
            "Mcp-Session-Id": r.headers["mcp-session-id"],
        }
        assert c.post("/mcp", json=note, headers=headers).status_code == 202


def test_oauth_loads_the_sdk_at_its_first_request(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(start=False)
    server.env["ORVA_PUBLIC_URL"] = server.url
    server.start()
    assert not _loaded(server)
    with server.client() as c:
        r = c.get("/.well-known/oauth-authorization-server")
        assert r.status_code == 200, r.text
        assert r.json()["issuer"] == server.url
        assert _loaded(server)
