"""One long-lived sandboxed worker: the nsjail process, its frames, and its guaranteed end.

``start`` spawns nsjail (argv and environment from ``orvad.host.sandbox``; values never on the
command line) in its own session and waits for the adapter's ``ready`` frame. ``invoke`` sends
a request frame and waits for its reply, matched by frame id, so several requests can be in
flight on one worker. Replies are decoded in the stdout pipe's read callback (no reader task);
a stream whose buffer is full holds the frames back and pauses the pipe until its reader catches up. A request past its deadline kills the worker (504); a worker that exits
or breaks the protocol fails every request in flight with the reason (502). A stream whose end
frame has not arrived by the request's deadline ends with a timeout error and the worker is
killed too, so a handler can never outlive its timeout. ``stop`` is the kill path: quit frame, close stdin, SIGTERM, grace, SIGKILL the process group, always wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from orvad.errors import OrvaError, PayloadTooLarge, Timeout, WorkerCrashed
from orvad.host.process import PIPE, Child, spawn
from orvad.host.sandbox import Invocation
from orvad.pool.oomwatch import OomWatch
from orvad.pool.protocol import MAX_FRAME, MAX_LOG_BYTES, Decoder, FrameError, cap_logs, encode
from orvad.pool.stderr import StderrSink
from orvad.sdk.calls import (
    MAX_CALLS_IN_FLIGHT,
    STREAM_WINDOW,
    Caller,
    RequestEnded,
    TooManyCalls,
    UnknownOperation,
    error_result,
)

log = logging.getLogger(__name__)
# Chunks buffered per stream; past that the worker's pipe is left unread until the client catches
# up, so a fast producer and a slow reader cost bounded memory (back-pressure), never the host's.
STREAM_BUFFER_CHUNKS = 16
LOG_BYTES_PER_S = 1 << 20  # worker output outside requests kept per second (ORVA_WORKER_LOG_BYTES_PER_S)
# Answers to SDK calls waiting in orvad for a worker that does not read its stdin, past which it is replaced
UNREAD_RESULTS_BYTES = 4 << 20
_TERM_GRACE_S = 2.0  # nsjail's time to take its jail down after SIGTERM, before its group is SIGKILLed


@dataclass(slots=True)
class Reply:
    """The outcome of one request: a response, a stream, or a handler error, with its logs."""

    kind: str  # response | stream | error
    id: int = 0  # the frame id on this worker
    response: dict[str, Any] | None = None  # {statusCode, headers, body, isBase64Encoded}
    error: dict[str, Any] | None = None  # {kind, name, message, stack}
    logs: str = ""
    logs_truncated: bool = False
    status: Any = 200  # streams: from the start frame (checked by the invoke path)
    headers: dict[str, Any] | None = None  # streams: from the start frame
    chunks: asyncio.Queue[dict[str, Any] | None] | None = None
    ended: asyncio.Future[dict[str, Any]] | None = None  # streams: the end frame
    log_mark: int = 0  # streams: the worker's dropped-output count when it began

    async def iter_chunks(self) -> AsyncIterator[dict[str, Any]]:
        assert self.chunks is not None
        while (chunk := await self.chunks.get()) is not None:
            yield chunk


class SdkCalls(Protocol):
    """What answers a handler's SDK calls (orvad.sdk.calls.SdkRouter)."""

    async def call(self, caller: Caller, op: Any, args: Any) -> Any: ...


@dataclass(slots=True, eq=False)
class _Streamed:
    """A streamed result on its way to the worker: chunks it may still be sent before its next credit."""

    task: asyncio.Task[Any]
    window: int = STREAM_WINDOW
    room: asyncio.Event = field(default_factory=asyncio.Event)


# who a request's SDK calls come from, made from the request's deadline (loop clock) at its first call frame
CallerFactory = Callable[[float], Caller]


class _RequestCalls:
    """The SDK calls of one request in flight: who is calling (orvad's record) and what is running.
    Made at the request's first call frame (most make none); no dict until a call streams."""

    __slots__ = ("caller", "running", "streams")

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.running = 0
        self.streams: dict[int, _Streamed] | None = None


class _ChunkQueue(asyncio.Queue[dict[str, Any] | None]):
    """A stream's chunks; taking one tells the worker there is room (it may have stopped reading)."""

    def __init__(self, maxsize: int, on_room: Callable[[], None]) -> None:
        super().__init__(maxsize)
        self._on_room = on_room

    def _get(self) -> dict[str, Any] | None:
        item: dict[str, Any] | None = super()._get()
        self._on_room()
        return item


