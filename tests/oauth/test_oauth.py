"""OAuth 2.1 for /mcp (remote connectors) against a real orvad with ORVA_PUBLIC_URL set: the metadata,
dynamic registration, authorization code + PKCE through the consent page with a real dashboard session,
the MCP SDK's own OAuth client end to end, refresh rotation and reuse, revocation, the audience, expiry,
connected apps, and the attacks on each step."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, free_port, wait_for

REDIRECT = "https://client.example/callback"
PASSWORD = "AdminPass123!Secure"
READ_TOOLS = {"list_functions", "get_function", "list_executions", "get_execution_logs", "health"}


@pytest.fixture(scope="module")
def server() -> Iterator[Orvad]:
    base = Path(tempfile.mkdtemp(prefix="orva-oauth-"))
    base.chmod(0o711)
    port = free_port()
    srv = Orvad(base / "data", port, {"ORVA_PUBLIC_URL": f"http://127.0.0.1:{port}"}).start()
    yield srv
    srv.stop()
    shutil.rmtree(base, ignore_errors=True)


def _session_token(srv: Orvad) -> str:
    """A real dashboard session: onboard the first user (once), else log in."""
    with srv.client() as c:
        r = srv.onboard(c)
        if r.status_code == 409:
            r = c.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        assert r.status_code in (200, 201), r.text
        return str(r.cookies["session_token"])


@pytest.fixture(scope="module")
def session(server: Orvad) -> str:
    return _session_token(server)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def _register(srv: Orvad, **extra: Any) -> dict[str, Any]:
    body = {
        "client_name": "Test Connector",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
    }
    with srv.client() as c:
        r = c.post("/oauth/register", json={**body, **extra})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _consent_form(page: str) -> dict[str, str]:
    found = dict(re.findall(r'name="(request|csrf)" value="([^"]+)"', page))
    assert set(found) == {"request", "csrf"}, page
    return found


def _authorize(srv: Orvad, client_id: str, challenge: str, **extra: str) -> httpx.Response:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-1",
        **extra,
    }
    with srv.client() as c:
        return c.get("/oauth/authorize", params=query)


def _consent(
    srv: Orvad, session: str, location: str, scopes: list[str], action: str = "approve"
) -> dict[str, list[str]]:
    """Open the consent page the authorize redirect names with the session, then post the decision;
    the query of the redirect back to the client."""
    with srv.session_client(session) as c:
        page = c.get(location)
        assert page.status_code == 200, page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        form = _consent_form(page.text)
        r = c.post(
            "/oauth/consent",
            data={**form, "action": action, "scope": scopes},
            headers={"Origin": srv.url, "Sec-Fetch-Site": "same-origin"},
        )
    assert r.status_code == 303, r.text
    target = r.headers["location"]
    assert target.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(target).query)


def _grant(
    srv: Orvad, session: str, scopes: list[str], scope: str = "read invoke write admin"
) -> dict[str, Any]:
    """DCR + authorize + consent + token: the client and its tokens."""
    client = _register(srv)
    verifier, challenge = _pkce()
    r = _authorize(srv, client["client_id"], challenge, scope=scope)
    assert r.status_code == 302, r.text
    back = _consent(srv, session, r.headers["location"], scopes)
    assert back["state"] == ["st-1"] and back["iss"] == [srv.url]
    tokens = _token(srv, client["client_id"], code=back["code"][0], code_verifier=verifier)
    assert tokens.status_code == 200, tokens.text
    return {"client": client, "verifier": verifier, "code": back["code"][0], **tokens.json()}


def _refused(r: httpx.Response) -> dict[str, list[str]]:
    """An authorize error for a known client: not redirected automatically (orvad would be an open
    redirector for any registered URI) but a page whose link carries the error back to the client."""
    assert r.status_code == 400 and "location" not in r.headers, r.text
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    link = re.search(r'href="([^"]+)"', r.text)
    assert link is not None, r.text
    target = html.unescape(link.group(1))
    assert target.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(target).query)


def _token(srv: Orvad, client_id: str, grant_type: str = "authorization_code", **form: str) -> httpx.Response:
    data = {"grant_type": grant_type, "client_id": client_id, **form}
    if grant_type == "authorization_code":
        data.setdefault("redirect_uri", REDIRECT)
    with srv.client() as c:
        return c.post("/oauth/token", data=data)


def test_a_dead_access_token_is_told_invalid_token(server: Orvad, session: str) -> None:
    grant = _grant(server, session, ["read"])
    with server.client() as c:
        c.post(
            "/oauth/revoke", data={"token": grant["access_token"], "client_id": grant["client"]["client_id"]}
        )
        headers = {
            "Authorization": f"Bearer {grant['access_token']}",
            "Accept": "application/json, text/event-stream",
        }
        r = c.post("/mcp", json={}, headers=headers)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert (
        "resource_metadata=" in r.headers["www-authenticate"] and "/oauth/token" in r.json()["error"]["hint"]
    )


def _mcp_status(srv: Orvad, token: str) -> int:
    """An MCP initialize with the token: 200 when /mcp admits it."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        },
    }
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    with srv.client(headers=headers) as c:
        return c.post("/mcp", json=body).status_code


