"""Helpers for tests that deploy code: create, deploy inline, wait for the build, read SSE."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.helpers import wait_for


def create_function(c: httpx.Client, name: str, runtime: str = "python", **extra: Any) -> dict[str, Any]:
    r = c.post("/api/v1/functions", json={"name": name, "runtime": runtime, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def deploy_inline(c: httpx.Client, fn: str, code: str, **extra: Any) -> dict[str, Any]:
    r = c.post(f"/api/v1/functions/{fn}/deploy-inline", json={"code": code, **extra})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/api/v1/deployments/{r.json()['id']}"
    return r.json()


def wait_deployed(c: httpx.Client, deployment_id: str, deadline_s: float = 120.0) -> dict[str, Any]:
    """Wait until the deployment has finished, and return its record."""
    record: dict[str, Any] = {}

    def done() -> bool:
        record.update(c.get(f"/api/v1/deployments/{deployment_id}").json())
        return record["status"] in ("succeeded", "failed", "superseded")

    wait_for(done, deadline_s, f"deployment {deployment_id} to finish", interval_s=0.05)
    return record


def sse_events(c: httpx.Client, url: str, timeout_s: float = 120.0) -> list[tuple[str, Any]]:
    """Read a finite SSE stream to its end: [(event, data)]."""
    events: list[tuple[str, Any]] = []
    with c.stream("GET", url, timeout=timeout_s) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event:
                events.append((event, json.loads(line.split(":", 1)[1])))
                event = None
    return events
