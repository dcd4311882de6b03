"""orvad/pool/worker.py: start, multiplexing by frame id, crash reasons, the stderr ring and the kill path.

Most tests drive small fake adapters run without a jail (the Worker only needs an argv), so
each failure mode is exact and fast; the jailed cases use tests/worker_fixtures.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from orvad.errors import PayloadTooLarge, WorkerCrashed
from orvad.host.sandbox import Invocation, SandboxSpec, build_invocation
from orvad.pool.stderr import MAX_LINE, STDERR_RING
from orvad.pool.worker import STREAM_BUFFER_CHUNKS, Worker
from tests.worker_fixtures import (
    alive,
    call,
    descendants,
    drain,
    host_facts,
    leaked_cgroups,
    make_worker,
    pid_exists,
    running,
    sandbox_data,
    wait_until,
    write_code,
)

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(60)]  # workers in nsjail (CONTRIBUTING.md, markers)

FAKE = r"""
import json, os, signal, struct, subprocess, sys, time

def send(message):
    payload = json.dumps(message).encode()
    os.write(1, struct.pack(">I", len(payload)) + payload)

def frames():
    buffer = b""
    while True:
        data = os.read(0, 65536)
        if not data:
            return
        buffer += data
        while len(buffer) >= 4:
            (size,) = struct.unpack(">I", buffer[:4])
            if len(buffer) < 4 + size:
                break
            yield json.loads(buffer[4:4 + size])
            buffer = buffer[4 + size:]

def answer(message):
    send({"type": "response", "id": message["id"], "logs": f"log {message['id']}\n",
          "response": {"statusCode": 200, "headers": {}, "body": message["event"]["n"], "isBase64Encoded": False}})

mode = sys.argv[1]
if mode == "supervised":  # like nsjail: the adapter runs as a child in its own session, which outlives a SIGKILL
    sys.exit(subprocess.call([sys.executable, "-c", sys.argv[2], "hold"], start_new_session=True))
if mode == "silent":
    time.sleep(60)
if mode == "exit7":
    sys.stderr.write("fatal: the adapter cannot start\n")
    sys.exit(7)
if mode == "chatty":
    for i in range(1000):
        sys.stderr.write(f"line {i}\n")
    sys.stderr.flush()
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                              "signal.SIG_IGN); time.sleep(60)"])
    sys.stderr.write(f"child {child.pid}\n")
    sys.stderr.flush()
send({"type": "ready", "runtime": "fake", "version": "0.0.1", "initError": None})
pending = []
for message in frames():
    if message["type"] == "quit":
        if mode == "stubborn":
            continue
        break
    if mode == "reverse":
        pending.append(message)
        if len(pending) == 3:
            for held in reversed(pending):
                answer(held)
            pending.clear()
    elif mode == "garbage":
        os.write(1, b"\xff\xff\xff\xff")
    elif mode == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif mode == "stream" and message["event"]["n"] == "slow":
        time.sleep(0.3)
        for frame in ({"type": "start", "statusCode": 200, "headers": {}},  # and no end: a stream left open
                      {"type": "chunk", "data": "part", "isBase64Encoded": False}):
            send({**frame, "id": message["id"]})
    elif mode == "flood" and message["event"]["n"].startswith("flood"):
        send({"type": "start", "id": message["id"], "statusCode": 200, "headers": {}})
        for i in range(int(message["event"]["n"][5:])):  # far more than orvad buffers
            send({"type": "chunk", "id": message["id"], "data": f"{i},", "isBase64Encoded": False})
        send({"type": "end", "id": message["id"], "logs": ""})
    elif mode == "noisy" and message["event"]["n"] == "noisy":  # past the capture: straight to fd 2
        os.write(2, b"a" * 300000 + b"\n" + b"b" * 10000)
        answer(message)
    elif mode == "hold":
        time.sleep(60)
    elif mode == "stray":  # frames that answer no request: the red team's flood (F9), and a reply to no one
        n = message["event"]["n"]
        if n == "flood":
            for _ in range(1000):
                send({"type": "zz"})
        elif n == "late":
            answer(message)
            send({"type": "response", "id": 999, "logs": "", "response": {"statusCode": 200}})
        elif n == "ready":
            send({"type": "ready", "runtime": "fake", "version": "0.0.2", "initError": None})
        else:
            answer(message)
    elif mode == "halfstream":
        send({"type": "start", "id": message["id"], "statusCode": 200, "headers": {}})
        send({"type": "chunk", "id": message["id"], "data": "part", "isBase64Encoded": False})
        os._exit(9)
    else:
        answer(message)
if mode == "stubborn":
    time.sleep(60)
