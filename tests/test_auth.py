"""Users and sessions against a real orvad: onboarding, cookies, refresh, logout, throttling, CSRF."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.conftest import Orvad

PASSWORD = "AdminPass123!Secure"


def _session_cookie(response: httpx.Response) -> str:
    header = response.headers["set-cookie"]
    assert header.startswith("session_token=")
    return header.split(";", 1)[0].split("=", 1)[1]


def test_onboarding_flow_end_to_end(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.client() as c:
        assert c.get("/api/v1/auth/status").json() == {"has_user": False}

        r = c.post("/api/v1/auth/onboard", json={"username": "admin", "password": PASSWORD})
        assert r.status_code == 201
        assert r.json()["user"]["username"] == "admin"
        attrs = [a.strip().lower() for a in r.headers["set-cookie"].split(";")]
        assert "httponly" in attrs and "path=/" in attrs and "samesite=lax" in attrs
        assert "secure" not in attrs  # ORVA_SECURE_COOKIES is off by default
        max_age = next(int(a.split("=")[1]) for a in attrs if a.startswith("max-age="))
        assert 7 * 86400 - 60 <= max_age <= 7 * 86400
        token = _session_cookie(r)

        assert c.get("/api/v1/auth/status").json() == {"has_user": True}
        me = c.get("/api/v1/auth/me")
        assert me.status_code == 200 and me.json()["user"]["username"] == "admin"

        again = c.post("/api/v1/auth/onboard", json={"username": "other", "password": PASSWORD})
        assert again.status_code == 409 and again.json()["error"]["code"] == "ALREADY_SETUP"

        refreshed = c.post("/api/v1/auth/refresh")
        assert refreshed.status_code == 200
        new_token = _session_cookie(refreshed)
        assert new_token != token

    with server.client(cookies={"session_token": token}) as old:
        r = old.get("/api/v1/auth/me")
        assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
    with server.client(cookies={"session_token": new_token}) as c:
        assert c.get("/api/v1/auth/me").status_code == 200
        assert c.get("/api/v1/keys").status_code == 200  # a session is the operator
        out = c.post("/api/v1/auth/logout")
        assert out.status_code == 200
        assert c.get("/api/v1/auth/me").status_code == 401


def test_login_password_change_and_bad_input(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.client() as c:
        short = c.post("/api/v1/auth/onboard", json={"username": "admin", "password": "short"})
        assert short.status_code == 400 and short.json()["error"]["code"] == "VALIDATION"
        assert c.post("/api/v1/auth/onboard", json={"username": "admin", "password": PASSWORD}).status_code == 201
    with server.client() as c:
        wrong = c.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong-password"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "INVALID_CREDENTIALS"
        ok = c.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        assert ok.status_code == 200 and ok.json()["user"]["username"] == "admin"
        changed = c.post("/api/v1/auth/change-password",
                         json={"current_password": PASSWORD, "new_password": "An0ther-Long-Password"})
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


def test_session_endpoints_refuse_api_keys(orvad: Orvad) -> None:
    with orvad.admin() as c:
        r = c.get("/api/v1/auth/me")
        assert r.status_code == 401 and "session" in r.json()["error"]["message"]


def test_cross_site_cookie_requests_are_refused(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.client() as c:
        r = c.post("/api/v1/auth/onboard", json={"username": "admin", "password": PASSWORD},
                   headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
        assert c.post("/api/v1/auth/onboard", json={"username": "admin", "password": PASSWORD}).status_code == 201
        cross = c.post("/api/v1/keys", json={"name": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        same = c.post("/api/v1/keys", json={"name": "x"},
                      headers={"Sec-Fetch-Site": "same-origin", "Origin": server.url})
        assert same.status_code == 201
    # an API key is not a browser credential: no origin check applies
    with server.admin() as c:
        assert c.post("/api/v1/keys", json={"name": "y"}, headers={"Origin": "https://elsewhere"}).status_code == 201
