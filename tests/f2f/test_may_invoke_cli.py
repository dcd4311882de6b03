"""orva functions create/update --may-invoke / --no-may-invoke, and how get shows the field."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import Cli, error_line, logged_in
from tests.helpers import Orvad


@pytest.fixture(scope="module")
def cli(orvad: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(orvad, tmp_path_factory.mktemp("home"), "mic-") as runner:
        yield runner


def test_may_invoke_from_the_cli(cli: Cli, orvad: Orvad, tmp_path: Path) -> None:
    made = cli.json("functions", "create", "mic-a", "--runtime", "python", "--may-invoke", "mic-b")
    assert made["may_invoke"] == ["mic-b"]
    shown = cli.ok("functions", "get", "mic-a").stdout
    assert "mic-b" in shown
    updated = cli.json("functions", "update", "mic-a", "--may-invoke", "x1", "--may-invoke", "x2")
    assert updated["may_invoke"] == ["x1", "x2"]  # replaces the list
    assert cli.json("functions", "update", "mic-a", "--may-invoke", "*")["may_invoke"] == ["*"]
    assert "any function (*)" in cli.ok("functions", "get", "mic-a").stdout
    assert cli.json("functions", "update", "mic-a", "--no-may-invoke")["may_invoke"] == []
    assert "none" in cli.ok("functions", "get", "mic-a").stdout
    # both at once is a usage error; a bad name is orvad's VALIDATION with the field
    assert "one of --may-invoke and --no-may-invoke" in cli.fails(
        2, "functions", "update", "mic-a", "--may-invoke", "x", "--no-may-invoke"
    )
    line = error_line(cli.fails(1, "functions", "update", "mic-a", "--may-invoke", "Bad Name"), "VALIDATION")
    assert "may_invoke" in line
    # a write-only key is refused, with a hint in the CLI's words
    with orvad.admin() as c:
        writer = c.post("/api/v1/keys", json={"name": "mic-w", "permissions": ["read", "write"]}).json()[
            "key"
        ]
    stderr = cli.fails(1, "functions", "update", "mic-a", "--may-invoke", "x", env={"ORVA_API_KEY": writer})
    assert "invoke permission" in error_line(stderr, "FORBIDDEN")
