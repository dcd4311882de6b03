"""The `orva` CLI in a newcomer's first hour (issue 18): `orva init` to a working function, tables
that fit 80 columns, short id and hash prefixes typed back, hints that name `orva` commands, and
a distinct exit for an unreachable orvad. A real orvad; the CLI as a subprocess."""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from orva_cli.hints import _translated
from tests.cli.test_cli import Cli, _on_a_terminal, error_line, logged_in, write_tree
from tests.helpers import Orvad, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
LONG = "t" + "x" * 62  # the longest function name there is (63 characters)
RAISES = 'def handler(event, context):\n    print("about to fail")\n    raise ValueError("nope " * 30)\n'
BROKEN = 'import json\n\ndef handler(event, context)\n    return {"v": 2}\n'  # the colon is missing
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def cli(orvad: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(orvad, tmp_path_factory.mktemp("home"), "hour-", LONG[:10]) as runner:
        yield runner


@pytest.mark.sandbox
def test_init_deploy_invoke_logs_for_both_runtimes(cli: Cli, tmp_path: Path) -> None:
    made = cli.ok("init", "hour-py", cwd=tmp_path)  # the README's relative ./hello, as a reader types it
    assert made.stdout.splitlines() == [
        "wrote hour-py/handler.py (python); next:",
        "  orva deploy ./hour-py --name hour-py",
        "  orva invoke hour-py --path '/?name=orva'",
        "  orva logs hour-py",
    ]
    deployed = cli.ok("deploy", "./hour-py", "--name", "hour-py", "--runtime", "python", cwd=tmp_path)
    assert deployed.stdout.startswith("deployed hour-py version 1 ")
    # the very next call runs it: the deploy returned once the version serves
    assert cli.ok("invoke", "hour-py", "--path", "/?name=orva").stdout == '{"hello": "orva"}'
    assert json.loads(cli.ok("invoke", "hour-py", "--data", '{"name": "CLI"}').stdout) == {"hello": "CLI"}
    assert json.loads(cli.ok("invoke", "hour-py").stdout) == {"hello": "world"}
    wait_for(lambda: "saying hello to world" in cli.ok("logs", "hour-py").stdout, 10, "the execution log")

    node = cli.json("init", str(tmp_path / "Hour Node!"), "--runtime", "node")
    assert node["name"] == "hour-node" and node["file"].endswith("handler.js") and node["written"] is True
    assert node["next"][0] == f"orva deploy '{tmp_path / 'Hour Node!'}' --name hour-node"
    cli.ok("deploy", node["directory"], "--name", "hour-node")
    assert json.loads(cli.ok("invoke", "hour-node", "--path", "/?name=orva").stdout) == {"hello": "orva"}
    assert json.loads(cli.ok("invoke", "hour-node", "--data", '{"name": "js"}').stdout) == {"hello": "js"}


def test_init_never_overwrites_a_file(cli: Cli, tmp_path: Path) -> None:
    mine = write_tree(tmp_path / "mine", {"handler.py": "def handler(e, c):\n    return 'mine'\n"})
    line = error_line(cli.fails(1, "init", str(mine)), "FILE_EXISTS")
    assert f"{mine}/handler.py exists already" in line and "orva deploy" in line
    assert (mine / "handler.py").read_text() == "def handler(e, c):\n    return 'mine'\n"
    # the starter it wrote itself is left alone (running the quick start twice works)
    cli.ok("init", str(tmp_path / "again"))
    assert "kept (unchanged)" in cli.ok("init", str(tmp_path / "again")).stdout


def _lines_of(cli: Cli, *args: str) -> list[str]:
    """A command's table, printed in a pipe and on a 200-column terminal: every line of both."""
    piped = cli.ok(*args).stdout.splitlines()
    code, shown = _on_a_terminal(cli, *args)
    assert code == 0, shown
    return piped + ANSI.sub("", shown).replace("\r", "").splitlines()


@pytest.mark.sandbox
def test_every_table_fits_80_columns_with_short_ids(cli: Cli, orvad: Orvad, tmp_path: Path) -> None:
    folder = write_tree(tmp_path / "long", {"handler.py": RAISES})
    cli.ok("deploy", str(folder), "--name", LONG)
    cli.ok("functions", "update", LONG, "--description", "a description " * 20)
    (folder / "handler.py").write_text(BROKEN)
    cli.fails(1, "deploy", str(folder), "--name", LONG)  # a failed build: a long ERROR cell
    cli.ok("secrets", "set", LONG, "S" * 60, "value")
    cli.ok("routes", "set", "/hour/" + "p" * 70, LONG, "--methods", "GET,POST,PUT,DELETE,PATCH")
    key = cli.json("keys", "create", "k" * 60, "-p", "invoke", "-p", "read", "--expires-in-days", "30")
    cli.run("invoke", LONG)  # a pool row in the metrics
    listings = [
        ["functions", "list"],
        ["deployments", LONG],
        ["secrets", "list", LONG],
        ["routes", "list"],
        ["keys", "list"],
        ["system", "health"],
        ["system", "metrics"],
    ]
    for args in listings:
        lines = _lines_of(cli, *args)
        assert len(lines) > 2, (args, lines)
        too_long = [line for line in lines if len(line) > 80]
        assert not too_long, (args, too_long)
        assert not UUID.search("\n".join(lines)), (args, lines)  # ids are short prefixes, never wrapped
    functions = cli.ok("functions", "list").stdout
    assert LONG[:20] in functions and LONG not in functions and "…" in functions
    deps = cli.ok("deployments", LONG).stdout.splitlines()
    assert deps[0].split() == ["VERSION", "ID", "STATUS", "SOURCE", "HASH", "AGE", "ERROR"]
    assert "failed" in deps[1].split() and deps[1].endswith("…")  # the build's error, cut
    keys = cli.ok("keys", "list").stdout
    assert key["id"][:8] in keys and "invoke,read" in keys and ("in 29d" in keys or "in 30d" in keys)
    cli.ok("keys", "revoke", key["id"][:13])  # the short id typed back
    assert key["id"] not in json.dumps(cli.json("keys", "list"))


@pytest.mark.sandbox
def test_deployments_mark_the_active_one_and_prefixes_work(cli: Cli, tmp_path: Path) -> None:
    folder = write_tree(tmp_path / "v", {"handler.py": "def handler(e, c):\n    return {'v': 1}\n"})
    cli.ok("deploy", str(folder), "--name", "hour-versions")
    (folder / "handler.py").write_text("def handler(e, c):\n    return {'v': 2}\n")
    cli.ok("deploy", str(folder), "--name", "hour-versions")
    second, first = cli.json("deployments", "hour-versions")
    assert (first["active"], second["active"]) == (False, True)
    # a prefix two deployments share names both; one too short says so
    common = os.path.commonprefix([first["id"], second["id"]])
    assert len(common) >= 6
    line = error_line(cli.fails(1, "rollback", "hour-versions", common), "AMBIGUOUS")
    assert "matches 2 deployments of hour-versions" in line and first["id"][: len(common) + 1] in line

    def starred() -> list[str]:
        rows = cli.ok("deployments", "hour-versions").stdout.splitlines()[1:]
        return [row.split()[1] for row in rows if row.startswith("*")]  # the VERSION of the marked row

    assert starred() == ["2"]
    shown_ids = {}  # VERSION -> ID as the table shows them
    for row in cli.ok("deployments", "hour-versions").stdout.splitlines()[1:]:
        cells = row.split()[1:] if row.startswith("*") else row.split()
        shown_ids[cells[0]] = cells[1]
    assert first["id"].startswith(shown_ids["1"]) and 8 <= len(shown_ids["1"]) < 36
    # the ID column's short form, typed back
    rolled = cli.json("rollback", "hour-versions", shown_ids["1"])
    assert rolled["parent_deployment_id"] == first["id"] and cli.json("invoke", "hour-versions")["body"] == {
        "v": 1
    }
    assert starred() == ["3"]
    # a code hash by its first 8 (as the HASH column shows it) or 6 hex digits
    cli.ok("rollback", "hour-versions", "--hash", second["code_hash"][:8])
    assert cli.json("invoke", "hour-versions")["body"] == {"v": 2}
    cli.ok("rollback", "hour-versions", "--hash", first["code_hash"][:6])
    assert cli.json("invoke", "hour-versions")["body"] == {"v": 1}
    assert (
        "+    return {'v': 2}" in cli.ok("diff", "hour-versions", first["id"][:13], second["id"][:13]).stdout
    )
    assert "at least 6" in error_line(cli.fails(1, "rollback", "hour-versions", "--hash", "ab"), "VALIDATION")
    error_line(cli.fails(1, "rollback", "hour-versions", "--hash", "ffffff"), "VERSION_NOT_FOUND")
    log = cli.ok("build-log", "hour-versions", "1")
    assert "code hash " + first["code_hash"] in log.stdout and "version 1 of hour-versions" in log.stderr
    assert (
        cli.json("build-log", "hour-versions")["deployment_id"]
        == cli.json("deployments", "hour-versions")[0]["id"]
    )


def test_functions_list_runtime_matches_versioned_ids(cli: Cli, orvad: Orvad) -> None:
    with orvad.admin() as c:
        versioned = next(
            r["id"] for r in c.get("/api/v1/runtimes").json()["runtimes"] if r["language"] == "python"
        )
    assert versioned != "python"  # e.g. python3.11
    cli.ok("functions", "create", "hour-plain", "--runtime", "python")
    cli.ok("functions", "create", "hour-versioned", "--runtime", versioned)
    cli.ok("functions", "create", "hour-js", "--runtime", "node")
    names = {f["name"] for f in cli.json("functions", "list", "--runtime", "python")}
    assert {"hour-plain", "hour-versioned"} <= names and "hour-js" not in names
    assert "hour-versioned" in cli.ok("functions", "list", "--runtime", "python").stdout
    exact = {f["name"] for f in cli.json("functions", "list", "--runtime", versioned)}
    assert "hour-versioned" in exact and "hour-plain" not in exact


@pytest.mark.sandbox
def test_errors_name_orva_commands_and_the_execution(cli: Cli, orvad: Orvad, tmp_path: Path) -> None:
    folder = write_tree(tmp_path / "f", {"handler.py": RAISES})
    cli.ok("deploy", str(folder), "--name", "hour-fails")
    cli.ok("functions", "create", "hour-empty", "--runtime", "python")
    reader = Cli(cli.home, {"ORVA_API_KEY": cli.json("keys", "create", "hour-reader", "-p", "read")["key"]})

    failed = error_line(cli.fails(1, "invoke", "hour-fails"), "FUNCTION_ERROR")
    execution = re.search(
        r"execution ([0-9a-f-]{36}): its logs with `orva logs hour-fails --execution \1`", failed
    )
    assert execution, failed
    shown = cli.ok("logs", "hour-fails", "--execution", execution.group(1)).stdout
    assert "about to fail" in shown and "ValueError: nope" in shown and execution.group(1) in shown
    assert cli.ok("logs", "hour-fails", "-e", execution.group(1)[:18]).stdout == shown  # a prefix of it

    # a handler that cannot import fails its build: the traceback, exit 1, the command to read the log again
    (folder / "handler.py").write_text(BROKEN)
    done = cli.run("deploy", str(folder), "--name", "hour-fails")
    assert done.returncode == 1 and "SyntaxError" in done.stderr
    build = error_line(done.stderr, "BUILD_FAILED")
    assert "version 2 of hour-fails did not build" in build and "`orva build-log hour-fails 2`" in build
    assert "SyntaxError" in cli.ok("build-log", "hour-fails", "2").stdout

    never = cli.fails(1, "invoke", "hour-empty").strip().splitlines()
    assert len(never) == 1 and never[0].startswith(("error: NOT_DEPLOYED: ", "error: BUILDING: ")), never
    lines = [
        never[0],
        error_line(cli.fails(1, "functions", "update", "hour-fails", "--memory-mb", "1"), "VALIDATION"),
        error_line(cli.fails(1, "functions", "get", "hour-nope"), "NOT_FOUND"),
        error_line(cli.fails(1, "keys", "revoke", "019df210-1234-7000-8000-deadbeef0001"), "NOT_FOUND"),
        error_line(reader.fails(1, "functions", "create", "hour-x", "--runtime", "python"), "FORBIDDEN"),
        error_line(cli.fails(1, "routes", "delete", "/hour/none"), "NOT_FOUND"),
        failed,
        build,
    ]
    assert "`orva deploy DIR --name hour-empty`" in lines[0], lines[0]
    assert "fix --memory-mb and run it again (`orva functions update --help`" in lines[1]
    assert "`orva functions list`" in lines[2] and "`orva keys list`" in lines[3]
    assert "`orva keys create NAME -p write`" in lines[4] and "`orva routes list`" in lines[5]
    cli.ok("functions", "update", "hour-fails", "--status", "inactive")
    lines.append(error_line(cli.fails(1, "invoke", "hour-fails"), "NOT_ACTIVE"))
    assert "`orva functions update hour-fails --status active`" in lines[-1]
    for line in lines:
        assert "/api/" not in line and "{id}" not in line, line
    # --json: the error as one JSON line, the API's own hint kept beside the CLI's
    done = cli.run("functions", "get", "hour-nope", "--json")
    assert done.returncode == 1 and done.stdout == ""
    document = json.loads(done.stderr)["error"]
    assert document["code"] == "NOT_FOUND" and "/api/v1/functions" in document["hint"]
    assert document["cli_hint"] == "list functions with `orva functions list`" and document["status"] == 404


def test_unreachable_orvad_is_one_line_and_exit_3(cli: Cli) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (
        ["functions", "list"],
        ["invoke", "hello"],
        ["deploy", str(ROOT / "runtimes"), "--name", "x"],
        ["login", "--endpoint", dead, "--api-key", "orva_" + "0" * 64],
    ):
        done = cli.run(*args, env={"ORVA_ENDPOINT": dead})
        assert done.returncode == 3 and done.stderr.count("\n") == 1, (args, done)
        line = error_line(done.stderr, "CONNECTION_FAILED")
        assert f"cannot reach orvad at {dead}" in line and "is orvad running? (make run)" in line, line


def _api_hints() -> list[str]:
    """Every hint orvad's source writes (hint=... and default_hint = ...), f-string holes as X."""
    found = []
    for path in (ROOT / "orvad").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            value = None
            if isinstance(node, ast.keyword) and node.arg == "hint":
                value = node.value
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "default_hint" for t in node.targets
            ):
                value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.append(value.value)
            elif isinstance(value, ast.JoinedStr):
                found.append("".join(v.value if isinstance(v, ast.Constant) else "X" for v in value.values))
    return found


def test_every_api_hint_orvad_writes_becomes_an_orva_command() -> None:
    hints = [h for h in _api_hints() if "/api/v1/" in h]
    assert len(hints) > 10
    for hint in hints:
        for fn in ("hello", None):
            said = _translated(hint, fn)
            assert "/api/" not in said and "{id}" not in said and "`orva " in said, (hint, said)
    assert (
        _translated("read the execution's logs at GET /api/v1/executions/019e-abc/logs", "hello")
        == "read the execution's logs at `orva logs hello --execution 019e-abc`"
    )
    assert (
        _translated('resume the function with PUT /api/v1/functions/{id} {"status": "active"}', "f")
        == "resume the function with `orva functions update f`"
    )
