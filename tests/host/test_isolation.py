"""Break-out attempts from inside real handlers, for both runtimes (docs/SECURITY.md cites these)."""

from __future__ import annotations

import io
import json
import os
import signal
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, function_jails, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

SECRET = "orva-isolation-secret-7d1f"
BLOCKED = {
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "unshare": 272,
    "setns": 308,
    "ptrace": 101,
    "bpf": 321,
    "perf_event_open": 298,
    "kexec_load": 246,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "userfaultfd": 323,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "reboot": 169,
    "swapon": 167,
    "swapoff": 168,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
}

# Tries clone() with CLONE_NEWUSER (alone and with CLONE_NEWNET: the child would hold every capability in a fresh
# user+net namespace) and clone3(); prints {attempt: [rc, errno]}. A child that is created exits at once.
CLONE_PROBE = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
def reap(rc):
    if rc == 0:
        os._exit(0)
    if rc > 0:
        os.waitpid(rc, 0)
out = {}
for name, flags in {"newuser": 0x10000000, "newuser_newnet": 0x50000000, "newuser_high_bits": (1 << 32) | 0x10000000}.items():
    ctypes.set_errno(0)
    rc = libc.syscall(56, ctypes.c_ulong(flags | 17), 0, 0, 0, 0)
    reap(rc)
    out[name] = [rc, ctypes.get_errno()]
args = (ctypes.c_uint64 * 11)()
args[0], args[4] = 0x10000000, 17  # clone_args.flags = CLONE_NEWUSER, exit_signal = SIGCHLD
ctypes.set_errno(0)
rc = libc.syscall(435, ctypes.byref(args), ctypes.c_size_t(88))
reap(rc)
out["clone3"] = [rc, ctypes.get_errno()]
for name, nr in {"x32_getpid": 0x40000000 | 39, "x32_unshare": 0x40000000 | 272}.items():
    ctypes.set_errno(0)
    rc = libc.syscall(nr, ctypes.c_ulong(0x10000000), 0, 0, 0, 0)  # the x32 ABI: bit 30 set
    out[name] = [rc, ctypes.get_errno()]
print(json.dumps(out))
"""
CLONE_REFUSED = {
    "newuser": [-1, 1],
    "newuser_newnet": [-1, 1],
    "newuser_high_bits": [-1, 1],
    "clone3": [-1, 38],
    "x32_getpid": [-1, 1],
    "x32_unshare": [-1, 1],
}  # EPERM: the filter's, not the kernel's ENOSYS

PY_PROBE = """
import ctypes, json, os, socket, threading, subprocess, sys, time

def attempt(fn):
    try:
        return "ok:" + str(fn())
    except Exception as exc:
        return "refused:" + type(exc).__name__

def connect(host, port):
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect((host, port)); return "connected"
    finally:
        s.close()

def fill_tmp():
    with open("/tmp/fill", "wb") as fh:
        for _ in range(100):
            fh.write(b"x" * (1 << 20))
    return "wrote 100 MiB"

def syscalls(numbers):
    libc = ctypes.CDLL(None, use_errno=True)
    out = {}
    for name, nr in numbers.items():
        ctypes.set_errno(0)
        rc = libc.syscall(nr, 0, 0, 0, 0, 0)
        out[name] = [rc, ctypes.get_errno()]
    return out

