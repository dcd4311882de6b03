"""A throwaway PostgreSQL cluster for tests and development: no system service, nothing left behind.

``ThrowawayPostgres`` finds Debian's server binaries (/usr/lib/postgresql/<major>/bin, newest first; or
ORVA_PG_BINDIR), makes a cluster in a new temporary folder with ``initdb``, starts ``postgres`` on it
listening on a free 127.0.0.1 port and on a unix socket in that folder, waits with ``pg_isready`` under
a deadline, and gives a DSN. ``stop()`` ends the one postmaster it started (by its pid: fast shutdown,
then immediate, then SIGKILL, always ``wait()``) and removes the folder.

``initdb`` and ``postgres`` refuse to run as root: as root they run as the ``postgres`` user (Debian's
package creates it), switched to by ``subprocess`` itself (setuid/setgid, no supplementary groups), so
the process orvad's tests start *is* the postmaster and its pid is the one to kill. As another user they
run as that user. The superuser ``orva`` has a random password (scram-sha-256, also on the socket):
another local user who finds the port cannot walk in.

Made for speed, not durability: fsync, full_page_writes and synchronous_commit are off.

Development: ``.venv/bin/python -m tests.pg`` starts one, prints its DSN and runs until Ctrl-C.
Tests: the session fixture ``pg_cluster`` (tests/cluster/conftest.py).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

SUPERUSER = "orva"
DATABASE = "postgres"
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 20.0
INSTALL_HINT = (
    "install Debian's postgresql (as root: `make test-system-deps` does it, or apt-get install postgresql),"
    " or point ORVA_PG_BINDIR at a folder holding initdb, postgres and pg_isready"
)


class PostgresUnavailable(RuntimeError):
    """The server binaries, or the postgres user to run them as, are missing."""


def find_bindir() -> Path:
    """The folder of initdb, postgres and pg_isready: ORVA_PG_BINDIR, else Debian's newest major version."""
    configured = os.environ.get("ORVA_PG_BINDIR")
    candidates = [Path(configured)] if configured else []
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    found.sort(key=lambda p: int(re.sub(r"\D", "", Path(p).parts[-3]) or 0), reverse=True)
    candidates += [Path(p).parent for p in found]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if all(os.access(folder / tool, os.X_OK) for tool in ("initdb", "postgres", "pg_isready")):
            return folder
    raise PostgresUnavailable(f"no PostgreSQL server binaries found: {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayPostgres:
    """One temporary cluster. ``start()`` returns the DSN; ``stop()`` (idempotent) ends it and removes its folder."""

    def __init__(
        self, bindir: Path | None = None, listen: tuple[str, ...] = (), clients: tuple[str, ...] = ()
    ) -> None:
        """``listen``: addresses to listen on besides 127.0.0.1; ``clients``: networks (CIDR) allowed to
        log in over them (scram-sha-256, the same password), e.g. network namespaces a test made."""
        self.bindir = bindir or find_bindir()
        self.listen = ("127.0.0.1", *listen)
        self.clients = clients
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.password = secrets.token_urlsafe(24)
        self._account = self._run_as()

    @staticmethod
    def _run_as() -> pwd.struct_passwd | None:
        """The account to run the server as: postgres when we are root, else ourselves (None)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                f"running as root and there is no postgres user: {INSTALL_HINT}"
            ) from None

    @property
    def data_dir(self) -> Path:
        return self._require_folder() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._require_folder() / "socket"

    @property
    def log_path(self) -> Path:
        return self._require_folder() / "postgres.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def dsn(self, database: str = DATABASE) -> str:
        """postgresql://orva:<password>@127.0.0.1:<port>/<database>"""
        return f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}"

    def _require_folder(self) -> Path:
        if self.folder is None:
            raise RuntimeError("the throwaway cluster is not started")
        return self.folder

    def _popen_kwargs(self) -> dict[str, object]:
        kwargs: dict[str, object] = {"cwd": self.folder, "env": {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}}
        if self._account is not None:
            kwargs |= {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}
        return kwargs

    def _parent(self) -> str | None:
        """The temporary folder's parent: the usual one, unless the postgres user could not reach into it
        (a TMPDIR under root's 0700 home), then /tmp."""
        if self._account is None:
            return None
        folder = Path(tempfile.gettempdir()).resolve()
        for ancestor in (folder, *folder.parents):
            mode = ancestor.stat()
            if not (mode.st_mode & 0o001 or mode.st_uid == self._account.pw_uid):
                return "/tmp"
        return None

    def _own(self, path: Path) -> None:
        if self._account is not None:
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def start(self) -> str:
        if self.process is not None:
            return self.dsn()
        self.folder = Path(tempfile.mkdtemp(prefix="orva-pg-", dir=self._parent()))
        try:
            self._own(self.folder)
            self.socket_dir.mkdir(mode=0o700)
            self._own(self.socket_dir)
            self._initdb()
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self.dsn()

    def _initdb(self) -> None:
        pwfile = self._require_folder() / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._own(pwfile)
        try:
            subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    SUPERUSER,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                timeout=START_DEADLINE_S,
                **self._popen_kwargs(),  # type: ignore[call-overload]
            )
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"initdb failed: {exc.stderr.decode(errors='replace')[-2000:]}") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        if self.clients:
            with (self.data_dir / "pg_hba.conf").open("a") as hba:
                for network in self.clients:
                    hba.write(f"host all all {network} scram-sha-256\n")

    def _launch(self) -> None:
        """Start the postmaster on a free port; a port taken between choosing it and binding it: try another."""
        for _ in range(3):
            self.port = _free_port()
            log = open(self.log_path, "ab")  # handed to the child, closed below
            try:
                self.process = subprocess.Popen(
                    [
                        str(self.bindir / "postgres"),
                        "-D",
                        str(self.data_dir),
                        "-h",
                        ",".join(self.listen),
                        "-p",
                        str(self.port),
                        "-k",
                        str(self.socket_dir),
                        "-c",
                        "fsync=off",
                        "-c",
                        "full_page_writes=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "max_connections=200",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a terminal's Ctrl-C goes to the test run, which stops it in order
                    **self._popen_kwargs(),  # type: ignore[call-overload]
                )
            finally:
                log.close()
            if self._wait_ready():
                return
            self._terminate()
            if "could not bind" not in self._log_tail():
                break
        raise RuntimeError(f"postgres did not start: {self._log_tail()}")

    def _wait_ready(self) -> bool:
        """pg_isready until it says yes, the postmaster exits, or the deadline passes."""
        end = time.monotonic() + START_DEADLINE_S
        assert self.process is not None
        while time.monotonic() < end:
            if self.process.poll() is not None:
                return False
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                capture_output=True,
                timeout=10,
            )
            if ready.returncode == 0:
                return True
            time.sleep(0.05)
        return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except (OSError, RuntimeError):
            return ""

    def _terminate(self) -> None:
        """Fast shutdown, then immediate, then SIGKILL: only the postmaster we started, always reaped."""
        process, self.process = self.process, None
        if process is None:
            return
        for sig, grace in ((signal.SIGINT, STOP_DEADLINE_S), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 10.0)):
            if process.poll() is not None:
                break
            process.send_signal(sig)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
        process.wait()

    def stop(self) -> None:
        try:
            self._terminate()
        finally:
            folder, self.folder = self.folder, None
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main() -> int:
    with ThrowawayPostgres() as pg:
        print(pg.dsn(), flush=True)
        print(f"data in {pg.data_dir}; Ctrl-C stops and removes it", file=sys.stderr, flush=True)
        try:
            if pg.process is not None:
                pg.process.wait()  # until the server exits or Ctrl-C
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run_sql(dsn: str, statement: str, *params: object) -> list[Any]:
    """One statement (SQLite's ``?`` placeholders, as the store writes them) on the database at ``dsn``, from
    a synchronous test: its rows."""
    import asyncio

    import asyncpg

    from orvad.store.postgres.driver import translate

    async def run() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(translate(statement), *params))
        finally:
            await conn.close()

    return asyncio.run(run())
