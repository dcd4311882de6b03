"""`orva activity [--follow]`, `orva system storage|vacuum` and `orva sessions list|revoke|revoke-all` against a
real orvad (issue 24): tables and --json, filters, a live row under --follow, errors in orva's words."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.test_cli import Cli, error_line, logged_in
from tests.helpers import Orvad, wait_for


@pytest.fixture
def server(make_orvad: Any) -> Orvad:
    return make_orvad()  # its own: `sessions revoke-all` ends every session


@pytest.fixture
def cli(server: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(server, tmp_path_factory.mktemp("home"), "cliop-") as runner:
        yield runner


def test_activity_lists_filters_and_follows(cli: Cli, server: Orvad) -> None:
    name = f"cliop-{uuid.uuid4().hex[:6]}"
    cli.ok("functions", "create", name, "--runtime", "python")
    wait_for(lambda: bool(cli.json("activity", "-q", "functions")), 10, "the create's row")
    rows = cli.json("activity", "--source", "api", "-q", "functions", "--hide-reads")
    assert (
        rows[0]["method"] == "POST" and rows[0]["path"] == "/api/v1/functions" and rows[0]["source"] == "api"
    )
    assert all(r["method"] not in ("GET", "HEAD") for r in rows)
    # without --hide-reads the CLI's own reads of the feed are rows too (issue 24)
    wait_for(
        lambda: "GET" in {r["method"] for r in cli.json("activity", "-q", "/api/v1/activity")},
        10,
        "a row of the CLI's own read",
    )
    table = cli.ok("activity", "--source", "api").stdout
    assert "SOURCE" in table and "POST /api/v1/functions" in table
    assert cli.json("activity", "--source", "mcp") == []
    assert cli.json("activity", "--status-min", "500") == []
    bad = error_line(cli.fails(1, "activity", "--since", "yesterday"), "VALIDATION")
    assert "--since" in bad
    # --follow prints the rows there are, then new ones as they are recorded
    follower = subprocess.Popen(
        cli.argv("activity", "--follow", "--json", "--source", "api", "--limit", "1", "--hide-reads"),
        env=cli.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert first["source"] == "api" and first["method"] != "GET"
        later = f"cliop-{uuid.uuid4().hex[:6]}"
        cli.ok("functions", "create", later, "--runtime", "python")
        cli.ok("functions", "delete", later, "--yes")
        seen = [json.loads(follower.stdout.readline()) for _ in range(2)]
        assert [r["method"] for r in seen] == ["POST", "DELETE"]
        assert seen[1]["path"].startswith("/api/v1/functions/")
    finally:
        follower.terminate()
        follower.communicate(timeout=10)


# sqlite_only: `orva system storage|vacuum` report and vacuum orva.db's pages (SQLite's dbstat, VACUUM); on
# PostgreSQL the server vacuums its own database, so this test has no meaning there.
SQLITE_ONLY_REASON = "`orva system storage|vacuum` on the orva.db file"


@pytest.mark.sqlite_only
def test_system_storage_and_vacuum(cli: Cli) -> None:
    report = cli.json("system", "storage")
    assert report["database"]["bytes"] > 0 and any(
        t["name"] == "executions" for t in report["database"]["tables"]
    )
    text = cli.ok("system", "storage").stdout
    assert "executions" in text and "auto_vacuum" in text and "TABLE" in text
    run = cli.json("system", "vacuum")
    assert run["mode"] == "incremental" and run["running"] is False and run["error"] is None
    out = cli.ok("system", "vacuum", "--full").stdout
    assert out.startswith("full at ") and "reclaimed" in out
    assert cli.json("system", "storage")["vacuum"]["mode"] == "full"


def test_sessions_list_revoke_and_revoke_all(cli: Cli, server: Orvad) -> None:
    with server.client(headers={"User-Agent": "curl/8.4.0"}) as c:
        assert server.onboard(c, "admin", "AdminPass123!Secure").status_code == 201
        token = c.cookies["session_token"]
        assert (
            c.post(
                "/api/v1/auth/login", json={"username": "admin", "password": "AdminPass123!Secure"}
            ).status_code
            == 200
        )
    rows = cli.json("sessions", "list")
    assert len(rows) == 2 and {r["device"] for r in rows} == {"curl"}
    assert "DEVICE" in cli.ok("sessions", "list").stdout
    first = rows[-1]["id"]
    assert cli.json("sessions", "revoke", first)["revoked"] is True
    line = error_line(cli.fails(1, "sessions", "revoke", first), "NOT_FOUND")
    assert "orva sessions list" in line and "/api/v1" not in line
    with server.session_client(token) as c:
        assert c.get("/api/v1/auth/me").status_code == 401  # the onboarding session was the first
    cli.fails(1, "sessions", "revoke-all")  # asks, and stdin is no terminal: aborted
    assert len(cli.json("sessions", "list")) == 1
    assert "1 session(s) ended" in cli.ok("sessions", "revoke-all", "--yes").stdout
    assert cli.json("sessions", "list") == []
