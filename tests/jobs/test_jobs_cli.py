"""`orva jobs enqueue|list|get|cancel|retry` against a real orvad (issue 23): tables and --json, idempotency,
the dead-letter filter, and errors in orva's words (no /api/v1 paths)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.cli.test_cli import Cli, error_line, logged_in
from tests.helpers import Orvad

LATER = "2035-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def cli(orvad: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(orvad, tmp_path_factory.mktemp("home"), "clijobs-") as runner:
        yield runner


@pytest.fixture
def fn(cli: Cli) -> str:
    name = f"clijobs-{uuid.uuid4().hex[:6]}"
    cli.ok("functions", "create", name, "--runtime", "python")
    return name


def test_jobs_lifecycle(cli: Cli, fn: str) -> None:
    job = cli.json("jobs", "enqueue", fn, '{"user": 42}', "--at", LATER, "--max-attempts", "5")
    assert job["status"] == "pending" and job["max_attempts"] == 5 and job["created"] is True
    out = cli.ok("jobs", "enqueue", fn, "1", "--at", LATER, "--idempotency-key", "k1").stdout
    assert out.startswith("job_") and ": pending" in out
    again = cli.ok("jobs", "enqueue", fn, "2", "--at", LATER, "--idempotency-key", "k1").stdout
    assert "existing job for this key" in again and again.split(":")[0] == out.split(":")[0]
    listed = cli.json("jobs", "list", "--function", fn)
    assert len(listed) == 2 and {j["id"] for j in listed} >= {job["id"]}
    table = cli.ok("jobs", "list", "--function", fn).stdout
    assert "STATUS" in table and "pending" in table
    got = cli.ok("jobs", "get", job["id"]).stdout
    assert job["id"] in got and "pending" in got
    cancelled = cli.json("jobs", "cancel", job["id"])
    assert cancelled["status"] == "cancelled"
    assert [j["id"] for j in cli.json("jobs", "list", "--function", fn, "--status", "cancelled")] == [
        job["id"]
    ]
    line = error_line(cli.fails(1, "jobs", "cancel", job["id"]), "JOB_NOT_CANCELLABLE")
    assert f"orva jobs retry {job['id']}" in line and "/api/v1" not in line
    assert cli.json("jobs", "retry", job["id"])["status"] == "pending"
    cli.ok("jobs", "cancel", job["id"])
    assert cli.json("jobs", "list", "--status", "dead", "--function", fn) == []


def test_jobs_cli_errors_speak_orva(cli: Cli, fn: str) -> None:
    line = error_line(cli.fails(1, "jobs", "enqueue", fn, "not json"), "VALIDATION")
    assert "orva jobs enqueue" in line
    line = error_line(cli.fails(1, "jobs", "get", "job_nope"), "NOT_FOUND")
    assert "orva jobs list" in line and "/api/v1" not in line
    line = error_line(cli.fails(1, "jobs", "enqueue", "clijobs-nope"), "NOT_FOUND")
    assert "orva functions list" in line
    job = cli.json("jobs", "enqueue", fn, "--at", LATER)
    line = error_line(cli.fails(1, "jobs", "retry", job["id"]), "JOB_NOT_RETRYABLE")
    assert f"orva jobs get {job['id']}" in line and "/api/v1" not in line
    cli.ok("jobs", "cancel", job["id"])
    assert "Invalid value for '--status'" in cli.fails(2, "jobs", "list", "--status", "weird")
