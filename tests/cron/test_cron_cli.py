"""`orva cron list|get|create|update|enable|disable|run|delete` against a real orvad with a test clock (issue 23):
tables and --json, upsert by name, partial updates, and errors in orva's words (hints naming orva commands and
the option behind a bad field)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.cli.test_cli import Cli, error_line, logged_in
from tests.cron.conftest import TestClock
from tests.helpers import Orvad


@pytest.fixture(scope="module")
def cli(clocked: tuple[Orvad, TestClock], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(clocked[0], tmp_path_factory.mktemp("home"), "clicron-") as runner:
        yield runner


@pytest.fixture
def fn(cli: Cli) -> str:
    name = f"clicron-{uuid.uuid4().hex[:6]}"
    cli.ok("functions", "create", name, "--runtime", "python")
    return name


def test_cron_lifecycle(cli: Cli, fn: str, clocked: tuple[Orvad, TestClock]) -> None:
    clocked[1].set(datetime(2026, 2, 1, 12, 0, tzinfo=UTC))
    out = cli.ok(
        "cron",
        "create",
        fn,
        "nightly",
        "30 2 * * *",
        "--timezone",
        "Europe/Berlin",
        "--payload",
        '{"kind": "daily"}',
    ).stdout
    assert f"{fn}/nightly: 30 2 * * * (Europe/Berlin), next run 2026-02-02T01:30:00.000Z" in out
    made = cli.json("cron", "get", fn, "nightly")
    assert made["payload"] == {"kind": "daily"} and made["catch_up"] == "once" and made["enabled"] is True
    cli.ok("cron", "create", fn, "poll", "*/5 * * * *", "--catch-up", "skip", "--disabled")
    listed = cli.json("cron", "list", fn)
    assert [s["name"] for s in listed] == ["poll", "nightly"]
    assert listed[0]["enabled"] is False and listed[0]["catch_up"] == "skip"
    table = cli.ok("cron", "list").stdout
    assert table.splitlines()[0].split() == [
        "FUNCTION",
        "NAME",
        "EXPRESSION",
        "TIMEZONE",
        "ENABLED",
        "NEXT_RUN",
        "LAST_RUN",
        "LAST_STATUS",
        "ID",
    ]
    assert "nightly" in table and "poll" in table
    assert [s["name"] for s in cli.json("cron", "list", fn, "--disabled")] == ["poll"]
    # create with a held name changes it; update changes only what is given
    cli.ok("cron", "create", fn, "nightly", "0 3 * * *")
    again = cli.json("cron", "get", fn, "nightly")
    assert (
        again["id"] == made["id"]
        and again["expression"] == "0 3 * * *"
        and again["timezone"] == "Europe/Berlin"
    )
    updated = cli.json("cron", "update", fn, "nightly", "--payload", "[1, 2]", "--rename", "early")
    assert (
        updated["name"] == "early" and updated["payload"] == [1, 2] and updated["expression"] == "0 3 * * *"
    )
    assert "disabled" in cli.ok("cron", "disable", fn, "early").stdout
    assert cli.json("cron", "get", fn, made["id"])["next_run_at"] is None
    assert "next run 2026-02-02T02:00:00.000Z" in cli.ok("cron", "enable", fn, "early").stdout
    run = cli.json("cron", "run", fn, "early")
    assert run["job_id"].startswith("job_") and run["schedule"]["last_job_id"] == run["job_id"]
    assert f"deleted schedule early of {fn}" in cli.ok("cron", "delete", fn, "early").stdout
    assert [s["name"] for s in cli.json("cron", "list", fn)] == ["poll"]


def test_cron_errors_name_orva_commands(cli: Cli, fn: str) -> None:
    line = error_line(cli.fails(1, "cron", "create", fn, "s", "*/10 * * * * *"), "VALIDATION")
    assert "6 fields" in line and "EXPRESSION" in line
    line = error_line(cli.fails(1, "cron", "create", fn, "s", "@daily", "--timezone", "berlin"), "VALIDATION")
    assert "Europe/Berlin" in line and "--timezone" in line
    line = error_line(cli.fails(1, "cron", "get", fn, "missing"), "NOT_FOUND")
    assert f"orva cron list {fn}" in line
    cli.ok("cron", "create", fn, "a", "@daily")
    cli.ok("cron", "create", fn, "b", "@daily")
    line = error_line(cli.fails(1, "cron", "update", fn, "b", "--rename", "a"), "CONFLICT")
    assert f"orva cron update {fn} a" in line
    stderr = cli.fails(2, "cron", "update", fn, "b")
    assert "give at least one of" in stderr
    line = error_line(
        cli.fails(1, "cron", "create", fn, "c", "@daily", "--payload", "{not json"), "VALIDATION"
    )
    assert "--payload" in line
