"""orvad.host.process under both event loops orvad runs on: pipes, exit codes, signals, reaping."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from orvad.host.process import DEVNULL, PIPE, spawn
from tests.worker_fixtures import wait_until

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


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
        await (
            await spawn([sys.executable, "-c", "pass"], stdin=PIPE, stdout=PIPE)
        ).communicate()  # uvloop opens
        fds_before = len(os.listdir("/proc/self/fd"))  # one /dev/null of its own, once, on a first child
        child = await spawn(
            [
                sys.executable,
                "-c",
                "import sys; data = sys.stdin.read(); print(data.upper());"
                " print('to stderr', file=sys.stderr); sys.exit(3)",
            ],
            stdin=PIPE,
            stdout=PIPE,
            stderr=PIPE,
        )
        out, err = await child.communicate(b"hello")
        assert (out, err) == (b"HELLO\n", b"to stderr\n")
        assert child.returncode == 3 and await child.wait() == 3
        assert zombie_free(child.pid)
        with pytest.raises(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        # transports close on the loop's next turns: no pipe or pidfd is left open
        await wait_until(
            lambda: len(os.listdir("/proc/self/fd")) == fds_before, 5, "the child's fds to close"
        )

    run_on(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_signalled_child_reports_the_signal(loop_name: str) -> None:
    async def main() -> None:
        child = await spawn(
            [sys.executable, "-c", "import signal; print('up', flush=True); signal.pause()"],
            stdin=DEVNULL,
            stdout=PIPE,
            stderr=DEVNULL,
            start_new_session=True,
        )
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


# A parent that ignores SIGTERM (or not), with a grandchild in its process group: prints both pids.
FAMILY = (
    "import os, signal, subprocess, sys\n"
    "if sys.argv[1] == 'stubborn': signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "kid = subprocess.Popen(['sleep', '300'])\n"
    "print(os.getpid(), kid.pid, flush=True)\n"
    "signal.pause()\n"
)


async def family(kind: str) -> tuple[Any, int]:
    child = await spawn(
        [sys.executable, "-c", FAMILY, kind],
        stdin=DEVNULL,
        stdout=PIPE,
        stderr=DEVNULL,
        start_new_session=True,
    )
    assert child.stdout is not None
    pid, grandchild = map(int, (await child.stdout.readline()).split())
    assert pid == child.pid
    return child, grandchild


def gone(pid: int) -> bool:
    """No such process, or a zombie waiting for init (a grandchild is not ours to reap)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("loop_name", LOOPS)
