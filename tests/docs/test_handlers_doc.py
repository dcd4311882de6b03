"""docs/HANDLERS.md's examples are true (issue 18.12): each is deployed to a real orvad and called as
the page shows.

The page's shape, which this test reads (the shell conventions are tests/doc_shell.py's):
- a ```python or ```js block is an example handler, deployed as its own function: `handler.py` /
  `handler.js`, or the file the fence names (```js handler.mjs, which becomes the entrypoint);
- the ```sh block after it calls it: the function's name is the first `/fn/<name>` there, and every
  command's `# →` output is checked, on this orvad's port;
- a ```text block after those calls is the logs the last call wrote: compared with that execution's logs;
- ```sh blocks before the first example run first (they set `K`, the admin key header). The shell runs
  in the folder holding orvad's data dir as `./data`, as under `make run`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.doc_shell import Block, Shell, check_step, code_blocks
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "HANDLERS.md"
RUNTIMES = {"python": ("python", "handler.py"), "js": ("node", "handler.js")}
CALL_DEADLINE_S = 60.0


@dataclass
class Example:
    code: Block
    calls: Block | None = None
    logs: Block | None = None

    @property
    def name(self) -> str:
        assert self.calls is not None
        found = re.search(r"/fn/([a-z][a-z0-9_-]*)", self.calls.text)
        assert found, f"the calls at line {self.calls.line} name no /fn/<function>"
        return found.group(1)

    @property
    def runtime(self) -> str:
        return RUNTIMES[self.code.language][0]

    @property
    def filename(self) -> str:
        return self.code.info[0] if self.code.info else RUNTIMES[self.code.language][1]


def page_examples(blocks: list[Block]) -> tuple[list[Block], list[Example]]:
    """(the setup sh blocks, the examples with their calls and logs)."""
    setup: list[Block] = []
    examples: list[Example] = []
    for block in blocks:
        current = examples[-1] if examples else None
        if block.language in RUNTIMES:
            assert current is None or current.calls is not None, (
                f"the example at line {current.code.line} has no calls"
            )
            examples.append(Example(block))
        elif block.language == "sh":
            if current is None:
                setup.append(block)
            else:
                assert current.calls is None, (
                    f"line {block.line}: a second sh block for the example at {current.code.line}"
                )
                current.calls = block
        elif block.language == "text" and current is not None and current.calls is not None:
            assert current.logs is None, (
                f"line {block.line}: a second logs block for the example at {current.code.line}"
            )
            current.logs = block
    assert examples and examples[-1].calls is not None, "the last example has no calls"
    return setup, examples


def test_the_page_has_examples_for_both_runtimes_and_every_topic() -> None:
    _, examples = page_examples(code_blocks(PAGE.read_text()))
    assert {e.runtime for e in examples} == {"python", "node"}
    names = [e.name for e in examples]
    assert len(names) == len(set(names)), f"two examples share a function name: {names}"
    text = PAGE.read_text()
    for topic in (
        "## The event",
        "## The context",
        "## What a handler returns",
        "## Binary bodies",
        "## Streaming",
        "## Logs",
        "## Errors",
        "limit",
    ):
        assert topic in text, topic


def test_every_example_on_the_page_runs_as_shown(make_orvad: Callable[..., Orvad], jail_tmp: Path) -> None:
    server = make_orvad(data_dir=jail_tmp / "data")
    setup, examples = page_examples(code_blocks(PAGE.read_text()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORVA_")} | {"HOME": str(jail_tmp)}
    shell = Shell(jail_tmp, env, jail_tmp / "shell")
    failures: list[str] = []
    try:
        with server.admin() as admin:
            for block in setup:
                failures += _run(shell, block, server.port)
            for example in examples:
                failure = _deploy(admin, example)
                if failure is not None:
                    failures.append(failure)
                    continue
                assert example.calls is not None
                failures += _run(shell, example.calls, server.port)
                if example.logs is not None:
                    failures += _check_logs(admin, example)
    finally:
        shell.close()
    assert not failures, "\n\n".join(failures)


def _run(shell: Shell, block: Block, port: int) -> list[str]:
    failures = []
    for step in block.steps():
        failure = check_step(shell, step.on_port(port), CALL_DEADLINE_S)
        if failure is not None:
            failures.append(f"docs/HANDLERS.md line {block.line}: {failure}")
    return failures


def _deploy(admin: httpx.Client, example: Example) -> str | None:
    extra = {} if example.filename == RUNTIMES[example.code.language][1] else {"entrypoint": example.filename}
    create_function(admin, example.name, example.runtime, **extra)
    record = wait_deployed(
        admin, deploy_inline(admin, example.name, example.code.text, filename=example.filename)["id"]
    )
    if record["status"] == "succeeded":
        return None
    lines = admin.get(f"/api/v1/deployments/{record['id']}/logs").json()["lines"]
    log = "\n".join(line["line"] for line in lines)
    return (
        f"docs/HANDLERS.md line {example.code.line}: the example did not build ({record['status']}):\n{log}"
    )


def _check_logs(admin: httpx.Client, example: Example) -> list[str]:
    """The logs the example's last call wrote are the ones the page shows (rows land a moment later)."""
    assert example.logs is not None
    logs: dict[str, str] = {}

    def written() -> bool:
        newest = admin.get("/api/v1/executions", params={"function_id": example.name, "limit": 1}).json()[
            "executions"
        ]
        if not newest:
            return False
        answer = admin.get(f"/api/v1/executions/{newest[0]['id']}/logs")
        if answer.status_code != 200:
            return False
        logs["text"] = answer.json()["logs"]
        return True

    wait_for(written, 10.0, f"the logs of {example.name}'s call")
    if logs["text"].strip() == example.logs.text.strip():
        return []
    return [
        f"docs/HANDLERS.md line {example.logs.line}: {example.name}'s logs are\n{logs['text']}\n"
        f"not what the page shows:\n{example.logs.text}"
    ]


def test_shown_output_is_matched_strictly() -> None:
    """The `# →` checks these pages rely on: JSON by value (`…` only where the page writes it), text by line."""
    from tests.doc_shell import output_mismatch

    assert output_mismatch(['{"hello": "orva"}'], '{"hello":"orva"}') is None
    assert output_mismatch(['{"hello": "orva"}'], '{"hello": "orva", "extra": 1}') is not None
    assert output_mismatch(['{"hello": "orva"}'], '{"hello": "world"}') is not None
    assert output_mismatch(['{"status": "ok", …}'], '{"status": "ok", "version": "0.1"}') is None
    assert output_mismatch(['{"status": "ok", …}'], '{"status": "degraded", "version": "0.1"}') is not None
    assert output_mismatch(['{"a": {"id": "…"}, …}'], '{"a": {"id": "x"}, "b": 2}') is None
    assert output_mismatch(['{"a": {"id": "…"}, …}'], '{"a": {"id": "x", "more": 1}}') is not None
    assert output_mismatch(['{"n": 1}'], '{"n": true}') is not None
    assert output_mismatch(["ff 01 00"], " ff 01 00\n") is None
    assert output_mismatch(["ff 01 00"], " ff 01 01\n") is not None
    assert output_mismatch(["HTTP/1.1 201…", "created"], "HTTP/1.1 201 \r\nx: 1\r\n\r\ncreated") is None
    assert output_mismatch(["created", "HTTP/1.1 201…"], "HTTP/1.1 201 \r\n\r\ncreated") is not None  # order
    assert output_mismatch(["one"], "") is not None
