"""The relay floor: the least any relay to a sandboxed worker costs, served like the baselines.

The same jailed workers orvad would start (the real adapter, nsjail with orvad's flags, the
warm bench's handler), and in front of them the thinnest relay that still does the job: read
the request, hand a frame with its method, path, headers and body to an idle worker over its
stdin (or wait in a FIFO queue for one), read the reply frame from its stdout, answer with an
Orva-shaped response. No execution record, no logs, no metrics, no limits, no routing: what is
left is the physical cost of the process hop in Python, the ceiling for orvad's invoke path.

    python bench/relay.py PORT SERVER RUNTIME WORKERS
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import uvloop
from harness import HANDLERS
from hello import serve

from orvad.host.hostcheck import check_host, load_sandbox_data
from orvad.host.sandbox import SandboxSpec, build_invocation
from orvad.pool.protocol import Decoder, encode
from orvad.services.runtimes import discover, precompile_adapter
from orvad.services.spawner import ARGV


class Relay:
    def __init__(self) -> None:
        self.idle: list[JailedWorker] = []
        self.waiting: collections.deque[asyncio.Future[JailedWorker]] = collections.deque()

    def take(self) -> JailedWorker | asyncio.Future[JailedWorker]:
        if self.idle:
            return self.idle.pop()
        waiter: asyncio.Future[JailedWorker] = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        return waiter

    def give_back(self, worker: JailedWorker) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self.idle.append(worker)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = (await receive()).get("body", b"")
        taken = self.take()
        worker = taken if isinstance(taken, JailedWorker) else await taken
        try:
            reply = await worker.invoke(
                {
                    "method": scope["method"],
                    "path": "/",
                    "body": body.decode(),
                    "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
                }
            )
        finally:
            self.give_back(worker)
        response = reply["response"]
        out = response["body"].encode()
        headers = [(k.encode(), str(v).encode()) for k, v in response.get("headers", {}).items()]
        headers += [
            (b"x-orva-execution-id", str(uuid.uuid4()).encode()),
            (b"x-orva-cold-start", b"false"),
            (b"content-length", str(len(out)).encode()),
        ]
        await send(
            {"type": "http.response.start", "status": response.get("statusCode", 200), "headers": headers}
        )
        await send({"type": "http.response.body", "body": out})


class JailedWorker(asyncio.Protocol):
    """One jailed adapter; its stdout is read in the pipe's callback, as orvad's workers are."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.decoder = Decoder()
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.ready: asyncio.Future[None] | None = None
        self.next_id = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, _ = await loop.connect_write_pipe(asyncio.Protocol, self.proc.stdin)
        await loop.connect_read_pipe(lambda: self, self.proc.stdout)
        await asyncio.wait_for(self.ready, 30)

    def data_received(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            if frame.get("type") == "ready":
                assert self.ready is not None
                self.ready.set_result(None)
            else:
                self.pending.pop(frame["id"]).set_result(frame)

    def invoke(self, event: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        self.stdin.write(encode({"type": "invoke", "id": self.next_id, "event": event, "context": {}}))
        return future

    def stop(self) -> None:
        self.proc.terminate()  # nsjail cleans its cgroups up on SIGTERM
        self.proc.wait(10)


def jailed_argv(runtime: str, code_dir: Path) -> tuple[list[str], dict[str, str]]:
    host, data = check_host().facts, load_sandbox_data()
    assert host is not None, "no usable sandbox on this host"
    catalog = discover()
    rt = catalog.get(next(r["id"] for r in catalog.list() if r["language"] == runtime))
    assert rt is not None
    if runtime == "python":
        precompile_adapter(rt)
    entry = "handler.py" if runtime == "python" else "handler.js"
    (code_dir / entry).write_text(HANDLERS[runtime])
    spec = SandboxSpec(
        argv=tuple(a.format(interpreter=rt.interpreter) for a in ARGV[runtime]),
        code_dir=str(code_dir),
        binds=data.binds_for(runtime),
        memory_mb=128,
        cpus=1,
        runtime_dir=str(rt.adapter_dir),
        env={"ORVA_ENTRYPOINT": entry},
    )
    inv = build_invocation(spec, host)
    return list(inv.argv), dict(inv.env)


async def main(port: int, server: str, runtime: str, count: int) -> None:
    code_dir = Path(tempfile.mkdtemp(prefix="orva-relay-"))
    code_dir.chmod(0o755)
    relay = Relay()
    try:
        argv, env = jailed_argv(runtime, code_dir)
        workers = [JailedWorker(argv, env) for _ in range(count)]
        try:
            await asyncio.gather(*(w.start() for w in workers))
            relay.idle.extend(workers)
            await serve(relay, port, server)
        finally:
            for worker in workers:
                worker.stop()
    finally:
        shutil.rmtree(code_dir, ignore_errors=True)


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])))  # orvad's loop
