"""`orva channels` (issue 21) against a real orvad: the token printed once on stdout, show/list never
print it, set-functions keeps overrides, rotate and delete, and errors in orva's own words."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator

import pytest

from tests.cli.test_cli import Cli, error_line, logged_in
from tests.helpers import Orvad

TOKEN = re.compile(r"^orva_chn_[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def cli(orvad: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(orvad, tmp_path_factory.mktemp("home"), "clich-") as runner:
        yield runner


def _stored_hash(orvad: Orvad, name: str) -> str:
    [(stored,)] = orvad.sql("SELECT token_hash FROM channels WHERE name = ?", (name,))
    return str(stored)


def test_channels_lifecycle(cli: Cli, orvad: Orvad) -> None:
    stem = f"clich-{uuid.uuid4().hex[:6]}"
    for suffix in ("a", "b"):
        cli.ok("functions", "create", f"{stem}-{suffix}", "--runtime", "python")
    name = f"{stem}-bot"
    done = cli.ok("channels", "create", name, "-f", f"{stem}-a", "-f", f"{stem}-b", "--expires-in-days", "7")
    token = done.stdout.strip()
    assert TOKEN.match(token) and "not shown again" in done.stderr and "/mcp" in done.stderr
    assert _stored_hash(orvad, name) == hashlib.sha256(token.encode()).hexdigest()

    listed = cli.ok("channels", "list")
    assert name in listed.stdout and token not in listed.stdout
    shown = cli.json("channels", "show", name)
    assert shown["function_count"] == 2 and "token" not in shown
    assert {f["tool_name"] for f in shown["functions"]} == {
        f"{stem}_a".replace("-", "_"),
        f"{stem}_b".replace("-", "_"),
    }

    cli.ok(
        "channels",
        "set-functions",
        name,
        "-f",
        f"{stem}-a",
        "-f",
        f"{stem}-b",
        "--describe",
        f"{stem}-a=Adds",
    )
    after = cli.json("channels", "set-functions", name, "-f", f"{stem}-a")
    assert [(f["name"], f["description"]) for f in after["functions"]] == [(f"{stem}-a", "Adds")]
    assert "Adds" in cli.ok("channels", "show", name).stdout

    rotated = cli.ok("channels", "rotate", name).stdout.strip()
    assert TOKEN.match(rotated) and rotated != token
    assert _stored_hash(orvad, name) == hashlib.sha256(rotated.encode()).hexdigest()

    assert "deleted channel" in cli.ok("channels", "delete", name).stdout
    line = error_line(cli.fails(1, "channels", "show", name), "NOT_FOUND")
    assert "orva channels list" in line and "/api/v1" not in line


def test_channels_errors_speak_orva(cli: Cli) -> None:
    stem = f"clich-{uuid.uuid4().hex[:6]}"
    cli.ok("functions", "create", f"{stem}-x", "--runtime", "python")
    cli.ok("functions", "create", f"{stem.replace('-', '_')}_x", "--runtime", "python")
    line = error_line(
        cli.fails(
            1, "channels", "create", f"{stem}-c", "-f", f"{stem}-x", "-f", f"{stem.replace('-', '_')}_x"
        ),
        "TOOL_NAME_COLLISION",
    )
    assert f"{stem}-x" in line and "hint:" in line
    line = error_line(cli.fails(1, "channels", "create", f"{stem}-d", "-f", "no-such-fn"), "NOT_FOUND")
    assert "orva functions list" in line
    line = error_line(
        cli.fails(1, "channels", "set-functions", f"{stem}-c", "--describe", "nope"), "VALIDATION"
    )
    assert "FUNCTION=TEXT" in line