async def _tools(srv: Orvad, token: str) -> set[str]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        streamable_http_client(f"{srv.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as mcp,
    ):
        await mcp.initialize()
        return {t.name for t in (await mcp.list_tools()).tools}


def test_metadata_is_served_and_the_401_points_at_it(server: Orvad) -> None:
    with server.client() as c:
        r = c.post("/mcp", json={})
        assert r.status_code == 401
        assert (
            f'resource_metadata="{server.url}/.well-known/oauth-protected-resource"'
            in r.headers["www-authenticate"]
        )
        for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
            prm = c.get(path)
            assert prm.status_code == 200, prm.text
            assert prm.json()["resource"] == f"{server.url}/mcp"
            assert prm.json()["authorization_servers"] == [server.url]
            assert prm.json()["scopes_supported"] == ["read", "invoke", "write", "admin"]
        meta = c.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == server.url
    assert meta["authorization_endpoint"] == f"{server.url}/oauth/authorize"
    assert meta["token_endpoint"] == f"{server.url}/oauth/token"
    assert meta["registration_endpoint"] == f"{server.url}/oauth/register"
    assert meta["revocation_endpoint"] == f"{server.url}/oauth/revoke"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["grant_types_supported"] == ["authorization_code", "refresh_token"]


class _Memory:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def test_the_sdk_client_connects_through_consent_and_sees_tools_by_scope(
    server: Orvad, session: str
) -> None:
    """The MCP SDK's own OAuth client: 401 -> resource metadata -> AS metadata -> DCR -> PKCE authorize;
    the user approves only `read` on the consent page (a real session); then /mcp with the token."""
    storage = _Memory()
    result: dict[str, AuthorizationCodeResult] = {}

    async def redirect(url: str) -> None:
        assert url.startswith(f"{server.url}/oauth/authorize?")
        assert parse_qs(urlsplit(url).query)["code_challenge_method"] == ["S256"]
        with server.client() as c:
            r = c.get(url)
        assert r.status_code == 302, r.text
        with server.session_client(session) as c:
            page = c.get(r.headers["location"])
            assert "SDK Connector" in page.text and "client.example" in page.text
            for scope in ("read", "invoke", "write", "admin"):
                assert f'value="{scope}"' in page.text
            back = c.post(
                "/oauth/consent",
                data={**_consent_form(page.text), "action": "approve", "scope": ["read"]},
                headers={"Sec-Fetch-Site": "same-origin"},
            )
        query = parse_qs(urlsplit(back.headers["location"]).query)
        result["r"] = AuthorizationCodeResult(
            code=query["code"][0], state=query["state"][0], iss=query["iss"][0]
        )

    async def callback() -> AuthorizationCodeResult:
        return result["r"]

    auth = OAuthClientProvider(
        server_url=f"{server.url}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name="SDK Connector",
            redirect_uris=[REDIRECT],  # type: ignore[list-item]
            scope="read invoke write admin",
        ),
        storage=storage,
        redirect_handler=redirect,
        callback_handler=callback,
    )
    async with (
        httpx2.AsyncClient(auth=auth, timeout=60) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as mcp,
    ):
        await mcp.initialize()
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert READ_TOOLS <= names
        assert "invoke_function" not in names and "delete_function" not in names
        health = await mcp.call_tool("health", {})
        assert not health.is_error
        refused = await mcp.call_tool("invoke_function", {"function": "x"})
        assert refused.is_error and "FORBIDDEN" in refused.content[0].text  # type: ignore[union-attr]
    assert storage.tokens is not None and storage.tokens.access_token.startswith("orva_oat_")
    assert storage.tokens.refresh_token is not None and storage.tokens.refresh_token.startswith("orva_ort_")
    assert storage.tokens.scope == "read" and storage.tokens.expires_in == 3600
    assert storage.client is not None
    client_id = storage.client.client_id

    # connected apps: listed with what was granted; DELETE cuts it off at once
    with server.session_client(session) as api:
        apps = api.get("/api/v1/oauth/connected-apps").json()["apps"]
        app = next(a for a in apps if a["client_id"] == client_id)
        assert app["client_name"] == "SDK Connector" and app["scopes"] == ["read"]
        assert app["redirect_uris"] == [REDIRECT] and app["created_at"] and app["last_used_at"]
        assert _mcp_status(server, storage.tokens.access_token) == 200
        assert api.delete(f"/api/v1/oauth/connected-apps/{client_id}").status_code == 204
        assert _mcp_status(server, storage.tokens.access_token) == 401
        assert client_id not in {
            a["client_id"] for a in api.get("/api/v1/oauth/connected-apps").json()["apps"]
        }
        gone = api.delete(f"/api/v1/oauth/connected-apps/{client_id}")
        assert gone.status_code == 404 and gone.json()["error"]["hint"]
    refreshed = _token(server, client_id, "refresh_token", refresh_token=storage.tokens.refresh_token)
    assert refreshed.status_code == 401  # the registration is gone too: invalid_client


