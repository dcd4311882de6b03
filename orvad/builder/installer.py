"""The build jail: runs a dependency install command in a sandbox as tight as a worker's.

``Builder`` (build.py) decides what to install; this module decides how the install runs:
user mapping, limits, the network it may reach and the environment it sees. Each install gets
its own network namespace (egress.py, kind "b") whose only reachable socket is orvad's build
proxy on the host side of its veth (buildproxy.py); the proxy lets only the allow-listed
registries through. No host environment variable enters the jail except the registry URLs and
the names the operator lists in ORVA_BUILD_ENV.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from orvad.builder.safetree import chown_beneath
from orvad.host.buildproxy import PROXY_PORT, BuildProxy
from orvad.host.egress import EgressError, EgressNetwork
from orvad.host.process import DEVNULL, PIPE, spawn
from orvad.host.sandbox import JAIL_UID, HostFacts, SandboxSpec, build_invocation
from orvad.models import Function

MAX_LINE_CHARS = 4096  # the build log's bound on a line
CUT_MARK = " [line cut: longer than 4096 characters]"
_MAX_LINE_BYTES = 4 * MAX_LINE_CHARS  # a UTF-8 character takes at most 4 bytes
_STOP_GRACE_S = 5.0


class BuildFailed(Exception):
    """A build step failed; the message is what the user reads in error_message."""


@dataclass(frozen=True)
class InstallJob:
    function: Function
    language: str
    argv: list[str]  # run inside the build sandbox with the tree at /code
    tree: Path  # host folder bound read-write at /code
    cache: Path  # host folder bound read-write at /cache (shared download cache)
    timeout_s: float
    on_line: Callable[[str, str], Awaitable[None]]  # (stream, line)


InstallRunner = Callable[[InstallJob], Awaitable[int]]


@dataclass(frozen=True)
class BuildNetwork:
    """What a build's network is made of: namespaces, the proxy, and the environment it sees."""

    namespaces: EgressNetwork
    proxy: BuildProxy
    registry_env: Mapping[str, str]  # PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, npm_config_registry
    passed_env: tuple[str, ...] = ()  # ORVA_BUILD_ENV: host variables the operator lets through

    @asynccontextmanager
    async def session(self, note: Callable[[str], Awaitable[None]]) -> AsyncIterator[tuple[str, str]]:
        """A fresh namespace and a proxy listening for it: yields (namespace, proxy URL)."""
        try:
            name = await self.namespaces.lease("b")
        except (EgressError, TimeoutError) as exc:
            raise BuildFailed(
                f"the build network is unavailable: {exc}; builds never use the host's network "
                "(see the egress check in GET /api/v1/system/health and docs/NETWORK.md)"
            ) from None
        try:
            address = self.namespaces.host_address(name)
            listener = await self.proxy.listen(address, note)
            try:
                yield name, f"http://{address}:{PROXY_PORT}"
            finally:
                await listener.close()
        finally:
            await self.namespaces.release(name)

    def env(self, proxy_url: str) -> dict[str, str]:
        env = {
            "HOME": "/tmp",
            "npm_config_update_notifier": "false",
            "PIP_NO_COLOR": "1",
            # Node trusts the system CA store (as pip does), so a host's own CAs work in the jail too
            "NODE_OPTIONS": "--use-openssl-ca",
            "SSL_CERT_DIR": "/etc/ssl/certs",
            **self.registry_env,
        }
        env.update({k: os.environ[k] for k in self.passed_env if k in os.environ})
        for name in (
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "http_proxy",
            "https_proxy",
            "npm_config_proxy",
            "npm_config_https_proxy",
        ):
            env[name] = proxy_url  # the proxy wins over anything listed: nothing else is reachable anyway
        env["NO_PROXY"] = env["no_proxy"] = ""
        return env


def sandboxed_installer(
    host: HostFacts, binds: Callable[[str], tuple[str, ...]], limits: dict[str, int], network: BuildNetwork
) -> InstallRunner:
    """Run an install command inside a build jail: as tight as a worker's, its network only the build proxy."""

    async def run(job: InstallJob) -> int:
        async def note(line: str) -> None:
            await job.on_line("system", line)

        async with network.session(note) as (netns, proxy_url):
            return await _run_jailed(job, host, binds, limits, netns, network.env(proxy_url))

    return run


