"""Red-team pass on backup and restore (issue 24), through HTTP against real orvads: an attacker with a
stolen admin session (cross-site requests) or a tampered backup file (the manifest is a checksum list, not
a signature: whoever edits the archive rewrites it too, as ``_signed`` does here)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.backup.conftest import Member, download, entry, members, populate, state, upload
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

# sqlite_only: a backup here is the data dir's orva.db copied with SQLite's backup API, checked with
# SQLite's integrity_check and swapped in as a file; on PostgreSQL the database is the server's and is backed
# up with pg_dump (orvad answers 409 SQLITE_ONLY, docs/CLUSTER.md), so these tests have no meaning there.
SQLITE_ONLY_REASON = "backup and restore of the data dir's orva.db file"
pytestmark = [pytest.mark.sandbox, pytest.mark.sqlite_only]


def _signed(items: list[Member]) -> bytes:
    """The archive of ``items`` with a manifest that matches them (what a tamperer writes)."""
    files = {
        i.name: {"sha256": hashlib.sha256(c).hexdigest(), "size": len(c)} for i, c in items if c is not None
    }
    files.pop("manifest.json", None)
    links = {i.name: i.linkname for i, _ in items if i.issym()}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, content in items:
            if info.name == "manifest.json":
                assert content is not None
                manifest = json.loads(content)
                manifest.update(files=files, links=links)
                content = json.dumps(manifest).encode()
            if content is None:
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _replace(items: list[Member], name: str, content: bytes, mode: int | None = None) -> list[Member]:
    out: list[Member] = []
    for info, old in items:
        if info.name == name:
            info = entry(name, mode=info.mode if mode is None else mode)
            old = content
        out.append((info, old))
    return out


def _with_db(items: list[Member], *statements: str) -> list[Member]:
    """``items`` with their orva.db changed by ``statements`` (still a valid SQLite file)."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "orva.db"
        db.write_bytes(next(c for i, c in items if i.name == "orva.db") or b"")
        conn = sqlite3.connect(db)
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        conn.close()
        return _replace(items, "orva.db", db.read_bytes())


def _error(r: object, status: int, code: str, reason: str) -> None:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    err = r.json()["error"]  # type: ignore[attr-defined]
    assert err["code"] == code and err.get("hint"), err
    assert reason in err["message"], err["message"]


def _workspaces(server: Orvad) -> list[str]:
    return [p.name for p in server.data_dir.iterdir() if p.name.startswith(".backup-")]


def test_cross_site_restore_with_the_admin_session_is_refused(make_orvad: Callable[..., Orvad]) -> None:
    """CSRF: a page on another site posting a multipart form to /api/v1/restore with the admin's cookie."""
    server = make_orvad()
    with server.client() as c:
        login = server.onboard(c)
        token = login.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    good = download(server, server.admin_key)
    with server.admin() as c:
        create_function(c, "after-backup")
    form = {"archive": ("b.tar.gz", good, "application/gzip")}
    with server.client(cookies={"session_token": token}) as browser:
        for headers, reason in (
            ({"Origin": "http://evil.example"}, "cross-site"),
            ({"Origin": "http://evil.example", "X-Orva-CSRF": "1"}, "cross-site"),  # CORS never grants it
            ({"Sec-Fetch-Site": "cross-site"}, "cross-site"),
            ({"Sec-Fetch-Site": "same-site"}, "cross-site"),  # a sibling subdomain is another site too
            ({}, "X-Orva-CSRF"),  # no Origin (an old browser): still needs the header a form cannot send
        ):
            r = browser.post("/api/v1/restore", params={"confirm": "1"}, files=form, headers=headers)
            _error(r, 403, "FORBIDDEN", reason)
        assert "after-backup" in state(server)["functions"]
        assert _workspaces(server) == []
        # the same session from the dashboard's own origin, with the header: the restore runs
        r = browser.post("/api/v1/restore", params={"confirm": "1"}, files=form, headers={"X-Orva-CSRF": "1"})
        assert r.status_code == 200, r.text
    assert "after-backup" not in state(server)["functions"]


