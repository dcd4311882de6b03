"""Real jailed workers for the worker and runtime-contract tests, and the handlers they run.

Workers are built exactly as orvad builds them (``orvad.services.spawner.ARGV``, ``sandbox/`` data,
``orvad.host.sandbox.build_invocation``), without a daemon, so a test talks frames to one worker.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orvad.host.hostcheck import SandboxData, check_host, clean_leaked_cgroups, load_sandbox_data
from orvad.host.sandbox import HostFacts, SandboxSpec, build_invocation
from orvad.invoke.event import build_event
from orvad.pool.protocol import MAX_FRAME
from orvad.pool.worker import Reply, Worker
from orvad.services.runtimes import RuntimeCatalog, discover
from orvad.services.spawner import ARGV

CGROUP_V1 = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Variant:
    """One way of serving the contract handler: a language, the handler it calls (ORVA_HANDLER) and the shape
    it has (``shape`` names a module of SHAPES, else the language's CONTRACT module is used)."""

    id: str
    language: str
    handler: str
    concurrent: bool  # several requests in flight on one worker
    shape: str | None = None
    context: bool = True  # the handler receives a context (a one-argument handler does not)

    @property
    def files(self) -> dict[str, str]:
        return SHAPES[self.shape] if self.shape else CONTRACT[self.language]


VARIANTS = [
    Variant("python", "python", "handler", False),
    Variant("python-async", "python", "ahandler", True),
    Variant("python-one-arg", "python", "handler", False, "python-one-arg", context=False),
    Variant("python-lambda_handler", "python", "handler", False, "python-lambda_handler"),
    Variant("python-async-main", "python", "handler", True, "python-async-main", context=False),
    Variant("node", "node", "handler", True),
]


@functools.cache
def host_facts() -> HostFacts:
    check = check_host()
    assert check.usable and check.facts is not None, f"the sandbox is unusable here: {check.checks}"
    return check.facts


@functools.cache
def sandbox_data() -> SandboxData:
    return load_sandbox_data()


@functools.cache
def catalog() -> RuntimeCatalog:
    return discover()


def write_code(folder: Path, files: dict[str, str]) -> Path:
    """A code folder the jail's uid can read."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    for name, text in files.items():
        (folder / name).write_text(text)
        (folder / name).chmod(0o644)
    return folder


def make_worker(
    code_dir: Path,
    language: str,
    *,
    entrypoint: str | None = None,
    handler: str = "handler",
    memory_mb: int = 128,
    env: dict[str, str] | None = None,
    max_frame: int = MAX_FRAME,
) -> Worker:
    runtime = catalog().get(language)
    assert runtime is not None, f"no {language} runtime on this host"
    limits = sandbox_data().limits
    spec = SandboxSpec(
        argv=tuple(a.format(interpreter=runtime.interpreter) for a in ARGV[language]),
        code_dir=str(code_dir),
        binds=sandbox_data().binds_for(language),
        memory_mb=memory_mb,
        cpus=1,
        pids=limits["pids"],
        tmpfs_mb=limits["tmpfs_mb"],
        fsize_mb=limits["rlimit_fsize_mb"],
        nofile=limits["rlimit_nofile"],
        runtime_dir=str(runtime.adapter_dir),
        env={
            "ORVA_ENTRYPOINT": entrypoint or runtime.default_entrypoint,
            "ORVA_HANDLER": handler,
            "ORVA_FUNCTION_ID": "fn-test",
            "ORVA_FUNCTION_NAME": "contract",
            **(env or {}),
        },
    )
    return Worker(
        build_invocation(spec, host_facts()),
        name=f"test-{language}",
        memory_mb=memory_mb,
        after_kill=clean_leaked_cgroups,
        max_frame=max_frame,
    )


def descendants(pid: int) -> set[int]:
    """pid and every process below it (nsjail, the jailed interpreter, its children)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {pid}, [pid]
    while frontier:
        current = frontier.pop()
        children = {child for child, parent in parents.items() if parent == current}
        frontier += children - found
        found |= children
    return {p for p in found if p in parents}


def alive(pids: set[int]) -> set[int]:
    """The pids that still exist and are not zombies waiting for a reaper we own."""
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


def process_started(pid: int) -> float:
    """When a process started (epoch seconds, at most a second early: the boot time is whole seconds)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def leaked_cgroups(pids: set[int], since: float | None = None) -> list[Path]:
    """The NSJAIL.<pid> cgroup folders of these pids; with ``since``, only folders made since then. Pids wrap
    (pid_max is 32,768 here) and a folder an earlier process left (a supervisor SIGKILLed by a test, an orvad
    killed with its workers, hours ago) may carry the number of one of ours."""
    found = []
    for controller in ("memory", "pids", "cpu"):
        for pid in pids:
            folder = CGROUP_V1 / controller / "NSJAIL" / f"NSJAIL.{pid}"
            try:
                made = folder.stat().st_ctime
            except FileNotFoundError:
                continue
            if since is None or made >= since - 1.0:
                found.append(folder)
    return found


@asynccontextmanager
async def running(worker: Worker, start_timeout_s: float = 20.0) -> AsyncIterator[Worker]:
    """Start the worker; at the end stop it and check that nothing it started is left."""
    await worker.start(start_timeout_s)
    assert worker.pid is not None
    tree, since = descendants(worker.pid), process_started(worker.pid)
    try:
        yield worker
    finally:
        await asyncio.wait_for(worker.stop(grace_s=1.0), 10)
        assert worker.proc is not None and worker.proc.returncode is not None
        assert not alive(tree), f"processes left behind: {alive(tree)}"
        # a worker SIGKILLed at the end of its grace (a loaded machine) has its cgroups removed by the
        # clean-up hook, retried up to 3 s later while the jailed process finishes dying (Worker._clean_after_kill)
        await wait_until(
            lambda: not leaked_cgroups(tree, since), 5, f"the cgroups of {sorted(tree)} to be removed"
        )


def event(
    path: str,
    *,
    method: str = "GET",
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> dict[str, Any]:
    return build_event(
        method=method,
        path=path,
        raw_query=query,
        headers=headers or {},
        body=body,
        request_context={
            "requestId": "req-1",
            "executionId": "exe-1",
            "functionId": "fn-test",
            "functionName": "contract",
            "trigger": "http",
            "sourceIp": "10.0.0.7",
            "time": "2026-11-22T17:00:00Z",
        },
    )


def context(timeout_s: float = 10.0, request_id: str = "req-1") -> dict[str, Any]:
    return {
        "requestId": request_id,
        "executionId": "exe-1",
        "functionId": "fn-test",
        "functionName": "contract",
        "memoryLimitMb": 128,
        "deadlineMs": int(time.time() * 1000 + timeout_s * 1000),
    }


async def call(worker: Worker, path: str, timeout_s: float = 10.0, **kwargs: Any) -> Reply:
    return await worker.invoke(event(path, **kwargs), context(timeout_s), timeout_s)


async def drain(reply: Reply, deadline_s: float = 10.0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A stream's chunk frames and its end frame, within a deadline."""
    assert reply.kind == "stream" and reply.ended is not None
    chunks: list[dict[str, Any]] = []

    async def collect() -> None:
        async for chunk in reply.iter_chunks():
            chunks.append(chunk)

    await asyncio.wait_for(collect(), deadline_s)
    return chunks, await asyncio.wait_for(reply.ended, deadline_s)


async def wait_until(predicate: Any, deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")
        await asyncio.sleep(0.01)


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


PYTHON_CONTRACT = r'''
import asyncio
import base64
import logging
import os
import sys
import time

logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(message)s")
print("contract module imported")
NOT_HANDLED = object()
_rounds = {}


def summary(event, context):
    seen = {"method": event["method"], "httpMethod": event["httpMethod"],
            "v2method": event["requestContext"]["http"]["method"], "v2path": event["requestContext"]["http"]["path"],
            "path": event["path"], "rawPath": event["rawPath"], "query": event["query"],
            "multiQuery": event["multiQuery"], "rawQuery": event["rawQuery"],
            "rawQueryString": event["rawQueryString"], "queryStringParameters": event["queryStringParameters"],
            "header": event["headers"].get("x-test"), "body": event["body"], "isBase64Encoded": event["isBase64Encoded"],
            "sourceIp": event["requestContext"]["sourceIp"]}
    if context is not None:  # a one-argument handler has none
        seen.update({"requestId": context.request_id, "awsRequestId": context.aws_request_id,
                     "functionId": context.function_id, "functionName": context.function_name,
                     "memory": context.memory_limit_in_mb, "remaining": context.get_remaining_time_in_millis()})
    return seen


PLAIN = {"json": {"a": [1, 2]}, "list": [1, "two"], "number": 42, "bool": True, "none": None, "str": "hello",
         "bytes": b"\x00\xffbin"}


def common(event, context):
    p = event["path"]
    if p == "/echo":
        return summary(event, context)
    if p == "/binary":
        return base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
    if p == "/cookies":
        return {"statusCode": 201, "headers": {"set-cookie": ["a=1; Path=/", "b=2; Path=/"], "x-one": "1"},
                "body": "cookies"}
    if p == "/mvh":
        return {"statusCode": 202, "multiValueHeaders": {"x-multi": ["1", "2"]}, "cookies": ["c=3", "d=4"],
                "body": {"k": 1}}
    if p.startswith("/plain/"):
        return PLAIN[p[len("/plain/"):]]
    if p == "/raise":
        print("about to raise")
        raise ValueError("boom")
    if p == "/crash":
        os._exit(3)
    if p == "/oom":
        hog = b"x" * (400 << 20)
        return len(hog)
    if p == "/fd1":
        os.write(1, b"raw fd1 write\n")
        print("printed")
        return "ok"
    if p == "/biglog":
        print("x" * 300_000)
        return "ok"
    if p == "/big":
        return "y" * int(event["query"]["n"])
    return NOT_HANDLED


def handler(event, context):
    result = common(event, context)
    if result is not NOT_HANDLED:
        return result
    p = event["path"]
    if p == "/stream":
        return stream()
    if p == "/slowstream":
        return slow_stream()
    if p == "/sleep":
        time.sleep(60)
    if p == "/nap":
        time.sleep(0.3)
        return "rested"
    if p == "/log":
        tag = event["query"]["tag"]
        print(f"{tag} print")
        logging.info("%s logging", tag)
        sys.stderr.write(f"{tag} stderr\n")
        return tag
    return {"statusCode": 404, "body": "no route"}


def stream():
    yield {"statusCode": 206, "headers": {"x-stream": "yes"}}
    print("streaming")
    yield "a"
    yield b"\x00\x01"
    yield {"n": 3}


def slow_stream():
    yield "first"
    time.sleep(60)
    yield "never"


async def astream():
    yield {"statusCode": 206, "headers": {"x-stream": "yes"}}
    print("streaming")
    yield "a"
    await asyncio.sleep(0)
    yield b"\x00\x01"
    yield {"n": 3}


async def aslow_stream():
    yield "first"
    await asyncio.sleep(60)
    yield "never"


async def rendezvous(key, n):
    """Wait until n requests of this round are in flight together (proves concurrency)."""
    count, everyone = _rounds.setdefault(key, [0, asyncio.Event()])
    _rounds[key][0] = count + 1
    if count + 1 >= n:
        everyone.set()
    await asyncio.wait_for(everyone.wait(), 10)


async def ahandler(event, context):
    result = common(event, context)
    if result is not NOT_HANDLED:
        return result
    p = event["path"]
    if p == "/stream":
        return astream()
    if p == "/slowstream":
        return aslow_stream()
    if p == "/sleep":
        await asyncio.sleep(60)
    if p == "/nap":
        await asyncio.sleep(0.3)
        return "rested"
    if p == "/log":
        tag = event["query"]["tag"]
        print(f"{tag} print")
        await rendezvous(event["query"]["round"], int(event["query"]["n"]))
        logging.info("%s logging", tag)
        await asyncio.sleep(0)
        sys.stderr.write(f"{tag} stderr\n")
        return tag
    return {"statusCode": 404, "body": "no route"}
'''

NODE_CONTRACT = r"""
'use strict';
console.log('contract module imported');
const rounds = new Map();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const PLAIN = { json: { a: [1, 2] }, list: [1, 'two'], number: 42, bool: true, none: null, str: 'hello',
  bytes: Buffer.from([0, 0xff, ...Buffer.from('bin')]) };

function summary(event, context) {
  return { method: event.method, httpMethod: event.httpMethod, v2method: event.requestContext.http.method,
    v2path: event.requestContext.http.path, path: event.path, rawPath: event.rawPath, query: event.query,
    multiQuery: event.multiQuery, rawQuery: event.rawQuery, rawQueryString: event.rawQueryString,
    queryStringParameters: event.queryStringParameters, header: event.headers['x-test'] ?? null,
    body: event.body, isBase64Encoded: event.isBase64Encoded, sourceIp: event.requestContext.sourceIp,
    requestId: context.requestId, awsRequestId: context.awsRequestId, functionId: context.functionId,
    functionName: context.functionName, memory: context.memoryLimitInMB,
    remaining: context.getRemainingTimeInMillis() };
}

function rendezvous(key, n) {
  let round = rounds.get(key);
  if (!round) {
    round = { count: 0 };
    round.done = new Promise((resolve) => { round.resolve = resolve; });
    rounds.set(key, round);
  }
  round.count += 1;
  if (round.count >= n) round.resolve();
  return Promise.race([round.done, sleep(10000).then(() => { throw new Error('not concurrent'); })]);
}

exports.handler = async (event, context) => {
  const p = event.path;
  if (p === '/echo') return summary(event, context);
  if (p === '/binary') return Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8');
  if (p === '/cookies') return { statusCode: 201, headers: { 'set-cookie': ['a=1; Path=/', 'b=2; Path=/'], 'x-one': '1' }, body: 'cookies' };
  if (p === '/mvh') return { statusCode: 202, multiValueHeaders: { 'x-multi': ['1', '2'] }, cookies: ['c=3', 'd=4'], body: { k: 1 } };
  if (p.startsWith('/plain/')) return PLAIN[p.slice('/plain/'.length)];
  if (p === '/raise') { console.log('about to raise'); throw new Error('boom'); }
  if (p === '/crash') process.exit(3);
  if (p === '/oom') { const hogs = []; for (let i = 0; i < 40; i++) hogs.push(Buffer.alloc(10 << 20, 1)); return hogs.length; }
  if (p === '/biglog') { console.log('x'.repeat(300000)); return 'ok'; }
  if (p === '/big') return 'y'.repeat(Number(event.query.n));
  if (p === '/stream') {
    return (async function* () {
      yield { statusCode: 206, headers: { 'x-stream': 'yes' } };
      console.log('streaming');
      yield 'a'; await sleep(0); yield Buffer.from([0, 1]); yield { n: 3 };
    })();
  }
  if (p === '/webstream') {
    return new ReadableStream({ start(c) { c.enqueue('r1'); c.enqueue(new Uint8Array([2, 3])); c.close(); } });
  }
  if (p === '/slowstream') return (async function* () { yield 'first'; await sleep(60000); yield 'never'; })();
  if (p === '/sleep') await sleep(60000);
  if (p === '/nap') { await sleep(300); return 'rested'; }
  if (p === '/log') {
    const tag = event.query.tag;
    console.log(`${tag} print`);
    await rendezvous(event.query.round, Number(event.query.n));
    console.error(`${tag} logging`);
    await sleep(0);
    process.stderr.write(`${tag} stderr\n`);
    return tag;
  }
  return { statusCode: 404, body: 'no route' };
};
"""

CONTRACT = {"python": {"handler.py": PYTHON_CONTRACT}, "node": {"handler.js": NODE_CONTRACT}}

# The same contract module in the other shapes a Python module may have (docs/HANDLERS.md, "Handler shapes"):
# the adapter finds each by name and calls it with the arguments its signature takes.
SHAPES = {
    "python-one-arg": {
        "handler.py": PYTHON_CONTRACT
        + """
_contract = handler


def handler(event):  # one argument: called with the event only
    return _contract(event, None)
"""
    },
    "python-lambda_handler": {
        "handler.py": PYTHON_CONTRACT
        + """
_contract = handler
del handler  # the configured name (handler) is absent: the adapter falls back to lambda_handler


def lambda_handler(event, context):
    return _contract(event, context)
"""
    },
    "python-async-main": {
        "handler.py": PYTHON_CONTRACT
        + """
_acontract = ahandler
del handler, ahandler  # neither handler nor lambda_handler: the adapter falls back to main


async def main(event):  # async and one argument
    return await _acontract(event, None)
"""
    },
}
