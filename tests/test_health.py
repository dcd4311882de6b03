"""Health probes on a real server, and before start-up on an unstarted daemon."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from orvad.app import create_app
from orvad.config import load_settings
from orvad.daemon import Daemon
from orvad.hostcheck import FAVOR_OPTION, cgroup2_options, favor_cgroup_migrations
from tests.conftest import Orvad


def test_health_when_up(orvad: Orvad) -> None:
    with orvad.client() as c:
        body = c.get("/api/v1/system/health").json()
        assert body["status"] == "ok" and body["version"] and body["uptime_s"] >= 0
        assert {"database", "migrations", "startup"} <= set(body["checks"])
        assert all(check["ok"] for check in body["checks"].values())
        for path in ("/health", "/healthz", "/health/live", "/health/ready", "/health/startup"):
            assert c.get(path).status_code == 200, path


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
    with orvad.client() as c:
        check = c.get("/api/v1/system/health").json()["checks"]["cgroup_migrations"]
    assert check["ok"] and check["required"] is False and "favordynmods" in check["detail"]
    # the transient mount is gone; the flag shows on every cgroup2 mount there is
    mounts = cgroup2_options()
    assert not [m for m in mounts if "orva-cgroup2-" in m]
    assert all(FAVOR_OPTION in options for options in mounts.values())
    assert favor_cgroup_migrations()["ok"]  # idempotent: already on


def test_cgroup_favor_dynmods_can_be_left_alone(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_CGROUP_FAVOR_DYNMODS": "false"})
    with server.client() as c:
        check = c.get("/api/v1/system/health").json()["checks"]["cgroup_migrations"]
    assert check == {"ok": True, "required": False,
                     "detail": "favordynmods left as it is (ORVA_CGROUP_FAVOR_DYNMODS=false)"}
    assert "favordynmods turned on" not in server.stderr()
