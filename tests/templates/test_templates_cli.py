"""`orva init DIR --template NAME` writes a template's files and prints the steps it needs; run as printed,
they give a working function (settings, secret and all). `orva templates list|show`. A real orvad; the CLI
as a subprocess."""

from __future__ import annotations

import hashlib
import hmac
import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from orvad.templates import catalog
from tests.cli.test_cli import Cli, error_line, logged_in
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # deploys and invokes


@pytest.fixture(scope="module")
def cli(orvad: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(orvad, tmp_path_factory.mktemp("home"), "tpl-") as runner:
        yield runner


def test_init_from_a_template_and_run_the_printed_steps(cli: Cli, orvad: Orvad, tmp_path: Path) -> None:
    made = cli.json("init", "tpl-stats", "--template", "mcp-tool-node", cwd=tmp_path)
    assert made["template"] == "mcp-tool-node" and made["runtime"] == "node" and made["name"] == "tpl-stats"
    assert sorted(Path(f).name for f in made["files"]) == ["handler.js", "input_schema.json"]
    manifest = catalog()["mcp-tool-node"]
    assert (tmp_path / "tpl-stats" / "handler.js").read_text() == manifest.code
    assert (
        json.loads((tmp_path / "tpl-stats" / "input_schema.json").read_text())
        == manifest.settings["input_schema"]
    )
    steps = [shlex.split(step) for step in made["next"]]
    assert [s[:2] for s in steps] == [
        ["orva", "deploy"],
        ["orva", "functions"],
        ["orva", "invoke"],
        ["orva", "logs"],
    ]
    for step in steps[:2]:  # deploy, then the settings the template needs
        cli.ok(*step[1:], cwd=tmp_path)
    answer = json.loads(cli.ok(*steps[2][1:], cwd=tmp_path).stdout)  # the template's example call
    assert answer["words"] == 7 and answer["top_words"] == [
        {"word": "hello", "count": 2},
        {"word": "again", "count": 1},
    ]
    with orvad.admin() as api:
        fn = api.get("/api/v1/functions/tpl-stats").json()
    assert fn["input_schema"] == manifest.settings["input_schema"]
    assert fn["description"] == manifest.settings["description"]


def test_a_webhook_template_with_its_secret(cli: Cli, orvad: Orvad, tmp_path: Path) -> None:
    shown = cli.ok("init", "tpl-hooks", "-t", "github-webhook-python", cwd=tmp_path).stdout.splitlines()
    assert shown[0] == "wrote tpl-hooks/handler.py (template github-webhook-python, python); next:"
    assert "  orva secrets set tpl-hooks GITHUB_WEBHOOK_SECRET" in shown
    cli.ok("deploy", "./tpl-hooks", "--name", "tpl-hooks", cwd=tmp_path)
    cli.ok("secrets", "set", "tpl-hooks", "GITHUB_WEBHOOK_SECRET", input="cli-secret\n")
    body = b'{"zen": "Approachable is better than simple."}'
    signature = "sha256=" + hmac.new(b"cli-secret", body, hashlib.sha256).hexdigest()
    with orvad.client() as c:
        ok = c.post(
            "/fn/tpl-hooks",
            content=body,
            headers={"x-github-event": "ping", "x-hub-signature-256": signature},
        )
        assert ok.status_code == 200 and ok.json()["zen"] == "Approachable is better than simple."
        assert (
            c.post("/fn/tpl-hooks", content=body, headers={"x-hub-signature-256": "sha256=00"}).status_code
            == 401
        )


def test_templates_list_show_and_the_mistakes(cli: Cli, tmp_path: Path) -> None:
    listed = cli.json("templates", "list")["templates"]
    assert [t["name"] for t in listed] == sorted(catalog())
    node = cli.ok("templates", "list", "--runtime", "node").stdout.splitlines()
    assert node and all(line.split()[1] == "node" for line in node)
    shown = cli.ok("templates", "show", "llm-relay-python").stdout
    assert "secret OPENAI_API_KEY (required)" in shown and 'setting network_mode: "egress"' in shown
    line = error_line(cli.fails(1, "init", str(tmp_path / "x"), "--template", "no-such"), "NOT_FOUND")
    assert "orva templates list" in line and not (tmp_path / "x").exists()
    mismatch = cli.run("init", str(tmp_path / "y"), "--template", "hello-node", "--runtime", "python")
    assert mismatch.returncode == 2 and "hello-node is node, not python" in mismatch.stderr
    # never overwrites: a different requirements.txt stops it before anything is written
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "requirements.txt").write_text("mine\n")
    error_line(cli.fails(1, "init", str(tmp_path / "z"), "-t", "image-thumbnail-python"), "FILE_EXISTS")
    assert not (tmp_path / "z" / "handler.py").exists()
    # the default starter is the catalog's hello template
    cli.ok("init", str(tmp_path / "h"))
    assert (tmp_path / "h" / "handler.py").read_text() == catalog()["hello-python"].code
