"""What every benchmark section shares: a private orvad, its API (sync and async), wrk, process memory."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PY_HANDLER = "def handler(event, context):\n    return {'hello': 'world'}\n"
JS_HANDLER = "exports.handler = async () => ({ hello: 'world' });\n"
HANDLERS = {"python": PY_HANDLER, "node": JS_HANDLER}
WARM_POOL = {"min_warm": 2, "max_warm": 4, "scale_to_zero": False}  # the warm-throughput setup
MAX_RETRIES = 30  # 503s with Retry-After (BUILD_QUEUE_FULL) honoured before giving up


def handler_saying(word: str) -> str:
    """A Python handler whose answer names its version, so a poll can tell which one answered."""
    return PY_HANDLER.replace("world", word)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Callable[[], bool], deadline_s: float, what: str, interval_s: float = 0.02) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(interval_s)
    raise RuntimeError(f"timed out waiting for {what}")


async def wait_until_async(
    pred: Callable[[], Awaitable[bool]], deadline_s: float, what: str, interval_s: float = 0.02
) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if await pred():
            return
        await asyncio.sleep(interval_s)
    raise RuntimeError(f"timed out waiting for {what}")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


# process memory, from /proc
def _proc_field_kb(path: str, field: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:  # the process is gone
        pass
    return 0


def rss_kb(pid: int) -> int:
    return _proc_field_kb(f"/proc/{pid}/status", "VmRSS:")


def pss_kb(pid: int) -> int:
    return _proc_field_kb(f"/proc/{pid}/smaps_rollup", "Pss:")


def mb(kb: float) -> float:
    return round(kb / 1024, 1)


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``, from every thread's children list."""
    found: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(c) for c in listing.read_text().split()]
        except OSError:
            pass
    return found


