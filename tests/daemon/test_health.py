"""Health probes on a real server, and before start-up on an unstarted daemon."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from orvad.config import load_settings
from orvad.daemon import Daemon
from orvad.host.hostcheck import FAVOR_OPTION, cgroup2_options, favor_cgroup_migrations
from orvad.http.app import create_app
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)


def test_health_when_up(orvad: Orvad) -> None:
    with orvad.client() as c:
        body = c.get("/api/v1/system/health").json()
        assert body["status"] == "ok" and body["version"] and body["uptime_s"] >= 0
        assert {"database", "migrations", "startup"} <= set(body["checks"])
        assert all(check["ok"] for check in body["checks"].values())
        for path in ("/health", "/healthz", "/health/live", "/health/ready", "/health/startup"):
            assert c.get(path).status_code == 200, path


def test_health_details_need_a_read_credential(make_orvad: Callable[..., Orvad]) -> None:
    """Anyone may probe; paths, nsjail's location and the egress range only reach a `read` key or a session."""
    server = make_orvad()
    # where the database is (the data dir's orva.db, or the PostgreSQL server's host:port/name on that pass)
    where = server.database_url.rsplit("@", 1)[-1] if server.database_url else str(server.data_dir)
    secret_bits = (where, "nsjail ", "10.")  # the db location, the sandbox check, the egress range
    with server.admin() as admin:
        full = admin.get("/api/v1/system/health").json()
        reader = admin.post("/api/v1/keys", json={"name": "r", "permissions": ["read"]}).json()["key"]
        invoker = admin.post("/api/v1/keys", json={"name": "i", "permissions": ["invoke"]}).json()["key"]
    assert where in full["checks"]["database"]["detail"]  # the full view has them
    assert "details_hidden" not in full
    with server.client() as c:
        token = server.onboard(c).cookies["session_token"]
    for who, headers, cookies in (
        ("anonymous", {}, {}),
        ("invoke key", {"X-Orva-API-Key": invoker}, {}),
        ("unknown key", {"X-Orva-API-Key": "orva_" + "0" * 64}, {}),
        ("stale cookie", {}, {"session_token": "gone"}),
    ):
        for path in ("/api/v1/system/health", "/health/ready"):
            r = httpx.get(server.url + path, headers=headers, cookies=cookies)
            assert r.status_code == 200, (who, path, r.text)  # probes work as before
            body = r.json()
            assert body["status"] == "ok" and "read" in body["details_hidden"]
            assert set(body["checks"]) == set(full["checks"])  # which check fails stays visible
            assert all(set(check) <= {"ok", "required"} for check in body["checks"].values()), (who, body)
            assert not any(bit in r.text for bit in secret_bits), (who, r.text)
    for headers, cookies in (({"X-Orva-API-Key": reader}, {}), ({}, {"session_token": token})):
        r = httpx.get(server.url + "/api/v1/system/health", headers=headers, cookies=cookies)
        assert r.json()["checks"] == {**full["checks"], "startup": r.json()["checks"]["startup"]}


async def test_health_before_start_up(jail_tmp: Path) -> None:
    daemon = Daemon(load_settings({"data_dir": str(jail_tmp / "data")}, environ={}))
    transport = httpx.ASGITransport(app=create_app(daemon))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/health/live")).status_code == 200
        startup = await c.get("/health/startup")
        assert startup.status_code == 503 and startup.json()["status"] == "starting"
        ready = await c.get("/health/ready")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert not checks["database"]["ok"] and not checks["startup"]["ok"]
        await daemon.start()
        try:
            assert (await c.get("/health/startup")).status_code == 200
            assert (await c.get("/health/ready")).status_code == 200
        finally:
            await daemon.stop()


def test_cgroup_migrations_are_favoured_at_start(orvad: Orvad) -> None:
    """orvad turns on cgroup favordynmods (host-wide) so a worker start skips an RCU grace period."""
    with orvad.admin() as c:
        check = c.get("/api/v1/system/health").json()["checks"]["cgroup_migrations"]
    assert check["ok"] and check["required"] is False and "favordynmods" in check["detail"]
    # the transient mount is gone; the flag shows on every cgroup2 mount there is
    mounts = cgroup2_options()
    assert not [m for m in mounts if "orva-cgroup2-" in m]
    assert all(FAVOR_OPTION in options for options in mounts.values())
    assert favor_cgroup_migrations()["ok"]  # idempotent: already on


def test_cgroup_favor_dynmods_can_be_left_alone(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_CGROUP_FAVOR_DYNMODS": "false"})
    with server.admin() as c:
        check = c.get("/api/v1/system/health").json()["checks"]["cgroup_migrations"]
    assert check == {
        "ok": True,
        "required": False,
        "detail": "favordynmods left as it is (ORVA_CGROUP_FAVOR_DYNMODS=false)",
    }
    assert "favordynmods turned on" not in server.stderr()
