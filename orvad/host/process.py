"""Child processes for the event loop, started the cheap way.

``asyncio.create_subprocess_exec`` under uvloop starts children with libuv's fork(), which copies
orvad's page tables while the event loop waits: 15 ms per start at orvad's size on a 2-core
machine, paid by every cold start and by every request in flight. ``spawn`` starts the child
with the standard library's ``subprocess`` (vfork: about 2 ms whatever orvad's size), attaches
its pipes to the loop as transports, and learns of its exit from a pidfd. The ``Child`` it
returns offers what orvad uses of ``asyncio.subprocess.Process``.

``Child.stop`` is orvad's one kill path for every child (workers, builds, the unpacker, egress's
``ip``/``nft``): wait a grace for it to leave by itself, SIGTERM, a second grace, SIGKILL its
process group; the child is always reaped (its pidfd's reader does it, whoever waits), and a caller
cancelled on the way SIGKILLs the group at once instead of leaving the child behind.
``Child.communicate`` puts a deadline on a child's whole run and takes that path when it passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import subprocess
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
_STREAM_LIMIT = 1 << 16  # the longest line a StreamReader returns


class Child:
    """A running child: its pipes as asyncio streams (or a protocol), and its exit as a future."""

    def __init__(
        self, popen: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop, *, session: bool = False
    ) -> None:
        self._popen = popen
        self._loop = loop
        self.pid = popen.pid
        self._session = session  # leads its own session and process group: a kill takes the whole group
        self.signalled = False  # the kill path sent it a signal (SIGTERM at least)
        self.killed = False  # the kill path had to SIGKILL it
        self.stdin: asyncio.StreamWriter | None = None
        self.stdout: asyncio.StreamReader | None = None
        self.stderr: asyncio.StreamReader | None = None
        self._exit: asyncio.Future[int] = loop.create_future()
        self._pidfd = os.pidfd_open(popen.pid)  # readable once the child has exited
        loop.add_reader(self._pidfd, self._reap)

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def _reap(self) -> None:
        if self._popen.poll() is None:
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        if self.stdin is not None and not self.stdin.is_closing():
            self.stdin.close()  # nobody reads it any more; its pipe would stay open otherwise
        if not self._exit.done():
            self._exit.set_result(self._popen.returncode)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def send_signal(self, signo: int) -> None:
        if self._popen.returncode is not None:
            raise ProcessLookupError(self.pid)
        os.kill(self.pid, signo)

    def kill(self) -> None:
        """SIGKILL the child's process group (the child alone when it shares orvad's group); no wait."""
        self.signalled = self.killed = True
        with contextlib.suppress(ProcessLookupError):
            if self._session:
                os.killpg(
                    self.pid, signal.SIGKILL
                )  # the group outlives its leader's exit; a pid is not reused before
            elif self._popen.returncode is None:
                os.kill(self.pid, signal.SIGKILL)

    async def stop(self, *, grace_s: float = 0.0, term_grace_s: float = 2.0) -> int:
        """The kill path: wait up to ``grace_s`` for the child to leave by itself (the caller asked it to:
        a quit frame, a closed stdin), then SIGTERM the child (a supervisor such as nsjail takes its jail down
        and removes its cgroups), wait up to ``term_grace_s``, then SIGKILL its process group. A child
        that had to be signalled has its group swept with SIGKILL once it is gone (grandchildren it left).
        Always reaped; cancelled anywhere in here, it SIGKILLs at once and waits for the exit before the
        cancel goes on. Returns the exit status."""
        try:
            if self._popen.returncode is None and grace_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wait(), grace_s)
            if self._popen.returncode is None:
                self.signalled = True
                with contextlib.suppress(ProcessLookupError):
                    self.send_signal(signal.SIGTERM)
                if term_grace_s > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wait(), term_grace_s)
                if self._popen.returncode is None:
                    self.kill()
                code = await self.wait()
                if self._session and not self.killed:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.pid, signal.SIGKILL)
                return code
            return await self.wait()
        except BaseException:  # cancelled (or worse) on the way: no child outlives its owner
            self.kill()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(
                    self.wait(), 5.0
                )  # SIGKILLed: gone at once, unless stuck in the kernel
            raise

    async def communicate(
        self, data: bytes | None = None, *, timeout_s: float | None = None, term_grace_s: float = 1.0
    ) -> tuple[bytes, bytes]:
        """Write `data` to stdin and close it, read stdout and stderr to their ends, wait for the exit.

        Past ``timeout_s`` (TimeoutError), on a cancel or any failure the child takes the kill path first."""
        try:
            return await asyncio.wait_for(self._communicate(data), timeout_s)
        except BaseException:
            await self.stop(term_grace_s=term_grace_s)
            raise

    async def _communicate(self, data: bytes | None) -> tuple[bytes, bytes]:
        if self.stdin is not None:
            if data:
                self.stdin.write(data)
            self.stdin.close()
        out, err = await asyncio.gather(_read_all(self.stdout), _read_all(self.stderr))
        await self.wait()
        return out, err


async def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
    start_new_session: bool = False,
    stdout_protocol: Callable[[], asyncio.BaseProtocol] | None = None,
    stderr_protocol: Callable[[], asyncio.BaseProtocol] | None = None,
) -> Child:
    """Start `argv`; PIPE streams become asyncio streams, or feed `stdout_protocol`/`stderr_protocol` when given."""
    loop = asyncio.get_running_loop()
    popen = subprocess.Popen(
        list(argv),
        env=env,
        stdin=stdin,
        stdout=PIPE if stdout_protocol else stdout,
        stderr=PIPE if stderr_protocol else stderr,
        bufsize=0,
        close_fds=True,
        start_new_session=start_new_session,
    )
    child = Child(popen, loop, session=start_new_session)
    untaken = [pipe for pipe in (popen.stdin, popen.stdout, popen.stderr) if pipe is not None]
    try:
        if popen.stdin is not None:
            untaken.remove(popen.stdin)
            transport, protocol = await _connect(
                loop, loop.connect_write_pipe, asyncio.streams.FlowControlMixin, popen.stdin
            )
            child.stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        if popen.stdout is not None:
            untaken.remove(popen.stdout)
            child.stdout = await _read_side(loop, popen.stdout, stdout_protocol)
        if popen.stderr is not None:
            untaken.remove(popen.stderr)
            child.stderr = await _read_side(loop, popen.stderr, stderr_protocol)
    except BaseException:
        for pipe in untaken:
            pipe.close()  # never given to the loop: closed now rather than whenever it is collected
        child.kill()  # reaped by its pidfd's reader
        raise
    return child


async def _connect(
    loop: asyncio.AbstractEventLoop,
    connect: Callable[[Callable[[], Any], Any], Awaitable[tuple[Any, Any]]],
    factory: Callable[[], Any],
    pipe: Any,
) -> tuple[Any, Any]:
    """Attach one of the child's pipes to the loop, which owns it from here, even when this fails: its
    descriptor is closed once, by its one owner.

    The standard loop's transport closes the file object it is given (at once when the connect fails).
    uvloop's closes the descriptor itself (libuv), and a connect cancelled or failing after libuv took it
    left the file object believing it still owned the number, which it closed when collected: by then
    another file's (a worker's pidfd or pipe, whose owner then waited for ever). So uvloop gets a duplicate
    in a file object that never closes it, and the child's file object is closed here at once."""
    if not type(loop).__module__.startswith("uvloop"):
        try:
            return await connect(factory, pipe)
        except BaseException:
            pipe.close()  # the transport, if made, stopped reading at its close; the file is closed once
            raise
    fd = os.dup(pipe.fileno())
    pipe.close()
    held = os.fstat(fd)
    try:
        return await connect(factory, io.FileIO(fd, pipe.mode, closefd=False))
    except BaseException:
        with contextlib.suppress(OSError):
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
                os.close(fd)  # libuv never took it (if it had, it closed it and the number may be another's)
        raise


