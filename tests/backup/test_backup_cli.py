"""`orva backup download|restore|status` against a real orvad (issue 24): a round trip that brings a deleted
function back, restore refused without --yes, a bad file refused with BACKUP_INVALID and the CLI's hint,
a non-admin key refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.backup.conftest import populate
from tests.cli.test_cli import Cli, error_line
from tests.helpers import Orvad

# sqlite_only: a backup here is the data dir's orva.db copied with SQLite's backup API, checked with
# SQLite's integrity_check and swapped in as a file; on PostgreSQL the database is the server's and is backed
# up with pg_dump (orvad answers 409 SQLITE_ONLY, docs/CLUSTER.md), so these tests have no meaning there.
SQLITE_ONLY_REASON = "backup and restore of the data dir's orva.db file"
pytestmark = [pytest.mark.sandbox, pytest.mark.sqlite_only]


def test_cli_download_restore_status(make_orvad: Callable[..., Orvad], jail_tmp: Path) -> None:
    server = make_orvad()
    populated = populate(server)
    cli = Cli(jail_tmp / "home")
    cli.ok("login", "--endpoint", server.url, "--api-key", server.admin_key)
    out = jail_tmp / "cli.tar.gz"
    done = cli.ok("backup", "download", "--out", str(out))
    assert f"backup written to {out}" in done.stdout and out.stat().st_size > 0
    assert not list(jail_tmp.glob(".cli.tar.gz.part"))
    status = cli.json("backup", "status")
    assert status["scheduled"] is False and status["files"] == []
    assert "scheduled backups: off" in cli.ok("backup", "status").stdout

    with server.admin() as c:
        c.delete(f"/api/v1/functions/{populated.fn}").raise_for_status()
    stderr = cli.fails(1, "backup", "restore", str(out))
    assert "--yes" in error_line(stderr, "CONFIRM")
    bad = jail_tmp / "bad.tar.gz"
    bad.write_bytes(out.read_bytes()[:300])
    line = error_line(cli.fails(1, "backup", "restore", str(bad), "--yes"), "BACKUP_INVALID")
    assert "orva backup download" in line
    with server.admin() as c:
        assert c.get(f"/api/v1/functions/{populated.fn}").status_code == 404  # nothing changed
    done = cli.ok("backup", "restore", str(out), "--yes")
    assert "restored" in done.stdout and "2 versions" in done.stdout
    populated.check(server, server.admin_key)
    answer = json.loads(cli.ok("backup", "status", "--json").stdout)
    assert answer["last_restore"]["created_at"]

    with server.admin() as c:
        reader = c.post("/api/v1/keys", json={"name": "r", "permissions": ["read"]}).json()["key"]
    other = Cli(jail_tmp / "home2")
    other.ok("login", "--endpoint", server.url, "--api-key", reader)
    error_line(other.fails(1, "backup", "download", "--out", str(jail_tmp / "no.tar.gz")), "FORBIDDEN")
    assert not (jail_tmp / "no.tar.gz").exists()
