"""Start, stop and restart a real orvad: bootstrap key, data-dir modes, clean shutdown, durability."""

from __future__ import annotations

import signal
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

PASSWORD = "AdminPass123!Secure"


def test_bootstrap_key_is_minted_once_and_reused(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    key_file = server.data_dir / "admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o711  # traversable for the jail, not listable
    if server.database_url is None:  # SQLite: the database is a file in the data dir (tests/databases.py)
        assert stat.S_IMODE((server.data_dir / "orva.db").stat().st_mode) == 0o600
    key = server.admin_key
    assert key not in server.stdout() and key[:12] in server.stdout()  # its file and prefix, never the key
    assert key not in server.stderr()  # never in the logs
    with server.admin() as c:
        perms = c.get("/api/v1/keys").json()["keys"][0]["permissions"]
        assert perms == ["invoke", "read", "write", "admin"]
    assert server.stop() == 0

    again = make_orvad(data_dir=server.data_dir)
    assert again.admin_key == key
    assert key not in again.stdout() and str(key_file) in again.stdout()
    with again.admin() as c:
        assert len(c.get("/api/v1/keys").json()["keys"]) == 1


def test_restart_keeps_users_sessions_and_keys(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.client() as c:
        r = server.onboard(c, "admin", PASSWORD)
        token = r.cookies["session_token"]
    with server.admin() as c:
        created = c.post("/api/v1/keys", json={"name": "keeper", "permissions": ["read"]}).json()
    assert server.stop(signal.SIGINT) == 0

    again = make_orvad(data_dir=server.data_dir)
    with again.client(cookies={"session_token": token}) as c:
        assert c.get("/api/v1/auth/me").json()["user"]["username"] == "admin"
    with again.client(created["key"]) as c:
        assert c.get("/api/v1/auth/status").status_code == 200
        assert c.get("/api/v1/keys").status_code == 403  # still read-only after restart
    with again.admin() as c:
        assert any(k["name"] == "keeper" for k in c.get("/api/v1/keys").json()["keys"])


def test_clean_shutdown_writes_every_queued_row(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.admin() as c:
        keys = [
            c.post("/api/v1/keys", json={"name": f"k{i}", "permissions": ["read"]}).json() for i in range(30)
        ]
    for key in keys:  # each first use queues a last_used_at row in the batched writer
        with server.client(key["key"]) as c:
            assert c.get("/api/v1/auth/status").status_code == 200
            assert c.get("/api/v1/nothing").status_code == 404
    assert server.stop() == 0  # immediately: the queue must be flushed on the way down
    assert '"rows_written"' in server.stderr()

    again = make_orvad(data_dir=server.data_dir)
    with again.admin() as c:
        listed = {k["id"]: k for k in c.get("/api/v1/keys", params={"limit": 500}).json()["keys"]}
    assert all(listed[k["id"]]["last_used_at"] for k in keys)


def test_logs_are_json_lines(make_orvad: Callable[..., Orvad]) -> None:
    import json

    server = make_orvad()
    with server.client() as c:
        c.get("/api/v1/system/health")
    server.stop()
    lines = [json.loads(line) for line in server.stderr().splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    assert any(line["msg"] == "request" and line["path"] == "/api/v1/system/health" for line in lines)


def test_uvicorn_server_serves_and_stops_cleanly(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_SERVER": "uvicorn"})
    with server.admin() as c:
        assert c.get("/api/v1/system/health").json()["status"] == "ok"
        fn = c.post("/api/v1/functions", json={"name": "uv", "runtime": "python"}).json()
        c.post(
            f"/api/v1/functions/{fn['id']}/deploy-inline",
            json={"code": "def handler(e, c):\n    return 'uv'\n"},
        )
        from tests.helpers import wait_for

        wait_for(lambda: c.get(f"/fn/{fn['id']}").text == "uv", 30, "the function under uvicorn")
        assert c.get("/nope").json()["error"]["code"] == "NOT_FOUND"
    assert server.stop() == 0
    assert '"orvad stopped"' in server.stderr()


def test_granian_server_serves_an_invoke_and_stops_cleanly(make_orvad: Callable[..., Orvad]) -> None:
    """`orvad serve --server granian`: Granian's embedded server, in orvad's own event loop."""
    from tests.deploy_helpers import create_function, deploy_inline, wait_deployed

    server = make_orvad(args=["--server", "granian"])
    with server.admin() as c:
        health = c.get("/api/v1/system/health")
        assert health.status_code == 200 and health.headers["server"] == "granian"
        assert c.get("/api/v1/system/info").json()["server"] == "granian"
        fn = create_function(c, "gr")
        code = "def handler(event, context):\n    return {'got': event['body'], 'method': event['method']}\n"
        assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
        r = c.post(f"/fn/{fn['id']}", content=b"hello")
        assert r.status_code == 200 and r.json() == {"got": "hello", "method": "POST"}, r.text
        assert r.headers["x-orva-execution-id"] and r.headers["x-request-id"]
        assert c.get("/nope").json()["error"]["code"] == "NOT_FOUND"
    assert server.stop() == 0
    assert '"orvad stopped"' in server.stderr()
    assert "experimental" not in server.stderr()  # Granian's notice, said once in docs/PERFORMANCE.md


@pytest.mark.parametrize("kind", ["uvicorn", "granian"])
def test_a_server_of_the_fast_extra_that_is_not_installed_is_refused_at_start(
    tmp_path: Path, kind: str
) -> None:
    import subprocess
    import sys

    hide = (
        "import importlib.util, sys\n"
        "real = importlib.util.find_spec\n"
        f"importlib.util.find_spec = lambda name, *a: None if name == {kind!r} else real(name, *a)\n"
        "from orvad.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", hide, "serve", "--server", kind, "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"--server {kind} needs the `fast` extra: pip install 'orva[fast]'" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was made


def test_a_granian_older_than_orvad_needs_is_refused_at_start(tmp_path: Path) -> None:
    """Granian 2.8.0 ended a stream orvad cuts as if it were complete: an older Granian is refused."""
    import subprocess
    import sys

    old = (
        "import importlib.metadata, sys\n"
        "real = importlib.metadata.version\n"
        "importlib.metadata.version = lambda name: '2.8.0' if name == 'granian' else real(name)\n"
        "from orvad.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", old, "serve", "--server", "granian", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "--server granian needs Granian 2.8.7 or later, not 2.8.0" in done.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("kind", ["hypercorn", "uvicorn", "granian"])
def test_a_port_a_granian_orvad_listens_on_is_refused_to_a_second_orvad(
    make_orvad: Callable[..., Orvad], kind: str
) -> None:
    """Granian binds with SO_REUSEPORT, which would let a second Granian share the port silently (the kernel
    spreading connections over both): orvad first binds the port plainly, and fails as the others do."""
    first = make_orvad(env={"ORVA_SERVER": "granian"})
    second = make_orvad(env={"ORVA_SERVER": kind}, start=False)
    second.port = first.port
    second.start(wait=False)
    assert second.proc is not None
    assert second.proc.wait(timeout=60) == (3 if kind == "uvicorn" else 1)  # Uvicorn exits with its own code
    assert "Address already in use" in second.stderr(), second.stderr()[-2000:]
    with first.admin() as c:
        assert c.get("/api/v1/system/info").json()["data_dir"] == str(first.data_dir)  # still the only one


def test_unreachable_code_refuses_to_start_with_the_reason(jail_tmp) -> None:  # type: ignore[no-untyped-def]
    """A data dir the jail cannot traverse (under a 0700 folder, as under /root): orvad does not start
    serving workers that would all fail; it exits 2 naming the folder and what to do."""
    from tests.helpers import Orvad, free_port

    private = jail_tmp / "private"
    private.mkdir(mode=0o700)
    server = Orvad(private / "data", free_port()).start(wait=False)
    assert server.proc is not None
    assert server.proc.wait(timeout=60) == 2
    err = server.stderr()
    assert "cannot start" in err and str(private) in err and "ORVA_DATA_DIR" in err, err


def test_a_relative_data_dir_serves_functions(jail_tmp) -> None:  # type: ignore[no-untyped-def]
    """`make run` passes ORVA_DATA_DIR=./data: it is made absolute at start (nsjail changes directory
    before it bind-mounts, so a relative code path failed every worker with 502)."""
    from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
    from tests.helpers import Orvad, free_port, wait_for

    server = Orvad(jail_tmp / "data", free_port(), env={"ORVA_DATA_DIR": "./data"})
    server.cwd = jail_tmp
    server.start()
    try:
        with server.admin() as c:
            assert c.get("/api/v1/system/health").json()["checks"]["code_path"]["ok"]
            fn = create_function(c, "rel")
            dep = deploy_inline(c, fn["id"], "def handler(event, context):\n    return 'relative ok'\n")
            assert wait_deployed(c, dep["id"])["status"] == "succeeded"
            wait_for(lambda: c.get("/fn/rel").text == "relative ok", 30, "the function to answer")
    finally:
        server.stop()
