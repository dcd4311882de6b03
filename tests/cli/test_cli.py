"""The `orva` CLI run as a subprocess against the shared real orvad, with HOME in a temporary folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from orva_cli.main import cli as orva_group
from tests.helpers import Orvad, free_port, wait_for

APP_V = """import os
import six

def handler(event, context):
    print("served version %d")
    here = os.path.dirname(os.path.abspath(__file__))
    return {"v": %d, "six": six.__version__, "files": sorted(f for f in os.listdir(here) if not f.startswith(".")),
            "method": event["method"], "path": event["path"], "body": event["body"],
            "header": event["headers"].get("x-test")}
"""
SERVED = """import os

def handler(event, context):
    print("token is set:", "API_TOKEN" in os.environ)
    if event["path"] == "/missing":
        return {"statusCode": 404, "body": "nothing here"}
    if event["path"] == "/boom":
        raise RuntimeError("boom")
    return {"token": os.environ.get("API_TOKEN")}
"""
TERMINAL_ENV = ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")


@dataclass
class Cli:
    home: Path
    env: dict[str, str] = field(default_factory=dict)

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # neither the developer's ORVA_* settings nor a CI's colour forcing may leak into a test
        base = {k: v for k, v in os.environ.items() if not k.startswith("ORVA_") and k not in TERMINAL_ENV}
        return {**base, "HOME": str(self.home), **self.env, **(extra or {})}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "orva_cli", *args]

    def run(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        # stdin is never the developer's terminal: a command must not stop to ask
        stdin = None if input is not None else subprocess.DEVNULL
        return subprocess.run(
            self.argv(*args),
            env=self.environ(env),
            input=input,
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=cwd,
        )

    def run_all(self, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
        """Independent commands at once (each is mostly Python's start-up): their results in order."""
        procs = [
            subprocess.Popen(
                self.argv(*args),
                env=self.environ(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for args in commands
        ]
        outputs = [p.communicate(timeout=300) for p in procs]
        return [
            subprocess.CompletedProcess(p.args, p.returncode, *out)
            for p, out in zip(procs, outputs, strict=True)
        ]

    def ok(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, **kwargs)
        assert done.returncode == 0, (
            f"orva {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
        assert "\x1b" not in done.stderr + done.stdout  # no spinner or colour when not on a terminal
        return done

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.ok(*args, "--json", **kwargs).stdout)

    def fails(self, code: int, *args: str, **kwargs: Any) -> str:
        """Run a command that must exit with `code`; its stderr."""
        done = self.run(*args, **kwargs)
        assert done.returncode == code, (
            f"orva {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
        return done.stderr


def error_line(stderr: str, code: str) -> str:
    """The `error: CODE: message (hint: ...)` line an API error prints, as the last line of stderr."""
    lines = stderr.strip().splitlines()
    assert lines and lines[-1].startswith(f"error: {code}: "), stderr
    return lines[-1]


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@contextlib.contextmanager
def logged_in(orvad: Orvad, home: Path, *prefixes: str) -> Iterator[Cli]:
    """A CLI logged in to orvad with the admin key (kept in HOME's ~/.orva/config.yaml); at the end the
    functions whose names start with one of prefixes are deleted."""
    runner = Cli(home)
    runner.ok("login", "--endpoint", orvad.url, "--api-key", orvad.admin_key)
    yield runner
    with orvad.admin() as c:  # the shared server goes on to other modules: stop this module's warm workers
        for fn in c.get("/api/v1/functions", params={"limit": 500}).json()["functions"]:
            if fn["name"].startswith(prefixes):
                c.delete(f"/api/v1/functions/{fn['id']}")


@pytest.fixture(scope="module")
def cli(orvad: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A CLI logged in to the shared orvad with the admin key."""
    with logged_in(orvad, tmp_path_factory.mktemp("home"), "cli-") as runner:
        yield runner


@pytest.fixture(scope="module")
def served(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small deployed function that reports its API_TOKEN secret."""
    folder = write_tree(tmp_path_factory.mktemp("served"), {"handler.py": SERVED})
    cli.ok("deploy", str(folder), "--name", "cli-served")
    return "cli-served"


def test_help_explains_every_command_with_an_example() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "orva"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "flags, then the environment" in done.stdout
    for name in (
        "functions",
        "deploy",
        "invoke",
        "logs",
        "deployments",
        "rollback",
        "diff",
        "secrets",
        "routes",
        "keys",
        "pool",
        "system",
        "completion",
        "login",
    ):
        assert f"  {name} " in done.stdout, name

    def walk(group: click.Group, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, command in group.commands.items():
            found += walk(command, [*path, name]) if isinstance(command, click.Group) else [[*path, name]]
        return found

    commands = walk(orva_group, [])
    assert len(commands) > 30
    for path in commands:  # in-process: 40 subprocesses would only measure Python's start-up
        result = CliRunner().invoke(orva_group, [*path, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, (path, result.output)


def test_login_checks_the_key_before_writing_the_config_0600(orvad: Orvad, tmp_path: Path) -> None:
    runner = Cli(tmp_path)
    stderr = runner.fails(1, "login", "--endpoint", orvad.url, "--api-key", "orva_" + "0" * 64)
    assert "was refused" in error_line(stderr, "UNAUTHORIZED")
    assert not (tmp_path / ".orva").exists()
    (tmp_path / ".orva").mkdir(mode=0o755)  # left open by someone: login closes it
    (tmp_path / ".orva" / "config.yaml").write_text("endpoint: [unclosed\n")
    (tmp_path / ".orva" / "config.yaml").chmod(0o644)
    assert "config.yaml" in error_line(runner.fails(1, "functions", "list"), "CONFIG")
    done = runner.ok("login", "--endpoint", orvad.url + "/", input=orvad.admin_key + "\n")  # key from stdin
    assert orvad.admin_key not in done.stdout + done.stderr
    config = tmp_path / ".orva" / "config.yaml"
    assert (
        stat.S_IMODE(config.stat().st_mode) == 0o600 and stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    )
    assert (
        f"endpoint: {orvad.url}\n" in config.read_text()
        and f"api_key: {orvad.admin_key}" in config.read_text()
    )
    assert runner.json("functions", "list") is not None


def test_flags_beat_environment_beat_config_file(cli: Cli, orvad: Orvad) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    bad_key = "orva_" + "f" * 64
    # the file alone (the fixture's login) works
    cli.ok("functions", "list")
    # the environment beats the file ...
    stderr = cli.fails(3, "functions", "list", env={"ORVA_ENDPOINT": dead})
    assert (
        f"cannot reach orvad at {dead}" in error_line(stderr, "CONNECTION_FAILED")
        and "ORVA_ENDPOINT" in stderr
    )
    assert "ORVA_API_KEY" in error_line(
        cli.fails(1, "functions", "list", env={"ORVA_API_KEY": bad_key}), "UNAUTHORIZED"
    )
    # ... and flags beat the environment
    both_bad = {"ORVA_ENDPOINT": dead, "ORVA_API_KEY": bad_key}
    cli.ok("--endpoint", orvad.url, "--api-key", orvad.admin_key, "functions", "list", env=both_bad)
    assert "--api-key" in error_line(cli.fails(1, "--api-key", bad_key, "functions", "list"), "UNAUTHORIZED")
    # with no file, the environment alone is enough
    bare = Cli(cli.home / "elsewhere", {"ORVA_ENDPOINT": orvad.url, "ORVA_API_KEY": orvad.admin_key})
    bare.ok("functions", "list")
    assert "no API key" in error_line(
        Cli(cli.home / "elsewhere", {"ORVA_ENDPOINT": orvad.url}).fails(1, "functions", "list"),
        "UNAUTHORIZED",
    )


def test_usage_errors_exit_2(cli: Cli) -> None:
    commands = [
        ["no-such-command"],
        ["invoke"],
        ["invoke", "x", "--data", "{not json"],
        ["rollback", "x"],
        ["pool", "set", "x"],
        ["functions", "create", "x"],
        ["functions", "delete", "x"],
        ["deploy", "/no/such/dir", "--name", "x"],
        ["completion", "tcsh"],
        ["invoke", "x", "-H", "nocolon"],
    ]
    for args, done in zip(commands, cli.run_all(*commands), strict=True):
        assert done.returncode == 2 and "Usage: orva" in done.stderr, (args, done.stderr)


@pytest.mark.sandbox
def test_deploy_with_a_dependency_then_invoke_logs_diff_and_rollback(cli: Cli, tmp_path: Path) -> None:
    app = write_tree(
        tmp_path / "app",
        {
            "handler.py": APP_V % (1, 1),
            "requirements.txt": "six==1.16.0\n",
            "lib/util.py": "X = 1\n",
            ".orvaignore": "notes/\n*.secret\n!keep.secret\n",
            "notes/todo.txt": "x",
            "token.secret": "x",
            "keep.secret": "x",
            ".git/HEAD": "x",
        },
    )
    done = cli.ok("deploy", str(app), "--name", "cli-app", "--runtime", "python")
    assert "creating function cli-app" in done.stderr and "Successfully installed six-1.16.0" in done.stderr
    assert "- installing" in done.stderr and done.stdout.startswith("deployed cli-app version 1 ")

    body = cli.json("invoke", "cli-app")["body"]
    assert body["v"] == 1 and body["six"] == "1.16.0" and body["method"] == "GET"
    assert {"handler.py", "requirements.txt", "lib", "keep.secret"} <= set(body["files"])
    assert not {"notes", "token.secret", ".orvaignore"} & set(body["files"])

    plain = cli.ok(
        "invoke", "cli-app", "--data", '{"a": 1}', "-X", "put", "--path", "/items/7?x=1", "-H", "X-Test: yes"
    )
    echoed = json.loads(plain.stdout)
    assert echoed["method"] == "PUT" and echoed["path"] == "/items/7" and echoed["header"] == "yes"
    assert json.loads(echoed["body"]) == {"a": 1}
    head = cli.ok("invoke", "cli-app", "-i").stdout
    assert head.startswith("HTTP/1.1 200 OK\n") and "x-orva-execution-id:" in head.lower()
    (tmp_path / "event.json").write_text('{"from": "file"}')
    assert json.loads(
        cli.json("invoke", "cli-app", "--data", f"@{tmp_path / 'event.json'}")["body"]["body"]
    ) == {"from": "file"}

    wait_for(lambda: "served version 1" in cli.ok("logs", "cli-app").stdout, 10, "the execution log")
    logged = [json.loads(line) for line in cli.ok("logs", "cli-app", "-n", "2", "--json").stdout.splitlines()]
    assert len(logged) == 2 and all(r["logs"] == "served version 1\n" for r in logged)
    assert logged[0]["started_at"] <= logged[1]["started_at"]  # oldest first

    (app / "handler.py").write_text(APP_V % (2, 2))
    cli.ok("deploy", str(app), "--name", "cli-app")
    assert cli.json("invoke", "cli-app")["body"]["v"] == 2
    first, second = [d for d in reversed(cli.json("deployments", "cli-app")) if d["source"] == "archive"]
    assert cli.ok("deployments", "cli-app").stdout.split("\n")[0].split()[:3] == ["VERSION", "ID", "STATUS"]

    diff = cli.ok("diff", "cli-app", first["id"], second["id"]).stdout
    assert "--- a/handler.py\n+++ b/handler.py\n" in diff
    assert '-    print("served version 1")\n+    print("served version 2")\n' in diff
    assert [f["kind"] for f in cli.json("diff", "cli-app", first["id"], second["id"])["files"]] == [
        "handler",
        "manifest",
    ]
    assert cli.ok("diff", "cli-app", "1", "2").stdout == diff  # version numbers stand for their deployments
    error_line(cli.fails(1, "diff", "cli-app", "1", "99"), "VERSION_NOT_FOUND")

    rolled = cli.json("rollback", "cli-app", first["id"])
    assert rolled["source"] == "rollback" and rolled["parent_deployment_id"] == first["id"]
    assert cli.json("invoke", "cli-app")["body"]["v"] == 1
    assert "already active" in error_line(cli.fails(1, "rollback", "cli-app", first["id"]), "VALIDATION")
    assert cli.ok("rollback", "cli-app", str(second["version"])).stdout.startswith("rolled back cli-app")
    assert cli.json("invoke", "cli-app")["body"]["v"] == 2
    cli.ok("rollback", "cli-app", "--hash", first["code_hash"])
    assert cli.json("invoke", "cli-app")["body"]["v"] == 1
    assert cli.ok("rollback", "cli-app", "--hash", second["code_hash"]).stdout.startswith(
        "rolled back cli-app"
    )
    assert cli.json("invoke", "cli-app")["body"]["v"] == 2
    error_line(cli.fails(1, "rollback", "cli-app", "--hash", "0" * 64), "VERSION_NOT_FOUND")


def test_failed_build_exits_1_with_the_reason(cli: Cli, tmp_path: Path) -> None:
    bad = write_tree(
        tmp_path / "bad", {"handler.js": "exports.handler = async () => 1;\n", "package.json": "not json"}
    )
    done = cli.run("deploy", str(bad), "--name", "cli-broken")
    assert done.returncode == 1, done.stderr
    assert "package.json is not a valid JSON object" in error_line(done.stderr, "BUILD_FAILED")
    assert "build failed: package.json" in done.stderr  # the live log was followed
    assert cli.json("functions", "get", "cli-broken")["status"] == "error"
    assert "no handler.py" in cli.fails(
        2, "deploy", str(bad), "--name", "cli-broken-2", "--runtime", "python"
    )


@pytest.mark.sandbox
def test_api_and_connection_errors_are_one_line_and_exit_1(cli: Cli, served: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    unknown, invoke_unknown, logs_unknown, deployments_unknown, boom, missing, unreachable = cli.run_all(
        ["functions", "get", "cli-nope"],
        ["invoke", "cli-nope"],
        ["logs", "cli-nope"],
        ["deployments", "cli-nope"],
        ["invoke", served, "--path", "/boom"],
        ["invoke", served, "--path", "/missing"],
        ["--endpoint", dead, "system", "health"],
    )
    for done in (unknown, invoke_unknown, logs_unknown, deployments_unknown, boom, missing, unreachable):
        assert done.returncode == (3 if done is unreachable else 1) and done.stderr.count("\n") == 1, done
    assert error_line(unknown.stderr, "NOT_FOUND").startswith(
        "error: NOT_FOUND: no function 'cli-nope' (hint: "
    )
    for done in (invoke_unknown, logs_unknown, deployments_unknown):
        error_line(done.stderr, "NOT_FOUND")
    assert "RuntimeError: boom" in error_line(boom.stderr, "FUNCTION_ERROR")
    # the handler's own 404: its body on stdout, and exit 1
    assert missing.stdout == "nothing here" and "answered 404 Not Found" in error_line(
        missing.stderr, "HTTP_404"
    )
    assert "--endpoint" in error_line(unreachable.stderr, "CONNECTION_FAILED")


def test_functions_create_get_update_list_delete(cli: Cli) -> None:
    made = cli.json(
        "functions",
        "create",
        "cli-crud",
        "--runtime",
        "node",
        "--memory-mb",
        "256",
        "--env",
        "A=1",
        "--env",
        "B=2",
    )
    assert (
        made["status"] == "created"
        and made["entrypoint"] == "handler.js"
        and made["env_vars"] == {"A": "1", "B": "2"}
    )
    error_line(cli.fails(1, "functions", "create", "cli-crud", "--runtime", "node"), "CONFLICT")
    changed = cli.json(
        "functions", "update", "cli-crud", "--env", "C=3", "--unset-env", "A", "--timeout-ms", "5000"
    )
    assert changed["env_vars"] == {"B": "2", "C": "3"} and changed["timeout_ms"] == 5000
    assert made["csp_sandbox"] is True and made["signature_version"] == 2
    flags = cli.json("functions", "update", "cli-crud", "--no-csp-sandbox", "--signature-version", "1")
    assert flags["csp_sandbox"] is False and flags["signature_version"] == 1 and flags["timeout_ms"] == 5000
    assert cli.json("functions", "get", made["id"])["name"] == "cli-crud"  # by id as well as by name
    assert "cli-crud" in [f["name"] for f in cli.json("functions", "list")]
    assert "cli-crud" in [f["name"] for f in cli.json("--json", "functions", "list", "--runtime", "node")]
    table = cli.ok("functions", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "RUNTIME", "STATUS"] and any(
        r.startswith("cli-crud ") for r in table
    )
    error_line(cli.fails(1, "functions", "update", "cli-crud", "--memory-mb", "1"), "VALIDATION")
    assert cli.json("functions", "delete", "cli-crud", "--yes")["deleted"] is True
    error_line(cli.fails(1, "functions", "get", "cli-crud"), "NOT_FOUND")


@pytest.mark.sandbox
def test_secrets_set_list_delete_never_print_values(cli: Cli, served: str) -> None:
    value = "s3cret-value-123"
    done = cli.ok("secrets", "set", served, "API_TOKEN", input=value)
    assert value not in done.stdout + done.stderr
    listed = cli.ok("secrets", "list", served).stdout
    assert "API_TOKEN" in listed and value not in listed
    assert [s["key"] for s in cli.json("secrets", "list", served)] == ["API_TOKEN"]
    # the pool is replaced in the background; the new value arrives with the new workers
    wait_for(lambda: cli.json("invoke", served)["body"] == {"token": value}, 30, "the secret in the function")
    cli.ok("secrets", "delete", served, "API_TOKEN")
    assert cli.json("secrets", "list", served) == []
    error_line(cli.fails(1, "secrets", "delete", served, "API_TOKEN"), "NOT_FOUND")


@pytest.mark.sandbox
def test_routes_set_list_replace_delete(cli: Cli, served: str, orvad: Orvad) -> None:
    made = cli.json("routes", "set", "/cli/hook", served, "--methods", "POST")
    assert made["function_name"] == served and made["methods"] == "POST"
    with orvad.client() as anonymous:
        assert (
            anonymous.post("/cli/hook").status_code == 200 and anonymous.get("/cli/hook").status_code == 405
        )
        assert cli.ok("routes", "set", "/cli/hook", served, "--methods", "GET,POST").stdout.startswith(
            "/cli/hook ->"
        )
        assert anonymous.get("/cli/hook").status_code == 200
    listed = cli.json("routes", "list", "--function", served)
    assert [(r["path"], r["methods"]) for r in listed] == [("/cli/hook", "GET,POST")]
    assert "/cli/hook" in cli.ok("routes", "list").stdout
    cli.ok("routes", "delete", "/cli/hook")
    assert cli.json("routes", "list", "--function", served) == []
    error_line(cli.fails(1, "routes", "delete", "/cli/hook"), "NOT_FOUND")
    error_line(cli.fails(1, "routes", "set", "/api/x", served), "VALIDATION")


def test_keys_create_list_revoke(cli: Cli, orvad: Orvad) -> None:
    done = cli.ok("keys", "create", "cli-reader", "-p", "read")
    key = done.stdout.strip()
    assert key.startswith("orva_") and "\n" not in key and "not shown again" in done.stderr
    listed = cli.ok("keys", "list").stdout + json.dumps(cli.json("keys", "list"))
    assert "cli-reader" in listed and key not in listed
    reader = Cli(cli.home, {"ORVA_API_KEY": key})
    reader.ok("functions", "list")
    assert "'write'" in error_line(
        reader.fails(1, "functions", "create", "cli-nokey", "--runtime", "python"), "FORBIDDEN"
    )
    [row] = [k for k in cli.json("keys", "list") if k["name"] == "cli-reader"]
    assert row["permissions"] == ["read"]
    assert cli.json("keys", "revoke", row["id"])["deleted"] is True
    error_line(reader.fails(1, "functions", "list"), "UNAUTHORIZED")
    created = cli.json("keys", "create", "cli-json", "--expires-in-days", "1")
    assert created["key"].startswith("orva_") and created["expires_at"]
    cli.ok("keys", "revoke", created["id"])


@pytest.mark.sandbox
def test_pool_and_system(cli: Cli, served: str) -> None:
    pool = cli.json("pool", "set", served, "--max-warm", "4", "--no-scale-to-zero")
    assert pool["max_warm"] == 4 and pool["scale_to_zero"] is False
    assert cli.json("pool", "get", served)["max_warm"] == 4
    assert "max_warm" in cli.ok("pool", "get", served).stdout
    error_line(cli.fails(1, "pool", "set", served, "--min-warm", "9", "--max-warm", "2"), "VALIDATION")
    assert cli.json("system", "health")["status"] == "ok"
    assert cli.ok("system", "health").stdout.startswith("ok ")
    assert cli.json("system", "metrics")["invocations_total"] >= 0
    assert "invocations_total" in cli.ok("system", "metrics").stdout
    assert "# TYPE orva_invocations_total counter" in cli.ok("system", "metrics", "--prometheus").stdout


@pytest.mark.sandbox
def test_logs_follow_streams_new_executions(cli: Cli, served: str, orvad: Orvad, tmp_path: Path) -> None:
    out, err = tmp_path / "follow.out", tmp_path / "follow.err"
    with out.open("w") as sink, err.open("w") as errors:
        follower = subprocess.Popen(
            cli.argv("logs", served, "-n", "1", "--follow", "--json"),
            env=cli.environ(),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=errors,
        )
    try:
        wait_for(lambda: "following" in err.read_text(), 10, "the follower to start")
        seen_before = {json.loads(line)["id"] for line in out.read_text().splitlines()}
        with orvad.client() as anonymous:
            # the subscription starts just after the notice: invoke until an execution shows up live
            def shown() -> bool:
                anonymous.get(f"/fn/{served}/live")
                return any(
                    json.loads(ln)["path"] == "/live"
                    for ln in out.read_text().splitlines()
                    if json.loads(ln)["id"] not in seen_before
                )

            wait_for(shown, 20, "a live execution in `logs --follow`", interval_s=0.2)
        live = [json.loads(ln) for ln in out.read_text().splitlines() if '"/live"' in ln]
        assert live[0]["logs"].startswith("token is set:") and live[0]["status"] == "success"
    finally:
        follower.send_signal(signal.SIGINT)
        try:
            assert follower.wait(timeout=10) == 0
        finally:
            if follower.poll() is None:  # never leave it running for the rest of the suite
                follower.kill()
                follower.wait()


def test_completion_scripts(cli: Cli) -> None:
    shells = {"bash": "complete -o nosort -F", "zsh": "#compdef orva", "fish": "complete --no-files"}
    for (shell, marker), done in zip(
        shells.items(), cli.run_all(*(["completion", s] for s in shells)), strict=True
    ):
        assert done.returncode == 0 and marker in done.stdout and "_ORVA_COMPLETE" in done.stdout, shell


def _on_a_terminal(cli: Cli, *args: str) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal: (exit code, everything the terminal was sent)."""
    import pty

    env = cli.environ({"TERM": "xterm-256color", "COLUMNS": "120"})
    master, slave = pty.openpty()
    proc = subprocess.Popen(cli.argv(*args), env=env, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process and its terminal are gone
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_deploy_shows_a_spinner_and_diff_is_coloured(
    cli: Cli, served: str, tmp_path: Path
) -> None:
    folder = write_tree(tmp_path / "v2", {"handler.py": SERVED + "# v2\n"})
    code, shown = _on_a_terminal(cli, "deploy", str(folder), "--name", served)
    assert code == 0 and f"building {served}" in shown and "\x1b[" in shown, shown
    older, newer = [d["id"] for d in cli.json("deployments", served)][1::-1]
    code, shown = _on_a_terminal(cli, "diff", served, older, newer)
    assert code == 0 and "\x1b[32m+# v2" in shown, shown


def test_docs_cli_md_shows_every_command() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "CLI.md").read_text()
    for name, command in orva_group.commands.items():
        subcommands = command.commands if isinstance(command, click.Group) else {"": None}
        for sub in subcommands:
            assert f"orva {name} {sub}".strip() in text, f"docs/CLI.md has no example of `orva {name} {sub}`"
    for needed in ("ORVA_ENDPOINT", "ORVA_API_KEY", "~/.orva/config.yaml", "0600", "Exit codes"):
        assert needed in text


def test_a_terminal_escape_in_a_listed_name_is_shown_not_obeyed(
    make_orvad: Callable[..., Orvad], tmp_path: Path
) -> None:
    """A key holder names something with a terminal escape (set the window title, hide text): tables
    print it escaped, so the operator's terminal never obeys it. (An orvad of its own: on the shared one,
    other modules' keys narrow the table's name column.)"""
    server = make_orvad()
    evil = "ci\x1b]0;pwned\x07\x1b[8mhidden\u202e"
    with server.admin() as c:
        r = c.post("/api/v1/keys", json={"name": evil, "permissions": ["read"]})
        assert r.status_code == 201, r.text
    with logged_in(server, tmp_path) as cli:
        code, shown = _on_a_terminal(cli, "keys", "list")
    assert code == 0 and "ci\\x1b]0" in shown, shown  # escaped (the name column cuts the rest)
    assert "\x1b]0;" not in shown and "\x1b[8m" not in shown and "\u202e" not in shown
