"""A page's shell blocks run as a reader would type them (tests/docs/test_readme.py, tests/docs/test_handlers_doc.py).

The conventions the pages follow, and that these helpers check:

- A ```sh block is a terminal session: each command (a line, with the lines its trailing `\\` continues)
  is one step, run with bash in one long-lived shell per page, so variables carry from step to step and
  block to block, as in a reader's terminal. Comment lines are skipped.
- `# → TEXT` lines right after a command are the output the page shows for it, each line checked in
  order against the lines the command printed on stdout:
  - TEXT that is JSON is compared as JSON with an output line (or the whole output): a `"…"` value
    matches any value, and a `…` member (`{"status": "ok", …}`) allows members the page does not show;
  - other TEXT must equal an output line (surrounding spaces ignored), where `…` matches any text.
- Pages say port 8443. A test's orvad listens on a free port instead: `8443` in every command and expected
  line is replaced with that port before it runs (and the test sets `ORVA_PORT`, which `make run` honours).
- A command's stdin is /dev/null (a prompt fails instead of waiting); every step must exit 0.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAGE_PORT = "8443"
EXPECT = "# →"
ANY = "…"


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)

    def on_port(self, port: int) -> Step:
        return Step(
            self.command.replace(PAGE_PORT, str(port)),
            [e.replace(PAGE_PORT, str(port)) for e in self.expected],
        )


@dataclass
class Block:
    language: str
    text: str
    line: int  # where the block starts in its page (1-based), for messages
    info: tuple[str, ...] = ()  # the fence's words after the language (```js handler.mjs)

    def steps(self) -> list[Step]:
        steps: list[Step] = []
        pending: list[str] = []
        for raw in self.text.splitlines():
            stripped = raw.strip()
            if pending:
                pending.append(raw)
                if not stripped.endswith("\\"):
                    steps.append(Step("\n".join(pending)))
                    pending = []
                continue
            if stripped.startswith(EXPECT):
                assert steps, f"block at line {self.line}: an expected output before any command"
                steps[-1].expected.append(stripped[len(EXPECT) :].strip())
            elif not stripped or stripped.startswith("#"):
                continue
            elif stripped.endswith("\\"):
                pending = [raw]
            else:
                steps.append(Step(raw))
        assert not pending, f"block at line {self.line} ends inside a continued command"
        return steps


_FENCE = re.compile(r"^```(\S*)((?:[ \t]+\S+)*)\s*$")


def code_blocks(markdown: str) -> list[Block]:
    """Every fenced block of a page, in order, with its language tag."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        start, body = i + 1, []
        i += 1
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        assert i < len(lines), f"the block at line {start} is never closed"
        blocks.append(Block(match.group(1), "\n".join(body) + "\n", start, tuple(match.group(2).split())))
        i += 1
    return blocks


# --- expected output ---


def _expected_json(text: str) -> Any:
    """The page's JSON with `…` members made explicit, or None when the text is not JSON."""
    if text[:1] not in ("{", "[", '"') and not re.fullmatch(r"-?\d+(\.\d+)?|true|false|null", text):
        return None
    spelled = re.sub(r"([{,])\s*…\s*(?=})", lambda m: m.group(1) + '"…": "…"', text)
    try:
        return json.loads(spelled)
    except ValueError:
        return None


def json_matches(expected: Any, actual: Any) -> bool:
    if expected == ANY:
        return True
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        shown = {k: v for k, v in expected.items() if k != ANY}
        if ANY not in expected and set(shown) != set(actual):
            return False
        return all(k in actual and json_matches(v, actual[k]) for k, v in shown.items())
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(json_matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return (
        type(expected) is type(actual)
        and expected == actual
        or (
            isinstance(expected, int | float)
            and isinstance(actual, int | float)
            and not isinstance(actual, bool)
            and expected == actual
        )
    )


def _line_matches(expected: str, line: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split(ANY))
    return re.fullmatch(pattern, line.strip()) is not None


_NOT_JSON = object()


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


def output_mismatch(expected: list[str], output: str) -> str | None:
    """None when every expected line is found in the output, in order; else what is missing."""
    lines = [line.rstrip("\r") for line in output.splitlines()]
    position = 0
    for want in expected:
        as_json = _expected_json(want)
        if as_json is not None and position == 0 and json_matches(as_json, _parsed(output.strip())):
            position = len(lines)
            continue
        for i in range(position, len(lines)):
            if (
                as_json is not None
                and json_matches(as_json, _parsed(lines[i].strip()))
                or (as_json is None and _line_matches(want, lines[i]))
            ):
                position = i + 1
                break
        else:
            return f"expected {want!r} (in order, after line {position}) in the output:\n{output}"
    return None


# --- the reader's terminal ---


class Shell:
    """One bash session: steps run in it one after another, sharing its variables and working folder."""

    def __init__(self, cwd: Path, env: dict[str, str], scratch: Path) -> None:
        self.scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)
        self.stderr_path = scratch / "shell.err"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        self._count = 0
        self._buffer = b""

    def run(self, command: str, deadline_s: float) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of one step; fails past the deadline."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._count += 1
        script = self.scratch / f"step{self._count}.sh"
        script.write_text(command + "\n")
        marker = f"__orva_step_{self._count}_done__"
        err_from = self.stderr_path.stat().st_size
        self.proc.stdin.write(f"source {script} </dev/null; printf '\\n{marker} %d\\n' $?\n".encode())
        self.proc.stdin.flush()
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + deadline_s
        pattern = re.compile(rb"\n" + marker.encode() + rb" (\d+)\n")
        while (found := pattern.search(self._buffer)) is None:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {deadline_s} s running:\n{command}\noutput so far:\n"
                    f"{self._buffer.decode(errors='replace')}\nstderr:\n{self._stderr_since(err_from)}"
                )
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(
                        f"the shell exited while running:\n{command}\n{self._stderr_since(err_from)}"
                    )
                self._buffer += chunk
        output, self._buffer = self._buffer[: found.start()], self._buffer[found.end() :]
        return int(found.group(1)), output.decode(errors="replace"), self._stderr_since(err_from)

    def _stderr_since(self, offset: int) -> str:
        self._stderr.flush()
        with self.stderr_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._stderr.close()


def check_step(shell: Shell, step: Step, deadline_s: float) -> str | None:
    """Run one step; None when it exits 0 and prints what the page shows, else the failure."""
    status, out, err = shell.run(step.command, deadline_s)
    if status != 0:
        return f"`{step.command}` exited with {status}\nstdout:\n{out}\nstderr:\n{err}"
    mismatch = output_mismatch(step.expected, out)
    return None if mismatch is None else f"`{step.command}`: {mismatch}\nstderr:\n{err}"
