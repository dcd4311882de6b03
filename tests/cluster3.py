"""Three orvad nodes in three network namespaces on one host, one PostgreSQL, HAProxy in front (issue 25's
proof, docs/CLUSTER.md "Trying it: make cluster-demo").

The network: a bridge ``orc3-br`` on the host holding ``10.250.25.1/24`` (no other test uses 10.250/16:
egress slots are 10.128-10.227, derived egress ranges 10.231/16, the firewall tests' namespace
10.254.77/30), and per node a namespace ``orc3-n<i>`` joined to it by a veth pair (``orc3-h<i>`` on the
host, ``orc3-p<i>`` inside) with ``10.250.25.1<i>/24`` and a default route via the bridge. Every node
listens on port 8443 of its own address (a namespace has its ports to itself); the nodes reach each other
across the bridge, the host reaches them all.

PostgreSQL (tests/pg.py, a throwaway cluster) listens on 127.0.0.1 and on the bridge's 10.250.25.1, and
lets the namespaces' network log in with its password. Each node runs ``nsenter --net=/run/netns/orc3-n<i>
python -m orvad serve`` (not ``ip netns exec``, which remounts /sys in a mount namespace of its own and so
hides /sys/fs/cgroup: orvad's cgroups health check fails; ``nsenter`` execs, so the process started *is*
orvad: its pid is the one to kill) with the same
ORVA_DATABASE_URL, its own data dir, and the same master key file (written before any node starts: the
secrets are sealed with it). Node 1 starts first (it migrates and mints the bootstrap admin key; its
``admin.key`` is copied to the others' data dirs for people who look there), then the others.

HAProxy (Debian's package, ``make haproxy-deps``) listens on 127.0.0.1, balances round-robin over the
nodes, checks each on ``GET /health/ready`` every 300 ms (down after 2 failures, up after 2 passes; a check
may take 2 s, ``timeout check``), and
retries (``retries 3``, ``option redispatch 1``: every retry goes to another node):

- any request whose connection to a node could not be made (``conn-failure``: the request was never
  sent, so it is safe whatever its method);
- GET, HEAD and OPTIONS also when the node closed the connection without answering or did not answer in
  time (``empty-response``, ``response-timeout``: a node killed while running them). Every other method
  (POST, PUT, PATCH, DELETE) is not sent twice (``http-request disable-l7-retry``): a POST that was
  running on a node killed mid-way answers 502 to its client, who may not know whether it ran.

Teardown ends what this module started, by pid (HAProxy, each orvad, then whatever is left inside the
namespaces it made, e.g. a killed orvad's workers), stops PostgreSQL, deletes its namespaces, veths and
bridge by name, and removes its folder; it runs on failure too. One cluster at a time per host: an flock
on /tmp/orva-cluster3.lock (a test run and ``make cluster-demo`` wait for each other).

``python -m tests.cluster3 demo`` (``make cluster-demo``): starts it, prints the balancer's URL and the
admin key, and stops everything on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import httpx

from tests.pg import SUPERUSER, ThrowawayPostgres

REPO = Path(__file__).resolve().parents[1]
NETWORK = ipaddress.IPv4Network("10.250.25.0/24")
HOST_ADDRESS = (
    "10.250.25.1"  # the bridge's host end: PostgreSQL listens here, HAProxy's checks come from here
)
PREFIX = "orc3"
BRIDGE = f"{PREFIX}-br"
NODE_PORT = 8443
DATABASE = "orva"
LOCK = Path("/tmp/orva-cluster3.lock")
START_DEADLINE_S = 60.0  # a start takes 1-3 s; other agents' load on 2 cores made some take over 20
STOP_DEADLINE_S = 30.0
HEARTBEAT_S = 0.5  # the nodes' heartbeat (ORVA_HEARTBEAT_S): a killed node is gone after ~2.5 s
CHECK_INTER_MS = 300  # HAProxy's health check interval


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
    )
    if not found:
        raise RuntimeError(
            "no haproxy: `make haproxy-deps` installs Debian's (as root), or apt-get install haproxy"
        )
    return found


def _sh(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def _quiet(*argv: str) -> None:
    subprocess.run(argv, capture_output=True, timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _routed_overlap() -> list[str]:
    """Host routes overlapping our /24 that are not our bridge's (another user of the range)."""
    out = subprocess.run(["ip", "-4", "-o", "route", "show"], capture_output=True, text=True).stdout
    taken = []
    for line in out.splitlines():
        dest = line.split()[0]
        if dest == "default" or f"dev {BRIDGE}" in line:
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.IPv4Network(dest, strict=False).overlaps(NETWORK):
                taken.append(line)
    return taken


