"""The README, followed literally on a fresh clone, gives a working function (issue 18.2); so does the
quick start of docs/CLI.md.

How a page is run (the conventions are tests/doc_shell.py's):
- The repository is copied as a clone would have it: the files git tracks, plus new files not ignored
  (so work not yet committed is tested too), into a folder the jail user can traverse. Nothing is
  reinstalled: the copy gets a venv of its own whose installed packages are this checkout's (a .pth
  line), whose `orvad` and `orva` import the copy's code, and whose install stamp is fresh; the
  dashboard bundle (web/dist) is copied, so `make run` has nothing to build. `data/` does not exist.
- The page's ```sh blocks run in order in one bash session in the copy, with HOME in a scratch folder
  (`orva login` writes ~/.orva there) and no ORVA_* variable but ORVA_PORT.
- `make run` runs for as long as the page is followed, as in a reader's first terminal: started in
  its own process group, waited for (GET /health/startup answers, with a deadline; its output checked
  against the page's `# →` lines), and stopped at the end with Ctrl-C's SIGINT to that group.
- Port: the pages say 8443; here orvad listens on a free port. ORVA_PORT is set to it (`make run`
  passes it to orvad) and `8443` in commands and expected output is replaced with it.
- The README sends the reader to the dashboard to create the administrator account; before the block
  that resets that account's password, the test does what the onboarding page does (POST
  /api/v1/auth/onboard with the setup token), then checks the printed password is the new one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.doc_shell import Block, Shell, Step, check_step, code_blocks, output_mismatch
from tests.helpers import free_port

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

ROOT = Path(__file__).resolve().parents[2]
STEP_DEADLINE_S = 300.0  # a deploy waits for its build
START_DEADLINE_S = 180.0  # `make run` on a copy with everything installed starts in seconds
STOP_DEADLINE_S = 60.0
OLD_PASSWORD = "FirstPassword-123"


def clone_like(dest: Path) -> Path:
    """The repository as a fresh clone has it, plus this checkout's uncommitted new files (see above)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        source = ROOT / rel
        if not source.is_file() and not source.is_symlink():
            continue  # tracked but deleted in the working tree
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / rel, follow_symlinks=False)
    _thin_venv(dest)
    dist = ROOT / "web" / "dist"
    assert (dist / "index.html").is_file(), "the dashboard is not built: run `make web` first"
    shutil.copytree(dist, dest / "web" / "dist")
    os.utime(dest / "web" / "dist" / "index.html")  # newer than the copied sources: nothing to rebuild
    (dest / "web" / "node_modules").symlink_to(ROOT / "web" / "node_modules")
    return dest


def _thin_venv(dest: Path) -> None:
    """dest/.venv: this checkout's installed packages, the copy's own code, a fresh install stamp."""
    venv = dest / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "orva_clone.pth").write_text(f"{dest}\n{sysconfig.get_paths()['purelib']}\n")
    for script, target in (("orvad", "orvad.cli"), ("orva", "orva_cli.main")):
        path = venv / "bin" / script
        path.write_text(f"#!{venv}/bin/python\nimport sys\nfrom {target} import main\nsys.exit(main())\n")
        path.chmod(0o755)
    (venv / ".installed").touch()


def reader_env(home: Path, port: int, extra_path: Path | None = None) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    drop = ("ORVA_", "MAKE", "MFLAGS", "VIRTUAL_ENV")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(drop) and k not in ("VENV", "PYTHON", "BIN")
    }
    env.update(HOME=str(home), ORVA_PORT=str(port))
    if extra_path is not None:
        env["PATH"] = f"{extra_path}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


class MakeRun:
    """`make run` in a reader's first terminal: its own process group, stopped with Ctrl-C's SIGINT."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["bash", "-c", command],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_up(self, port: int) -> None:
        end = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"make run exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/startup", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(
            f"orvad did not answer on port {port} within {START_DEADLINE_S} s of make run:\n{self.output()}"
        )

    def stop(self) -> str | None:
        """Ctrl-C; None when everything in the group ended in time, else what happened."""
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=STOP_DEADLINE_S)
            return None
        except subprocess.TimeoutExpired:
            return f"make run did not stop within {STOP_DEADLINE_S} s of Ctrl-C:\n{self.output()}"
        except ProcessLookupError:
            return None
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left of the group
            except ProcessLookupError:
                pass
            self.proc.wait()


@dataclass
class Reader:
    copy: Path
    port: int
    env: dict[str, str]
    shell: Shell
    scratch: Path
    server: MakeRun | None = None

    def start_server(self, step: Step) -> str | None:
        """A `make run` step: start it, wait for orvad, check the output the page shows for it."""
        assert self.server is None, "the page runs make run twice"
        self.server = MakeRun(step.command, self.copy, self.env, self.scratch / "make-run.log")
        self.server.wait_up(self.port)
        mismatch = output_mismatch(step.expected, self.server.output())
        return None if mismatch is None else f"make run: {mismatch}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def reader(jail_tmp: Path) -> Iterator[Reader]:
    """A fresh clone-like copy, a free port and a terminal in the copy; stops what the page started."""
    copy = clone_like(jail_tmp / "orva")
    port = free_port()
    env = reader_env(jail_tmp / "home", port)
    session = Reader(copy, port, env, Shell(copy, env, jail_tmp / "shell"), jail_tmp / "shell")
    try:
        yield session
    finally:
        session.shell.close()
        stopped = session.server.stop() if session.server is not None else None
        if shutil.which("nft"):
            subprocess.run(["nft", "delete", "table", "inet", f"orva_egress_{port}"], capture_output=True)
        assert stopped is None, stopped


def run_page(
    reader: Reader, page: str, blocks: list[Block], deadline_s: float = STEP_DEADLINE_S
) -> list[str]:
    """Every step of the page's sh blocks in order; the failures (the page is followed to its end)."""
    failures: list[str] = []
    for block in blocks:
        for page_step in block.steps():
            step = page_step.on_port(reader.port)
            if step.command.partition("#")[0].strip() == "make run":
                failure = reader.start_server(step)
            elif (reset := re.search(r"orvad reset-password --username (\S+)", step.command)) is not None:
                failure = _reset_password(reader, step, reset.group(1), deadline_s)
            else:
                failure = check_step(reader.shell, step, deadline_s)
            if failure is not None:
                failures.append(f"{page} line {block.line}: {failure}")
    return failures