class _Stdout(asyncio.Protocol):
    """The worker's stdout, decoded as it arrives: replies reach their requests from the read
    callback itself, with no reader task woken for each one."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.ReadTransport, transport)  # uvloop's is one without subclassing it

    def data_received(self, data: bytes) -> None:
        self._worker._on_stdout(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._worker._on_stdout_closed()

    def reading(self, on: bool) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading() if on else self._transport.pause_reading()


class Worker:
    def __init__(
        self,
        invocation: Invocation,
        *,
        name: str,
        memory_mb: int,
        on_exit: Callable[[Worker], None] | None = None,
        after_kill: Callable[[int], None] | None = None,
        max_frame: int = MAX_FRAME,
        log_bytes_per_s: int = LOG_BYTES_PER_S,
        on_log_drop: Callable[[int], None] | None = None,
        max_log: int = MAX_LOG_BYTES,
        sdk: SdkCalls | None = None,
    ) -> None:
        self.invocation = invocation
        self.name = name
        self.memory_mb = memory_mb
        self._on_exit = on_exit
        self._after_kill = after_kill
        self._max_frame = max_frame
        self._max_log = max_log
        self.proc: Child | None = None
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._streams: dict[int, Reply] = {}
        self._unread: set[int] = (
            set()
        )  # streams whose reader went away: chunks dropped, the end still awaited
        self._gone: set[int] = set()  # requests whose caller left before the reply: their frames are dropped
        self._ids = itertools.count(1)
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        # a spare's: its boot is up and waits for a function (orvad/services/spares.py)
        self._waiting: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: asyncio.Future[None] | None = None
        self._oom_mark: int | None = None  # the host's OOM-kill count when this worker started
        self.jail_pid: int | None = None  # the jailed process (host pid): nsjail names its cgroups after it
        self._jail_pidfd: int | None = None  # the jailed process's pidfd, while its supervisor is watched
        self._oom_watch: OomWatch | None = None
        self._stderr = StderrSink(name, log_bytes_per_s, on_log_drop)
        self.stderr_tail = self._stderr.tail
        self.exit_reason: str | None = None
        self._stopping = False
        self.init_error: dict[str, Any] | None = None
        self.version: str | None = None
        self.spawn_s = 0.0
        self._stream_timers: dict[int, asyncio.TimerHandle] = {}
        self._kill_task: asyncio.Task[None] | None = None
        self._decoder = Decoder(max_frame)
        self._backlog: deque[dict[str, Any]] = deque()  # frames read but held back for a full stream buffer
        self._stdout = _Stdout(self)
        self._broken = False  # a protocol error: the rest of stdout is ignored
        self._stdout_closed = False
        self._sdk = sdk
        # requests in flight that may make SDK calls: (caller factory, deadline) until the first call's state
        self._calls: dict[int, _RequestCalls | tuple[CallerFactory, float]] = {}
        self._call_tasks: set[asyncio.Task[None]] = set()
        self._issued = 0  # the last request id sent: a call for an id up to it is late, past it forged
        self._results_lock: asyncio.Lock | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def _killed_by_us(self) -> bool:
        """stop() signalled the process (set before the signal is sent, so before its exit is seen)."""
        return self.proc is not None and self.proc.signalled

    @property
    def alive(self) -> bool:
        """Running and not condemned: a worker being killed (a request ran past its deadline) takes no
        more requests, though its process may take a moment to go."""
        return (
            self.proc is not None
            and self.proc.returncode is None
            and self.exit_reason is None
            and self._kill_task is None
        )

    @property
    def log_dropped(self) -> int:
        """Bytes of output outside requests dropped over the rate limit, since the start."""
        return self._stderr.dropped

    @property
    def inflight(self) -> int:
        return len(self._pending) + len(self._streams)

    async def start(self, timeout_s: float = 30.0) -> None:
        started = time.monotonic()
        await self._launch()
        await self._until_ready(timeout_s, started)

    async def start_spare(self, timeout_s: float = 30.0) -> None:
        """Start a spare (orvad/services/spares.py): its boot sends a ``spare`` frame once the jail and the
        interpreter are up, then waits for ``hand_over``."""
        self._waiting = asyncio.get_running_loop().create_future()
        self._waiting.add_done_callback(_retrieve)
        await self._launch()
        try:
            await asyncio.wait_for(asyncio.shield(self._waiting), timeout_s)
        except (TimeoutError, OrvaError) as exc:
            detail = self.exit_reason or f"no spare frame within {timeout_s} s"
            await self.stop(grace_s=0)
            raise WorkerCrashed(f"spare worker failed to start: {detail}") from exc
        except asyncio.CancelledError:
            await asyncio.shield(self.stop(grace_s=0))
            raise
        assert self.proc is not None
        self.jail_pid = _first_child(self.proc.pid)
        self._supervise()

    async def hand_over(
        self,
        environment: dict[str, str],
        timeout_s: float,
        *,
        name: str,
        memory_mb: int,
        on_log_drop: Callable[[int], None] | None,
    ) -> None:
        """Give a started spare its function: the environment frame (its boot sets the variables and runs the
        adapter, which loads the handler from /code), then wait for the ready frame as ``start`` does. The
        caller has put the code in /code and the limits on the cgroups first."""
        started = time.monotonic()
        self._oom_mark = host_oom_kills()  # an OOM kill while it waited was not this function's
        self.name = self._stderr.name = name
        self.memory_mb = memory_mb
        self._stderr.on_drop = on_log_drop
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise WorkerCrashed(f"spare worker is not running ({self.exit_reason or 'stopped'})")
        self.proc.stdin.write(encode({"type": "environment", "env": environment}))
        await self._until_ready(timeout_s, started)

    async def _launch(self) -> None:
        self._oom_mark = host_oom_kills()
        self._ready = asyncio.get_running_loop().create_future()
        # a start that was cancelled (orvad stopping mid-spawn) never reads the exit that fails it
        self._ready.add_done_callback(_retrieve)
        self._spawned = asyncio.get_running_loop().create_future()
        try:
            self.proc = await spawn(
                self.invocation.argv,
                env=self.invocation.env,
                stdin=PIPE,
                start_new_session=True,
                stdout_protocol=lambda: self._stdout,
                stderr_protocol=lambda: self._stderr,
            )
        finally:
            self._spawned.set_result(
                None
            )  # an exit seen while spawn() was still connecting the pipes waits for this

    async def _until_ready(self, timeout_s: float, started: float) -> None:
        assert self._ready is not None and self.proc is not None
        try:
            ready = await asyncio.wait_for(asyncio.shield(self._ready), timeout_s)
        except (TimeoutError, OrvaError) as exc:
            detail = self.exit_reason or f"no ready frame within {timeout_s} s"
            await self.stop(grace_s=0.5)
            tail = " | ".join(list(self.stderr_tail)[-5:])
            extra = (
                f" ({tail})" if tail and tail not in detail else ""
            )  # nsjail's reason may carry it already
            raise WorkerCrashed(
                f"worker failed to start: {detail}{extra}",
                hint="check the runtime and the sandbox in GET /api/v1/system/health",
            ) from exc
        except asyncio.CancelledError:  # its pool closed while it started: no process is left behind
            await asyncio.shield(self.stop(grace_s=0))
            raise
        if self.jail_pid is None:  # a spare's was read when it said it waits
            self.jail_pid = _first_child(self.proc.pid)
            self._supervise()
        self._oom_watch = OomWatch.attach(self.jail_pid)
        self.init_error = ready.get("initError")
        self.version = ready.get("version")
        self.spawn_s = time.monotonic() - started

    async def invoke(
        self,
        event: dict[str, Any],
        context: dict[str, Any],
        timeout_s: float,
        abandoned: Callable[[asyncio.Future[Reply]], bool] | None = None,
        caller: CallerFactory | None = None,
    ) -> Reply:
        """Send one request; wait for its reply (a stream's head) until the deadline.

        If the caller is cancelled while the handler runs, ``abandoned(settled)`` may return True to
        keep the request on this worker: its reply (dropped) or the worker's death resolves
        ``settled``, and the worker is killed at the deadline as if the reply had been awaited.

        ``caller`` makes who the request's SDK calls (``call`` frames) come from, as orvad recorded it,
        given the request's deadline, at its first call (nothing is made for a request that makes none);
        without one its calls are refused.
        """
        if not self.alive or self.proc is None or self.proc.stdin is None:
            raise WorkerCrashed(f"worker is not running ({self.exit_reason or 'stopped'})")
        rid = self._issued = next(self._ids)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        future: asyncio.Future[Reply] = loop.create_future()
        self._pending[rid] = future
        if caller is not None and self._sdk is not None:
            self._calls[rid] = (caller, deadline)
        try:
            stdin = self.proc.stdin
            stdin.write(
                encode({"type": "invoke", "id": rid, "event": event, "context": context}, self._max_frame)
            )
            if (
                stdin.transport.get_write_buffer_size()
            ):  # the pipe took it all (the usual case): nothing to wait for
                await stdin.drain()
        except FrameError as exc:
            self._pending.pop(rid, None)
            self._calls.pop(rid, None)
            raise PayloadTooLarge(str(exc), hint="send a smaller body or fewer headers") from None
        except (ConnectionError, RuntimeError):
            self._pending.pop(rid, None)
            self._calls.pop(rid, None)
            raise WorkerCrashed(f"worker went away ({self.exit_reason or 'pipe closed'})") from None
        # a timer rather than wait_for: no extra task and future on every request
        timer = loop.call_at(deadline, _expire, future)
        log_mark = self._stderr.dropped
        try:
            reply = await future
        except TimeoutError:
            self._pending.pop(rid, None)
            self._fail_all(
                f"another request on this worker ran past its {timeout_s:.3g} s timeout", WorkerCrashed
            )
            await self.stop(grace_s=0.0)
            raise Timeout(
                f"the function did not answer within {round(timeout_s * 1000)} ms",
                hint="raise timeout_ms on the function, or make the handler faster",
                details={"timeout_ms": round(timeout_s * 1000)},
            ) from None
        except asyncio.CancelledError:
            timer.cancel()
            # the cancel cancelled `future` too; while the handler still runs (its id is pending) a
            # fresh future takes the reply, so the caller can learn when the worker is free again
            settled: asyncio.Future[Reply] = loop.create_future()
            if abandoned is not None and self.alive and rid in self._pending and abandoned(settled):
                self._pending[rid] = settled
                overdue = loop.call_at(deadline, self._abandoned_overdue, rid, timeout_s)
                settled.add_done_callback(lambda _: overdue.cancel())
            elif self._pending.pop(rid, None) is not None:
                self._gone.add(rid)  # its reply (or stream) may still come: dropped, not a stray frame
            raise
        except BaseException:
            timer.cancel()
            raise
        timer.cancel()
        if self._stderr.dropped != log_mark:  # output was dropped while it ran: its logs are not whole
            reply.logs_truncated = True
        if reply.kind == "stream" and rid in self._streams:
            self._stream_timers[rid] = loop.call_at(deadline, self._stream_overdue, rid, timeout_s)
        return reply

    def _stream_overdue(self, rid: int, timeout_s: float) -> None:
        """A stream still open at its request's deadline: end it with a timeout and kill the worker."""
        self._stream_timers.pop(rid, None)
        stream = self._streams.pop(rid, None)
        self._unread.discard(rid)
        if stream is None:
            return
        assert stream.ended is not None
        _end_queue(stream)
        if not stream.ended.done():
            stream.ended.set_result(
                {
                    "error": {
                        "kind": "timeout",
                        "name": "Timeout",
                        "message": f"the stream ran past its {timeout_s:.3g} s timeout",
                    },
                    "logs": "",
                }
            )
        self._kill_overdue(timeout_s)

    def _abandoned_overdue(self, rid: int, timeout_s: float) -> None:
        """A request whose caller left is still running at its deadline: kill the worker."""
        if rid in self._pending:
            self._kill_overdue(timeout_s)

    def _kill_overdue(self, timeout_s: float) -> None:
        self._fail_all(
            f"another request on this worker ran past its {timeout_s:.3g} s timeout", WorkerCrashed
        )
        if self._kill_task is None:
            self._kill_task = asyncio.get_running_loop().create_task(self.stop(grace_s=0.0))

    def forget_stream(self, reply: Reply) -> None:
        """Nobody reads this stream any more: drop its chunks (and unblock a reader waiting on it).
        The handler may still be producing them: its end frame still resolves ``reply.ended``, and
        its deadline still kills the worker, so the caller can hold the slot until then."""
        for rid, known in self._streams.items():
            if known is reply:
                self._unread.add(rid)
                _end_queue(reply, unread=True)
                self._room()  # frames held back for it are dropped now

    # stdout, from the pipe's read callback
    def _on_stdout(self, data: bytes) -> None:
        if self._broken:
            return
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            self._protocol_error(str(exc))
            return
        if self._backlog:
            self._backlog.extend(frames)
            return
        for i, frame in enumerate(frames):
            if not self._dispatch(frame):  # a stream's reader is behind: stop reading until it catches up
                self._backlog.extend(frames[i:])
                self._reading(False)
                return
            if self._broken:
                return

    def _protocol_error(self, reason: str) -> None:
        """The worker broke the protocol: fail its requests, kill it, ignore the rest of its stdout (still
        read, so its exit is seen). Logged once per worker, however many bad frames follow."""
        self._broken = True
        self._backlog.clear()
        if self.exit_reason is None:
            self.exit_reason = f"protocol error: {reason}"
        log.warning(
            "worker broke the protocol; it is killed and replaced",
            extra={"worker": self.name, "reason": reason},
        )
        self._fail_all(self.exit_reason, WorkerCrashed)
        if self._kill_task is None:
            self._kill_task = asyncio.get_running_loop().create_task(self.stop(grace_s=0.0))

    def _stray(self, frame: dict[str, Any], what: str) -> bool:
        """A frame that answers no request in flight: a protocol error, unless the worker is being stopped
        already (replies of requests failed or timed out on the way may still arrive)."""
        if not (
            self._broken or self._stopping or self._kill_task is not None or self.exit_reason is not None
        ):
            kind = str(frame.get("type"))[:40]
            self._protocol_error(f"the worker wrote a frame that answers no request ({what}, type {kind!r})")
        return True

    def _drain_backlog(self) -> None:
        """A stream buffer has room again: deliver the frames held back, then read on."""
        while self._backlog and not self._broken:
            if not self._dispatch(self._backlog[0]):
                return
            self._backlog.popleft()
        self._backlog.clear()
        self._reading(True)

    def _room(self) -> None:
        if self._backlog:
            asyncio.get_running_loop().call_soon(self._drain_backlog)

    def _reading(self, on: bool) -> None:
        self._stdout.reading(on)

    def _supervise(self) -> None:
        self._jail_pidfd = _pidfd(self.jail_pid)
        self._tasks.append(
            asyncio.create_task(self._watch_supervisor(self._jail_pidfd), name=f"orva-supervisor-{self.name}")
        )

    def jailed_process_alive(self) -> bool:
        """The jailed process has not ended (a pidfd: never another process that took its pid)."""
        fd = self._jail_pidfd
        if fd is None:
            return False
        try:
            signal.pidfd_send_signal(fd, 0)
        except OSError:
            return False
        return True

    async def _watch_supervisor(self, jail_pidfd: int | None) -> None:
        """nsjail does not take the jailed process with it when it is SIGKILLed (from outside, or by stop()):
        the jailed process would hold stdout open and its requests would wait for their timeout. When nsjail
        has gone and stdout is still open, kill the jailed process (through a pidfd: never a reused pid)."""
        assert self.proc is not None
        try:
            await self.proc.wait()
            if jail_pidfd is not None and not self._stdout_closed:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(jail_pidfd, signal.SIGKILL)
        finally:
            if jail_pidfd is not None:
                self._jail_pidfd = None
                os.close(jail_pidfd)

    def _on_stdout_closed(self) -> None:
        self._stdout_closed = True
        task = asyncio.get_running_loop().create_task(self._exited(), name=f"orva-exit-{self.name}")
        self._tasks.append(task)

    def _dispatch(self, frame: dict[str, Any]) -> bool:
        """Route one frame; False when a full stream buffer must drain before it can be delivered."""
        kind, rid = frame.get("type"), frame.get("id")
        if kind in ("response", "error") and type(rid) is int:  # the usual frames first
            if self._calls:
                self._request_ended(rid)
            if rid in self._pending:
                logs, cut = cap_logs(frame.get("logs"), self._max_log)
                self._resolve(
                    rid,
                    Reply(
                        kind,
                        id=rid,
                        response=frame.get("response"),
                        error=frame.get("error"),
                        logs=logs,
                        logs_truncated=cut or bool(frame.get("logsTruncated")),
                    ),
                )
                return True
            if rid in self._gone:
                self._gone.discard(rid)
                return True
            return self._stray(frame, f"id {rid} is not in flight")
        if kind in ("ready", "spare"):
            return self._starting(kind, frame)
        if type(rid) is not int:
            return self._stray(frame, "no integer id")
        if kind == "call":
            return self._on_call(rid, frame)
        if kind in ("credit", "cancel"):
            return self._on_credit(kind, rid, frame)
        if kind == "start":
            return self._start_stream(rid, frame)
        if kind in ("chunk", "end"):
            if kind == "end" and self._calls:
                self._request_ended(rid)
            stream = self._streams.get(rid)
            if stream is None:
                return self._streamless(kind, rid, frame)
            return self._stream_frame(kind, rid, frame, stream)
        return self._stray(frame, "an unknown frame type")

    def _starting(self, kind: str, frame: dict[str, Any]) -> bool:
        """``ready``: the adapter loaded the handler (once); ``spare``: a spare's boot is up and waits for a
        function (once, before ``hand_over``)."""
        if kind == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(frame)
            return True
        if kind == "spare" and self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(None)
            return True
        return self._stray(frame, f"a {kind} frame the worker does not wait for")

    # SDK calls: `call` frames of a request in flight, answered with `result` frames on stdin
    def _on_call(self, rid: int, frame: dict[str, Any]) -> bool:
        call = frame.get("call")
        if type(call) is not int:
            return self._stray(frame, "a call frame without an integer call id")
        state = self._state(rid)
        op = frame.get("op")
        if state is None:
            if not 0 < rid <= self._issued:
                return self._stray(frame, f"a call for id {rid}, which was never sent")
            if self._sdk is None:
                refusal: OrvaError = UnknownOperation("this worker serves no SDK calls")
            else:
                refusal = RequestEnded(
                    "the request this call belongs to has ended",
                    hint="make SDK calls while the handler runs: await them before returning",
                )
            return self._refuse(rid, call, op, refusal)
        if state.running >= MAX_CALLS_IN_FLIGHT or (state.streams is not None and call in state.streams):
            refusal = TooManyCalls(
                f"more than {MAX_CALLS_IN_FLIGHT} SDK calls in flight for one request",
                hint="await some calls before starting more",
            )
            return self._refuse(rid, call, op, refusal)
        state.running += 1
        task = asyncio.get_running_loop().create_task(self._run_call(rid, call, state, op, frame.get("args")))
        self._call_tasks.add(task)
        task.add_done_callback(self._call_tasks.discard)
        return True

    def _on_credit(self, kind: str, rid: int, frame: dict[str, Any]) -> bool:
        """``credit`` (the handler took ``n`` chunks of a streamed result) or ``cancel`` (it stopped reading)."""
        call, n = frame.get("call"), frame.get("n", 0)
        if type(call) is not int or (kind == "credit" and type(n) is not int):
            return self._stray(frame, f"a {kind} frame without an integer call id or count")
        if not 0 < rid <= self._issued:
            return self._stray(frame, f"a {kind} frame for id {rid}, which was never sent")
        state = self._calls.get(rid)
        streams = state.streams if isinstance(state, _RequestCalls) else None
        streamed = streams.get(call) if streams is not None else None
        if streamed is None:  # the stream ended meanwhile
            return True
        if kind == "cancel":
            streamed.task.cancel()
        else:
            streamed.window = max(0, min(STREAM_WINDOW, streamed.window + n))
            streamed.room.set()
        return True

    def _refuse(self, rid: int, call: int, op: Any, refusal: OrvaError) -> bool:
        """A refusal answered at once; a worker that sends calls but leaves their answers unread (more than
        ``UNREAD_RESULTS_BYTES`` waiting) breaks the protocol: orvad never holds its flood in memory."""
        stdin = self.proc.stdin if self.proc is not None else None
        if stdin is not None and stdin.transport.get_write_buffer_size() > UNREAD_RESULTS_BYTES:
            return self._stray({"type": "call"}, "the worker leaves its SDK results unread")
        self._send_result(rid, call, op, error=error_result(refusal, op))
        return True

    async def _result(self, rid: int, call: int, op: Any, **answer: Any) -> bool:
        """A call's result frame once the worker has read what was sent before (one frame at a time past
        the pipe's high-water mark, whatever the number of calls: a worker that does not read its stdin
        holds its own calls, not orvad's memory)."""
        if self._results_lock is None:
            self._results_lock = asyncio.Lock()
        async with self._results_lock:
            await self._drain()
            return self._send_result(rid, call, op, **answer)

    def _state(self, rid: int) -> _RequestCalls | None:
        """The SDK calls' state of a request in flight, made at its first call."""
        entry = self._calls.get(rid)
        if entry is None or isinstance(entry, _RequestCalls):
            return entry
        make, deadline = entry
        state = self._calls[rid] = _RequestCalls(make(deadline))
        return state

    def _request_ended(self, rid: int) -> None:
        """The request's reply arrived: its later calls are refused, its streamed results stopped."""
        state = self._calls.pop(rid, None)
        if isinstance(state, _RequestCalls) and state.streams is not None:
            for streamed in state.streams.values():
                streamed.task.cancel()

    async def _run_call(self, rid: int, call: int, state: _RequestCalls, op: Any, args: Any) -> None:
        assert self._sdk is not None
        try:
            try:
                value = await self._sdk.call(state.caller, op, args)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._result(rid, call, op, error=error_result(exc, op))
            else:
                if hasattr(value, "__anext__"):
                    await self._stream_result(rid, call, state, op, value)
                else:
                    await self._result(rid, call, op, value=value)
        finally:
            state.running -= 1

    async def _stream_result(self, rid: int, call: int, state: _RequestCalls, op: Any, chunks: Any) -> None:
        """An operation's async iterator as chunk results (``more: true``) and a final one, at most
        ``STREAM_WINDOW`` chunks ahead of the handler's credit, until the invocation's deadline."""
        task = asyncio.current_task()
        assert task is not None
        if state.streams is None:
            state.streams = {}
        streamed = state.streams[call] = _Streamed(task)
        try:
            async with asyncio.timeout_at(state.caller.deadline):
                async for chunk in chunks:
                    while streamed.window <= 0:
                        streamed.room.clear()
                        await streamed.room.wait()
                    streamed.window -= 1
                    if not await self._result(rid, call, op, value=chunk, more=True):
                        return
            await self._result(rid, call, op, value=None)
        except TimeoutError:
            error = error_result(Timeout(f"{op} did not finish before the invocation's deadline"), op)
            await self._result(rid, call, op, error=error)
        except Exception as exc:
            await self._result(rid, call, op, error=error_result(exc, op))
        finally:
            state.streams.pop(call, None)
            close = getattr(chunks, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    def _send_result(
        self,
        rid: int,
        call: int,
        op: Any,
        *,
        value: Any = None,
        error: dict[str, Any] | None = None,
        more: bool = False,
    ) -> bool:
        """One ``result`` frame on stdin; False when it could not go (a value too large for a frame is
        sent as an error result instead, which ends the call). Dropped when the worker is gone."""
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing() or self._broken:
            return False
        frame: dict[str, Any] = {"type": "result", "id": rid, "call": call, "ok": error is None}
        if error is None:
            frame["value"] = value
            if more:
                frame["more"] = True
        else:
            frame["error"] = error
        try:
            data = encode(frame, self._max_frame)
        except FrameError as exc:
            if str(exc).startswith("frame of"):
                refusal: OrvaError = PayloadTooLarge(
                    f"the result of {str(op)[:100]} exceeds the {self._max_frame}-byte frame maximum",
                    hint="ask for less at once (a smaller value, a lower limit)",
                )
            else:
                log.error("an SDK operation answered a value JSON cannot carry", extra={"op": str(op)[:100]})
                refusal = OrvaError(f"{str(op)[:100]} failed inside orvad")
            data = encode(
                {"type": "result", "id": rid, "call": call, "ok": False, "error": error_result(refusal, op)}
            )
            proc.stdin.write(data)
            return False
        proc.stdin.write(data)
        return True

    async def _drain(self) -> None:
        stdin = self.proc.stdin if self.proc is not None else None
        if stdin is not None and stdin.transport.get_write_buffer_size():
            with contextlib.suppress(ConnectionError, RuntimeError):
                await stdin.drain()

    def _start_stream(self, rid: int, frame: dict[str, Any]) -> bool:
        """A stream's head: the request's reply becomes a stream whose chunks queue up for its reader."""
        future = self._pending.pop(rid, None)
        if future is None:
            if rid in self._gone:
                return True
            return self._stray(frame, f"id {rid} is not in flight")
        if future.done():
            self._gone.add(rid)  # its caller gave up (cancelled): drop the stream's frames, not queue them
            return True
        loop = asyncio.get_running_loop()
        reply = Reply(
            "stream",
            id=rid,
            status=frame.get("statusCode", 200),
            headers=frame.get("headers") or {},
            chunks=_ChunkQueue(STREAM_BUFFER_CHUNKS, self._room),
            ended=loop.create_future(),
            log_mark=self._stderr.dropped,
        )
        self._streams[rid] = reply
        future.set_result(reply)
        return True

    def _streamless(self, kind: str, rid: int, frame: dict[str, Any]) -> bool:
        """A chunk or end frame with no stream open: an error before the first chunk, or a gone request's."""
        if kind == "end" and rid in self._pending:  # an error before the first chunk
            logs, cut = cap_logs(frame.get("logs"), self._max_log)
            self._resolve(
                rid,
                Reply(
                    "error",
                    id=rid,
                    error=frame.get("error"),
                    logs=logs,
                    logs_truncated=cut or bool(frame.get("logsTruncated")),
                ),
            )
            return True
        if rid in self._gone:
            if kind == "end":
                self._gone.discard(rid)
            return True
        return self._stray(frame, f"id {rid} has no stream in flight")

    def _stream_frame(self, kind: str, rid: int, frame: dict[str, Any], stream: Reply) -> bool:
        """A chunk or the end of an open stream; False when its buffer is full (the pipe waits for the reader)."""
        assert stream.chunks is not None and stream.ended is not None
        unread = rid in self._unread
        if kind == "chunk" and unread:
            return True  # nobody reads it: dropped
        if stream.chunks.full() and not unread:
            return False
        if kind == "end":
            self._end_stream(rid, frame, stream.ended, stream.log_mark)
            if unread:
                return True  # the reader's queue holds its end marker already
        stream.chunks.put_nowait(frame if kind == "chunk" else None)  # None marks the end for the reader
        return True

    def _end_stream(
        self, rid: int, frame: dict[str, Any], ended: asyncio.Future[dict[str, Any]], log_mark: int
    ) -> None:
        del self._streams[rid]
        self._unread.discard(rid)
        if (timer := self._stream_timers.pop(rid, None)) is not None:
            timer.cancel()
        if not ended.done():
            frame["logs"], cut = cap_logs(frame.get("logs"), self._max_log)
            if cut or self._stderr.dropped != log_mark:
                frame["logsTruncated"] = True
            ended.set_result(frame)

    def _resolve(self, rid: Any, reply: Reply) -> None:
        future = self._pending.pop(rid, None)
        if future is not None and not future.done():
            future.set_result(reply)

    async def _exited(self) -> None:
        if self._spawned is not None:
            await self._spawned
        if self.proc is None:  # spawn() failed after the pipe was connected: start() reports it
            return
        code = await self.proc.wait()
        if code < 0 and not self._killed_by_us:
            self._clean_after_kill(self.proc.pid)  # a supervisor killed from outside leaves its cgroups
        oom: bool | None = None
        if self._oom_watch is not None:
            if code == 128 + signal.SIGKILL and self.exit_reason is None and not self._stopping:
                oom = await self._oom_watch.verdict()
            self._oom_watch.close()
        if self.exit_reason is None:
            self.exit_reason = self._describe_exit(code, oom)
        self._fail_all(self.exit_reason, WorkerCrashed)
        for starting in (self._ready, self._waiting):
            if starting is not None and not starting.done():
                starting.set_exception(WorkerCrashed(self.exit_reason))
        if self._on_exit is not None:
            self._on_exit(self)

    def _describe_exit(self, code: int, oom: bool | None = None) -> str:
        """Why the worker ended; ``oom`` is the memory cgroup's own verdict where it could be watched."""
        if self._stopping:
            return "stopped by orvad"
        if code == 255:  # nsjail's own failure, before or while starting the child
            tail = " | ".join(line for line in list(self.stderr_tail)[-3:] if line)
            return "the sandbox could not start the worker (nsjail exit 255)" + (f": {tail}" if tail else "")
        signo = code - 128 if 128 < code < 128 + 65 else -code if code < 0 else 0
        if signo == signal.SIGKILL and not self._killed_by_us:
            if code < 0:  # the sandbox's supervisor itself: the OOM killer only ever picks the jailed process
                return "killed by SIGKILL from outside orvad (the sandbox supervisor was killed)"
            if oom is None:  # no cgroup watch (cgroup v2, or none): the host's count since the worker started
                oom_kills = host_oom_kills()
                if oom_kills is not None and oom_kills == self._oom_mark:
                    return "killed by SIGKILL from outside orvad (the kernel OOM-killed nothing while it ran)"
            elif not oom:
                return "killed by SIGKILL from outside orvad (its memory cgroup recorded no OOM kill)"
            return f"killed by SIGKILL: out of memory (limit {self.memory_mb} MB)"
        if signo:
            try:
                return f"killed by signal {signal.Signals(signo).name}"
            except ValueError:
                return f"killed by signal {signo}"
        return f"exited with code {code}"

    def _clean_after_kill(self, pid: int) -> None:
        """Run the clean-up hook for a SIGKILLed nsjail, now and a few times later: the jailed process may
        still be dying (its cgroup busy) when nsjail has been reaped. nsjail names its cgroups after the
        jailed process, so that pid is the one passed on."""
        if self._after_kill is not None:
            loop = asyncio.get_running_loop()
            for delay in (0.0, 0.25, 1.0, 3.0):
                loop.call_later(delay, self._after_kill, self.jail_pid or pid)

    def _fail_all(self, reason: str, error: type[OrvaError]) -> None:
        self._calls.clear()  # the SDK calls of a dead worker: cancelled, their results dropped
        for task in self._call_tasks:
            task.cancel()
        for rid, future in list(self._pending.items()):
            if not future.done():
                future.set_exception(
                    error(f"the worker ended the request: {reason}", details={"reason": reason})
                )
            self._pending.pop(rid, None)
        for stream in self._streams.values():
            assert stream.ended is not None
            _end_queue(stream)
            if not stream.ended.done():
                stream.ended.set_result({"error": {"kind": "crash", "message": reason}, "logs": ""})
        self._streams.clear()
        self._unread.clear()
        self._gone.clear()
        for timer in self._stream_timers.values():
            timer.cancel()
        self._stream_timers.clear()

    async def stop(self, grace_s: float = 2.0) -> None:
        """Quit frame, close stdin, SIGTERM, grace, SIGKILL the group; always reap the process."""
        proc = self.proc
        if proc is None:
            return
        self._stopping = self._stopping or self.exit_reason is None
        if proc.returncode is None and proc.stdin is not None and not proc.stdin.is_closing():
            with contextlib.suppress(Exception):
                proc.stdin.write(encode({"type": "quit"}))
                proc.stdin.close()
        try:  # nsjail removes its cgroups on SIGTERM; one SIGKILLed (or cancelled here) needs the clean-up hook
            await proc.stop(grace_s=grace_s, term_grace_s=_TERM_GRACE_S)
        finally:
            if proc.killed:
                self._clean_after_kill(proc.pid)
        for task in self._tasks:
            if task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 2.0)


def host_oom_kills() -> int | None:
    """The kernel's count of OOM kills since boot (/proc/vmstat oom_kill), None where it cannot be read.

    nsjail removes the worker's memory cgroup, and its OOM counter with it, before orvad learns of the exit;
    the host-wide count still says whether the kernel killed anything for memory while the worker lived."""
    try:
        with open("/proc/vmstat", "rb") as fh:
            for line in fh:
                if line.startswith(b"oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _pidfd(pid: int | None) -> int | None:
    try:
        return os.pidfd_open(pid) if pid is not None else None
    except OSError:
        return None


def _first_child(pid: int) -> int | None:
    """The first child of ``pid`` (nsjail's jailed process), read once per worker at start."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as fh:
            children = fh.read().split()
        return int(children[0]) if children else None
    except (OSError, ValueError):
        return None


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # marks it read: no "exception was never retrieved" at exit


def _expire(future: asyncio.Future[Reply]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _end_queue(stream: Reply, *, unread: bool = False) -> None:
    """End a stream now. Its chunks stay for the reader, but for the oldest ones needed to make room
    for the end marker; if nobody reads it (`unread`) they are all dropped, which also lets a frame
    reader waiting for room go on."""
    assert stream.chunks is not None
    while stream.chunks.full() or (unread and not stream.chunks.empty()):
        stream.chunks.get_nowait()
    stream.chunks.put_nowait(None)