def wait_until(predicate: object, deadline_s: float, what: str, interval_s: float = 0.05) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")


@dataclass
class Node:
    index: int
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def ns(self) -> str:
        return f"{PREFIX}-n{self.index}"

    @property
    def host_if(self) -> str:
        return f"{PREFIX}-h{self.index}"

    @property
    def peer_if(self) -> str:
        return f"{PREFIX}-p{self.index}"

    @property
    def address(self) -> str:
        return str(NETWORK.network_address + 10 + self.index)

    @property
    def node_id(self) -> str:
        return f"node-{self.index}"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{NODE_PORT}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.node_id}.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def client(self, key: str | None = None, timeout_s: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"X-Orva-API-Key": key} if key else {}, timeout=timeout_s
        )

    def start(self) -> None:
        """``ip netns exec`` orvad in this node's namespace (not waiting for it: ``wait_up``)."""
        assert self.proc is None or self.proc.poll() is not None, f"{self.node_id} is running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.ns}", sys.executable, "-m", "orvad", "serve"],
                env=self.env,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches the demo, which stops the nodes in order
            )

    def up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.node_id} exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/health/startup", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def wait_up(self) -> None:
        try:
            wait_until(self.up, START_DEADLINE_S, f"{self.node_id} at {self.url} to start")
        except AssertionError as exc:
            self.kill()
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None

    def kill(self) -> None:
        """SIGKILL, no warning: what a crash or an OOM kill does."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (orvad drains), SIGKILL past the deadline."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Cluster:
    """``with Cluster() as c:`` three nodes, PostgreSQL and HAProxy, up and checked; everything gone after."""

    size: int = 3
    extra_env: dict[str, str] = field(default_factory=dict)
    folder: Path | None = None
    pg: ThrowawayPostgres | None = None
    nodes: list[Node] = field(default_factory=list)
    haproxy: subprocess.Popen[bytes] | None = None
    balancer_port: int = 0
    stats_port: int = 0
    database_url: str = ""
    _lock_fd: int = -1
    _namespaces: list[str] = field(default_factory=list)
    _links: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------------------------------ start

    def start(self) -> Cluster:
        try:
            self._lock()
            self.folder = Path(tempfile.mkdtemp(prefix="orva-cluster3-"))
            self.folder.chmod(0o711)  # the jail (uid 65534) traverses to the nodes' version folders
            self._network()
            self._postgres()
            self._nodes()
            self._balancer()
        except BaseException:
            self.stop()
            raise
        return self

    def _lock(self) -> None:
        self._lock_fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # another cluster3 on this host: wait for it to end

    def _network(self) -> None:
        # left by a run that was SIGKILLed before its teardown (we hold the lock: nobody else's)
        self._delete_network(range(1, self.size + 1))
        taken = _routed_overlap()
        if taken:
            raise RuntimeError(f"{NETWORK} is already routed on this host: {taken}")
        self._links.append(BRIDGE)
        _sh("ip", "link", "add", BRIDGE, "type", "bridge")
        _sh("ip", "addr", "add", f"{HOST_ADDRESS}/{NETWORK.prefixlen}", "dev", BRIDGE)
        _sh("ip", "link", "set", BRIDGE, "up")
        for index in range(1, self.size + 1):
            ns, host_if, peer_if = f"{PREFIX}-n{index}", f"{PREFIX}-h{index}", f"{PREFIX}-p{index}"
            address = str(NETWORK.network_address + 10 + index)
            self._namespaces.append(ns)
            _sh("ip", "netns", "add", ns)
            self._links.append(host_if)
            _sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if, "netns", ns)
            _sh("ip", "link", "set", host_if, "master", BRIDGE)
            _sh("ip", "link", "set", host_if, "up")
            _sh("ip", "-n", ns, "addr", "add", f"{address}/{NETWORK.prefixlen}", "dev", peer_if)
            _sh("ip", "-n", ns, "link", "set", peer_if, "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh("ip", "-n", ns, "route", "add", "default", "via", HOST_ADDRESS)

    def _postgres(self) -> None:
        self.pg = ThrowawayPostgres(listen=(HOST_ADDRESS,), clients=(str(NETWORK),))
        self.pg.start()
        import asyncio

        import asyncpg

        async def create() -> None:
            conn = await asyncpg.connect(self.pg.dsn())  # type: ignore[union-attr]
            try:  # bytewise text order, which orvad requires (docs/CLUSTER.md, Text order)
                await conn.execute(
                    f"CREATE DATABASE {DATABASE} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
                )
            finally:
                await conn.close()

        asyncio.run(create())
        self.database_url = f"postgresql://{SUPERUSER}:{quote(self.pg.password, safe='')}@{HOST_ADDRESS}:{self.pg.port}/{DATABASE}"

    def _node_env(self, index: int, data_dir: Path) -> dict[str, str]:
        address = str(NETWORK.network_address + 10 + index)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ORVA_") or k in ("ORVA_NSJAIL", "ORVA_PG_BINDIR")
        }
        return {
            **env,
            "ORVA_DATA_DIR": str(data_dir),
            "ORVA_HOST": address,
            "ORVA_PORT": str(NODE_PORT),
            "ORVA_DATABASE_URL": self.database_url,
            "ORVA_NODE_ID": f"node-{index}",
            "ORVA_NODE_ADDRESS": f"http://{address}:{NODE_PORT}",
            "ORVA_HEARTBEAT_S": str(HEARTBEAT_S),
            # HAProxy (from the bridge's address) and the other nodes (forwarding) set X-Forwarded-For
            "ORVA_TRUSTED_PROXIES": str(NETWORK),
            **self.extra_env,
        }

    def _nodes(self) -> None:
        assert self.folder is not None
        master = secrets.token_hex(32) + "\n"
        for index in range(1, self.size + 1):
            data_dir = self.folder / f"node-{index}" / "data"
            data_dir.mkdir(parents=True)
            data_dir.parent.chmod(0o711)
            data_dir.chmod(0o711)
            key = data_dir / "master.key"  # the SAME master key on every node, before any starts
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(master)
            self.nodes.append(Node(index, data_dir, self._node_env(index, data_dir)))
        first, rest = self.nodes[0], self.nodes[1:]
        first.start()
        first.wait_up()  # migrates the database and mints the bootstrap admin key
        for node in rest:
            shutil.copyfile(first.data_dir / "admin.key", node.data_dir / "admin.key")
            (node.data_dir / "admin.key").chmod(0o600)
            node.start()
        for node in rest:
            node.wait_up()

    @property
    def admin_key(self) -> str:
        return (self.nodes[0].data_dir / "admin.key").read_text().strip()

    @property
    def balancer_url(self) -> str:
        return f"http://127.0.0.1:{self.balancer_port}"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.stats_port}/"

    @property
    def haproxy_socket(self) -> Path:
        """HAProxy's admin socket (in the cluster's folder; a bare name before it exists)."""
        return (self.folder or Path()) / "haproxy.sock"

    def haproxy_config(self) -> str:
        servers = "\n".join(f"    server {n.node_id} {n.address}:{NODE_PORT} check" for n in self.nodes)
        return f"""# written by tests/cluster3.py (issue 25): {self.size} orvad nodes behind one balancer
