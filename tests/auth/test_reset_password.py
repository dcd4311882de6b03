"""`orvad reset-password` (issue 18.13): run beside a live orvad, it sets a new password and ends the
user's sessions at once; it refuses, changing nothing, when there is no such user."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.helpers import Orvad

OLD = "the-forgotten-password"
CSRF = {"X-Orva-CSRF": "1"}


def _reset(
    data_dir: Path, *args: str, stdin: str | None = None, server: Orvad | None = None
) -> subprocess.CompletedProcess[str]:
    """``orvad reset-password`` on ``data_dir`` (and, on the PostgreSQL pass, ``server``'s database)."""
    return subprocess.run(
        [sys.executable, "-m", "orvad", "reset-password", "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(server.database_env() if server else {})},
    )


def _token(response: httpx.Response) -> str:
    assert response.status_code in (200, 201), response.text
    return response.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]


def _login(server: Orvad, password: str) -> httpx.Response:
    with server.client(headers=CSRF) as c:
        return c.post("/api/v1/auth/login", json={"username": "admin", "password": password})


def test_reset_beside_a_running_orvad_ends_sessions_and_the_new_password_logs_in(
    make_orvad: Callable[..., Orvad],
) -> None:
    server = make_orvad()
    with server.client(headers=CSRF) as c:
        old_session = _token(server.onboard(c, "admin", OLD))
    other_session = _token(_login(server, OLD))
    with server.session_client(old_session) as s:
        assert s.get("/api/v1/auth/me").status_code == 200

    done = _reset(server.data_dir, "--username", "admin", server=server)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "password of admin reset; every session of admin has ended"
    new = lines[1].removeprefix("new password (shown once): ")
    assert len(new) >= 20 and new not in done.stderr

    for token in (old_session, other_session):
        with server.session_client(token) as s:
            assert s.get("/api/v1/auth/me").status_code == 401
    assert _login(server, OLD).status_code == 401
    with server.session_client(_token(_login(server, new))) as s:
        me = s.get("/api/v1/auth/me")
        assert me.status_code == 200 and me.json()["user"]["username"] == "admin"

    chosen = "a-password-from-stdin"
    piped = _reset(server.data_dir, "--username", "admin", "--stdin", stdin=chosen + "\n", server=server)
    assert piped.returncode == 0 and chosen not in piped.stdout, (piped.stdout, piped.stderr)
    assert _login(server, new).status_code == 401
    assert _login(server, chosen).status_code == 200

    with server.admin() as c:  # both resets are in the audit log: who ran it on the host, and for whom
        rows = c.get("/api/v1/audit-log", params={"method": "CLI"}).json()["entries"]
    assert [(r["actor_kind"], r["actor_name"], r["path"], r["target_id"], r["status"]) for r in rows] == [
        ("host", "root", "orvad reset-password --username admin", "admin", 200)
    ] * 2


def test_reset_refuses_an_unknown_user_a_short_password_and_a_wrong_data_dir(
    make_orvad: Callable[..., Orvad], tmp_path: Path
) -> None:
    server = make_orvad()
    with server.client(headers=CSRF) as c:
        session = _token(server.onboard(c, "admin", OLD))

    unknown = _reset(server.data_dir, "--username", "root", server=server)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert "no user 'root'" in unknown.stderr and "the users are: admin" in unknown.stderr
    short = _reset(server.data_dir, "--username", "admin", "--stdin", stdin="short\n", server=server)
    assert short.returncode == 2 and "nothing was changed" in short.stderr
    missing = _reset(tmp_path / "elsewhere", "--username", "admin")
    assert missing.returncode == 2 and "no database at" in missing.stderr
    assert not (tmp_path / "elsewhere").exists()

    with server.session_client(session) as s:  # nothing changed
        assert s.get("/api/v1/auth/me").status_code == 200
    assert _login(server, OLD).status_code == 200
    with server.admin() as c:  # a refused reset changed nothing, so it left no audit row
        assert c.get("/api/v1/audit-log", params={"method": "CLI"}).json()["entries"] == []