def descendants_of(pid: int) -> list[int]:
    found, frontier = [], children_of(pid)
    while frontier:
        found += frontier
        frontier = [c for p in frontier for c in children_of(p)]
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads, not its children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: int, connections: int = 50, server_pid: int | None = None) -> dict[str, float]:
    """wrk's figures; with `server_pid`, also that server's CPU per request, which a noisy machine
    disturbs far less than req/s."""
    threads = min(2, connections)
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    requests = re.search(r"(\d+) requests in", out)
    cpu_us = None
    if server_pid and requests and int(requests.group(1)):
        cpu_us = round((cpu_seconds(server_pid) - cpu_before) / int(requests.group(1)) * 1e6, 1)

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    figures = {
        "req_s": float(rps.group(1)) if rps else 0.0,
        "p50_ms": ms("50"),
        "p90_ms": ms("90"),
        "p99_ms": ms("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }
    if cpu_us is not None:
        figures["server_cpu_us_per_req"] = cpu_us
    return figures


def stop_process(proc: subprocess.Popen[Any], grace_s: float = 10) -> None:
    """SIGTERM, then SIGKILL if it will not go; only ever a process this harness started."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def raise_for_status(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} "
            f"{response.text[:300]}"
        )
    return response


class Orvad:
    """One orvad with its own data dir and port; start it with ``running_orvad``."""

    def __init__(self, base: Path, server: str = "hypercorn", env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.server = server
        self.data = base / "data"
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "ORVA_DATA_DIR": str(self.data),
            "ORVA_PORT": str(self.port),
            "ORVA_SERVER": server,
            **(env or {}),
        }
        env.pop("ORVA_LOG_LEVEL", None)  # measured as users run it: at `info`, one access line per request
        with open(base / "orvad.err", "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orvad", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=err
            )
        self.client: httpx.Client | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self) -> None:
        wait_until(self._up, 60, "orvad")
        self.api_key = (self.data / "admin.key").read_text().strip()
        self.client = httpx.Client(base_url=self.url, timeout=60, headers={"X-Orva-API-Key": self.api_key})

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"orvad exited with {self.proc.returncode} at start")
        try:
            return httpx.get(f"{self.url}/health/startup", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def api(self, max_connections: int = 16) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            timeout=60,
            headers={"X-Orva-API-Key": self.api_key},
            limits=httpx.Limits(max_connections=max_connections),
        )

    def deploy(
        self, name: str, runtime: str, code: str, pool: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            async with self.api() as api:
                return await deploy_function(api, name, runtime, code, pool, **fields)

        return asyncio.run(run())

    def set_pool(self, fn_id: str, **config: Any) -> None:
        assert self.client is not None
        raise_for_status(self.client.put("/api/v1/pool/config", json={"function_id": fn_id, **config}))

    def delete(self, fn_id: str) -> None:
        assert self.client is not None
        raise_for_status(self.client.delete(f"/api/v1/functions/{fn_id}"))

    def pools(self) -> list[dict[str, Any]]:
        assert self.client is not None
        return list(self.client.get("/api/v1/system/metrics.json").json()["pools"])

    def pool(self, fn_id: str) -> dict[str, Any]:
        return next((r for r in self.pools() if r["function_id"] == fn_id), {"workers": 0, "spawned": 0})

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        jails = children_of(self.pid)
        stop_process(self.proc, grace_s=30)
        for pid in jails:  # only after a forced kill can a jail outlive orvad; SIGTERM lets nsjail clean up
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


@contextmanager
def running_orvad(server: str = "hypercorn", env: dict[str, str] | None = None) -> Iterator[Orvad]:
    base = Path(tempfile.mkdtemp(prefix=f"orva-bench-{server}-"))
    base.chmod(0o711)  # jailed workers (uid 65534) must traverse to their code
    orvad = Orvad(base, server, env)
    try:
        orvad.wait_ready()
        yield orvad
    except BaseException:
        orvad.stop()  # its log complete, then what it logged at error level goes with the failure
        errors = [
            line
            for line in (base / "orvad.err").read_text(errors="replace").splitlines()
            if '"level":"error"' in line or '"level":"critical"' in line
        ]
        print(
            "\n".join(["orvad's errors:", *errors[-20:]]) if errors else "orvad logged no errors",
            file=sys.stderr,
        )
        raise
    finally:
        orvad.stop()
        shutil.rmtree(base, ignore_errors=True)


# the API, asynchronously (concurrent deploys)
async def call(api: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One API call; a 503 with Retry-After (a full build queue) waits as told and tries again."""
    for _ in range(MAX_RETRIES):
        response = await api.request(method, path, **kwargs)
        retry_after = response.headers.get("retry-after")
        if response.status_code != 503 or retry_after is None:
            return raise_for_status(response)
        await asyncio.sleep(float(retry_after))
    return raise_for_status(response)


async def create_function(
    api: httpx.AsyncClient, name: str, runtime: str, pool: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """A function with its pool configured before its first version exists (so min_warm applies at once)."""
    fn: dict[str, Any] = (
        await call(api, "POST", "/api/v1/functions", json={"name": name, "runtime": runtime, **fields})
    ).json()
    if pool:
        await call(api, "PUT", "/api/v1/pool/config", json={"function_id": fn["id"], **pool})
    return fn


async def deploy_inline(api: httpx.AsyncClient, fn_id: str, code: str) -> str:
    """Deploy; the deployment's id."""
    response = await call(api, "POST", f"/api/v1/functions/{fn_id}/deploy-inline", json={"code": code})
    return str(response.json()["id"])


async def wait_deployed(api: httpx.AsyncClient, deployment_id: str, deadline_s: float = 120) -> None:
    async def done() -> bool:
        status = (await call(api, "GET", f"/api/v1/deployments/{deployment_id}")).json()["status"]
        if status == "failed":
            raise RuntimeError(f"deployment {deployment_id} failed")
        return bool(status == "succeeded")

    await wait_until_async(done, deadline_s, f"deployment {deployment_id}", interval_s=0.05)


async def deploy_function(
    api: httpx.AsyncClient,
    name: str,
    runtime: str,
    code: str,
    pool: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    fn = await create_function(api, name, runtime, pool, **fields)
    await wait_deployed(api, await deploy_inline(api, fn["id"], code))
    return fn


async def first_answer(api: httpx.AsyncClient, fn_id: str, expect: str, deadline_s: float = 60) -> None:
    """Invoke until the function answers 200 with ``expect`` in its body (503 BUILDING before that).
    Polls every 50 ms: many functions polled faster would load the server whose deploys are timed."""

    async def answered() -> bool:
        response = await api.get(f"/fn/{fn_id}/")
        return response.status_code == 200 and expect in response.text

    await wait_until_async(answered, deadline_s, f"first answer of {fn_id}", interval_s=0.05)


async def bounded(limit: int, jobs: list[Awaitable[Any]]) -> list[Any]:
    """Run ``jobs`` at most ``limit`` at a time, in order of the results."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(one(job) for job in jobs))
