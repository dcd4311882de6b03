"""The sessions list (issue 24) against a real orvad: GET /api/v1/auth/sessions shows each login's device, IP,
created and last seen, never the cookie's token; DELETE by id ends one at once; DELETE /api/v1/auth/sessions
logs out everywhere (keep_current keeps the caller's); a user cannot see or end another user's sessions; an
admin key sees and ends everyone's; a key without admin is 403."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from orvad.auth.passwords import hash_password
from orvad.clock import now_iso
from orvad.ids import uuid7
from tests.helpers import Orvad

PASSWORD = "AdminPass123!Secure"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
CURL = "curl/8.4.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)


def _token(response: httpx.Response) -> str:
    assert response.status_code in (200, 201), response.text
    return response.cookies["session_token"]


def _login(server: Orvad, user_agent: str, username: str = "admin") -> str:
    with server.client(headers={"User-Agent": user_agent}) as c:
        return _token(c.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD}))


def _as(server: Orvad, token: str) -> httpx.Client:
    return server.session_client(token)


def _sessions(server: Orvad, token: str) -> list[dict[str, object]]:
    with _as(server, token) as c:
        r = c.get("/api/v1/auth/sessions")
    assert r.status_code == 200, r.text
    return r.json()["sessions"]  # type: ignore[no-any-return]


def _onboarded(make_orvad: Callable[..., Orvad]) -> tuple[Orvad, str]:
    server = make_orvad()
    with server.client(headers={"User-Agent": FIREFOX}) as c:
        return server, _token(server.onboard(c, "admin", PASSWORD))


def test_two_logins_are_listed_with_device_ip_and_the_current_one(make_orvad: Callable[..., Orvad]) -> None:
    server, firefox = _onboarded(make_orvad)
    curl = _login(server, CURL)
    rows = _sessions(server, firefox)
    assert len(rows) == 2
    by_device = {r["device"]: r for r in rows}
    assert set(by_device) == {"Firefox on Linux", "curl"}
    assert by_device["Firefox on Linux"]["current"] is True and by_device["curl"]["current"] is False
    assert by_device["Firefox on Linux"]["user_agent"] == FIREFOX
    for row in rows:
        assert row["ip"] == "127.0.0.1" and row["username"] == "admin"
        assert row["created_at"] and row["last_seen_at"] and row["expires_at"]
        assert set(row) == {
            *("id", "user_id", "username", "device", "user_agent", "ip"),
            *("created_at", "last_seen_at", "expires_at", "current"),
        }
        assert row["id"] not in (firefox, curl)  # the id is no cookie
    # last_seen_at is written at most once a minute: requests right after the login leave it as it was
    again = {r["id"]: r["last_seen_at"] for r in _sessions(server, firefox)}
    assert again == {r["id"]: r["created_at"] for r in rows}
    # the other login sees itself as current
    assert [r["device"] for r in _sessions(server, curl) if r["current"]] == ["curl"]
    # nothing of the token is in the answer
    with _as(server, firefox) as c:
        text = c.get("/api/v1/auth/sessions").text
    assert firefox not in text and curl not in text and "token" not in text


def test_a_revoked_session_is_refused_at_once_and_an_id_is_no_cookie(
    make_orvad: Callable[..., Orvad],
) -> None:
    server, mine = _onboarded(make_orvad)
    other = _login(server, CURL)
    with _as(server, other) as c:
        assert c.get("/api/v1/auth/me").status_code == 200
    other_id = next(r["id"] for r in _sessions(server, mine) if not r["current"])
    # the id as a cookie is not a session
    with _as(server, str(other_id)) as c:
        assert c.get("/api/v1/auth/me").status_code == 401
    with _as(server, mine) as c:
        # a change with the cookie needs the CSRF header, as every other
        with server.client(cookies={"session_token": mine}) as bare:
            assert bare.delete(f"/api/v1/auth/sessions/{other_id}").status_code == 403
        r = c.delete(f"/api/v1/auth/sessions/{other_id}")
        assert r.status_code == 200 and r.json() == {"id": other_id, "revoked": True, "current": False}
        again = c.delete(f"/api/v1/auth/sessions/{other_id}")
        assert again.status_code == 404 and again.json()["error"]["code"] == "NOT_FOUND"
        assert "GET /api/v1/auth/sessions" in again.json()["error"]["hint"]
    with _as(server, other) as c:  # the very next request
        refused = c.get("/api/v1/auth/me")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "UNAUTHORIZED"
        assert c.get("/api/v1/functions").status_code == 401
    assert [r["current"] for r in _sessions(server, mine)] == [True]
    # ending one's own session by id clears the cookie
    my_id = _sessions(server, mine)[0]["id"]
    with _as(server, mine) as c:
        r = c.delete(f"/api/v1/auth/sessions/{my_id}")
        assert r.status_code == 200 and r.json()["current"] is True
        assert "max-age=0" in r.headers["set-cookie"].lower()
        assert c.get("/api/v1/auth/me").status_code == 401


def test_log_out_everywhere_with_and_without_the_current_one(make_orvad: Callable[..., Orvad]) -> None:
    server, mine = _onboarded(make_orvad)
    others = [_login(server, CURL), _login(server, SAFARI)]
    assert {r["device"] for r in _sessions(server, mine)} == {"Firefox on Linux", "curl", "Safari on iOS"}
    with _as(server, mine) as c:
        bad = c.delete("/api/v1/auth/sessions", params={"keep_current": "perhaps"})
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "keep_current"
        r = c.delete("/api/v1/auth/sessions", params={"keep_current": "true"})
        assert r.status_code == 200 and r.json()["revoked"] == 2 and r.json()["kept"]
        assert "set-cookie" not in r.headers
        assert c.get("/api/v1/auth/me").status_code == 200
    for token in others:
        with _as(server, token) as c:
            assert c.get("/api/v1/auth/me").status_code == 401
    again = _login(server, CURL)
    with _as(server, mine) as c:
        r = c.delete("/api/v1/auth/sessions")
        assert r.status_code == 200 and r.json() == {"revoked": 2, "kept": None}
        assert "max-age=0" in r.headers["set-cookie"].lower()
        assert c.get("/api/v1/auth/me").status_code == 401
    with _as(server, again) as c:
        assert c.get("/api/v1/auth/me").status_code == 401


def _second_user(server: Orvad, username: str) -> None:
    """orvad has one user made by onboarding; a second is written as `orvad` would store one."""
    now = now_iso()
    server.sql(
        "INSERT INTO users (id, username, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        (uuid7(), username, hash_password(PASSWORD), now, now),
    )


def test_another_users_sessions_are_neither_listed_nor_ended(make_orvad: Callable[..., Orvad]) -> None:
    server, mine = _onboarded(make_orvad)
    _second_user(server, "bob")
    bobs = _login(server, SAFARI, "bob")
    bob_rows = _sessions(server, bobs)
    assert [(r["username"], r["current"]) for r in bob_rows] == [("bob", True)]
    bob_id = bob_rows[0]["id"]
    assert all(r["username"] == "admin" for r in _sessions(server, mine))
    with _as(server, mine) as c:
        r = c.delete(f"/api/v1/auth/sessions/{bob_id}")
        assert r.status_code == 404
        # log out everywhere ends only the caller's user's sessions
        assert c.delete("/api/v1/auth/sessions", params={"keep_current": "1"}).json()["revoked"] == 0
    with _as(server, bobs) as c:
        assert c.get("/api/v1/auth/me").status_code == 200
    # an admin key sees everyone's and can end any; a key without admin is refused
    with server.admin() as admin:
        rows = admin.get("/api/v1/auth/sessions").json()["sessions"]
        assert {r["username"] for r in rows} == {"admin", "bob"}
        assert not any(r["current"] for r in rows)
        reader = admin.post("/api/v1/keys", json={"name": "reader", "permissions": ["read", "write"]}).json()
        with server.client(reader["key"]) as c:
            refused = c.get("/api/v1/auth/sessions")
            assert refused.status_code == 403 and refused.json()["error"]["details"]["required"] == "admin"
            assert c.delete(f"/api/v1/auth/sessions/{bob_id}").status_code == 403
        assert admin.delete(f"/api/v1/auth/sessions/{bob_id}").json()["revoked"] is True
    with _as(server, bobs) as c:
        assert c.get("/api/v1/auth/me").status_code == 401
    with _as(server, mine) as c:
        assert c.get("/api/v1/auth/me").status_code == 200


def test_refresh_keeps_the_session_id_and_a_password_change_ends_the_others(
    make_orvad: Callable[..., Orvad],
) -> None:
    server, mine = _onboarded(make_orvad)
    _login(server, CURL)
    before = {r["id"] for r in _sessions(server, mine)}
    with _as(server, mine) as c:
        refreshed = _token(c.post("/api/v1/auth/refresh"))
    assert {r["id"] for r in _sessions(server, refreshed)} == before
    with _as(server, refreshed) as c:
        r = c.post(
            "/api/v1/auth/change-password",
            json={"current_password": PASSWORD, "new_password": PASSWORD + "x"},
        )
        assert r.status_code == 200
    assert [r["current"] for r in _sessions(server, refreshed)] == [True]