async def test_scopes_filter_tools_and_cannot_exceed_the_request(server: Orvad, session: str) -> None:
    # asked for read+invoke; a forged form adds admin: only what was asked and ticked is granted
    grant = _grant(server, session, ["read", "invoke", "admin"], scope="read invoke")
    assert grant["scope"] == "read invoke"
    names = await _tools(server, grant["access_token"])
    assert "invoke_function" in names and "delete_function" not in names
    full = _grant(server, session, ["read", "invoke", "write", "admin"])
    assert full["scope"] == "read invoke write admin"
    assert "delete_function" in await _tools(server, full["access_token"])


def test_pkce_redirect_uri_and_code_attacks_are_refused(server: Orvad, session: str) -> None:
    client = _register(server)
    cid = client["client_id"]
    verifier, challenge = _pkce()
    # plain PKCE: refused back at the client (a known client and redirect_uri)
    plain = _refused(_authorize(server, cid, verifier, code_challenge_method="plain"))
    assert plain["error"] == ["invalid_request"] and plain["state"] == ["st-1"]
    # no PKCE at all
    with server.client() as c:
        bare = c.get(
            "/oauth/authorize", params={"response_type": "code", "client_id": cid, "redirect_uri": REDIRECT}
        )
    assert "code_challenge" in _refused(bare)["error_description"][0]
    # a scope this server does not have
    assert _refused(_authorize(server, cid, challenge, scope="read root"))["error"] == ["invalid_scope"]
    # an unregistered redirect_uri: never redirected to
    other = _authorize(server, cid, challenge, redirect_uri="https://evil.example/cb")
    assert other.status_code == 400 and "location" not in other.headers
    # an unknown client
    assert _authorize(server, "nobody", challenge).status_code == 400

    r = _authorize(server, cid, challenge, scope="read")
    code = _consent(server, session, r.headers["location"], ["read"])["code"][0]
    wrong = _token(server, cid, code=code, code_verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    moved = _token(
        server, cid, code=code, code_verifier=verifier, redirect_uri="https://client.example/other"
    )
    assert moved.status_code == 400 and moved.json()["error"] == "invalid_request"
    foreign = _register(server)
    stolen = _token(server, foreign["client_id"], code=code, code_verifier=verifier)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    good = _token(server, cid, code=code, code_verifier=verifier)
    assert good.status_code == 200, good.text
    assert _mcp_status(server, good.json()["access_token"]) == 200
    # the code again: refused, and what it was exchanged for is revoked (RFC 6749 4.1.2)
    again = _token(server, cid, code=code, code_verifier=verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert _mcp_status(server, good.json()["access_token"]) == 401
    refresh = _token(server, cid, "refresh_token", refresh_token=good.json()["refresh_token"])
    assert refresh.status_code == 400


def test_refresh_rotates_and_reuse_revokes_the_family(server: Orvad, session: str) -> None:
    grant = _grant(server, session, ["read", "invoke"])
    cid = grant["client"]["client_id"]
    first = _token(server, cid, "refresh_token", refresh_token=grant["refresh_token"])
    assert first.status_code == 200, first.text
    new = first.json()
    assert new["refresh_token"] != grant["refresh_token"] and new["access_token"].startswith("orva_oat_")
    assert new["scope"] == "read invoke"
    # narrowing on refresh is allowed; widening is not
    wider = _token(server, cid, "refresh_token", refresh_token=new["refresh_token"], scope="read admin")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    assert _mcp_status(server, new["access_token"]) == 200
    # the rotated refresh token again: refused, and the whole family (the new tokens too) revoked
    reuse = _token(server, cid, "refresh_token", refresh_token=grant["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert _mcp_status(server, new["access_token"]) == 401
    assert _token(server, cid, "refresh_token", refresh_token=new["refresh_token"]).status_code == 400


def test_revocation_stops_the_grant(server: Orvad, session: str) -> None:
    grant = _grant(server, session, ["read"])
    cid = grant["client"]["client_id"]
    with server.client() as c:
        # another client cannot revoke it (RFC 7009: 200 all the same)
        other = _register(server)["client_id"]
        assert (
            c.post("/oauth/revoke", data={"token": grant["access_token"], "client_id": other}).status_code
            == 200
        )
        assert _mcp_status(server, grant["access_token"]) == 200
        r = c.post("/oauth/revoke", data={"token": grant["access_token"], "client_id": cid})
        assert r.status_code == 200
        # an unknown token is fine too
        assert (
            c.post("/oauth/revoke", data={"token": "orva_oat_nothing", "client_id": cid}).status_code == 200
        )
    assert _mcp_status(server, grant["access_token"]) == 401
    assert _token(server, cid, "refresh_token", refresh_token=grant["refresh_token"]).status_code == 400
    # revoking by the refresh token works the same
    second = _grant(server, session, ["read"])
    with server.client() as c:
        r = c.post(
            "/oauth/revoke",
            data={
                "token": second["refresh_token"],
                "token_type_hint": "refresh_token",
                "client_id": second["client"]["client_id"],
            },
        )
    assert r.status_code == 200
    assert _mcp_status(server, second["access_token"]) == 401


def test_another_resource_is_refused(server: Orvad, session: str) -> None:
    client = _register(server)
    verifier, challenge = _pkce()
    r = _authorize(server, client["client_id"], challenge, resource="https://other.example/mcp")
    assert _refused(r)["error"] == ["invalid_target"]
    r = _authorize(server, client["client_id"], challenge, resource=f"{server.url}/mcp")
    code = _consent(server, session, r.headers["location"], ["read"])["code"][0]
    bad = _token(
        server, client["client_id"], code=code, code_verifier=verifier, resource="https://other.example/mcp"
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_target"
    ok = _token(server, client["client_id"], code=code, code_verifier=verifier, resource=f"{server.url}/mcp/")
    assert ok.status_code == 200, ok.text


def test_consent_needs_a_session_and_refuses_cross_site_posts(server: Orvad, session: str) -> None:
    client = _register(server)
    _verifier, challenge = _pkce()
    location = _authorize(server, client["client_id"], challenge).headers["location"]
    assert location.startswith(f"{server.url}/oauth/consent?request=")
    with server.client() as anon:
        r = anon.get(location)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/web/#/login?next=%2Foauth%2Fconsent%3Frequest%3D")
        # a stale or forged cookie is no session either
        anon.cookies.set("session_token", "forged")
        assert anon.get(location).status_code == 303
    with server.session_client(session) as c:
        page = c.get(location)
        form = _consent_form(page.text)
        assert page.headers["x-frame-options"] == "DENY"
        assert "form-action 'self' https://client.example" in page.headers["content-security-policy"]
        cross = c.post(
            "/oauth/consent",
            data={**form, "action": "approve", "scope": ["read"]},
            headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        )
        assert cross.status_code == 403 and cross.json()["error"]["code"] == "FORBIDDEN"
        no_fetch_meta = c.post(
            "/oauth/consent",
            data={**form, "action": "approve", "scope": ["read"]},
            headers={"Origin": "https://evil.example"},
        )
        assert no_fetch_meta.status_code == 403
        forged = c.post(
            "/oauth/consent", data={**form, "csrf": "0" * 64, "action": "approve", "scope": ["read"]}
        )
        assert forged.status_code == 403
    # another session (logged in again) cannot use the token the first session's page carried
    with server.session_client(_session_token(server)) as other:
        assert (
            other.post("/oauth/consent", data={**form, "action": "approve", "scope": ["read"]}).status_code
            == 403
        )
    # deny: back to the client with access_denied and its state; the request is spent
    back = _consent(server, session, location, ["read"], action="deny")
    assert back["error"] == ["access_denied"] and back["state"] == ["st-1"] and "code" not in back
    # decisions are audit-log rows (the user, the client as the target)
    with server.admin() as api:

        def rows() -> list[dict[str, Any]]:
            found = api.get("/api/v1/audit-log", params={"path_prefix": "/oauth/consent"}).json()["entries"]
            return [e for e in found if e["target_id"] == client["client_id"]]

        wait_for(lambda: bool(rows()), 10, "the consent's audit row")
        assert rows()[0]["path"] == "/oauth/consent deny" and rows()[0]["actor_kind"] == "session"
    with server.session_client(session) as c:
        assert c.get(location).status_code == 400


def test_oauth_tokens_are_refused_on_the_api_and_only_admins_see_connected_apps(
    server: Orvad, session: str
) -> None:
    grant = _grant(server, session, ["read", "invoke", "write", "admin"])
    for token in (grant["access_token"], grant["refresh_token"]):
        for headers in ({"Authorization": f"Bearer {token}"}, {"X-Orva-API-Key": token}):
            with server.client(headers=headers) as c:
                r = c.get("/api/v1/functions")
            assert r.status_code == 401, r.text
            assert "only at /mcp" in r.json()["error"]["message"]
    with server.admin() as api:
        key = api.post(
            "/api/v1/keys", json={"name": "oauth-reader", "permissions": ["read", "write"]}
        ).json()["key"]
        assert api.get("/api/v1/oauth/connected-apps").status_code == 200
    with server.client(key) as c:
        r = c.get("/api/v1/oauth/connected-apps")
        assert r.status_code == 403 and r.json()["error"]["details"]["required"] == "admin"
        assert c.delete(f"/api/v1/oauth/connected-apps/{grant['client']['client_id']}").status_code == 403
    # a refresh token is no access token at /mcp
    assert _mcp_status(server, grant["refresh_token"]) == 401


def test_registration_checks_and_confidential_clients(server: Orvad, session: str) -> None:
    with server.client() as c:
        for uri in (
            "javascript:alert(1)",
            "http://evil.example/cb",
            "https://client.example/cb#frag",
            "data:x",
        ):
            r = c.post("/oauth/register", json={"client_name": "x", "redirect_uris": [uri]})
            assert r.status_code == 400, (uri, r.text)
            assert r.json()["error"] in ("invalid_redirect_uri", "invalid_client_metadata")
        assert c.post("/oauth/register", json={"redirect_uris": []}).status_code == 400
        assert c.post("/oauth/register", content=b"{not json").status_code == 400
        too_big = [
            {"redirect_uris": [REDIRECT], "client_name": "n" * 201},
            {"redirect_uris": [REDIRECT], "contacts": ["a" * 100 + "@example.com"] * 200},
            {"redirect_uris": [f"{REDIRECT}{i}" for i in range(11)]},
            {"redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "client_credentials"]},
        ]
        for body in too_big:
            r = c.post("/oauth/register", json=body)
            assert r.status_code == 400 and r.json()["error"].startswith("invalid_"), r.text
        huge = c.post("/oauth/register", content=b'{"redirect_uris": ["' + b"x" * 70_000 + b'"]}')
        assert huge.status_code == 413
        # a Host orvad does not answer for: refused before OAuth (DNS rebinding), metadata included
        for path in ("/.well-known/oauth-authorization-server", "/oauth/consent"):
            assert c.get(path, headers={"Host": "evil.example"}).status_code == 403
        assert c.put("/oauth/token").status_code == 405
        loopback = c.post("/oauth/register", json={"redirect_uris": ["http://127.0.0.1:33418/callback"]})
        assert loopback.status_code == 201
    # a confidential client (client_secret_post): the secret is needed at /token and stored hashed
    client = _register(server, token_endpoint_auth_method="client_secret_post")
    secret = client["client_secret"]
    verifier, challenge = _pkce()
    r = _authorize(server, client["client_id"], challenge)
    code = _consent(server, session, r.headers["location"], ["read"])["code"][0]
    missing = _token(server, client["client_id"], code=code, code_verifier=verifier)
    assert missing.status_code == 401 and missing.json()["error"] == "invalid_client"
    wrong = _token(server, client["client_id"], code=code, code_verifier=verifier, client_secret="0" * 64)
    assert wrong.status_code == 401
    ok = _token(server, client["client_id"], code=code, code_verifier=verifier, client_secret=secret)
    assert ok.status_code == 200, ok.text
    dump = server.database_bytes().decode("latin-1")  # orva.db and its WAL, or pg_dump's text
    for plaintext in (secret, ok.json()["access_token"], ok.json()["refresh_token"], code):
        assert plaintext not in dump
    assert hashlib.sha256(ok.json()["access_token"].encode()).hexdigest() in dump


def test_without_a_public_url_oauth_is_off_with_a_hint(orvad: Orvad) -> None:
    with orvad.client() as c:
        for path in ("/.well-known/oauth-authorization-server", "/oauth/register", "/oauth/consent"):
            r = c.get(path)
            assert r.status_code == 404, path
            assert "ORVA_PUBLIC_URL" in r.json()["error"]["hint"]


def test_the_audience_and_expiry_hold_across_a_restart(make_orvad: Any) -> None:
    """Tokens survive a restart (only their hashes are stored); one issued for another URL (the public
    URL changed) is refused at /mcp, and an expired one too."""
    srv = make_orvad(start=False)
    srv.env["ORVA_PUBLIC_URL"] = srv.url
    srv.start()
    session = _session_token(srv)
    a = _grant(srv, session, ["read"])
    b = _grant(srv, session, ["read"])
    assert _mcp_status(srv, a["access_token"]) == 200
    srv.stop()
    srv.sql(
        "UPDATE oauth_tokens SET expires_at = 1 WHERE token_hash = ?",
        (hashlib.sha256(b["access_token"].encode()).hexdigest(),),
    )
    srv.start()
    assert _mcp_status(srv, a["access_token"]) == 200  # still known after the restart
    assert _mcp_status(srv, b["access_token"]) == 401  # expired
    srv.stop()
    srv.env["ORVA_PUBLIC_URL"] = f"http://localhost:{srv.port}"
    srv.start()
    assert _mcp_status(srv, a["access_token"]) == 401  # its audience is the old URL's /mcp
    with srv.client() as c:
        assert (
            c.get("/.well-known/oauth-protected-resource").json()["resource"]
            == f"http://localhost:{srv.port}/mcp"
        )
    # a fresh grant under the new URL works
    with httpx.Client(base_url=f"http://localhost:{srv.port}") as c:
        assert (
            c.get("/.well-known/oauth-authorization-server").json()["issuer"]
            == f"http://localhost:{srv.port}"
        )


def test_authorize_also_takes_a_form_post(server: Orvad) -> None:
    """The authorize endpoint also takes a form POST (RFC 6749 allows both)."""
    client = _register(server)
    _verifier, challenge = _pkce()
    form = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    with server.client() as c:
        r = c.post(
            "/oauth/authorize",
            content=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 302 and "/oauth/consent?request=" in r.headers["location"]


def test_the_cli_lists_and_revokes_apps(server: Orvad, session: str, tmp_path: Path) -> None:
    from tests.cli.test_cli import error_line, logged_in

    grant = _grant(server, session, ["read", "invoke"])
    cid = grant["client"]["client_id"]
    with logged_in(server, tmp_path) as cli:
        listed = cli.ok("oauth", "apps")
        row = next(line for line in listed.stdout.splitlines() if cid in line)
        assert "read invoke" in row and row.startswith("Test Co")  # NAME is cut to fit 80 columns
        app = next(a for a in cli.json("oauth", "apps")["apps"] if a["client_id"] == cid)
        assert app["client_name"] == "Test Connector" and app["redirect_uris"] == [REDIRECT]
        assert app["scopes"] == ["read", "invoke"]
        assert "revoked app" in cli.ok("oauth", "revoke", cid).stdout
        assert _mcp_status(server, grant["access_token"]) == 401
        line = error_line(cli.fails(1, "oauth", "revoke", cid), "NOT_FOUND")
        assert "`orva oauth apps`" in line and "/api/v1" not in line


def test_a_refresh_token_raced_eight_times_is_spent_once(server: Orvad, session: str) -> None:
    """Eight refreshes with one token at once: at most one gets tokens (the token is marked spent before
    any await), never two live grants from one refresh token."""
    import concurrent.futures

    grant = _grant(server, session, ["read"])
    cid = grant["client"]["client_id"]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: _token(server, cid, "refresh_token", refresh_token=grant["refresh_token"]),
                range(8),
            )
        )
    ok = [a for a in answers if a.status_code == 200]
    assert len(ok) <= 1, [a.text for a in answers]
    assert all(a.status_code in (200, 400) for a in answers)
    assert _mcp_status(server, grant["access_token"]) == 401  # the reuse revoked the family


def test_a_client_secret_basic_client(server: Orvad, session: str) -> None:
    client = _register(server, token_endpoint_auth_method="client_secret_basic")
    cid, secret = client["client_id"], client["client_secret"]
    verifier, challenge = _pkce()
    code = _consent(server, session, _authorize(server, cid, challenge).headers["location"], ["read"])[
        "code"
    ][0]
    form = {"grant_type": "authorization_code", "client_id": cid, "code": code, "code_verifier": verifier}
    form["redirect_uri"] = REDIRECT
    with server.client() as c:
        wrong = base64.b64encode(f"{cid}:{'0' * 64}".encode()).decode()
        assert (
            c.post("/oauth/token", data=form, headers={"Authorization": f"Basic {wrong}"}).status_code == 401
        )
        assert (
            c.post("/oauth/token", data={**form, "client_secret": secret}).status_code == 401
        )  # not in the body
        right = base64.b64encode(f"{cid}:{secret}".encode()).decode()
        ok = c.post("/oauth/token", data=form, headers={"Authorization": f"Basic {right}"})
        assert ok.status_code == 200, ok.text
        revoke = c.post(
            "/oauth/revoke", data={"token": ok.json()["access_token"], "client_id": cid},
            headers={"Authorization": f"Basic {right}"},
        )  # fmt: skip
        assert revoke.status_code == 200
    assert _mcp_status(server, ok.json()["access_token"]) == 401


@pytest.mark.sandbox
async def test_an_oauth_connector_with_invoke_runs_an_api_key_function_but_not_a_signed_one(
    server: Orvad, session: str
) -> None:
    """Operator mode's grant: the connector holds invoke, which satisfies auth_mode api_key (the handler
    sees no credential of it); a signed function still needs its signature."""
    code = "def handler(event, context):\n    return {'auth': event['headers'].get('authorization'), 'ok': True}\n"
    with server.admin() as c:
        for name, mode in (("oat-keyed", "api_key"), ("oat-signed", "signed")):
            create_function(c, name, auth_mode=mode)
            assert wait_deployed(c, deploy_inline(c, name, code)["id"])["status"] == "succeeded"
    grant = _grant(server, session, ["read", "invoke"], scope="read invoke")
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {grant['access_token']}"}, timeout=60) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as mcp,
    ):
        await mcp.initialize()
        keyed = await mcp.call_tool("invoke_function", {"function": "oat-keyed"})
        assert not keyed.is_error, keyed.content
        assert keyed.structured_content == {"auth": None, "ok": True}
        signed = await mcp.call_tool("invoke_function", {"function": "oat-signed"})
        assert signed.is_error
        assert signed.content[0].text.startswith("UNAUTHORIZED"), signed.content[0].text  # type: ignore[union-attr]