def handler(event, context):
    q = event["query"]
    if event["path"] == "/probe":
        return {
            "shadow": attempt(lambda: open("/etc/shadow").read()),
            "root": attempt(lambda: os.listdir("/root")),
            "write_code": attempt(lambda: open("/code/evil", "w").write("x")),
            "write_root": attempt(lambda: open("/evil", "w").write("x")),
            "tmp": attempt(fill_tmp),
            "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "uid": [os.getuid(), os.getgid(), os.geteuid()],
            "orvad": attempt(lambda: connect("127.0.0.1", int(q["port"]))),
            "outside": attempt(lambda: connect("1.1.1.1", 443)),
            "secret_env": os.environ.get("API_TOKEN") == q["secret_hint"],
            "syscalls": syscalls(json.loads(q["syscalls"])),
            "thread": attempt(lambda: (lambda t: (t.start(), t.join(), "joined")[2])(threading.Thread(target=lambda: None))),
            "subprocess": attempt(lambda: subprocess.run([sys.executable, "-c", "print(1)"], capture_output=True).stdout.strip()),
            "pid": os.getpid(),
        }
    if event["path"] == "/clone":
        ns = {}
        exec(q["script"], {"print": lambda text: ns.update(result=json.loads(text))})
        threads = []
        for _ in range(4):
            threads.append(threading.Thread(target=lambda: None)); threads[-1].start()
        for t in threads:
            t.join()
        child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        return {"clone": ns["result"], "threads": len(threads), "subprocess": child.stdout.strip()}
    if event["path"] == "/strays":  # a child left running, and an orphaned grandchild
        subprocess.Popen(["/bin/sleep", "300"])
        subprocess.Popen([sys.executable, "-c", "import subprocess; subprocess.Popen(['/bin/sleep', '301'])"])
        return "left"
    if event["path"] == "/hold":
        time.sleep(float(q.get("s", "2")))
        return "held"
    if event["path"] == "/oom":
        blocks = []
        for _ in range(1000):
            blocks.append(bytearray(16 << 20))
        return "allocated"
    if event["path"] == "/forkbomb":
        children, error = [], None
        try:
            for _ in range(500):  # exec'd children: small, so the pids limit and not memory stops them
                children.append(os.posix_spawn("/bin/sleep", ["sleep", "5"], {}))
        except OSError as exc:
            error = type(exc).__name__
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        return {"forked": len(children), "error": error}
    return "?"