global
    maxconn 4096
    stats socket {self.haproxy_socket} mode 600 level admin
    # every request (its server, timings and termination state) and every check's verdict to haproxy.log
    log stderr format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    # a health check may take this long once connected (unset, it would be 'inter': a node whose event
    # loop is busy long enough to miss two checks in a row under load would be marked down, and with
    # every node busy, all of them)
    timeout check 2s
    # a failed attempt is tried again, up to 3 times, each time on another node
    retries 3
    option redispatch 1
    # when: the connection could not be made (the request was never sent: safe for any method), or,
    # for GET/HEAD/OPTIONS only (below), the node closed without answering or did not answer in time
    retry-on conn-failure empty-response response-timeout

frontend orva
    bind 127.0.0.1:{self.balancer_port}
    option forwardfor
    default_backend orvad

backend orvad
    balance roundrobin
    # POST, PUT, PATCH, DELETE are never sent twice: only a connection that failed is tried again
    http-request disable-l7-retry unless METH_GET || METH_OPTIONS
    option httpchk GET /health/ready
    http-check expect status 200
    default-server inter {CHECK_INTER_MS}ms fastinter {CHECK_INTER_MS}ms downinter {CHECK_INTER_MS}ms fall 2 rise 2
{servers}

listen stats
    bind 127.0.0.1:{self.stats_port}
    stats enable
    stats uri /
    stats refresh 2s
