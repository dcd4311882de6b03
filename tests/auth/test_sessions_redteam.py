"""Red-team pass over the sessions list (issue 24), against a real orvad over HTTP: a session fixed by an
attacker's cookie, cross-site DELETEs, spoofed X-Forwarded-For and hostile User-Agents written into the list,
and a revoked session's open event stream."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.activity.test_redteam import CONTROL, ends_after_revocation, event_stream
from tests.helpers import Orvad

PASSWORD = "AdminPass123!Secure"


def _login(server: Orvad, headers: dict[str, str] | None = None, **kwargs: object) -> httpx.Response:
    with server.client(headers=headers, **kwargs) as c:
        r = c.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return r


def _onboarded(make_orvad: Callable[..., Orvad], **kwargs: object) -> tuple[Orvad, str]:
    server = make_orvad(**kwargs)
    with server.client() as c:
        r = server.onboard(c, "admin", PASSWORD)
    assert r.status_code == 201, r.text
    return server, r.cookies["session_token"]


def _sessions(server: Orvad, token: str) -> list[dict[str, object]]:
    with server.session_client(token) as c:
        r = c.get("/api/v1/auth/sessions")
    assert r.status_code == 200, r.text
    return r.json()["sessions"]  # type: ignore[no-any-return]


def test_a_fixed_cookie_is_never_adopted_and_cross_site_deletes_are_refused(
    make_orvad: Callable[..., Orvad],
) -> None:
    server, mine = _onboarded(make_orvad)
    # session fixation: the victim logs in carrying a cookie the attacker chose; the answer sets a new
    # token, and the attacker's value is still nobody's session
    planted = "attacker-chosen-token-" + "A" * 20
    spoofed = {"X-Forwarded-For": "203.0.113.7", "X-Real-IP": "203.0.113.8", "Forwarded": "for=1.2.3.4"}
    fresh = _login(server, spoofed, cookies={"session_token": planted}).cookies["session_token"]
    assert fresh != planted
    with server.session_client(planted) as c:
        assert c.get("/api/v1/auth/me").status_code == 401
    before = {r["id"] for r in _sessions(server, mine)}
    assert len(before) == 2
    # no ORVA_TRUSTED_PROXIES: forwarding headers are the caller's word and are not believed
    assert {r["ip"] for r in _sessions(server, mine)} == {"127.0.0.1"}
    # a page on another origin (or on a sibling origin of the same site, such as the functions origin)
    # cannot end sessions with the victim's cookie, even had it managed to add the CSRF header
    for headers in (
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "same-site"},
    ):
        with server.client(headers={"X-Orva-CSRF": "1", **headers}, cookies={"session_token": mine}) as c:
            for path in ("/api/v1/auth/sessions", f"/api/v1/auth/sessions/{sorted(before)[0]}"):
                r = c.delete(path)
                assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", (headers, path)
                assert "set-cookie" not in r.headers
    assert {r["id"] for r in _sessions(server, mine)} == before
    # a session that ended itself cannot be used again with the same cookie
    my_id = next(r["id"] for r in _sessions(server, mine) if r["current"])
    with server.session_client(mine) as c:
        assert c.delete(f"/api/v1/auth/sessions/{my_id}").json()["current"] is True
        assert c.get("/api/v1/auth/sessions").status_code == 401
        assert c.delete("/api/v1/auth/sessions").status_code == 401
        assert c.post("/api/v1/auth/refresh").status_code == 401
    assert [r["current"] for r in _sessions(server, fresh)] == [True]


def test_control_characters_and_huge_values_are_stored_escaped_and_cut(
    make_orvad: Callable[..., Orvad],
) -> None:
    """A User-Agent (any client) and, behind a trusted proxy, an X-Forwarded-For hop that is not an address
    were stored as sent: escape sequences that `orva sessions list` printed to the terminal, and an address
    of up to the 16 KiB header limit."""
    server, mine = _onboarded(make_orvad, env={"ORVA_TRUSTED_PROXIES": "127.0.0.1"})
    agent = "Mozilla/5.0 \x1b]0;pwned\x07\x1b[2J<img src=x onerror=alert(1)>\x7f" + "x" * 3000
    # what a proxy that passes the client's X-Forwarded-For along (and appends its peer) sends
    _login(server, {"User-Agent": agent, "X-Forwarded-For": "\x1b[31mevil" + "9" * 5000 + ", 198.51.100.9"})
    hop = "\x1b[31m" + "z" * 5000  # a last hop that is no address: the client is the proxy
    _login(server, {"User-Agent": "curl/8.4.0", "X-Forwarded-For": f"198.51.100.10, {hop}"})
    rows = _sessions(server, mine)
    by_agent = {r["user_agent"]: r for r in rows}
    assert len(rows) == 3
    hostile = next(r for r in rows if str(r["user_agent"]).startswith("Mozilla/5.0"))
    for row in rows:
        for column in ("user_agent", "ip", "device"):
            text = str(row[column] or "")
            assert not any(ch in text for ch in CONTROL), (column, text[:80])
    assert str(hostile["user_agent"]).startswith(
        "Mozilla/5.0 \\x1b]0;pwned\\x07\\x1b[2J<img src=x onerror=alert(1)>"
    )
    assert len(str(hostile["user_agent"])) == 512 and hostile["ip"] == "198.51.100.9"
    assert (
        by_agent["curl/8.4.0"]["ip"] == "127.0.0.1"
    )  # not an address: not believed (origins.client_address)


def test_an_open_event_stream_ends_when_its_session_is_revoked_or_logged_out(
    make_orvad: Callable[..., Orvad],
) -> None:
    """Revoking a session (or logging out) is refused on the next request, but a stream already open went
    on carrying every activity row (actor names, client addresses) to whoever held the stolen cookie."""
    server, mine = _onboarded(make_orvad)
    stolen = _login(server).cookies["session_token"]

    def revoke_everywhere_else() -> None:
        with server.session_client(mine) as c:
            r = c.delete("/api/v1/auth/sessions", params={"keep_current": "true"})
            assert r.status_code == 200 and r.json()["revoked"] == 1

    with event_stream(server.session_client(stolen), types="activity") as stream:
        ends_after_revocation(server, stream, revoke_everywhere_else)

    def log_out() -> None:
        with server.session_client(mine) as c:
            assert c.post("/api/v1/auth/logout").status_code == 200

    with event_stream(server.session_client(mine)) as stream:  # the default stream: activity included
        ends_after_revocation(server, stream, log_out)
