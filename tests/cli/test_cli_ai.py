"""`orva ai chat`, `conversations`, `approve`/`reject`, `settings` (issue 22) as a subprocess against a real orvad
and the real local fake provider (tests/assistant/fake_provider.py, on 127.0.0.1): the reply streamed to stdout,
tool calls and results on stderr, approvals by flag or by command, errors in orva's own words."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.assistant.fake_provider import (
    FakeProvider,
    delay,
    error_mid_stream,
    running,
    text,
    tool_call,
    usage,
)
from tests.cli.test_cli import Cli, error_line
from tests.helpers import Orvad

KEY = "sk-fake-cli-0123456789abcdef"
CONVERSATION = re.compile(r"conversation ([0-9a-f-]{36})")


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    yield from running()


@pytest.fixture
def server(make_orvad) -> Orvad:  # type: ignore[no-untyped-def]
    return make_orvad()  # type: ignore[no-any-return]


@pytest.fixture
def cli(server: Orvad, tmp_path: Path) -> Cli:
    runner = Cli(tmp_path / "home")
    runner.home.mkdir()
    runner.ok("login", "--endpoint", server.url, "--api-key", server.admin_key)
    return runner


def _add_provider(server: Orvad, fake: FakeProvider, kind: str = "openai") -> str:
    fake.api_key = KEY
    url = fake.openai_url if kind == "openai" else fake.anthropic_url
    with server.admin() as admin:
        r = admin.post(
            "/api/v1/ai/providers", json={"kind": kind, "label": "fake", "base_url": url, "api_key": KEY}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def _functions(server: Orvad) -> set[str]:
    with server.admin() as admin:
        return {f["name"] for f in admin.get("/api/v1/functions").json()["functions"]}


def test_chat_streams_and_tool_calls_are_approved_or_rejected(
    cli: Cli, server: Orvad, fake_provider: FakeProvider
) -> None:
    _add_provider(server, fake_provider)
    shown = cli.ok(
        "ai", "settings", "--provider", "fake", "--model", "fake-model-1", "--policy", "all_writes"
    )
    assert "fake-model-1" in shown.stdout and "all_writes" in shown.stdout
    assert cli.json("ai", "settings")["max_tool_steps"] >= 1

    # a plain answer: the reply on stdout, the conversation named on stderr
    fake_provider.script([text("Hello there, operator."), usage(30, 5)])
    done = cli.ok("ai", "chat", "hello")
    assert done.stdout == "Hello there, operator.\n"
    found = CONVERSATION.search(done.stderr)
    assert found, done.stderr
    conv = found.group(1)
    assert "30 in / 5 out" in done.stderr
    assert fake_provider.chat_requests()[-1].headers["authorization"] == f"Bearer {KEY}"

    # a write approved by --approve-all: the function exists afterwards
    fake_provider.script(
        [text("Creating it."), tool_call("create_function", {"name": "cli-thumb", "runtime": "python"})],
        [text("Done: cli-thumb exists.")],
    )
    done = cli.ok("ai", "chat", "-c", conv, "make cli-thumb", "--approve-all")
    assert "Creating it." in done.stdout and "Done: cli-thumb exists." in done.stdout
    assert "→ tool create_function" in done.stderr and "waits for approval" in done.stderr
    assert "approved create_function" in done.stderr
    assert "cli-thumb" in _functions(server)

    # a destructive one rejected by --reject-writes: it never runs, the model hears so
    fake_provider.script([tool_call("delete_function", {"function": "cli-thumb"})], [text("Kept it.")])
    done = cli.ok("ai", "chat", "-c", conv, "delete cli-thumb", "--reject-writes")
    assert "rejected delete_function" in done.stderr and "✗" in done.stderr
    assert done.stdout.strip() == "Kept it."
    assert "cli-thumb" in _functions(server)

    # no flag and no terminal: the command stops and names the commands that decide later
    fake_provider.script(
        [tool_call("create_function", {"name": "cli-second", "runtime": "python"})],
        [text("Made cli-second.")],
    )
    stderr = cli.fails(1, "ai", "chat", "-c", conv, "make cli-second")
    line = error_line(stderr, "APPROVAL_NEEDED")
    call = re.search(r"orva ai approve (\S+)`", line)
    assert call, line
    assert "cli-second" not in _functions(server)
    done = cli.ok("ai", "approve", call.group(1))
    assert done.stdout.strip() == "Made cli-second." and "cli-second" in _functions(server)
    # deciding it twice: refused, in words
    stderr = cli.fails(1, "ai", "reject", call.group(1))
    assert "not awaiting approval" in error_line(stderr, "CONFLICT")

    # --json: one frame per line, in order
    fake_provider.script([text("Framed.")])
    frames = [
        json.loads(x) for x in cli.ok("ai", "chat", "-c", conv, "frames?", "--json").stdout.splitlines()
    ]
    events = [f["event"] for f in frames]
    assert events[0] == "message_start" and "delta" in events and events[-1] == "message_end", events

    # the conversation: listed, shown whole, regenerated, deleted
    listed = cli.ok("ai", "conversations", "list")
    assert "hello" in listed.stdout
    whole = cli.ok("ai", "conversations", "show", conv)
    assert (
        "create_function" in whole.stdout
        and "[rejected]" in whole.stdout
        and "Made cli-second." in whole.stdout
    )
    fake_provider.script([text("Framed again.")])
    assert cli.ok("ai", "regenerate", conv).stdout.strip() == "Framed again."
    cli.ok("ai", "conversations", "rename", conv, "cli work")
    cli.ok("ai", "conversations", "archive", conv)
    assert "cli work" not in cli.ok("ai", "conversations", "list").stdout
    assert "cli work" in cli.ok("ai", "conversations", "list", "--archived").stdout
    cli.ok("ai", "conversations", "delete", conv)
    stderr = cli.fails(1, "ai", "conversations", "show", conv)
    assert "orva ai conversations list" in error_line(stderr, "NOT_FOUND")


def test_chat_errors_name_orva_commands(cli: Cli, server: Orvad, fake_provider: FakeProvider) -> None:
    # no provider chosen: where to choose one
    line = error_line(cli.fails(1, "ai", "chat", "hello"), "VALIDATION")
    assert "orva ai settings --provider" in line and "/api/v1" not in line

    # the provider failing mid-stream: what was written is kept, the error says how to check the provider
    _add_provider(server, fake_provider, kind="anthropic")
    cli.ok("ai", "settings", "--provider", "fake", "--model", "fake-model-2")
    fake_provider.script([text("Starting to "), error_mid_stream("Overloaded")])
    done = cli.run("ai", "chat", "hello")
    assert done.returncode == 1, done
    assert done.stdout.startswith("Starting to")
    line = error_line(done.stderr, "PROVIDER_ERROR")
    assert "orva ai providers test" in line and KEY not in done.stderr + done.stdout

    # flags that exclude each other, and a missing message: usage errors (exit 2)
    cli.fails(2, "ai", "chat", "x", "--approve-all", "--reject-writes")
    cli.fails(2, "ai", "chat")
    # the key never reached a response the CLI printed, nor the settings
    with server.admin() as admin:
        assert KEY not in admin.get("/api/v1/ai/settings").text
    assert httpx.get(f"{server.url}/api/v1/ai/settings").status_code == 401


def _answer_on_a_terminal(cli: Cli, prompt: bytes, answer: bytes, *args: str) -> tuple[int, str]:
    """Run with stdin, stdout and stderr on a pseudo-terminal; type `answer` once `prompt` shows. Returns the
    exit code and everything the terminal was sent."""
    import os
    import pty
    import select
    import subprocess
    import time

    env = cli.environ({"TERM": "xterm-256color", "COLUMNS": "160"})
    master, slave = pty.openpty()
    proc = subprocess.Popen(cli.argv(*args), env=env, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    seen, answered, deadline = b"", False, time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the process and its terminal are gone
            break
        if not chunk:
            break
        seen += chunk
        if not answered and prompt in seen:
            os.write(master, answer)
            answered = True
    os.close(master)
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_on_a_terminal_a_held_call_is_asked_about(
    cli: Cli, server: Orvad, fake_provider: FakeProvider
) -> None:
    _add_provider(server, fake_provider)
    cli.ok("ai", "settings", "--provider", "fake", "--model", "fake-model-1", "--policy", "all_writes")
    fake_provider.script(
        [tool_call("create_function", {"name": "cli-asked", "runtime": "python"})],
        [text("Made cli-asked.")],
    )
    code, shown = _answer_on_a_terminal(cli, b"Approve?", b"y\n", "ai", "chat", "make cli-asked")
    assert code == 0, shown
    assert "wants to run create_function" in shown and "Made cli-asked." in shown
    assert "cli-asked" in _functions(server)


def test_ctrl_c_stops_reading_only_and_attach_follows_the_reply(
    cli: Cli, server: Orvad, fake_provider: FakeProvider
) -> None:
    import signal
    import subprocess
    import time

    _add_provider(server, fake_provider)
    cli.ok("ai", "settings", "--provider", "fake", "--model", "fake-model-1")
    fake_provider.script([text("Slow start. ", pieces=1), delay(6), text("Slow end.", pieces=1)])
    proc = subprocess.Popen(
        cli.argv("ai", "chat", "take your time"),
        env=cli.environ(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    got = ""
    while "Slow start." not in got and time.monotonic() < deadline:
        got += proc.stdout.read(1)
    assert "Slow start." in got
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    found = re.search(r"orva ai chat --attach ([0-9a-f-]{36})", stderr)
    assert found, stderr
    # the reply went on in orvad: --attach follows it to its end (the replay included)
    done = cli.ok("ai", "chat", "--attach", found.group(1))
    assert done.stdout == "Slow start. Slow end.\n", done.stdout
    with server.admin() as admin:
        messages = admin.get(f"/api/v1/ai/conversations/{found.group(1)}").json()["messages"]
    assert messages[-1]["content"] == "Slow start. Slow end." and messages[-1]["status"] == "complete"


def test_control_characters_from_the_model_never_reach_the_terminal(
    cli: Cli, server: Orvad, fake_provider: FakeProvider
) -> None:
    """A model (or a tool result it quotes) could write ESC sequences that clear the screen, retitle the terminal
    or overwrite a line to hide text: the CLI prints the text without them."""
    _add_provider(server, fake_provider)
    cli.ok("ai", "settings", "--provider", "fake", "--model", "fake-model-1")
    fake_provider.script([text("Safe\x1b[2J text\x1b]0;pwned\x07 here\r\x9b1m.", pieces=2)])
    done = cli.ok("ai", "chat", "hi")
    assert done.stdout == "Safe[2J text]0;pwned here1m.\n", repr(done.stdout)
    conv = CONVERSATION.search(done.stderr)
    assert conv
    shown = cli.ok("ai", "conversations", "show", conv.group(1)).stdout
    assert "\x1b" not in shown and "\r" not in shown and "\x9b" not in shown
    # --json keeps the text exactly (escaped by JSON), for scripts that want it whole
    fake_provider.script([text("\x1b[31mred", pieces=1)])
    frames = cli.ok("ai", "chat", "-c", conv.group(1), "again", "--json").stdout
    assert "\\u001b[31mred" in frames and "\x1b" not in frames
