"""Helpers tests import: a real orvad process (Orvad), free ports, polling with deadlines, small filesystems.

Fixtures live in tests/conftest.py; everything a test imports by name lives here (``from tests.helpers import ...``).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests import databases

STARTUP_DEADLINE_S = 40.0  # a start takes 1-3 s; on a machine loaded by other work it took over 20
# `make test-fast` sets ORVA_NSJAIL to this: no sandbox, as on a laptop without nsjail or root
NO_SANDBOX = "/nonexistent/nsjail"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], deadline_s: float, what: str, interval_s: float = 0.02) -> None:
    """Poll until predicate() is true; fail with `what` once the deadline passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")


async def until(predicate: Callable[[], bool], deadline_s: float, what: str) -> None:
    """wait_for for async tests: yield to the event loop until ``predicate()`` holds, failing past the deadline."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while not predicate():
        assert loop.time() < deadline, f"timed out after {deadline_s} s waiting for {what}"
        await asyncio.sleep(0.005)


class _EgressSlot:
    """A /20 of 10.128.0.0-10.227.255.255 held by one test server for its object's lifetime (across its
    restarts), under an flock every pytest-xdist worker sees: two servers alive at once never get the same
    range, nor the derived ranges (10.231.0.0/16) of servers a test starts without ORVA_EGRESS_CIDR."""

    COUNT = 1600
    DIR = Path("/tmp/orva-test-egress-slots")

    def __init__(self, slot: int, fd: int) -> None:
        self.slot, self._fd = slot, fd
        self.cidr = f"10.{128 + slot // 16}.{(slot % 16) * 16}.0/20"

    @classmethod
    def lease(cls, port: int) -> _EgressSlot:
        cls.DIR.mkdir(exist_ok=True)
        routed = _routed_networks() + _nft_networks()
        for i in range(cls.COUNT):
            slot = (port + i) % cls.COUNT
            fd = os.open(cls.DIR / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held = cls(slot, fd)
            if not any(net.overlaps(ipaddress.ip_network(held.cidr)) for net in routed):
                return held
            held.release()  # a route or a SIGKILLed server's egress table still holds it: leave it alone
        raise AssertionError(f"no free test egress range: all {cls.COUNT} slots are held or routed")

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


def _routed_networks() -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes (/proc/net/route: destination and mask in little-endian hex)."""
    nets = []
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        fields = line.split()
        dest, mask = (int.from_bytes(bytes.fromhex(f), "little") for f in (fields[1], fields[7]))
        if mask:
            nets.append(ipaddress.IPv4Network((dest, bin(mask).count("1")), strict=False))
    return nets


def _nft_networks() -> list[ipaddress.IPv4Network]:
    """The /20s named in nftables rules (a SIGKILLed orvad's egress table outlives it)."""
    if not shutil.which("nft"):
        return []
    text = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    return [ipaddress.IPv4Network(m) for m in set(re.findall(r"\b(10\.\d+\.\d+\.0/20)\b", text))]