class _PipeReader(asyncio.StreamReaderProtocol):
    def eof_received(self) -> bool:
        super().eof_received()
        return False  # close the pipe at its end (uvloop keeps a transport open when this says True)


async def _read_side(
    loop: asyncio.AbstractEventLoop, pipe: Any, protocol: Callable[[], asyncio.BaseProtocol] | None
) -> asyncio.StreamReader | None:
    """A child's output pipe on the loop: fed to ``protocol`` when given (None returned), else a stream."""
    if protocol is None:
        return await _reader(loop, pipe)
    await _connect(loop, loop.connect_read_pipe, protocol, pipe)
    return None


async def _reader(loop: asyncio.AbstractEventLoop, pipe: Any) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=_STREAM_LIMIT, loop=loop)
    await _connect(loop, loop.connect_read_pipe, lambda: _PipeReader(reader, loop=loop), pipe)
    return reader


async def _read_all(stream: asyncio.StreamReader | None) -> bytes:
    return await stream.read() if stream is not None else b""


def run_sync(
    argv: Sequence[str], *, env: dict[str, str] | None = None, timeout_s: float, term_grace_s: float = 1.0
) -> subprocess.CompletedProcess[bytes]:
    """``subprocess.run`` with output captured, for threads and start-up checks, on the same kill path:
    the child leads its own session and, past ``timeout_s`` (``subprocess.TimeoutExpired``) or on any
    failure, gets SIGTERM, a grace, SIGKILL of its group, and is reaped. ``subprocess.run`` SIGKILLs only
    the child: an nsjail killed so leaves its jailed process running."""
    with subprocess.Popen(
        list(argv), env=env, stdin=DEVNULL, stdout=PIPE, stderr=PIPE, close_fds=True, start_new_session=True
    ) as popen:
        try:
            out, err = popen.communicate(timeout=timeout_s)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(term_grace_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            raise
    return subprocess.CompletedProcess(list(argv), popen.returncode, out, err)
