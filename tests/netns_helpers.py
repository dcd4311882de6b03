"""Stand-ins for "the outside" in network tests: a namespace with an HTTP server routed from the host,
and a TCP listener on every host address. No traffic leaves the machine."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import wait_for

# Python source for jailed probes: connect(host, port) -> "ok:<status line>" or "refused:<error>"
CONNECT_CODE = r"""
def connect(host, port):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(2)
    try:
        s.connect((host, int(port)))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        return "ok:" + s.recv(64).decode(errors="replace").split("\r\n")[0]
    except Exception as exc:
        return "refused:" + type(exc).__name__
    finally:
        s.close()
"""


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def host_addresses() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines() if " lo " not in line]


@contextmanager
def served_namespace(
    ns: str,
    host_if: str,
    host_cidr: str,
    server_cidr: str,
    port: int,
    directory: Path | None = None,
    server: list[str] | None = None,
) -> Iterator[str]:
    """Namespace ``ns`` holding an HTTP server on the address of ``server_cidr``:``port`` (http.server
    of ``directory``, or the ``server`` command), linked to the host by a veth (``host_cidr`` on the
    host side). Yields the server's address."""
    address, host_ip = server_cidr.split("/")[0], host_cidr.split("/")[0]
    peer_if = host_if[:-1] + "o"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "link", "del", host_if], capture_output=True)
    sh("ip", "netns", "add", ns)
    proc = None
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", ns)
        sh("ip", "addr", "add", host_cidr, "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "-n", ns, "addr", "add", server_cidr, "dev", peer_if)
        sh("ip", "-n", ns, "link", "set", peer_if, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", host_ip)
        argv = server or [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            address,
            *(["--directory", str(directory)] if directory else []),
        ]
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(
            lambda: (
                subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        sys.executable,
                        "-c",
                        f"import socket; socket.create_connection(('{address}', {port}), 1)",
                    ],
                    capture_output=True,
                ).returncode
                == 0
            ),
            15,
            f"the server in {ns}",
        )
        yield address
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


@contextmanager
def listener_everywhere() -> Iterator[int]:
    """A TCP service on every host address (loopback included) answering ``HTTP/1.0 200 host``."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.sendall(b"HTTP/1.0 200 host\r\n\r\n")
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        srv.close()
