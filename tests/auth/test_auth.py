"""Users and sessions against a real orvad: onboarding, cookies, refresh, logout, throttling, CSRF."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import httpx
import pytest

from tests.helpers import Orvad

PASSWORD = "AdminPass123!Secure"
CSRF = {"X-Orva-CSRF": "1"}


def _session_cookie(response: httpx.Response, name: str = "session_token") -> str:
    header = response.headers["set-cookie"]
    assert header.startswith(f"{name}=")
    return header.split(";", 1)[0].split("=", 1)[1]


def test_onboarding_flow_end_to_end(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.client(headers=CSRF) as c:
        assert c.get("/api/v1/auth/status").json() == {"has_user": False, "functions_url": None}

        r = server.onboard(c, "admin", PASSWORD)
        assert r.status_code == 201
        assert r.json()["user"]["username"] == "admin"
        attrs = [a.strip().lower() for a in r.headers["set-cookie"].split(";")]
        assert "httponly" in attrs and "path=/" in attrs and "samesite=lax" in attrs
        assert "secure" not in attrs  # ORVA_SECURE_COOKIES is off by default
        max_age = next(int(a.split("=")[1]) for a in attrs if a.startswith("max-age="))
        assert 7 * 86400 - 60 <= max_age <= 7 * 86400
        token = _session_cookie(r)

        assert c.get("/api/v1/auth/status").json()["has_user"] is True
        me = c.get("/api/v1/auth/me")
        assert me.status_code == 200 and me.json()["user"]["username"] == "admin"

        again = server.onboard(c, "other", PASSWORD)
        assert again.status_code == 409 and again.json()["error"]["code"] == "ALREADY_SETUP"

        refreshed = c.post("/api/v1/auth/refresh")
        assert refreshed.status_code == 200
        new_token = _session_cookie(refreshed)
        assert new_token != token

    with server.session_client(token) as old:
        r = old.get("/api/v1/auth/me")
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
    with server.session_client(new_token) as c:
        assert c.get("/api/v1/auth/me").status_code == 200
        assert c.get("/api/v1/keys").status_code == 200  # a session is the operator
        out = c.post("/api/v1/auth/logout")
        assert out.status_code == 200
        assert c.get("/api/v1/auth/me").status_code == 401


def test_onboarding_needs_the_setup_token(make_orvad: Callable[..., Orvad]) -> None:
    """Whoever reaches an unclaimed orvad cannot claim it: only the holder of <data-dir>/admin.key can."""
    server = make_orvad()
    body = {"username": "intruder", "password": PASSWORD}
    with server.client() as c:
        missing = c.post("/api/v1/auth/onboard", json=body)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "UNAUTHORIZED"
        assert "admin.key" in missing.json()["error"]["hint"]
        assert str(server.data_dir) not in missing.text  # where to look, in general terms: no host path
        wrong = "orva_" + secrets.token_hex(32)
        for attempt in (
            {**body, "setup_token": wrong},
            {**body, "setup_token": "guess"},
            {**body, "setup_token": ""},
        ):
            r = c.post("/api/v1/auth/onboard", json=attempt)
            assert r.status_code == 401 and "admin.key" in r.json()["error"]["hint"], r.text
        r = c.post("/api/v1/auth/onboard", json=body, headers={"X-Orva-API-Key": wrong})
        assert r.status_code == 401
        r = c.post("/api/v1/auth/onboard", json={**body, "setup_token": 12345})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "setup_token"
        with server.admin() as admin:
            reader = admin.post("/api/v1/keys", json={"name": "ro", "permissions": ["read", "write"]}).json()[
                "key"
            ]
        r = c.post("/api/v1/auth/onboard", json={**body, "setup_token": reader})
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
        assert c.get("/api/v1/auth/status").json()["has_user"] is False  # nothing was claimed
        assert "set-cookie" not in r.headers

        # the key in the X-Orva-API-Key header proves ownership as well as the setup_token field
        ok = c.post(
            "/api/v1/auth/onboard",
            json={"username": "owner", "password": PASSWORD},
            headers={"X-Orva-API-Key": server.admin_key},
        )
        assert ok.status_code == 201 and ok.json()["user"]["username"] == "owner"


def test_start_up_banner_names_the_key_file_not_the_key(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    key = server.admin_key
    out = server.stdout()
    assert key not in out and key[12:] not in out
    assert key[:12] in out and str(server.data_dir / "admin.key") in out


def test_login_password_change_and_bad_input(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.client(headers=CSRF) as c:
        short = server.onboard(c, "admin", "short")
        assert short.status_code == 400 and short.json()["error"]["code"] == "VALIDATION"
        assert server.onboard(c, "admin", PASSWORD).status_code == 201
    with server.client(headers=CSRF) as c:
        wrong = c.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong-password"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "INVALID_CREDENTIALS"
        ok = c.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        assert ok.status_code == 200 and ok.json()["user"]["username"] == "admin"
        changed = c.post(
            "/api/v1/auth/change-password",
            json={"current_password": PASSWORD, "new_password": "An0ther-Long-Password"},
        )
        assert changed.status_code == 200
        assert c.get("/api/v1/auth/me").status_code == 200  # the session that changed it lives on
    with server.client() as c:
        old = c.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        assert old.status_code == 401
        new = c.post("/api/v1/auth/login", json={"username": "admin", "password": "An0ther-Long-Password"})
        assert new.status_code == 200


def test_failed_logins_are_throttled(orvad: Orvad) -> None:
    with orvad.client() as c:
        body = {"username": "throttle-target", "password": "not-the-password"}
        codes = [c.post("/api/v1/auth/login", json=body).status_code for _ in range(5)]
        assert codes == [401] * 5
        r = c.post("/api/v1/auth/login", json=body)
        assert r.status_code == 429
        assert r.json()["error"]["code"] == "RATE_LIMITED"
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["retry_after_s"] == int(r.headers["retry-after"])
        # another username from the same client is not affected
        other = c.post("/api/v1/auth/login", json={"username": "someone-else", "password": "x" * 12})
        assert other.status_code == 401


async def test_parallel_guesses_get_no_more_checks_than_the_limit(make_orvad: Callable[..., Orvad]) -> None:
    """60 guesses at once: only login_max_failures reach the password check, the rest are 429, and then
    even the right password is refused until the window passes (the count used to come after scrypt)."""
    server = make_orvad(env={"ORVA_LOGIN_MAX_FAILURES": "5"})
    with server.client() as c:
        assert server.onboard(c, "victim", PASSWORD).status_code == 201
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as c:
        guesses = [
            c.post("/api/v1/auth/login", json={"username": "victim", "password": f"guess-{i:04d}-wrong"})
            for i in range(60)
        ]
        codes = [r.status_code for r in await asyncio.gather(*guesses)]
        assert codes.count(401) == 5, codes  # exactly the limit was checked
        assert codes.count(429) == 55, codes
        # the right password in the middle of a burst is refused too: the username is throttled
        late = await asyncio.gather(
            *[
                c.post("/api/v1/auth/login", json={"username": "VICTIM", "password": p})
                for p in ["wrong-one-more", PASSWORD, "wrong-two-more"]
            ]
        )
        assert [r.status_code for r in late] == [429, 429, 429]
        assert all(r.json()["error"]["code"] == "RATE_LIMITED" for r in late)


def test_session_endpoints_refuse_api_keys(orvad: Orvad) -> None:
    with orvad.admin() as c:
        r = c.get("/api/v1/auth/me")
        assert r.status_code == 401 and "session" in r.json()["error"]["message"]


def test_cookie_state_changes_need_the_csrf_header(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.client() as c:
        token = _session_cookie(server.onboard(c, "admin", PASSWORD))
    with server.client(cookies={"session_token": token}) as bare:
        assert bare.get("/api/v1/keys").status_code == 200  # reading needs no header
        for method, path, body in (
            ("POST", "/api/v1/keys", {"name": "stolen"}),
            ("POST", "/api/v1/functions", {"name": "planted", "runtime": "python"}),
            ("PUT", "/api/v1/pool/config", {}),
            ("POST", "/api/v1/auth/logout", None),
        ):
            r = bare.request(method, path, json=body)
            assert r.status_code == 403, (method, path, r.text)
            error = r.json()["error"]
            assert error["code"] == "FORBIDDEN" and "X-Orva-CSRF" in error["hint"]
        r = bare.post("/api/v1/keys", json={"name": "stolen"}, headers={"X-Orva-CSRF": "yes"})
        assert r.status_code == 403  # only the exact value
        assert bare.get("/api/v1/auth/me").status_code == 200  # the refused logout did not log out
    with server.session_client(token) as dashboard:
        assert dashboard.post("/api/v1/keys", json={"name": "mine"}).status_code == 201
    with server.admin() as c:
        names = [k["name"] for k in c.get("/api/v1/keys").json()["keys"]]
        assert "mine" in names and "stolen" not in names
        assert c.post("/api/v1/keys", json={"name": "by-key"}).status_code == 201  # keys need no header
        assert c.get("/api/v1/functions/planted").status_code == 404


def test_secure_cookies_use_the_host_prefix(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_SECURE_COOKIES": "true"})
    with server.client() as c:
        r = server.onboard(c, "admin", PASSWORD)
        assert r.status_code == 201
        token = _session_cookie(r, "__Host-orva_session")
        attrs = [a.strip().lower() for a in r.headers["set-cookie"].split(";")]
        assert "secure" in attrs and "path=/" in attrs and "httponly" in attrs
        assert not any(a.startswith("domain") for a in attrs)  # __Host-: no Domain
    with server.session_client(token, "__Host-orva_session") as s:
        assert s.get("/api/v1/auth/me").status_code == 200
        out = s.post("/api/v1/auth/logout")
        assert out.status_code == 200
        cleared = [a.strip().lower() for a in out.headers["set-cookie"].split(";")]
        assert cleared[0].startswith("__host-orva_session=") and "secure" in cleared
    with server.client() as c:
        login = c.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        fresh = _session_cookie(login, "__Host-orva_session")
    # the plain name is not read behind HTTPS: a cookie any subdomain or http:// page could set
    with server.session_client(fresh, "session_token") as plain:
        assert plain.get("/api/v1/auth/me").status_code == 401


def test_cross_site_cookie_requests_are_refused(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.client(headers=CSRF) as c:
        body = {"username": "admin", "password": PASSWORD, "setup_token": server.admin_key}
        r = c.post("/api/v1/auth/onboard", json=body, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
        assert c.post("/api/v1/auth/onboard", json=body).status_code == 201
        cross = c.post("/api/v1/keys", json={"name": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        same = c.post(
            "/api/v1/keys",
            json={"name": "x"},
            headers={"Sec-Fetch-Site": "same-origin", "Origin": server.url},
        )
        assert same.status_code == 201
    # an API key is not a browser credential: no origin check applies
    with server.admin() as c:
        assert (
            c.post("/api/v1/keys", json={"name": "y"}, headers={"Origin": "https://elsewhere"}).status_code
            == 201
        )


def test_unreadable_cookie_pairs_do_not_break_the_guard(make_orvad: Callable[..., Orvad]) -> None:
    """`Cookie: a=b; $yk=1` made SimpleCookie raise: 500 on every guarded route. Now the pair is skipped."""
    server = make_orvad()
    with server.client() as c:
        token = _session_cookie(server.onboard(c, "admin", PASSWORD))
    for header, status in (
        (f"theme=dark; $yk=1; session_token={token}", 200),
        ("a=b; $yk=1", 401),
        (f'junk; "x"=; session_token="{token}"', 200),
    ):
        r = httpx.get(server.url + "/api/v1/auth/me", headers={"Cookie": header})
        assert r.status_code == status, (header, r.text)
    r = httpx.post(
        server.url + "/api/v1/keys",
        json={"name": "k"},
        headers={"Cookie": f"$yk=1; session_token={token}", "X-Orva-CSRF": "1"},
    )
    assert r.status_code == 201


@pytest.mark.sandbox
def test_api_key_functions_take_the_session_only_with_the_csrf_header(
    make_orvad: Callable[..., Orvad],
) -> None:
    """The session cookie rides along with any same-site request (a page on another port of the host, a
    function page): an `auth_mode: api_key` function accepts it only with X-Orva-CSRF, as the API does."""
    from tests.deploy_helpers import create_function, deploy_inline, wait_deployed

    server = make_orvad()
    with server.client() as c:
        token = _session_cookie(server.onboard(c, "admin", PASSWORD))
    with server.admin() as c:
        create_function(c, "guarded", auth_mode="api_key")
        dep = deploy_inline(c, "guarded", "def handler(event, context):\n    return 'ran'\n")
        assert wait_deployed(c, dep["id"])["status"] == "succeeded"
        assert c.post("/fn/guarded/").text == "ran"  # a key needs no header
    with server.client(cookies={"session_token": token}) as bare:
        for method in ("GET", "POST"):
            r = bare.request(method, "/fn/guarded/")
            assert r.status_code == 403, r.text
            assert (
                r.json()["error"]["details"]["required"] == "X-Orva-CSRF"
                and "X-Orva-API-Key" in r.json()["error"]["hint"]
            )
    with server.session_client(token) as dashboard:
        assert dashboard.post("/fn/guarded/").text == "ran"


def test_behind_a_trusted_proxy_the_throttle_keys_on_the_forwarded_client(
    make_orvad: Callable[..., Orvad],
) -> None:
    """Found by the red-team pass: behind the documented proxy setup every caller was the proxy, so five
    wrong guesses from anyone locked the operator out of login for the whole window."""
    server = make_orvad(env={"ORVA_TRUSTED_PROXIES": "127.0.0.1/32"})
    with server.client() as c:
        assert server.onboard(c, "admin", PASSWORD).status_code == 201
    with server.client() as c:
        attacker = {"X-Forwarded-For": "203.0.113.66"}
        codes = [
            c.post(
                "/api/v1/auth/login", json={"username": "admin", "password": "wrong"}, headers=attacker
            ).status_code
            for _ in range(6)
        ]
        assert codes == [401] * 5 + [429], codes
        operator = c.post(
            "/api/v1/auth/login",
            json={"username": "admin", "password": PASSWORD},
            headers={"X-Forwarded-For": "198.51.100.7"},
        )
        assert operator.status_code == 200, operator.text
    with server.client() as c:  # without X-Forwarded-For the caller is the proxy itself, throttled as such
        codes = [
            c.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong"}).status_code
            for _ in range(6)
        ]
        assert codes[-1] == 429


def test_a_forwarded_hop_that_is_not_an_address_counts_as_the_proxy(make_orvad: Callable[..., Orvad]) -> None:
    """Behind a proxy that passes X-Forwarded-For on without appending, a guesser writing new text there
    each time was a new client each time (no throttle, and the text stored as its address): such a hop
    is not believed, the caller is the proxy."""
    server = make_orvad(env={"ORVA_TRUSTED_PROXIES": "127.0.0.1/32"})
    with server.client() as c:
        assert server.onboard(c, "admin", PASSWORD).status_code == 201
    with server.client() as c:
        codes = [
            c.post(
                "/api/v1/auth/login",
                json={"username": "admin", "password": "wrong"},
                headers={"X-Forwarded-For": f"not-an-address-{i}"},
            ).status_code
            for i in range(6)
        ]
        assert codes == [401] * 5 + [429], codes
