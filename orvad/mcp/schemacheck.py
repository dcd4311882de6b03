"""A tool call's arguments against a function's declared ``input_schema``, bounded: in a child process,
within ``CHECK_TIMEOUT_S``, never on orvad's event loop.

JSON Schema checks can cost without limit for small inputs: a ``pattern`` that backtracks (``^(a+)+$``
against 60 characters runs for years, and Python's ``re`` holds the GIL, so a thread would stall the loop
too), ``uniqueItems`` compares every pair of an array of objects, and ``$ref``s that each apply the next
definition twice double the work per level (a schema of a few hundred bytes, 2**40 checks). On the event
loop one such tool call held every request of orvad (API, /fn, /mcp) for minutes or for ever (found by the
red-team pass on issue 21). Here each check is one line of JSON to a checker process (``python -m
orvad.mcp.schemacheck``: ``orvad.inputschema.first_error``), at most ``MAX_CHECKERS`` at
once; past the budget the checker is killed (a fresh one starts for the next call) and the call is a
VALIDATION error result. Checkers are kept warm and leave when orvad does (their stdin closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import weakref
from pathlib import Path
from typing import Any

from orvad import inputschema
from orvad.errors import FunctionBusy, ValidationError

CHECK_TIMEOUT_S = 2.0  # a check past this is stopped (a legitimate one takes milliseconds)
MAX_CHECKERS = 2  # checks at once (each a process at most one core busy for CHECK_TIMEOUT_S)
_MEMORY_BYTES = 1 << 30  # a checker's address space (its input is at most a request body)
_LINE_LIMIT = 1 << 26  # the longest line a checker answers (answers are short; its stdin is unbounded)
_SCHEMA_HINT = 'its owner can fix the schema with PUT /api/v1/functions/NAME {"input_schema": ...}'
_ROOT = str(Path(__file__).resolve().parents[2])  # where the orvad package is imported from


class _Checker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls) -> _Checker:
        code = f"import sys; sys.path.insert(0, {_ROOT!r}); from orvad.mcp.schemacheck import main; main()"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-c",
            code,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            limit=_LINE_LIMIT,
        )
        return cls(proc)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def check(self, line: bytes) -> dict[str, Any] | None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line)
        await self.proc.stdin.drain()
        answer = await self.proc.stdout.readline()
        if not answer:
            raise ConnectionError("the checker left")
        found: dict[str, Any] | None = json.loads(answer)
        return found

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 5.0)


class SchemaChecks:
    """The checkers of one event loop: idle ones kept, at most MAX_CHECKERS busy."""

    def __init__(self) -> None:
        self._idle: list[_Checker] = []
        self._slots = asyncio.Semaphore(MAX_CHECKERS)

    async def check(self, schema: dict[str, Any], args: dict[str, Any]) -> None:
        """Raise ValidationError when ``args`` do not match ``schema`` (or the check does not finish in
        time); FunctionBusy when every checker stayed busy for the whole budget."""
        line = json.dumps([schema, args]).encode() + b"\n"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CHECK_TIMEOUT_S
        try:
            await asyncio.wait_for(self._slots.acquire(), CHECK_TIMEOUT_S)
        except TimeoutError:
            raise FunctionBusy(
                "every input_schema checker is busy",
                hint=f"retry in a moment; the checks in flight are stopped after {CHECK_TIMEOUT_S:g} s each",
            ) from None
        checker: _Checker | None = None
        try:
            while self._idle and checker is None:
                candidate = self._idle.pop()
                checker = candidate if candidate.alive else None
            if checker is None:
                checker = await _Checker.start()
            try:
                answer = await asyncio.wait_for(checker.check(line), max(deadline - loop.time(), 0.05))
            except TimeoutError:
                await checker.kill()
                checker = None
                raise ValidationError(
                    f"checking the arguments against the function's input_schema took longer than "
                    f"{CHECK_TIMEOUT_S:g} s",
                    hint="send smaller arguments; a costly schema (a pattern that backtracks, uniqueItems "
                    f"over a big array, $refs that multiply) stays costly: {_SCHEMA_HINT}",
                    details={"field": "arguments", "timeout_s": CHECK_TIMEOUT_S},
                ) from None
            except (ConnectionError, OSError, ValueError):  # it died (memory?) or answered nonsense
                await checker.kill()
                checker = None
                raise ValidationError(
                    "the function's input_schema could not be applied to these arguments",
                    hint=f"send smaller arguments; {_SCHEMA_HINT}",
                    details={"field": "input_schema"},
                ) from None
            except BaseException:  # cancelled mid-check: its answer would be read by the next call
                await checker.kill()
                checker = None
                raise
            _raise(answer)
        finally:
            if checker is not None and checker.alive:
                self._idle.append(checker)
            self._slots.release()


def _raise(answer: dict[str, Any] | None) -> None:
    if answer is None:
        return
    if "unusable" in answer:
        raise inputschema.unusable(str(answer["unusable"]))
    raise inputschema.mismatch(str(answer["at"]), str(answer["message"]))


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SchemaChecks] = weakref.WeakKeyDictionary()


async def check_arguments(schema: dict[str, Any], args: dict[str, Any]) -> None:
    """``args`` against ``schema`` in a checker process of this event loop, bounded in time."""
    loop = asyncio.get_running_loop()
    checks = _BY_LOOP.get(loop)
    if checks is None:
        checks = _BY_LOOP[loop] = SchemaChecks()
    await checks.check(schema, args)


def main() -> None:
    """A checker: one JSON line ``[schema, args]`` in, one line out: null (they match), ``{"at",
    "message"}`` (the first mismatch) or ``{"unusable"}`` (the schema cannot be applied)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_BYTES, _MEMORY_BYTES))
    out = sys.stdout
    for line in sys.stdin.buffer:
        answer: dict[str, Any] | None = None
        try:
            schema, args = json.loads(line)
            found = inputschema.first_error(schema, args)
            if found is not None:
                answer = {"at": found[0][:300], "message": found[1][:600]}
        except inputschema.Unusable as exc:
            answer = {"unusable": str(exc)[:500]}
        except (Exception, RecursionError) as exc:  # whatever the input: an answer
            answer = {"unusable": f"{type(exc).__name__}: {exc}"[:500]}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
