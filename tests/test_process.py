"""orvad.process under both event loops orvad runs on: pipes, exit codes, signals, reaping."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from orvad.process import DEVNULL, PIPE, spawn
from tests.worker_fixtures import wait_until

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop,
                                                             "uvloop": uvloop.new_event_loop}


def run_on(loop_name: str, coro: Coroutine[Any, Any, Any]) -> Any:
    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        return runner.run(asyncio.wait_for(coro, 20))


def zombie_free(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # already reaped by us, as it must be
    return False


@pytest.mark.parametrize("loop_name", LOOPS)
def test_pipes_exit_code_and_reaping(loop_name: str) -> None:
    async def main() -> None:
        await (await spawn([sys.executable, "-c", "pass"], stdin=PIPE, stdout=PIPE)).communicate()  # uvloop opens
        fds_before = len(os.listdir("/proc/self/fd"))  # one /dev/null of its own, once, on a first child
        child = await spawn([sys.executable, "-c", "import sys; data = sys.stdin.read(); print(data.upper());"
                             " print('to stderr', file=sys.stderr); sys.exit(3)"], stdin=PIPE, stdout=PIPE, stderr=PIPE)
        out, err = await child.communicate(b"hello")
        assert (out, err) == (b"HELLO\n", b"to stderr\n")
        assert child.returncode == 3 and await child.wait() == 3
        assert zombie_free(child.pid)
        with pytest.raises(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        # transports close on the loop's next turns: no pipe or pidfd is left open
        await wait_until(lambda: len(os.listdir("/proc/self/fd")) == fds_before, 5, "the child's fds to close")

    run_on(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_signalled_child_reports_the_signal(loop_name: str) -> None:
    async def main() -> None:
        child = await spawn([sys.executable, "-c", "import signal; print('up', flush=True); signal.pause()"],
                            stdin=DEVNULL, stdout=PIPE, stderr=DEVNULL, start_new_session=True)
        assert child.stdout is not None and await child.stdout.readline() == b"up\n"
        assert os.getsid(child.pid) == child.pid  # its own session: the kill path signals its group
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
        assert zombie_free(child.pid)

    run_on(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_stdout_can_feed_a_protocol(loop_name: str) -> None:
    async def main() -> bytes:
        received = bytearray()
        closed = asyncio.get_running_loop().create_future()

        class Collect(asyncio.Protocol):
            def data_received(self, data: bytes) -> None:
                received.extend(data)

            def connection_lost(self, exc: Exception | None) -> None:
                closed.set_result(None)

        child = await spawn([sys.executable, "-c", "print('x' * 100000)"], stdout_protocol=Collect)
        await closed
        assert await child.wait() == 0
        return bytes(received)

    assert run_on(loop_name, main()) == b"x" * 100000 + b"\n"
