"""The build proxy: the only way out of a build jail's network namespace.

A build's namespace reaches exactly one host socket, this proxy, listening on the host side of
that build's veth. It speaks HTTP CONNECT (for https) and absolute-URI requests (plain http),
checks the requested ``host:port`` against the allow list (``ORVA_BUILD_ALLOW_HOSTS``, default the
registries the host's pip and npm are configured to use), resolves the name itself and refuses
loopback, private, CGNAT, link-local, multicast and the host's own addresses unless the operator
named that host or address in the setting. Then it relays bytes. With ``HTTPS_PROXY``/``HTTP_PROXY``
in orvad's environment it chains allowed requests through that upstream proxy instead.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import ipaddress
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

PROXY_PORT = 3128
_HEAD_LIMIT = 16 * 1024
_HEAD_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 20.0
_CHUNK = 64 * 1024
_MAX_CONNECTIONS = 64  # per build; pip and npm open a handful
_DEFAULT_PIP = ("pypi.org", "files.pythonhosted.org")
_DEFAULT_NPM = "registry.npmjs.org"
_DENIED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)

Note = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Registries:
    """Where the host's pip and npm fetch packages (http(s) URLs only, credentials removed)."""

    pip_index: str | None = None
    pip_extra: tuple[str, ...] = ()
    npm_registry: str | None = None

    def env(self) -> dict[str, str]:
        """The registry variables a build gets, so its pip/npm use what the host's would."""
        env: dict[str, str] = {}
        if self.pip_index:
            env["PIP_INDEX_URL"] = self.pip_index
        if self.pip_extra:
            env["PIP_EXTRA_INDEX_URL"] = " ".join(self.pip_extra)
        if self.npm_registry:
            env["npm_config_registry"] = self.npm_registry
        return env

    def hosts(self) -> list[str]:
        """The default allow list: the hosts of these registries, or the public ones."""
        pip = [_host_port(u) for u in (self.pip_index, *self.pip_extra) if u]
        hosts = pip if self.pip_index else [*_DEFAULT_PIP, *pip]
        hosts.append(_host_port(self.npm_registry) if self.npm_registry else _DEFAULT_NPM)
        return list(dict.fromkeys(hosts))


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port}" if parts.port else host


def _clean_url(url: str) -> str | None:
    """An http(s) URL without user:password@, query or fragment, else None.

    Registries take tokens there (``?token=``, ``?_authToken=``); the URL goes into every build's
    environment, so credentials pass only through ORVA_BUILD_ENV. A token in the path cannot be told
    from a path and is kept (docs/NETWORK.md says so).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc, query="", fragment="").geturl()


def discover_registries(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Registries:
    """Read the registries the host's pip and npm use: environment first, then their config files."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get("HOME", "/root")) if home is None else home
    pip_conf = configparser.ConfigParser(interpolation=None)
    with contextlib.suppress(configparser.Error):
        pip_conf.read(
            [
                Path("/etc/pip.conf"),
                Path("/etc/xdg/pip/pip.conf"),
                home / ".pip/pip.conf",
                home / ".config/pip/pip.conf",
                *([Path(environ["PIP_CONFIG_FILE"])] if environ.get("PIP_CONFIG_FILE") else []),
            ]
        )

    def pip_value(key: str) -> str | None:
        env_key = "PIP_" + key.upper().replace("-", "_")
        if environ.get(env_key):
            return environ[env_key]
        for section in ("install", "global"):
            if pip_conf.has_option(section, key):
                return pip_conf.get(section, key)
        return None

    index = _clean_url(pip_value("index-url") or "")
    extra = tuple(u for u in (_clean_url(v) for v in (pip_value("extra-index-url") or "").split()) if u)
    npm = environ.get("npm_config_registry") or environ.get("NPM_CONFIG_REGISTRY")
    if not npm:
        for rc in (home / ".npmrc", Path("/etc/npmrc"), Path("/usr/etc/npmrc")):
            with contextlib.suppress(OSError):
                for line in rc.read_text().splitlines():
                    key, sep, value = line.partition("=")
                    if sep and key.strip() == "registry":
                        npm = value.strip()
            if npm:
                break
    return Registries(index, extra, _clean_url(npm or ""))


@dataclass(frozen=True)
class AllowList:
    """``host`` (ports 80 and 443) or ``host:port`` entries; ``explicit`` ones came from the operator."""

    entries: frozenset[tuple[str, int | None]]
    explicit: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def parse(cls, configured: str, defaults: list[str]) -> AllowList:
        named = [e.strip() for e in configured.split(",") if e.strip()]
        entries = {_entry(e) for e in (named or defaults)}
        return cls(frozenset(entries), frozenset(h for h, _ in (_entry(e) for e in named)))

    def allows(self, host: str, port: int) -> bool:
        host = host.lower().rstrip(".")
        return (host, port) in self.entries or ((host, None) in self.entries and port in (80, 443))

    def describe(self) -> str:
        return ", ".join(sorted(h if p is None else f"{h}:{p}" for h, p in self.entries))


def _entry(text: str) -> tuple[str, int | None]:
    host, port = _split_host_port(text.strip().lower())
    return host.rstrip("."), port


def _split_host_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, None


class Refused(Exception):
    def __init__(self, status: int, message: str, hint: str) -> None:
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