"""


def fake(mode: str, **kwargs: object) -> Worker:
    return Worker(
        Invocation([sys.executable, "-c", FAKE, mode], {"PATH": "/usr/bin:/bin"}),
        name=f"fake-{mode}",
        memory_mb=64,
        **kwargs,
    )  # type: ignore[arg-type]


@asynccontextmanager
async def started(worker: Worker) -> AsyncIterator[Worker]:
    await worker.start(10)
    try:
        yield worker
    finally:
        await asyncio.wait_for(worker.stop(grace_s=1.0), 10)
        assert worker.proc is not None and worker.proc.returncode is not None


async def invoke(worker: Worker, n: str, timeout_s: float = 10.0):  # type: ignore[no-untyped-def]
    return await worker.invoke({"n": n}, {}, timeout_s)


async def test_ready_then_replies_matched_by_frame_id_out_of_order() -> None:
    async with started(fake("reverse")) as worker:
        assert worker.version == "0.0.1" and worker.init_error is None and worker.spawn_s > 0
        replies = await asyncio.gather(*(invoke(worker, str(n)) for n in ("a", "b", "c")))
        assert [r.response["body"] for r in replies] == ["a", "b", "c"]
        assert [r.logs for r in replies] == [f"log {r.id}\n" for r in replies]
        assert sorted(r.id for r in replies) == [1, 2, 3]
        assert worker.inflight == 0


async def test_a_request_too_large_for_a_frame_is_413_and_the_worker_serves_on() -> None:
    """It was PAYLOAD_TOO_LARGE with status 500 (an OrvaError given the code): one code, one status."""
    async with started(fake("echo", max_frame=4096)) as worker:
        with pytest.raises(PayloadTooLarge) as refused:
            await invoke(worker, "x" * 8192)
        assert (
            refused.value.status == 413 and refused.value.code == "PAYLOAD_TOO_LARGE" and refused.value.hint
        )
        assert worker.alive and worker.inflight == 0
        assert (await invoke(worker, "small")).response["body"] == "small"  # type: ignore[index]


async def test_graceful_stop_uses_the_quit_frame_and_calls_on_exit_once() -> None:
    exits: list[Worker] = []
    kills: list[int] = []
    worker = fake("echo", on_exit=exits.append, after_kill=kills.append)
    async with started(worker):
        assert (await invoke(worker, "x")).response["body"] == "x"
    assert worker.proc is not None and worker.proc.returncode == 0  # it quit by itself: no signal was needed
    assert worker.exit_reason == "stopped by orvad" and exits == [worker] and kills == []
    with pytest.raises(WorkerCrashed, match="not running"):
        await invoke(worker, "y")
    await worker.stop()  # stopping twice is harmless


async def test_no_ready_frame_is_a_start_failure_and_the_process_is_reaped() -> None:
    worker = fake("silent")
    with pytest.raises(WorkerCrashed, match="no ready frame within 0.3 s"):
        await worker.start(timeout_s=0.3)
    assert worker.proc is not None and worker.proc.returncode is not None


async def test_exit_before_ready_says_why() -> None:
    worker = fake("exit7")
    with pytest.raises(WorkerCrashed, match="exited with code 7") as caught:
        await worker.start(timeout_s=10)
    assert "fatal: the adapter cannot start" in caught.value.message


async def test_a_protocol_error_replaces_the_worker() -> None:
    async with started(fake("garbage")) as worker:
        with pytest.raises(WorkerCrashed, match="protocol error"):
            await invoke(worker, "x")
        assert not worker.alive


async def test_death_by_signal_is_named() -> None:
    async with started(fake("segv")) as worker:
        with pytest.raises(WorkerCrashed, match="killed by signal SIGSEGV"):
            await invoke(worker, "x")


async def test_a_stream_cut_by_a_crash_ends_with_the_reason() -> None:
    async with started(fake("halfstream")) as worker:
        reply = await invoke(worker, "x")
        chunks, end = await drain(reply)
        assert [c["data"] for c in chunks] == ["part"]
        assert end["error"] == {"kind": "crash", "message": "exited with code 9"}


async def test_worker_stderr_over_the_rate_is_dropped_counted_and_flags_the_request() -> None:
    dropped: list[int] = []
    async with started(fake("noisy", log_bytes_per_s=100_000, on_log_drop=dropped.append)) as worker:
        reply = await invoke(worker, "noisy")
        assert reply.logs_truncated is True
        assert worker.log_dropped >= 200_000 and sum(dropped) == worker.log_dropped
        assert "[orva: worker output over 100000 bytes/s dropped]" in worker.stderr_tail
        assert (
            max(len(line) for line in worker.stderr_tail) <= MAX_LINE
        )  # one long line is cut, not kept whole
        quiet = await invoke(worker, "quiet")
        assert quiet.logs_truncated is False


async def test_worker_stderr_is_kept_in_a_bounded_ring() -> None:
    async with started(fake("chatty")) as worker:
        await wait_until(
            lambda: worker.stderr_tail and worker.stderr_tail[-1] == "line 999", 5, "the last line"
        )
        assert len(worker.stderr_tail) == STDERR_RING
        assert worker.stderr_tail[0] == f"line {1000 - STDERR_RING}"


async def test_stop_escalates_to_sigkill_of_the_process_group() -> None:
    kills: list[int] = []
    worker = fake("stubborn", after_kill=kills.append)
    await worker.start(10)
    await wait_until(
        lambda: any(line.startswith("child ") for line in worker.stderr_tail), 5, "the child pid"
    )
    child = int(next(line for line in worker.stderr_tail if line.startswith("child ")).split()[1])
    assert pid_exists(child)
    await asyncio.wait_for(worker.stop(grace_s=0.2), 10)  # quit ignored, SIGTERM ignored: SIGKILL the group
    assert worker.proc is not None and worker.proc.returncode == -9
    # the cgroup clean-up hook ran after the forced kill, with the first child's pid (nsjail names cgroups after it)
    assert kills == [child] and worker.jail_pid == child
    await wait_until(lambda: not alive({child}), 5, "the grandchild to die with its group")


async def test_jailed_worker_spawn_and_stop_leave_nothing_behind(jail_tmp: Path) -> None:
    code = write_code(jail_tmp / "code", {"handler.py": "def handler(event, context):\n    return 'hi'\n"})
    worker = make_worker(code, "python")
    async with running(worker):  # running() checks processes and cgroups after stop
        assert worker.pid is not None and len(descendants(worker.pid)) >= 2  # nsjail and the interpreter
        assert (await call(worker, "/")).response["body"] == "hi"  # type: ignore[index]
    assert worker.exit_reason == "stopped by orvad"


async def test_a_supervisor_killed_from_outside_leaves_no_cgroups_and_is_not_called_oom(
    jail_tmp: Path,
) -> None:
    """kill -9 of nsjail itself: its NSJAIL.<jailed pid> cgroup folders used to stay behind (the clean-up looked
    for nsjail's own pid), and the exit was reported as 'out of memory'."""
    code = write_code(jail_tmp / "code", {"handler.py": "def handler(event, context):\n    return 'hi'\n"})
    worker = make_worker(code, "python")
    await worker.start(20)
    assert worker.pid is not None and worker.jail_pid is not None
    assert leaked_cgroups({worker.jail_pid})  # the live worker's folders, found under the jailed pid
    os.kill(worker.pid, signal.SIGKILL)
    await wait_until(lambda: worker.exit_reason is not None, 10, "the worker's exit")
    await wait_until(lambda: not leaked_cgroups({worker.jail_pid}), 10, "the cgroup folders to be removed")
    assert "supervisor was killed" in worker.exit_reason and "out of memory" not in worker.exit_reason
    await worker.stop(grace_s=0)


async def test_a_supervisor_killed_from_outside_takes_its_adapter_with_it() -> None:
    """nsjail does not take the jailed process with it when it is SIGKILLed; the adapter kept stdout open, so
    its request waited for its timeout. orvad kills the adapter (through a pidfd) once the supervisor is gone."""
    worker = Worker(
        Invocation([sys.executable, "-c", FAKE, "supervised", FAKE], {"PATH": "/usr/bin:/bin"}),
        name="fake-supervised",
        memory_mb=64,
    )
    await worker.start(10)
    assert worker.pid is not None and worker.jail_pid is not None and worker.jail_pid != worker.pid
    held = asyncio.ensure_future(invoke(worker, "held", timeout_s=30))
    await asyncio.sleep(0)
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed, match="sandbox supervisor was killed"):
        await asyncio.wait_for(held, 10)
    await wait_until(lambda: not alive({worker.jail_pid}), 5, "the adapter to be killed")  # type: ignore[arg-type]
    await worker.stop(grace_s=0)