def _reset_password(reader: Reader, step: Step, username: str, deadline_s: float) -> str | None:
    """The dashboard's onboarding (which the page asks the reader to do), then the page's reset command:
    it prints a password that logs in, the old one no longer does, and the old session is signed out."""
    key = (reader.copy / "data" / "admin.key").read_text().strip()
    with httpx.Client(base_url=reader.url, timeout=30.0) as client:
        onboard = client.post(
            "/api/v1/auth/onboard", json={"username": username, "password": OLD_PASSWORD, "setup_token": key}
        )
        assert onboard.status_code == 201, onboard.text
        old_session = dict(client.cookies)
    status, out, err = reader.shell.run(step.command, deadline_s)
    if status != 0:
        return f"`{step.command}` exited with {status}\nstdout:\n{out}\nstderr:\n{err}"
    if (mismatch := output_mismatch(step.expected, out)) is not None:
        return f"`{step.command}`: {mismatch}"
    with httpx.Client(base_url=reader.url, timeout=30.0) as client:
        # the password is one of the long words printed, most likely the last: three tries at most, so
        # the wrong ones and the old password's check stay under the login throttle's five
        candidates = [word.strip("'\"") for word in reversed(out.split()) if len(word.strip("'\"")) >= 12][:3]
        if not any(
            client.post("/api/v1/auth/login", json={"username": username, "password": word}).status_code
            == 200
            for word in candidates
        ):
            return f"`{step.command}` printed no password that logs in as {username}:\n{out}\nstderr:\n{err}"
        old = client.post("/api/v1/auth/login", json={"username": username, "password": OLD_PASSWORD})
        if old.status_code != 401:
            return f"the old password still answers {old.status_code} after `{step.command}`"
    with httpx.Client(base_url=reader.url, timeout=30.0, cookies=old_session) as client:
        me = client.get("/api/v1/auth/me")
        if me.status_code != 401:
            return (
                f"the session from before `{step.command}` still answers {me.status_code} on /api/v1/auth/me"
            )
    return None


def sh_blocks(page: Path) -> list[Block]:
    return [block for block in code_blocks(page.read_text()) if block.language == "sh"]


def test_the_readme_works_as_written_on_a_fresh_clone(reader: Reader) -> None:
    blocks = sh_blocks(reader.copy / "README.md")
    commands = [step.command for block in blocks for step in block.steps()]
    # the journey the issue asks for is on the page (so this test cannot pass on a page without it)
    for needed in (
        "make run",
        "deploy-inline?wait=true",
        "/fn/hi",
        "orva init hello",
        "orva invoke hello",
        "orvad reset-password",
    ):
        assert any(needed in command for command in commands), f"the README no longer shows {needed!r}"
    failures = run_page(reader, "README.md", blocks)
    assert not failures, "\n\n".join(failures)


def test_the_cli_quick_start_works_as_written(reader: Reader) -> None:
    """docs/CLI.md's first sh block (its quick start), after the README's `make run`; the venv's bin is
    on PATH too, as after `pip install orva`, should the page call `orva` by its bare name."""
    reader.env["PATH"] = f"{reader.copy / '.venv' / 'bin'}:{reader.env['PATH']}"
    reader.shell.close()
    reader.shell = Shell(reader.copy, reader.env, reader.scratch / "cli")
    assert run_page(reader, "README.md", [Block("sh", "make run\n", 0)]) == []
    quick_start = sh_blocks(reader.copy / "docs" / "CLI.md")[0]
    assert any("orva deploy" in step.command for step in quick_start.steps()), quick_start.text
    failures = run_page(reader, "docs/CLI.md", [quick_start], deadline_s=180.0)
    assert not failures, "\n\n".join(failures)


def test_make_run_installs_only_what_running_needs() -> None:
    """Issue 18.4a: `make run` installs orvad and the CLI and wants nftables/iproute2; the test tools and
    Chromium come with `make test` (what each would run, printed by make -n -B, nothing executed)."""

    def recipe(target: str) -> str:
        return subprocess.run(
            ["make", "-n", "-B", target],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
        ).stdout

    run, test = recipe("run"), recipe("test")
    assert (
        "nftables" in run and "iproute2" in run and "orvad serve" in run and "pip install --quiet -e ." in run
    )
    assert "chromium" not in run.lower() and "[test]" not in run
    assert "/usr/bin/chromium" in test and "-e '.[test]'" in test and "pytest" in test