def _denied(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    if any(ip in net for net in _DENIED if net.version == ip.version):
        return True
    with socket.socket(socket.AF_INET6 if ip.version == 6 else socket.AF_INET) as probe:
        try:
            probe.bind((addr, 0))  # succeeds only for the host's own addresses
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Upstream | None:
        environ = os.environ if environ is None else environ
        for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
            url = environ.get(name)
            if url:
                parts = urlsplit(url if "://" in url else "http://" + url)
                if parts.hostname:
                    return cls(parts.hostname, parts.port or 3128)
        return None


class BuildProxy:
    def __init__(self, allow: AllowList, upstream: Upstream | None = None) -> None:
        self.allow = allow
        self.upstream = upstream

    async def listen(self, address: str, note: Note) -> ProxyListener:
        """Serve one build on ``address:PROXY_PORT`` (the host side of its veth) until closed."""
        listener = ProxyListener(self, note)
        listener.server = await asyncio.start_server(listener.handle, address, PROXY_PORT, reuse_address=True)
        return listener

    async def open(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Check ``host:port`` and connect to it (or to the upstream proxy, which then gets a CONNECT)."""
        if not self.allow.allows(host, port):
            raise Refused(
                403,
                f"{host}:{port} is not in the build allow list",
                f"builds may reach {self.allow.describe()}; add the host to ORVA_BUILD_ALLOW_HOSTS",
            )
        if self.upstream is not None:
            reader, writer = await self._connect([self.upstream.host], self.upstream.port)
            writer.write(
                f"CONNECT {_authority(host, port)} HTTP/1.1\r\nHost: {_authority(host, port)}\r\n\r\n".encode()
            )
            head = await _read_head(reader)
            if not head.split(b"\r\n", 1)[0].split(b" ")[1:2] == [b"200"]:
                writer.close()
                raise Refused(
                    502, f"the upstream proxy refused {host}:{port}", "check the proxy in orvad's HTTPS_PROXY"
                )
            return reader, writer
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), _CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            raise Refused(502, f"cannot resolve {host}", "check the host's DNS and the allow list") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        explicit = host.lower().rstrip(".") in self.allow.explicit
        usable = [a for a in addresses if explicit or not _denied(a)]
        if not usable:
            raise Refused(
                403,
                f"{host} resolves to {', '.join(addresses)}: a loopback, private or host address",
                "name the host in ORVA_BUILD_ALLOW_HOSTS if builds really must reach it",
            )
        return await self._connect(usable, port)

    @staticmethod
    async def _connect(addresses: list[str], port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        error: Exception | None = None
        for addr in addresses:
            try:
                return await asyncio.wait_for(asyncio.open_connection(addr, port), _CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                error = exc
        raise Refused(
            502,
            f"cannot connect to port {port} of {', '.join(addresses)}: {error}",
            "the registry may be down; the build can be retried",
        )


class ProxyListener:
    def __init__(self, proxy: BuildProxy, note: Note) -> None:
        self.proxy = proxy
        self.note = note
        self.server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._tasks) >= _MAX_CONNECTIONS:
            writer.close()
            await self.note(f"build proxy refused a connection: {_MAX_CONNECTIONS} are open already")
            return
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(_read_head(reader), _HEAD_TIMEOUT_S)
        line, _, rest = head.partition(b"\r\n")
        method, target, version = (line.decode("latin-1").split(" ") + ["", "", ""])[:3]
        try:
            if method == "CONNECT":
                host, port = _split_host_port(target)
                if port is None:
                    raise Refused(400, "CONNECT needs host:port", "use an http(s) proxy client")
                up_reader, up_writer = await self.proxy.open(host, port)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                url = urlsplit(target)
                if url.scheme != "http" or not url.hostname:
                    raise Refused(
                        400, f"not a proxy request: {method} {target[:100]}", "send absolute http:// URLs"
                    )
                port = url.port or 80
                up_reader, up_writer = await self.proxy.open(url.hostname, port)
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                headers = [
                    h
                    for h in rest.split(b"\r\n")
                    if h and not h.lower().startswith((b"proxy-", b"connection:", b"keep-alive:"))
                ]
                up_writer.write(
                    f"{method} {path} {version}\r\n".encode("latin-1")
                    + b"".join(h + b"\r\n" for h in headers)
                    + b"Connection: close\r\n\r\n"
                )
        except Refused as refused:
            await self.note(f"build proxy refused {method} {target[:200]}: {refused.message}")
            log.warning(
                "build proxy refused a request", extra={"target": target[:200], "reason": refused.message}
            )
            body = json.dumps(
                {
                    "error": {
                        "code": "BUILD_HOST_NOT_ALLOWED" if refused.status == 403 else "BUILD_PROXY",
                        "message": refused.message,
                        "hint": refused.hint,
                    }
                }
            ).encode()
            reason = refused.message.replace("\r", " ").replace("\n", " ")[:200]
            writer.write(
                f"HTTP/1.1 {refused.status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1", "replace")
                + body
            )
            await writer.drain()
            return
        upward = asyncio.create_task(_pipe(reader, up_writer))
        try:
            await _pipe(up_reader, writer)  # the upstream's end is the exchange's end
        finally:
            upward.cancel()
            up_writer.close()


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    try:
        data = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ValueError("request head too large") from None
    if len(data) > _HEAD_LIMIT:
        raise ValueError("request head too large")
    return data


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while chunk := await src.read(_CHUNK):
            dst.write(chunk)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except OSError:
        dst.close()
