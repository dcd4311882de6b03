"""Health probes on a real server, and before start-up on an unstarted daemon."""

from __future__ import annotations

from pathlib import Path

import httpx

from orvad.app import create_app
from orvad.config import load_settings
from orvad.daemon import Daemon
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