def test_stop_terms_then_kills_the_group_and_reaps(loop_name: str) -> None:
    async def main() -> None:
        child, grandchild = await family("stubborn")
        code = await child.stop(term_grace_s=0.3)
        assert code == -signal.SIGKILL and child.signalled and child.killed
        assert zombie_free(child.pid)
        await wait_until(lambda: gone(grandchild), 5, "the grandchild to die with its group")

    run_on(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_child_that_leaves_on_term_is_not_killed_but_its_group_is_swept(loop_name: str) -> None:
    async def main() -> None:
        child, grandchild = await family("polite")
        code = await child.stop(term_grace_s=10)
        assert code == -signal.SIGTERM and child.signalled and not child.killed
        assert zombie_free(child.pid)
        await wait_until(lambda: gone(grandchild), 5, "the grandchild left in the group to be swept")
        quiet = await spawn([sys.executable, "-c", "pass"], stdin=DEVNULL)
        assert await quiet.stop(grace_s=5) == 0 and not quiet.signalled  # left by itself within the grace

    run_on(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_cancelled_stop_still_kills_and_reaps(loop_name: str) -> None:
    async def main() -> None:
        child, grandchild = await family("stubborn")
        stopping = asyncio.create_task(child.stop(term_grace_s=60))  # a grace nobody waits out
        await wait_until(lambda: child.signalled, 5, "the SIGTERM")
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        assert child.killed and child.returncode == -signal.SIGKILL  # reaped before the cancel went on
        assert zombie_free(child.pid)
        await wait_until(lambda: gone(grandchild), 5, "the grandchild to die with its group")

    run_on(loop_name, main())


@pytest.mark.parametrize("loop_name", LOOPS)
def test_communicate_past_its_deadline_or_cancelled_leaves_no_process(loop_name: str) -> None:
    async def main() -> None:
        child, grandchild = await family("stubborn")
        with pytest.raises(TimeoutError):
            await child.communicate(timeout_s=0.3, term_grace_s=0.2)
        assert child.returncode == -signal.SIGKILL and zombie_free(child.pid)
        await wait_until(lambda: gone(grandchild), 5, "the grandchild")

        child, grandchild = await family("stubborn")
        talking = asyncio.create_task(
            child.communicate(term_grace_s=0.2)
        )  # no deadline: only a cancel ends it
        await asyncio.sleep(0)
        talking.cancel()
        with pytest.raises(asyncio.CancelledError):
            await talking
        assert child.returncode is not None and zombie_free(child.pid)
        await wait_until(lambda: gone(grandchild), 5, "the grandchild")

    run_on(loop_name, main())


def test_run_sync_past_its_timeout_kills_the_group_and_reaps() -> None:
    """The start-up checks' path (threads, no loop): subprocess.run would SIGKILL the child alone."""
    import subprocess
    import time

    from orvad.host.process import run_sync

    done = run_sync(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)"],
        timeout_s=10,
    )
    assert (done.returncode, done.stdout, done.stderr) == (4, b"out\n", b"err\n")
    marker = f"{os.getpid()}.{id(done)}"  # argv that names this test's processes only
    script = (
        "import signal, subprocess, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', '{marker}'])\n"
        "time.sleep(300)\n"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        run_sync([sys.executable, "-c", script, marker], timeout_s=1.0, term_grace_s=0.2)

    def ours() -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    cmdline = fh.read()
                with open(f"/proc/{entry}/stat") as fh:
                    zombie = fh.read().rsplit(")", 1)[1].split()[0] == "Z"
            except (FileNotFoundError, NotADirectoryError, ProcessLookupError, PermissionError):
                continue
            if marker.encode() in cmdline and not zombie:
                found.append(int(entry))
        return found

    deadline = time.monotonic() + 5
    while ours() and time.monotonic() < deadline:  # SIGKILLed: the kernel takes a moment to end them
        time.sleep(0.02)
    assert ours() == []  # the child is reaped and its grandchild (both named by the marker) is gone


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_spawn_cancelled_while_its_pipes_connect_never_closes_another_files_descriptor(
    loop_name: str,
) -> None:
    """A spawn cancelled at every point of connecting its pipes: each descriptor is closed once, by its one owner.
    Under uvloop the transport closed the descriptor (libuv) while the child's file object still believed it
    owned the number, and closed it when collected: by then another file's (a worker's pidfd or pipe), whose
    owner then waited for ever (seen as workers whose exit was never seen under change churn)."""

    async def main() -> tuple[int, int]:
        cancelled = stolen = 0
        for step in range(48):
            task = asyncio.ensure_future(
                spawn(["sleep", "30"], stdin=PIPE, stdout=PIPE, stderr=PIPE, start_new_session=True)
            )
            for _ in range(step % 8):  # cancelled after 0-7 turns of the loop: at each await of spawn()
                await _one_turn()
            task.cancel()
            try:
                child = await task
            except asyncio.CancelledError:
                cancelled += 1
            else:
                child.kill()
                await child.wait()
                continue
            pipes = [os.pipe() for _ in range(4)]  # the lowest free numbers: those a spawn's pipes had
            del task
            gc.collect()  # the moment a file object that still believed it owned a number closed it
            for fd in (fd for pair in pipes for fd in pair):
                try:
                    os.fstat(fd)
                    os.close(fd)
                except OSError:
                    stolen += 1
        return cancelled, stolen

    cancelled, stolen = run_on(loop_name, main())
    assert cancelled >= 24, cancelled  # most spawns were cancelled on the way, at several points
    assert stolen == 0, f"{stolen} descriptors closed behind their owner's back"


async def _one_turn() -> None:
    """Let the loop run once: a future the loop itself resolves on its next turn."""
    loop = asyncio.get_running_loop()
    turned: asyncio.Future[None] = loop.create_future()
    loop.call_soon(turned.set_result, None)
    await turned