async def test_jail_that_cannot_start_its_command_reports_nsjails_failure(jail_tmp: Path) -> None:
    code = write_code(jail_tmp / "code", {})
    spec = SandboxSpec(
        argv=("/usr/bin/no-such-interpreter",),
        code_dir=str(code),
        binds=sandbox_data().binds_for("python"),
        memory_mb=64,
        cpus=1,
    )
    worker = Worker(build_invocation(spec, host_facts()), name="broken", memory_mb=64)
    since = time.time()  # a folder an earlier process left under the same (wrapped) pid is not this one's
    with pytest.raises(WorkerCrashed, match="worker failed to start") as caught:
        await worker.start(10)
    assert worker.proc is not None and worker.proc.returncode is not None
    assert not leaked_cgroups({worker.proc.pid}, since)
    assert "exit" in caught.value.message


async def test_a_stream_whose_caller_gave_up_is_dropped() -> None:
    async with started(fake("stream")) as worker:
        waiting = asyncio.ensure_future(invoke(worker, "slow"))
        await wait_until(lambda: worker.inflight == 1, 5, "the request to be in flight")
        waiting.cancel()
        # the fake answers in order: once this reply is in, the abandoned stream's frames were read
        assert (await invoke(worker, "after")).response["body"] == "after"
        assert worker.inflight == 0 and worker.alive