"""

    def _balancer(self) -> None:
        assert self.folder is not None
        self.balancer_port, self.stats_port = _free_port(), _free_port()
        config = self.folder / "haproxy.cfg"
        config.write_text(self.haproxy_config())
        check = subprocess.run([haproxy_binary(), "-c", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration:\n{check.stdout}{check.stderr}")
        with (self.folder / "haproxy.log").open("ab") as log:
            self.haproxy = subprocess.Popen(
                [haproxy_binary(), "-db", "-f", str(config)],  # -db: foreground, one process: its pid is it
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until(
                lambda: all(self.server_status(n) == "UP" for n in self.nodes),
                START_DEADLINE_S,
                "HAProxy to see every node up",
            )
        except AssertionError as exc:
            seen = {name: (row.get("status"), row.get("check_desc")) for name, row in self.stats().items()}
            told = (self.folder / "haproxy.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"{exc}: {seen}\nhaproxy's log ends:\n{told}") from None

    # ----------------------------------------------------------------------------------------- HAProxy

    def haproxy_command(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.haproxy_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """HAProxy's ``show stat`` for the backend: by server name (and BACKEND for the whole)."""
        if self.haproxy is None or self.haproxy.poll() is not None:
            return {}
        try:
            text = self.haproxy_command("show stat")
        except OSError:
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {row["svname"]: row for row in rows if row.get("pxname") == "orvad"}

    def balancer_log(self, *marks: str, last: int = 30) -> list[str]:
        """The last lines of haproxy.log holding any of ``marks`` (a test's failure message shows them)."""
        path = (self.folder or Path()) / "haproxy.log"
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if any(m in line for m in marks)][-last:]

    def server_status(self, node: Node) -> str:
        """UP, DOWN, "UP 1/2" ... as HAProxy sees the node."""
        return self.stats().get(node.node_id, {}).get("status", "")

    # ------------------------------------------------------------------------------------------- stop

    def stop(self) -> None:
        """Everything this cluster started, by pid and by name, whatever state the start reached."""
        if self.haproxy is not None:
            if self.haproxy.poll() is None:
                self.haproxy.terminate()
                try:
                    self.haproxy.wait(10)
                except subprocess.TimeoutExpired:
                    self.haproxy.kill()
                    self.haproxy.wait(10)
            self.haproxy = None
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.stop()
        for ns in self._namespaces:
            self._kill_inside(ns)  # a killed orvad's workers, anything else left in our namespace
        if self.pg is not None:
            self.pg.stop()
            self.pg = None
        self._delete_network(range(1, self.size + 1))
        self._namespaces.clear()
        self._links.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    @staticmethod
    def _kill_inside(ns: str) -> None:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        for pid in (int(p) for p in out.split()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    @staticmethod
    def _delete_network(indexes: range) -> None:
        for index in indexes:
            _quiet("ip", "netns", "del", f"{PREFIX}-n{index}")  # takes the veth's inner end with it
            _quiet("ip", "link", "del", f"{PREFIX}-h{index}")
        _quiet("ip", "link", "del", BRIDGE)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running(size: int = 3, extra_env: dict[str, str] | None = None) -> Iterator[Cluster]:
    with Cluster(size=size, extra_env=extra_env or {}) as cluster:
        yield cluster


def demo() -> int:
    """``make cluster-demo``: the cluster for a person, until Ctrl-C."""
    print("starting PostgreSQL, 3 orvad nodes in network namespaces and HAProxy ...", flush=True)
    stop = False

    def interrupted(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    with running() as cluster:
        print(
            f"\n  balancer (HAProxy)  {cluster.balancer_url}\n"
            f"  HAProxy's stats     {cluster.stats_url}\n"
            f"  admin key           {cluster.admin_key}\n"
            + "".join(f"  {n.node_id} ({n.ns})   {n.url}   pid {n.pid}\n" for n in cluster.nodes)
            + f"  PostgreSQL          {cluster.database_url.replace(cluster.pg.password if cluster.pg else '', '***')}\n"
            f"  logs                {cluster.folder}\n\n"
            f"  try: curl -H 'X-Orva-API-Key: {cluster.admin_key}' {cluster.balancer_url}/api/v1/cluster/nodes\n"
            f"       kill -9 {cluster.nodes[1].pid} (node 2): HAProxy marks it down, the others answer\n\n"
            "Ctrl-C stops everything and removes it.",
            flush=True,
        )
        signal.signal(signal.SIGINT, interrupted)
        signal.signal(signal.SIGTERM, interrupted)
        while not stop:
            time.sleep(0.2)
        print("\nstopping ...", flush=True)
    print("stopped; nothing left behind", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["demo"]:
        print("usage: python -m tests.cluster3 demo", file=sys.stderr)
        sys.exit(2)
    sys.exit(demo())