def test_modes_names_and_keys_from_the_archive_are_not_trusted(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    populate(server)
    items = members(download(server, server.admin_key))
    version = next(i.name for i, _ in items if i.isreg() and i.name.startswith("functions/")).rsplit("/", 1)[
        0
    ]
    key = next(c for i, c in items if i.name == "master.key")
    assert key is not None

    def plus(*extra: Member) -> list[Member]:
        return [*items[:-1], *extra, items[-1]]

    before = state(server)
    refused = {
        # a NUL in a name inside a version: was a ValueError from os.open, a 500
        "NUL character": _signed(plus((entry(f"{version}/a\0b"), b"x"))),
        # 64 hex characters, then junk past the 200 bytes the check read: passed it, then orvad's own
        # reading of the key failed after the swap (500, orvad down, the previous data deleted)
        "64 hex characters": _signed(_replace(items, "master.key", key.strip() + b" " * 300 + b"zz")),
        # another valid key: was restored (200, ready), then every function with a secret failed to start
        # with WORKER_CRASHED "InvalidTag"
        "does not open the database's secrets": _signed(
            _replace(items, "master.key", os.urandom(32).hex().encode() + b"\n")
        ),
    }
    for reason, data in refused.items():
        _error(upload(server, server.admin_key, data), 422, "BACKUP_INVALID", reason)
        assert state(server) == before
    assert _workspaces(server) == []
    # modes from the archive: the master key and the database world-readable and set-uid; a set-uid,
    # world-writable program in a version (the sandbox runs version files)
    hostile = _replace(_replace(items, "master.key", key, 0o4777), "orva.db", items[0][1] or b"", 0o6777)
    r = upload(
        server,
        server.admin_key,
        _signed([*hostile[:-1], (entry(f"{version}/run", mode=0o6777), b"#!/bin/sh\n"), hostile[-1]]),
    )
    assert r.status_code == 200, r.text
    for name in ("master.key", "orva.db"):
        assert (server.data_dir / name).stat().st_mode & 0o7777 == 0o600, name
    run = os.stat(server.data_dir / version / "run", follow_symlinks=False)
    assert run.st_mode & 0o7022 == 0 and run.st_uid == 0, oct(run.st_mode)


def test_databases_that_are_not_orvads_own_are_refused(make_orvad: Callable[..., Orvad]) -> None:
    """A valid SQLite file that passes integrity_check but carries more than (or other than) what the
    migrations make: a trigger would run on orvad's own writes (keep a deleted key, say)."""
    server = make_orvad()
    populate(server)
    items = members(download(server, server.admin_key))
    before = state(server)
    cases = {
        "trigger 'keep_key'": (
            "CREATE TRIGGER keep_key AFTER DELETE ON api_keys BEGIN "
            "INSERT INTO api_keys SELECT * FROM api_keys WHERE 0; END",
        ),
        "trigger 'kv_usage_insert'": (  # a migration's trigger with another body
            "DROP TRIGGER kv_usage_insert",
            "CREATE TRIGGER kv_usage_insert AFTER INSERT ON kv BEGIN DELETE FROM api_keys; END",
        ),
        "view 'v'": ("CREATE VIEW v AS SELECT 1",),
        "table 'job_attempts'": ("DROP TABLE job_attempts",),  # the version says the table is there
        # the version says a migration is missing: it runs again and fails (was: after the swap, orvad down)
        "does not take this orvad's migrations": (
            "DELETE FROM schema_migrations WHERE version = (SELECT MAX(version) FROM schema_migrations)",
        ),
    }
    for reason, statements in cases.items():
        r = upload(server, server.admin_key, _signed(_with_db(items, *statements)))
        _error(r, 422, "BACKUP_INVALID", reason)
        assert state(server) == before, reason
    assert _workspaces(server) == []


def test_restored_files_that_do_not_load_put_the_previous_back(make_orvad: Callable[..., Orvad]) -> None:
    """A database every check passes but orvad cannot load (a row start() cannot read): the reload fails
    after the swap. Was: 500, the database closed, /health/ready 503 for good, the previous files deleted
    with the workspace and the next start failing too."""
    server = make_orvad()
    populated = populate(server)
    items = members(download(server, server.admin_key))
    with server.admin() as c:
        other = create_function(c, "after-backup")
        wait_deployed(c, deploy_inline(c, other["id"], "def handler(e, c):\n    return 'later'\n")["id"])
    before = state(server)
    r = upload(
        server, server.admin_key, _signed(_with_db(items, "UPDATE functions SET env_vars = 'not json'"))
    )
    _error(r, 422, "BACKUP_INVALID", "the previous data is back")
    assert state(server) == before
    populated.check(server, server.admin_key)
    with server.admin() as c:
        assert c.post("/fn/after-backup", json={}).text == "later"
        assert c.get("/health/ready").status_code == 200
    assert _workspaces(server) == []
    server.stop()
    server.start()
    populated.check(server, server.admin_key)


def test_restore_leaves_no_webhook_and_no_stopped_job_runner_behind(make_orvad: Callable[..., Orvad]) -> None:
    """What reload_from kept from before the restore: an outbound webhook made after the backup (say, an
    intruder's, sending every event out) stayed in memory and kept receiving events; the job runner stayed
    stopping, so no job ran again until a restart."""
    server = make_orvad()
    populated = populate(server)
    good = download(server, server.admin_key)
    with server.admin() as c:
        r = c.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/intruder", "events": ["*"]})
        assert r.status_code == 201, r.text
    assert upload(server, server.admin_key, good).status_code == 200
    with server.admin() as c:
        assert c.get("/api/v1/webhooks").json()["webhooks"] == []
        job = c.post("/api/v1/jobs", json={"function": populated.fn, "payload": {}})
        assert job.status_code == 202, job.text

        def finished() -> bool:
            return c.get(f"/api/v1/jobs/{job.json()['id']}").json()["status"] == "succeeded"

        wait_for(finished, 30, "a job enqueued after the restore to run")


@pytest.fixture
def small_cap(make_orvad: Callable[..., Orvad]) -> Iterator[Orvad]:
    yield make_orvad(env={"ORVA_RESTORE_MAX_BYTES": str(2 << 20)})


def test_uploads_over_the_cap_and_bad_uploads_leave_nothing(small_cap: Orvad) -> None:
    """ORVA_RESTORE_MAX_BYTES against a chunked body with no Content-Length; repeated refused uploads leave
    no workspace (disk fill); the download is not cached; a kill -9 leaves no stale lock behind."""
    server = small_cap
    populate(server)
    with server.admin() as c:
        r = c.get("/api/v1/backup")
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    boundary = "orva-redteam"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="archive"; filename="b.tar.gz"\r\n'
            "Content-Type: application/gzip\r\n\r\n"
        ).encode()
        for _ in range(6):
            yield os.urandom(1 << 20)
        yield f"\r\n--{boundary}--\r\n".encode()

    with server.client(server.admin_key) as c:
        r = c.post(
            "/api/v1/restore?confirm=1",
            content=body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert "content-length" not in {k.lower() for k in r.request.headers}
    _error(r, 413, "PAYLOAD_TOO_LARGE", "exceeds the limit")
    for _ in range(10):
        _error(upload(server, server.admin_key, os.urandom(4096)), 422, "BACKUP_INVALID", "gzip")
    # folders count too: 600 empty ones (a 10 KB upload) were 2.4 MB of disk counted as 0 bytes
    good = download(server, server.admin_key)
    items = members(good)
    version = next(i.name for i, _ in items if i.isreg() and i.name.startswith("functions/")).rsplit("/", 1)[
        0
    ]
    folders = [(entry(f"{version}/d{n}", tarfile.DIRTYPE, mode=0o755), None) for n in range(600)]
    bomb = _signed([*items[:-1], *folders, items[-1]])
    _error(upload(server, server.admin_key, bomb), 422, "BACKUP_INVALID", "ORVA_RESTORE_MAX_BYTES")
    assert _workspaces(server) == []
    assert upload(server, server.admin_key, good).status_code == 200  # a real backup fits the same cap
    # kill -9: the kernel drops the flock with the process, the offline command runs
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(30)
    out = server.data_dir.parent / "after-kill.tar.gz"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORVA_")}
    done = subprocess.run(
        [sys.executable, "-m", "orvad", "backup", "--to", str(out), "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0 and out.stat().st_mode & 0o777 == 0o600, (
        done.stderr,
        oct(out.stat().st_mode),
    )


def test_a_restore_undone_while_builds_wait_resumes_them(make_orvad: Callable[..., Orvad]) -> None:
    """The build queue kept the previous database's waiting builds across the reload, and the start then
    submitted them again: with a full backlog the load of the previous files (the undo) failed too (500,
    orvad down); a deploy arriving during a reload hit the same full queue (BUILD_QUEUE_FULL, found with
    deploys, writes and invocations running through three restores)."""
    server = make_orvad(env={"ORVA_BUILD_CONCURRENCY": "1", "ORVA_BUILD_BACKLOG": "1"})
    populate(server)
    items = members(download(server, server.admin_key))
    slow = "import time\ntime.sleep(4)\ndef handler(e, c):\n    return %d\n"
    with server.admin() as c:
        fn = create_function(c, "slow-build")
        first = deploy_inline(c, fn["id"], slow % 1)["id"]
        second = deploy_inline(c, fn["id"], slow % 2)["id"]  # waits: the backlog of 1 is full
        statuses = {
            d["id"]: d["status"]
            for d in c.get("/api/v1/functions/slow-build/deployments").json()["deployments"]
        }
        assert statuses[second] == "queued", statuses
    r = upload(
        server, server.admin_key, _signed(_with_db(items, "UPDATE functions SET env_vars = 'not json'"))
    )
    _error(r, 422, "BACKUP_INVALID", "the previous data is back")
    with server.admin() as c:
        assert c.get("/health/ready").status_code == 200
        wait_deployed(c, first)
        wait_deployed(c, second)
        assert c.post("/fn/slow-build", json={}).text == "2"