async def test_a_fast_stream_and_a_slow_reader_cost_bounded_memory_and_lose_nothing() -> None:
    async with started(fake("flood")) as worker:
        reply = await invoke(worker, "flood500")
        assert reply.kind == "stream" and reply.chunks is not None
        # the reader is not reading: orvad stops reading the pipe once the buffer is full
        await wait_until(lambda: reply.chunks.full(), 5, "the stream buffer to fill")
        assert reply.chunks.qsize() == STREAM_BUFFER_CHUNKS
        received = []
        while (chunk := await asyncio.wait_for(reply.chunks.get(), 5)) is not None:
            received.append(chunk["data"])
            assert reply.chunks.qsize() <= STREAM_BUFFER_CHUNKS
        assert "".join(received) == "".join(f"{i}," for i in range(500))  # in order, nothing dropped
        assert (await invoke(worker, "after")).response["body"] == "after"


async def test_a_stream_nobody_reads_any_more_does_not_stall_its_worker() -> None:
    async with started(fake("flood")) as worker:
        reply = await invoke(worker, "flood500")
        assert reply.chunks is not None
        await wait_until(lambda: reply.chunks.full(), 5, "the stream buffer to fill")
        worker.forget_stream(reply)  # its client went away
        # the frame reader is free again: the rest of that stream is dropped, the next request answered
        assert (await invoke(worker, "after")).response["body"] == "after"
        assert worker.inflight == 0 and worker.alive


def test_on_uvloop_too_a_fast_stream_pauses_the_pipe_and_loses_nothing() -> None:
    """orvad runs on uvloop, whose pipe transports are not the standard library's."""
    import uvloop

    async def flood() -> None:
        await test_a_fast_stream_and_a_slow_reader_cost_bounded_memory_and_lose_nothing()
        await test_a_stream_nobody_reads_any_more_does_not_stall_its_worker()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(flood())


@pytest.mark.parametrize("n", ["flood", "ready"])
async def test_a_frame_that_answers_no_request_kills_the_worker_and_logs_once(
    n: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Red team F9: a thousand frames without an id (or a second ready frame) while a request is in flight
    fail that request as WORKER_CRASHED with the reason, kill the worker and log one line, not one each."""
    async with started(fake("stray")) as worker:
        with pytest.raises(WorkerCrashed, match="the worker wrote a frame that answers no request"):
            await invoke(worker, n)
        assert not worker.alive
        await wait_until(
            lambda: worker.proc is not None and worker.proc.returncode is not None, 5, "the worker's end"
        )
    assert len([r for r in caplog.records if "broke the protocol" in r.getMessage()]) == 1


async def test_a_reply_to_no_request_between_requests_kills_the_worker() -> None:
    async with started(fake("stray")) as worker:
        assert (await invoke(worker, "late")).response["body"] == "late"
        await wait_until(lambda: not worker.alive, 5, "the worker to be condemned")
        assert "id 999 is not in flight" in (worker.exit_reason or "")
        with pytest.raises(WorkerCrashed):
            await invoke(worker, "next")


async def test_workers_that_exit_at_once_leave_no_task_exception() -> None:
    """Issue 17.9: a worker whose process exits while spawn() is still connecting its pipes ran its exit
    task with no process yet ('AssertionError: self.proc is None', 'Task exception was never
    retrieved'); the exit task now waits for spawn() to finish. 40 instant exits, nothing unhandled."""
    import gc

    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unhandled.append(context))
    try:
        for i in range(40):
            worker = Worker(
                Invocation(["/bin/true"], {"PATH": "/usr/bin:/bin"}), name=f"instant-{i}", memory_mb=64
            )
            with pytest.raises(WorkerCrashed):
                await worker.start(timeout_s=5)
            await worker.stop(grace_s=0.1)
            del worker
        gc.collect()  # 'Task exception was never retrieved' is reported when the task is collected
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert unhandled == [], [str(c.get("exception") or c.get("message")) for c in unhandled][:3]