async def _run_jailed(
    job: InstallJob,
    host: HostFacts,
    binds: Callable[[str], tuple[str, ...]],
    limits: dict[str, int],
    netns: str,
    env: dict[str, str],
) -> int:
    job.cache.mkdir(parents=True, exist_ok=True, mode=0o711)
    as_root = os.geteuid() == 0
    if as_root:  # the jail writes as 65534; give it the tree and the cache, take the tree back after
        await asyncio.to_thread(_chown_tree, job.tree, JAIL_UID)
        await asyncio.to_thread(_chown_tree, job.cache, JAIL_UID)
    spec = SandboxSpec(
        argv=tuple(job.argv),
        code_dir=str(job.tree),
        code_access="rw",
        binds=binds(job.language),
        memory_mb=limits["build_memory_mb"],
        cpus=float(os.cpu_count() or 1),
        pids=limits["build_pids"],
        tmpfs_mb=limits["build_tmpfs_mb"],
        fsize_mb=512,
        nofile=4096,
        extra_rw=((str(job.cache), "/cache"),),
        network="build",
        netns=netns,
        env=env,
    )
    inv = build_invocation(spec, host)
    proc = await spawn(inv.argv, env=inv.env, stdin=DEVNULL, stdout=PIPE, stderr=PIPE, start_new_session=True)

    async def pump(stream: asyncio.StreamReader | None, name: str) -> None:
        assert stream is not None
        lines = LineSplitter()
        while chunk := await stream.read(1 << 16):  # chunks, not readline: no line is too long to read
            for line in lines.feed(chunk):
                await job.on_line(name, line)
        for line in lines.end():
            await job.on_line(name, line)

    pumps = [
        asyncio.create_task(pump(proc.stdout, "stdout")),
        asyncio.create_task(pump(proc.stderr, "stderr")),
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*pumps, proc.wait()), job.timeout_s)
    except BaseException as exc:  # the timeout, a cancel, or any failure: the jail never outlives the build
        await proc.stop(
            term_grace_s=_STOP_GRACE_S
        )  # SIGTERM (nsjail removes its cgroups), grace, SIGKILL the group
        if isinstance(exc, TimeoutError):
            raise BuildFailed(
                f"dependency install ran past the {job.timeout_s:.0f} s build timeout"
            ) from None
        raise
    finally:
        for task in pumps:  # no line is logged after the build has ended
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        if as_root:
            await asyncio.to_thread(_chown_tree, job.tree, 0)
    return proc.returncode or 0


class LineSplitter:
    """Splits a byte stream into lines of at most MAX_LINE_CHARS characters, holding a bounded buffer.

    A longer line is cut, ends with CUT_MARK, and the rest of it (up to its newline) is skipped.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False  # inside a line already cut: drop bytes until its newline

    def feed(self, data: bytes) -> list[str]:
        out: list[str] = []
        self._buf += data
        while (end := self._buf.find(b"\n")) >= 0:
            raw = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if self._skipping:
                self._skipping = False
            else:
                out.append(_text(raw))
        if self._skipping:
            self._buf.clear()
        elif (
            len(self._buf) > _MAX_LINE_BYTES
        ):  # holds more than MAX_LINE_CHARS characters whatever its encoding
            out.append(_text(bytes(self._buf)))
            self._buf.clear()
            self._skipping = True
        return out

    def end(self) -> list[str]:
        """The last line when the stream ended without a newline."""
        raw, skipping = bytes(self._buf), self._skipping
        self._buf.clear()
        self._skipping = False
        return [_text(raw)] if raw and not skipping else []


def _text(raw: bytes) -> str:
    text = raw.decode(errors="replace")
    if len(text) > MAX_LINE_CHARS:
        text = text[: MAX_LINE_CHARS - len(CUT_MARK)] + CUT_MARK
    return text


def _chown_tree(root: Path, uid: int) -> None:
    chown_beneath(root, uid)  # one descriptor walk: a link in the tree is changed itself, never followed