@dataclass
class Orvad:
    data_dir: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    cwd: Path | None = None  # where `python -m orvad` runs (and so which orvad package it imports)
    proc: subprocess.Popen[bytes] | None = None
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    _slot: _EgressSlot | None = field(default=None, repr=False)
    # ORVA_TEST_DATABASE=postgresql: this orvad's own database (tests/databases.py), kept across restarts
    database_url: str | None = None
    _drop_database: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_key(self) -> str:
        return (self.data_dir / "admin.key").read_text().strip()

    def client(
        self, key: str | None = None, headers: dict[str, str] | None = None, **kwargs: object
    ) -> httpx.Client:
        headers = {**({"X-Orva-API-Key": key} if key else {}), **(headers or {})}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0, **kwargs)  # type: ignore[arg-type]

    def admin(self) -> httpx.Client:
        return self.client(self.admin_key)

    def onboard(
        self, client: httpx.Client, username: str = "admin", password: str = "AdminPass123!Secure"
    ) -> httpx.Response:
        """Claim this orvad: the first admin user, proven by the setup token (the bootstrap admin key)."""
        return client.post(
            "/api/v1/auth/onboard",
            json={"username": username, "password": password, "setup_token": self.admin_key},
        )

    def session_client(self, token: str, cookie_name: str = "session_token") -> httpx.Client:
        """A client that acts like the dashboard: the session cookie and the X-Orva-CSRF header."""
        return self.client(headers={"X-Orva-CSRF": "1"}, cookies={cookie_name: token})

    def start(self, *, wait: bool = True) -> Orvad:
        logs = self.data_dir.parent
        self.stdout_path, self.stderr_path = logs / f"orvad-{self.port}.out", logs / f"orvad-{self.port}.err"
        if self._slot is None:
            self._slot = _EgressSlot.lease(self.port)
            weakref.finalize(self, self._slot.release)
        if self._drop_database is None:
            self.database_url, self._drop_database = databases.database_for(self, self.env, self.data_dir)
        env = {
            **os.environ,
            "ORVA_DATA_DIR": str(self.data_dir),
            "ORVA_PORT": str(self.port),
            "ORVA_EGRESS_CIDR": self._slot.cidr,
            **self.database_env(),
            **self.env,
        }
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orvad", "serve", *self.args],
                env=env,
                stdout=out,
                stderr=err,
                cwd=self.cwd,
            )
        if wait:
            try:
                wait_for(self._up, STARTUP_DEADLINE_S, f"orvad on port {self.port} to start")
            except (
                AssertionError
            ) as exc:  # never left running behind the failure (it held its port and table)
                told = self.stderr()
                dump = self._stack_dump() if self.proc.poll() is None else ""
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{exc}; stderr ends:\n{told[-3000:]}\n{dump}") from None
        return self

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"orvad exited with {self.proc.returncode}:\n{self.stderr()}")
        try:
            return httpx.get(f"{self.url}/health/startup", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            dump = self._stack_dump()
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"orvad did not stop within {timeout_s} s after signal {sig}; what it was doing:\n{dump}"
            ) from None

    def _stack_dump(self) -> str:
        """orvad's answer to SIGUSR2 (orvad/stackdump.py): every task's and thread's stack."""
        from orvad.stackdump import BEGIN, END

        assert self.proc is not None
        seen = self.stderr().count(BEGIN)
        self.proc.send_signal(signal.SIGUSR2)
        with contextlib.suppress(AssertionError):  # a loop too stuck to answer: the stderr tail says more
            wait_for(lambda: self.stderr().count(END) > seen, 5, "orvad's stack dump")
        text = self.stderr()
        return (
            text[text.rfind(BEGIN) :]
            if text.count(BEGIN) > seen
            else f"(no dump; stderr ends:)\n{text[-3000:]}"
        )

    def database_env(self) -> dict[str, str]:
        """The variables naming this orvad's database, for the admin subcommands a test runs on its data
        (``orvad rotate-master-key``, ``reset-password``): empty on SQLite (the data dir holds it)."""
        return {databases.URL_VARIABLE: self.database_url} if self.database_url else {}

    def sql(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """``statement`` (SQLite's ``?`` placeholders, SQL both drivers accept) on this orvad's database,
        whichever the pass gives it: the data dir's orva.db, or its PostgreSQL database. Committed; the rows
        as tuples. For a test that reads or plants a row the API does not show."""
        if self.database_url:
            return databases.query(self.database_url, statement, params)
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.data_dir / "orva.db", timeout=30)) as db:
            rows = db.execute(statement, params).fetchall()
            db.commit()
            return [tuple(row) for row in rows]

    def database_bytes(self) -> bytes:
        """Everything this orvad's database holds, for "never stored in plaintext" checks: the bytes of
        orva.db and its WAL on SQLite, pg_dump's text on PostgreSQL."""
        if self.database_url:
            return databases.dump(self.database_url)
        return b"".join(p.read_bytes() for p in sorted(self.data_dir.glob("orva.db*")))

    def drop_database(self) -> None:
        """For good: the PostgreSQL pass drops this orvad's database (its process must be stopped)."""
        if self._drop_database is not None:
            self._drop_database()

    def stdout(self) -> str:
        return self.stdout_path.read_text() if self.stdout_path and self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path and self.stderr_path.exists() else ""


@contextmanager
def small_tmpfs(where: Path, size_mb: int, inodes: int | None = None) -> Iterator[Path]:
    """A real filesystem of ``size_mb`` MiB (and ``inodes`` inodes) at ``where`` (mode 0711: the jail
    traverses it), unmounted at the end."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size_mb}M,mode=0711" + (f",nr_inodes={inodes}" if inodes else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill_disk(filler: Path, leave_bytes: int = 0) -> int:
    """Append to ``filler`` until its filesystem has no space (ENOSPC), then give back ``leave_bytes``;
    returns the filler's size."""
    import errno

    chunk = b"\0" * 65536
    with filler.open("ab", buffering=0) as out:
        for size in (65536, 4096, 1):
            try:
                while True:
                    out.write(chunk[:size])
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    size = filler.stat().st_size
    if leave_bytes:
        os.truncate(filler, max(0, size - leave_bytes))
    return filler.stat().st_size


def function_jails(function_id: str) -> dict[int, int]:
    """The function's workers on this host as {nsjail supervisor pid: its jailed process's pid}. A jail is the
    function's when the folder it binds at /code is one of the function's versions, or a spare jail's folder
    (orvad/services/spares.py) holding hard links of a version's files: a worker started from a spare names
    neither the function in its command line nor its variables in /proc/<pid>/environ."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if not argv[0].endswith(b"nsjail"):
                continue
            code = next((a.decode()[: -len(":/code")] for a in argv if a.endswith(b":/code")), None)
            if code is not None and _serves(Path(code), function_id):
                children = (proc / "task" / proc.name / "children").read_text().split()
                found[int(proc.name)] = int(children[0]) if children else 0
        except OSError:
            continue
    return found


def _serves(code: Path, function_id: str) -> bool:
    if f"/functions/{function_id}/versions/" in str(code):
        return True
    if "/spares/" not in str(code):
        return False
    versions = Path(str(code).split("/spares/")[0]) / "functions" / function_id / "versions"
    try:
        linked = {f.stat().st_ino for f in code.iterdir() if f.is_file()}
        return any(
            f.stat().st_ino in linked
            for v in versions.iterdir()
            if v.is_dir()  # beside each version folder is its `<hash>.built` marker
            for f in v.iterdir()
            if f.is_file()
        )
    except OSError:
        return False
