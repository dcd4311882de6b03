"""Helpers for tests that deploy code: create, deploy inline, wait for the build, read SSE."""

from __future__ import annotations

import json
import os
from pathlib import Path
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


def gate_in_version(data_dir: Path, c: httpx.Client, fn_id: str, code_hash: str) -> Path:
    """A FIFO ``gate`` in the version's folder (the jail's /code): a handler that opens it blocks until the test
    opens the other end. A worker sees /code as the version was when the worker started (one started from a
    spare jail has its files linked in then, orvad/services/spares.py), so the function's workers are replaced
    after the FIFO is made (a changed variable is a new pool): the next worker has the gate."""
    gate = data_dir / "functions" / fn_id / "versions" / code_hash / "gate"
    os.mkfifo(gate, 0o644)
    r = c.put(f"/api/v1/functions/{fn_id}", json={"env_vars": {"TEST_GATE": "1"}})
    assert r.status_code == 200, r.text
    return gate
