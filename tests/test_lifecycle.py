"""Start, stop and restart a real orvad: bootstrap key, data-dir modes, clean shutdown, durability."""

from __future__ import annotations

import signal
import stat
from collections.abc import Callable

from tests.conftest import Orvad

PASSWORD = "AdminPass123!Secure"


def test_bootstrap_key_is_minted_once_and_reused(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    key_file = server.data_dir / "admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o711  # traversable for the jail, not listable
    assert stat.S_IMODE((server.data_dir / 'orva.db').stat().st_mode) == 0o600
    key = server.admin_key
    assert key in server.stdout()  # printed once, on the start that minted it
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
        r = c.post("/api/v1/auth/onboard", json={"username": "admin", "password": PASSWORD})
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
        keys = [c.post("/api/v1/keys", json={"name": f"k{i}", "permissions": ["read"]}).json() for i in range(30)]
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
        c.post(f"/api/v1/functions/{fn['id']}/deploy-inline", json={"code": "def handler(e, c):\n    return 'uv'\n"})
        from tests.conftest import wait_for

        wait_for(lambda: c.get(f"/fn/{fn['id']}").text == "uv", 30, "the function under uvicorn")
        assert c.get("/nope").json()["error"]["code"] == "NOT_FOUND"
    assert server.stop() == 0
    assert '"orvad stopped"' in server.stderr()


def test_unreachable_code_is_reported_not_hung(jail_tmp) -> None:  # type: ignore[no-untyped-def]
    """A data dir the jail cannot traverse: health says why, and a worker start fails fast with the reason."""
    import os
    import time

    from tests.conftest import Orvad, free_port

    private = jail_tmp / "private"
    private.mkdir(mode=0o700)
    server = Orvad(private / "data", free_port()).start()
    try:
        with server.admin() as c:
            health = c.get("/api/v1/system/health")
            assert health.status_code == 503 and not health.json()["checks"]["code_path"]["ok"]
            assert str(private) in health.json()["checks"]["code_path"]["detail"]
            c.post("/api/v1/functions", json={"name": "lost", "runtime": "python"})
            c.put("/api/v1/pool/config", json={"function_id": "lost", "min_warm": 0})
            dep = c.post("/api/v1/functions/lost/deploy-inline", json={"code": "def handler(e, c):\n    return 1\n"})
            from tests.conftest import wait_for

            wait_for(lambda: c.get(f"/api/v1/deployments/{dep.json()['id']}").json()["status"] == "succeeded", 30,
                     "the build")
            started = time.monotonic()
            r = c.get("/fn/lost")
            assert r.status_code == 502 and "sandbox could not start" in r.json()["error"]["message"], r.text
            assert time.monotonic() - started < 10
    finally:
        server.stop()
    assert os.path.isdir(private)