"""

JS_PROBE = """
const fs = require("fs"), net = require("net"), { Worker } = require("worker_threads");
function attempt(fn) { try { return "ok:" + String(fn()); } catch (e) { return "refused:" + (e.code || e.name); } }
function connect(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port, timeout: 1000 });
    s.on("connect", () => { s.destroy(); resolve("connected"); });
    s.on("error", (e) => resolve("refused:" + e.code));
    s.on("timeout", () => { s.destroy(); resolve("refused:timeout"); });
  });
}
exports.handler = async (event) => {
  const q = event.query;
  if (event.path === "/probe") {
    const thread = await new Promise((resolve) => {
      const w = new Worker("require('worker_threads').parentPort.postMessage(42)", { eval: true });
      w.on("message", (m) => resolve("ok:" + m)); w.on("error", (e) => resolve("refused:" + e.message));
    });
    return {
      shadow: attempt(() => fs.readFileSync("/etc/shadow", "utf8")),
      root: attempt(() => fs.readdirSync("/root")),
      write_code: attempt(() => fs.writeFileSync("/code/evil", "x")),
      write_root: attempt(() => fs.writeFileSync("/evil", "x")),
      procs: fs.readdirSync("/proc").filter((p) => /^[0-9]+$/.test(p)).map(Number),
      uid: [process.getuid(), process.getgid(), process.geteuid()],
      orvad: await connect("127.0.0.1", Number(q.port)),
      outside: await connect("1.1.1.1", 443),
      secret_env: process.env.API_TOKEN === q.secret_hint,
      thread, memory: process.memoryUsage().rss > 0, pid: process.pid,
    };
  }
  if (event.path === "/clone") {
    const { execFileSync } = require("child_process");
    const thread = await new Promise((resolve) => {
      const w = new Worker("require('worker_threads').parentPort.postMessage(42)", { eval: true });
      w.on("message", (m) => resolve(m)); w.on("error", (e) => resolve("refused:" + e.message));
    });
    const clone = JSON.parse(execFileSync("/usr/bin/python3.11", ["-c", q.script]).toString());
    const child = execFileSync(process.execPath, ["-e", "console.log(process.pid)"]).toString().trim();
    return { clone, thread, child };
  }
  if (event.path === "/strays") {
    const cp = require("child_process");
    cp.spawn("/bin/sleep", ["300"]);
    cp.spawn(process.execPath, ["-e", "require('child_process').spawn('/bin/sleep', ['301']); process.exit(0)"]);
    return "left";
  }
  if (event.path === "/oom") { const keep = []; for (let i = 0; i < 1000; i++) keep.push(Buffer.alloc(16 << 20, 1)); return keep.length; }
  return "?";
};
"""


@pytest.fixture(scope="module", params=["python", "node"])
def probe(request: pytest.FixtureRequest, orvad: Orvad) -> dict:
    runtime = request.param
    with orvad.admin() as c:
        fn = create_function(c, f"jail-{runtime}", runtime, memory_mb=128, timeout_ms=20000)
        c.post(f"/api/v1/functions/{fn['id']}/secrets", json={"key": "API_TOKEN", "value": SECRET})
        dep = wait_deployed(
            c, deploy_inline(c, fn["id"], PY_PROBE if runtime == "python" else JS_PROBE)["id"]
        )
        assert dep["status"] == "succeeded"
    return {**fn, "runtime": runtime}


def _probe(orvad: Orvad, probe: dict) -> dict:
    with orvad.client() as c:
        r = c.get(
            f"/fn/{probe['id']}/probe",
            params={"port": orvad.port, "secret_hint": SECRET, "syscalls": json.dumps(BLOCKED)},
        )
    assert r.status_code == 200, r.text
    return r.json()


def test_filesystem_is_read_only_and_minimal(orvad: Orvad, probe: dict) -> None:
    got = _probe(orvad, probe)
    assert got["shadow"].startswith("refused:") and got["root"].startswith("refused:")
    assert got["write_code"].startswith("refused:") and got["write_root"].startswith("refused:")
    if probe["runtime"] == "python":
        assert got["tmp"].startswith("refused:")  # past the 64 MiB private tmpfs


def test_pid_namespace_and_unprivileged_user(orvad: Orvad, probe: dict) -> None:
    got = _probe(orvad, probe)
    assert got["uid"] == [65534, 65534, 65534]
    assert len(got["procs"]) <= 3 and got["pid"] <= 3  # only the jail's own processes are visible
    # seen from the host, every jailed process runs as 65534 too (never as root)
    jailed = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if b"/runtime" in cmdline and b"adapter" in cmdline and b"nsjail" not in cmdline:  # a worker
            uid_line = next(line for line in text.splitlines() if line.startswith("Uid:"))
            jailed.append(uid_line.split()[1:])
    assert jailed and all(set(ids) == {"65534"} for ids in jailed), jailed


def test_no_network_in_none_mode(orvad: Orvad, probe: dict) -> None:
    got = _probe(orvad, probe)
    assert got["orvad"].startswith("refused:") and got["outside"].startswith("refused:")


def test_secrets_reach_the_env_but_no_command_line(orvad: Orvad, probe: dict) -> None:
    got = _probe(orvad, probe)
    assert got["secret_env"] is True
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert SECRET.encode() not in cmdline.read_bytes(), cmdline
        except OSError:
            continue
    assert SECRET not in orvad.stderr() and SECRET not in orvad.stdout()


def test_blocked_syscalls_are_refused_and_interpreters_still_work(orvad: Orvad, probe: dict) -> None:
    got = _probe(orvad, probe)
    assert got["thread"].startswith("ok:")
    if probe["runtime"] == "python":
        for name, (rc, errno) in got["syscalls"].items():
            assert rc == -1 and errno == 1, f"{name} was not refused with EPERM: rc={rc} errno={errno}"
        assert got["subprocess"] == "ok:b'1'"


def test_new_namespaces_refused_and_threads_and_subprocesses_still_work(orvad: Orvad, probe: dict) -> None:
    """clone(CLONE_NEWUSER[|CLONE_NEWNET]) is refused with EPERM and clone3 with ENOSYS, in both runtimes' jails
    (Node cannot call clone itself: it runs the attempt in a child process, which inherits the filter);
    threads, worker_threads and child processes (which use plain clone, or clone3 falling back to it) still work."""
    with orvad.client() as c:
        r = c.get(f"/fn/{probe['id']}/clone", params={"script": CLONE_PROBE})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["clone"] == CLONE_REFUSED
    if probe["runtime"] == "python":
        assert got["threads"] == 4 and got["subprocess"].isdigit()
    else:
        assert got["thread"] == 42 and got["child"].isdigit()


def test_build_jail_refuses_new_namespaces(orvad: Orvad) -> None:
    """A dependency install script (npm runs the package's postinstall in the build jail) tries the same clones;
    a local file: dependency makes npm run it without reaching a registry. The handler serves what it found."""
    package = {
        "name": "clone-build",
        "version": "1.0.0",
        "dependencies": {"localdep": "file:./localdep"},
        "scripts": {"postinstall": "/usr/bin/python3.11 probe.py > clone.json"},
    }
    files = {
        "package.json": json.dumps(package).encode(),
        "probe.py": CLONE_PROBE.encode(),
        "localdep/package.json": b'{"name": "localdep", "version": "1.0.0"}',
        "handler.js": b"exports.handler = async () => JSON.parse(require('fs').readFileSync('/code/clone.json'));",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    with orvad.admin() as c:
        fn = create_function(c, "jail-build-clone", "node")
        r = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            content=buf.getvalue(),
            headers={"content-type": "application/zip"},
        )
        assert r.status_code == 202, r.text
        dep = wait_deployed(c, r.json()["id"], 300)
        logs = c.get(f"/api/v1/deployments/{dep['id']}/logs").json()["lines"]
        assert dep["status"] == "succeeded", [ln["line"] for ln in logs]
        assert c.get(f"/fn/{fn['id']}").json() == CLONE_REFUSED


def test_memory_limit_kills_the_worker_and_says_why(orvad: Orvad, probe: dict) -> None:
    with orvad.client() as c:
        r = c.get(f"/fn/{probe['id']}/oom")
        assert r.status_code == 502, r.text
        err = r.json()["error"]
        assert err["code"] == "WORKER_CRASHED" and "out of memory" in err["message"]
        assert _probe(orvad, probe)["uid"][0] == 65534  # a fresh worker serves afterwards


def _host_oom_kills() -> int:  # the kernel's OOM kills since boot
    with open("/proc/vmstat") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("oom_kill "))


def _workers(function_id: str) -> dict[int, int]:
    """The function's workers as host pids: {nsjail supervisor: the jailed adapter, its child}."""
    return {supervisor: jailed for supervisor, jailed in function_jails(function_id).items() if jailed}


@pytest.mark.parametrize("probe", ["python"], indirect=True)
@pytest.mark.parametrize("victim", ["adapter", "nsjail"])
def test_an_outside_sigkill_is_not_reported_as_out_of_memory(orvad: Orvad, probe: dict, victim: str) -> None:
    """17.9: kill -9 of a worker from outside (its jailed process, or the sandbox supervisor) used to answer
    'out of memory'. The worker's own memory cgroup decides, even when the kernel OOM-killed another
    function's worker meanwhile (made sure of here, so a host-wide count could not pass this test)."""
    with orvad.client() as c:
        assert c.get(f"/fn/{probe['id']}/hold", params={"s": "0"}).status_code == 200  # a warm worker
    before = _workers(probe["id"])
    oom_before = _host_oom_kills()
    with orvad.admin() as admin:
        other = create_function(admin, f"oom-elsewhere-{victim}", memory_mb=64, timeout_ms=20000)
        assert (
            wait_deployed(admin, deploy_inline(admin, other["id"], PY_PROBE)["id"])["status"] == "succeeded"
        )
        crashed = admin.get(f"/fn/{other['id']}/oom")
        assert crashed.status_code == 502 and "out of memory" in crashed.json()["error"]["message"], (
            crashed.text
        )
    assert _host_oom_kills() > oom_before
    with ThreadPoolExecutor(1) as pool, orvad.client() as c:
        held = pool.submit(c.get, f"/fn/{probe['id']}/hold", params={"s": "30"})
        wait_for(lambda: _sleeping_adapter(probe["id"]) is not None, 10, "the held request's worker")
        supervisor, adapter = _sleeping_adapter(probe["id"]) or (0, 0)
        assert before.get(supervisor) == adapter  # a worker that lived through that OOM kill
        os.kill(supervisor if victim == "nsjail" else adapter, signal.SIGKILL)
        r = held.result(30)
    assert r.status_code == 502, r.text
    message = r.json()["error"]["message"]
    assert "SIGKILL" in message and "out of memory" not in message, message
    assert ("supervisor" in message) == (victim == "nsjail"), message
    # nsjail does not take the jailed process with it: orvad kills it (it used to hold the request to its timeout)
    wait_for(lambda: adapter not in _workers(probe["id"]).values(), 10, "the jailed process to go")


def _running_strays(function_id: str, zombies: bool = False) -> list[int]:
    """Host pids of the function's `sleep` processes that still run (with `zombies`: or wait to be reaped,
    found as children of the function's processes, since a zombie has no environment left to read)."""
    mine, stats = set(), {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stats[int(proc.name)] = (proc / "stat").read_bytes()
            if f"ORVA_FUNCTION_ID={function_id}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                mine.add(int(proc.name))
        except OSError:
            continue
    mine |= set(
        _workers(function_id).values()
    )  # its jailed processes (one started as a spare has no such variable)
    found = []
    for pid, stat in stats.items():
        comm, rest = stat.split(b") ", 1)[0], stat.rsplit(b")", 1)[1].split()
        state, ppid = rest[0], int(rest[1])
        if comm.endswith(b"(sleep") and ((pid in mine and state != b"Z") or (zombies and ppid in mine)):
            found.append(pid)
    return found


def test_processes_a_handler_leaves_behind_are_killed_after_its_request(orvad: Orvad, probe: dict) -> None:
    """17.8: children and orphaned grandchildren a handler leaves running used to live on until the worker
    retired; once the worker is idle they are killed, and the function serves on."""
    with orvad.client() as c:
        r = c.get(f"/fn/{probe['id']}/strays")
        assert r.status_code == 200 and r.text == "left", r.text
        wait_for(
            lambda: not _running_strays(probe["id"]), 10, "the handler's leftover processes to be killed"
        )
        assert (
            c.get(
                f"/fn/{probe['id']}/probe",
                params={"port": orvad.port, "secret_hint": SECRET, "syscalls": "{}"},
            ).json()["uid"][0]
            == 65534
        )
        # Python reaps them at once; a Node worker holding orphans' zombies asked to be replaced, and was
        wait_for(
            lambda: not _running_strays(probe["id"], zombies=True), 10, "the killed processes to be reaped"
        )


def _sleeping_adapter(function_id: str) -> tuple[int, int] | None:
    """The worker whose adapter sleeps in a handler (clock_nanosleep, or nanosleep) rather than reading stdin."""
    for supervisor, adapter in _workers(function_id).items():
        try:
            if Path(f"/proc/{adapter}/syscall").read_text().split()[0] in ("230", "35"):
                return supervisor, adapter
        except (OSError, IndexError):
            continue
    return None


@pytest.mark.parametrize("probe", ["python"], indirect=True)  # Node jails get the same pids cgroup flags
def test_fork_bomb_is_stopped_by_the_pids_limit(orvad: Orvad, probe: dict) -> None:
    host_pids_before = len(os.listdir("/proc"))
    with orvad.client() as c:
        r = c.get(f"/fn/{probe['id']}/forkbomb")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["forked"] < 64 and got["error"] in ("BlockingIOError", "OSError")
    wait_for(lambda: len(os.listdir("/proc")) < host_pids_before + 20, 10, "forked children to be reaped")
