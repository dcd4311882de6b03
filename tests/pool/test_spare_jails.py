"""Spare jails (issue 26) through HTTP: a jail per runtime started ahead and handed a function at its next cold
start (orvad/services/spares.py).

Each test starts its own orvad, so the metrics it reads (orva_spare_jails_used_total, orva_spare_jails_waiting)
are its own. A worker that came from a spare is told apart on the host by its command line (the spare boot), and
its limits are read from its cgroups: what the kernel enforces, not what orvad meant to write.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.builder.test_archive_escape import _tar
from tests.cli.test_cli import logged_in
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, function_jails, wait_for

CGROUP = Path("/sys/fs/cgroup")
GREETING = 'h\u00e9\nllo "quoted" \\ end {"type": "ready"}'  # JSON's specials, a newline, a frame look-alike

PY_ECHO = """import os, sys
traces = [m for m in ("json", "re", "spare", "adapter") if m in sys.modules]  # none, as in a usual worker
import json
def handler(event, context):
    secret = os.environ.get("TOKEN")
    return {"statusCode": 200, "body": json.dumps({
        "greeting": os.environ.get("GREETING"),
        "token": secret,
        "name": os.environ.get("ORVA_FUNCTION_NAME"),
        "code": sorted(os.listdir("/code")),
        "pid": os.getpid(),
        "traces": traces,
        "heap": None,
        "argv": sys.argv,
    })}
"""
NODE_ECHO = """exports.handler = async () => ({ statusCode: 200, body: JSON.stringify({
  greeting: process.env.GREETING, token: process.env.TOKEN, name: process.env.ORVA_FUNCTION_NAME,
  code: require('fs').readdirSync('/code').sort(), pid: process.pid, traces: [],
  heap: require('v8').getHeapStatistics().heap_size_limit, argv: process.argv,
}) });
"""


def _metric(c: httpx.Client, name: str, **labels: str) -> float:
    text = c.get("/api/v1/system/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if wanted else "") + r" (\S+)$"
    for line in text.splitlines():
        if m := re.match(pattern, line):
            return float(m.group(1))
    return 0.0


def _deployed(c: httpx.Client, name: str, runtime: str, code: str, **extra: object) -> dict[str, object]:
    fn = create_function(c, name, runtime=runtime, **extra)
    assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
    return fn


def _spare_waiting(c: httpx.Client) -> None:
    wait_for(lambda: _metric(c, "orva_spare_jails_waiting") >= 1, 30, "a spare jail to be waiting")


def _python_spare(c: httpx.Client) -> dict[str, object]:
    """A Python function's first cold start (the usual way), then Python's spare waiting; the function."""
    warm = _deployed(c, "warm", "python", "def handler(e, c):\n    return {}\n")
    assert c.get(f"/fn/{warm['id']}").status_code == 200
    _spare_waiting(c)
    return warm


def _jails_with_memory(limit_mb: int) -> list[int]:
    """The jailed processes whose memory cgroup holds exactly this limit (tests use odd sizes no other test does)."""
    found = []
    for folder in (CGROUP / "memory" / "NSJAIL").glob("NSJAIL.*"):
        try:
            if int((folder / "memory.limit_in_bytes").read_text()) == limit_mb << 20:
                found.append(int(folder.name.split(".")[1]))
        except (OSError, ValueError):
            continue
    return found


def _cmdline(pid: int) -> str:
    return (Path(f"/proc/{pid}/cmdline").read_bytes()).replace(b"\0", b" ").decode()


def _spare_processes(orvad: Orvad) -> list[int]:
    """This orvad's waiting spares: jailed processes started from the spare boot whose nsjail binds its folder."""
    spares = str(orvad.data_dir / "spares")
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if spares in _cmdline(int(proc.name)) and "nsjail" in _cmdline(int(proc.name)):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize(("runtime", "code"), [("python", PY_ECHO), ("node", NODE_ECHO)])
def test_a_cold_start_takes_the_spare_with_its_code_environment_secrets_and_limits(
    make_orvad: Callable[..., Orvad], runtime: str, code: str
) -> None:
    orvad = make_orvad()
    with orvad.admin() as c:
        # Node sizes its heap from the memory limit it starts under: its spares are kept per size, so the
        # first function (a usual start) has the second's size and leaves the spare the second takes
        first = _deployed(c, "first", runtime, code, memory_mb=97, cpus=0.37)
        usual = c.get(f"/fn/{first['id']}")
        assert usual.status_code == 200, usual.text
        assert _metric(c, "orva_spare_jails_used_total", runtime=runtime) == 0
        _spare_waiting(c)
        fn = create_function(
            c, "second", runtime=runtime, memory_mb=97, cpus=0.37, env_vars={"GREETING": GREETING}
        )
        r = c.post(f"/api/v1/functions/{fn['id']}/secrets", json={"key": "TOKEN", "value": "s3cr\u00e9t"})
        assert r.status_code in (200, 201), r.text
        assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
        r = c.get(f"/fn/{fn['id']}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["greeting"] == GREETING
        assert body["token"] == "s3cr\u00e9t"
        assert body["name"] == "second"
        assert body["code"] == ["handler.js" if runtime == "node" else "handler.py"]
        assert body["pid"] == 1  # the jail's own first process, as in a usual start
        assert body["traces"] == []
        assert body["heap"] == usual.json()["heap"]  # the same heap as a usual start under the same limit
        assert body["argv"] == usual.json()["argv"]  # Node: [node, /runtime/adapter.js]; Python: ['-c']
        assert _metric(c, "orva_spare_jails_used_total", runtime=runtime) == 1
        jails = _jails_with_memory(97)  # the first function's worker and the second's
        # the second's was the spare: its jailed process runs the spare boot and its jail binds links of the version
        handed = [j for j in jails if "spare" in _cmdline(j) and j in function_jails(fn["id"]).values()]
        assert len(handed) == 1, (jails, [_cmdline(j) for j in jails])
        (jail,) = handed
        folder = CGROUP / "cpu" / "NSJAIL" / f"NSJAIL.{jail}"
        assert int((folder / "cpu.cfs_quota_us").read_text()) == 370_000
        assert int((folder / "cpu.cfs_period_us").read_text()) == 1_000_000
        pids = CGROUP / "pids" / "NSJAIL" / f"NSJAIL.{jail}" / "pids.max"
        assert pids.read_text().strip() == "64"
        _spare_waiting(c)  # the next one is started in the background
        snapshot = c.get("/api/v1/system/metrics.json").json()["spare_jails"]
        assert snapshot["enabled"] is True and snapshot["used"] == {runtime: 1} and snapshot["waiting"] >= 1
        check = c.get("/api/v1/system/health").json()["checks"]["spare_jails"]
        assert check["ok"] is True and check["detail"].startswith("on: ")


def test_the_cli_shows_spare_jails(make_orvad: Callable[..., Orvad], tmp_path: Path) -> None:
    orvad = make_orvad()
    with orvad.admin() as c:
        warm = _python_spare(c)
        fn = _deployed(c, "handed", "python", "def handler(e, c):\n    return {'ok': True}\n")
        assert c.get(f"/fn/{fn['id']}").json() == {"ok": True}
        assert c.get(f"/fn/{warm['id']}").status_code == 200
    with logged_in(orvad, tmp_path, "none-") as cli:
        shown = cli.json("system", "metrics")["spare_jails"]
        assert shown["enabled"] is True and shown["used"] == {"python": 1}
        table = cli.ok("system", "metrics").stdout
        assert "spare_jails.used.python" in table and "spare_jails.waiting" in table
        assert "spare_jails" in cli.ok("system", "health").stdout


def test_a_worker_from_a_spare_gets_its_functions_memory_limit_up_and_down(
    make_orvad: Callable[..., Orvad],
) -> None:
    """A Python spare waits under 64 MB; handed a function it takes the function's limit: 48 MB is enforced
    (200 MB is OOM-killed, reported as out of memory at 48 MB) and 256 MB is all there (150 MB allocated)."""
    orvad = make_orvad()
    hog = (
        "def handler(event, context):\n"
        "    b = bytearray(int(event['query']['mb']) << 20)\n"
        "    return {'mb': len(b) >> 20}\n"
    )
    with orvad.admin() as c:
        _python_spare(c)
        small = _deployed(c, "small", "python", hog, memory_mb=48)
        r = c.get(f"/fn/{small['id']}", params={"mb": "200"})
        assert r.status_code >= 500, r.text
        assert "out of memory (limit 48 MB)" in r.text, r.text
        # its pool would start a replacement (min_warm 1), which could take the next spare first
        assert c.delete(f"/api/v1/functions/{small['id']}").status_code in (200, 204)
        _spare_waiting(c)
        used = _metric(c, "orva_spare_jails_used_total", runtime="python")
        assert used >= 1  # the small function's worker was a spare's
        big = _deployed(c, "big", "python", hog, memory_mb=256)
        r = c.get(f"/fn/{big['id']}", params={"mb": "150"})
        assert r.status_code == 200 and r.json() == {"mb": 150}, r.text
        assert _metric(c, "orva_spare_jails_used_total", runtime="python") == used + 1


def test_a_spare_serves_one_function_and_its_code_is_read_only(
    make_orvad: Callable[..., Orvad], jail_tmp: Path
) -> None:
    """The spare a function was handed is that function's worker: the next function gets a new spare with
    only its own files, and neither can write to /code (its folder of hard links shares the version's inodes)."""
    orvad = make_orvad()
    writer = (
        "import os\ndef handler(event, context):\n"
        "    try:\n        open('/code/planted.py', 'w').write('x')\n        wrote = True\n"
        "    except OSError:\n        wrote = False\n"
        "    try:\n        os.unlink('/code/handler.py')\n        removed = True\n"
        "    except OSError:\n        removed = False\n"
        "    try:\n        open('/code/handler.py', 'a').write('# changed')\n        changed = True\n"
        "    except OSError:\n        changed = False\n"
        "    return {'wrote': wrote, 'removed': removed, 'changed': changed, 'code': sorted(os.listdir('/code'))}\n"
    )
    with orvad.admin() as c:
        _python_spare(c)
        seen, versions = {}, {}
        for name in ("one", "two"):
            _spare_waiting(c)
            fn = create_function(c, name, runtime="python")
            archive = _tar([("file", "handler.py", writer), ("file", f"only-{name}.txt", name)])
            r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("x.tgz", archive)})
            assert r.status_code == 202, r.text
            dep = wait_deployed(c, r.json()["id"])
            assert dep["status"] == "succeeded", dep
            versions[name] = orvad.data_dir / "functions" / fn["id"] / "versions" / dep["code_hash"]
            r = c.get(f"/fn/{fn['id']}")
            assert r.status_code == 200, r.text
            seen[name] = r.json()
        assert _metric(c, "orva_spare_jails_used_total", runtime="python") == 2
    for name, other in (("one", "two"), ("two", "one")):
        assert seen[name] == {
            "wrote": False,
            "removed": False,
            "changed": False,
            "code": ["handler.py", f"only-{name}.txt"],
        }
        # the versions on disk are whole: nothing planted, nothing removed or changed through the links
        assert sorted(p.name for p in versions[name].iterdir()) == ["handler.py", f"only-{name}.txt"]
        assert (versions[name] / "handler.py").read_text() == writer
        assert not (versions[name] / f"only-{other}.txt").exists()


def test_a_function_that_sets_a_variable_its_interpreter_reads_at_start_starts_the_usual_way(
    make_orvad: Callable[..., Orvad],
) -> None:
    """PYTHONPATH (like NODE_OPTIONS, LANG or TZ) is read when the interpreter starts, before a spare knows its
    function: such a function never takes a spare, and its variable works as in any worker."""
    orvad = make_orvad()
    handler = "from helper import VALUE\ndef handler(e, c):\n    return {'value': VALUE}\n"
    with orvad.admin() as c:
        _python_spare(c)
        fn = create_function(c, "pathy", runtime="python", env_vars={"PYTHONPATH": "/code/lib"})
        archive = _tar(
            [("file", "handler.py", handler), ("dir", "lib", ""), ("file", "lib/helper.py", "VALUE = 7\n")]
        )
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("x.tgz", archive)})
        assert wait_deployed(c, r.json()["id"])["status"] == "succeeded"
        r = c.get(f"/fn/{fn['id']}")
        assert r.status_code == 200 and r.json() == {"value": 7}, r.text
        assert _metric(c, "orva_spare_jails_used_total", runtime="python") == 0
        assert _metric(c, "orva_spare_jails_waiting") == 1  # left for a function that can take it


def test_an_egress_function_does_not_take_a_spare(make_orvad: Callable[..., Orvad]) -> None:
    """A spare's network namespace is an empty one fixed at its start: functions with egress start their own."""
    orvad = make_orvad()
    with orvad.admin() as c:
        if not c.get("/api/v1/system/health").json()["checks"]["egress"]["ok"]:
            pytest.fail("egress networking is not set up on this host: the test needs it")
        _python_spare(c)
        fn = _deployed(
            c, "outward", "python", "def handler(e, c):\n    return {'ok': True}\n", network_mode="egress"
        )
        r = c.get(f"/fn/{fn['id']}")
        assert r.status_code == 200 and r.json() == {"ok": True}, r.text
        assert _metric(c, "orva_spare_jails_used_total", runtime="python") == 0
        assert _metric(c, "orva_spare_jails_waiting") == 1


def test_at_most_four_spares_wait(make_orvad: Callable[..., Orvad]) -> None:
    """Node spares are kept per memory and CPU size: six sizes started at once leave at most four waiting (the
    least recently wanted go first), so idle spares cannot pile up outside the memory gate."""
    orvad = make_orvad()
    with orvad.admin() as c:
        functions = [
            _deployed(c, f"size-{mb}", "node", NODE_ECHO, memory_mb=mb) for mb in (64, 80, 96, 112, 144, 160)
        ]
        for fn in functions:
            assert c.get(f"/fn/{fn['id']}").status_code == 200
        wait_for(lambda: _metric(c, "orva_spare_jails_waiting") >= 4, 60, "four spares to be waiting")
        assert _metric(c, "orva_spare_jails_waiting") == 4
        assert len(_spare_processes(orvad)) == 4


def _reserved_mb(c: httpx.Client) -> int:
    return int(c.get("/api/v1/system/metrics.json").json()["host"]["mem_reserved_mb"])


def test_spares_count_in_the_memory_gate_and_give_way_to_workers(make_orvad: Callable[..., Orvad]) -> None:
    """A waiting spare holds its 64 MB in the host memory gate (ORVA_MEMORY_SHARE) but never keeps a worker out:
    a worker start near the cap takes the spare rather than stopping it; a worker that leaves no room beside the
    spares stops them (not another function's idle worker, no MEMORY_EXHAUSTED); no spare starts without room."""
    share = 0.05
    with open("/proc/meminfo") as fh:
        total_kb = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal:"))
    cap = int(total_kb / 1024 * share)  # orvad's own formula (daemon._memory_cap_mb)
    small, big = (
        150,
        cap - 330,
    )  # two small workers, the big one and a spare do not fit; without the spare they do
    assert 16 <= big <= 4096, cap
    orvad = make_orvad(env={"ORVA_MEMORY_SHARE": str(share)})
    code = "import os\ndef handler(e, c):\n    return os.environ.get('V', '-')\n"

    def used() -> float:
        return _metric(c, "orva_spare_jails_used_total", runtime="python")

    with orvad.admin() as c:
        # C's worker starts the usual way (no spare yet); then Python's spare waits; A's import check takes it
        # (the worker A keeps) and the next spare waits
        small_c = _deployed(c, "small-c", "python", code, memory_mb=small)
        _spare_waiting(c)
        big_a = _deployed(c, "big-a", "python", code, memory_mb=big)
        assert used() == 1
        _spare_waiting(c)
        assert _reserved_mb(c) == small + big + 64 <= cap

        # C's settings change: its new worker fits beside A and C's old one, not beside the spare too: it
        # takes the spare; no new one starts (no room for it while C's old worker drains)
        assert c.put(f"/api/v1/functions/{small_c['id']}", json={"env_vars": {"V": "2"}}).status_code == 200
        wait_for(lambda: c.get(f"/fn/{small_c['id']}").text == "2", 30, "C's new worker")
        assert used() == 2
        wait_for(lambda: _reserved_mb(c) == small + big, 30, "C's old worker to drain")
        assert _metric(c, "orva_spare_jails_waiting") == 0

        # B's deploy: a spare starts beside A and C (B's import check is not counted), then B's worker leaves
        # no room for it: it is stopped, and A's and C's workers stay
        late_b = _deployed(c, "late-b", "python", code, memory_mb=small)
        assert c.get(f"/fn/{late_b['id']}").text == "-"
        wait_for(lambda: _metric(c, "orva_spare_jails_waiting") == 0, 10, "the spare to give way")
        assert _reserved_mb(c) == 2 * small + big <= cap
        pools = {row["function_id"]: row for row in c.get("/api/v1/system/metrics.json").json()["pools"]}
        assert [pools[f["id"]]["workers"] for f in (small_c, big_a, late_b)] == [1, 1, 1]
        # of the jails started as spares, A's and C's workers run: the stopped spare has ended
        wait_for(
            lambda: len(_spare_processes(orvad)) == 2,
            10,
            f"the stopped spare's process to end {used()} {c.get('/api/v1/system/metrics.json').json()['pools']}",
        )
        assert c.get(f"/fn/{big_a['id']}").text == "-" and c.get(f"/fn/{small_c['id']}").text == "2"


def test_a_spare_killed_while_it_waits_is_replaced_and_the_request_is_served(
    make_orvad: Callable[..., Orvad],
) -> None:
    orvad = make_orvad()
    with orvad.admin() as c:
        _python_spare(c)
        (spare,) = _spare_processes(orvad)  # its nsjail, a child of the orvad this test started
        (jailed,) = map(int, Path(f"/proc/{spare}/task/{spare}/children").read_text().split())
        (folder,) = (orvad.data_dir / "spares").iterdir()
        os.kill(spare, signal.SIGKILL)
        wait_for(lambda: _metric(c, "orva_spare_jails_waiting") == 0, 30, "the killed spare to be seen gone")
        # nothing of it is left: its jailed process (orvad kills it through a pidfd) and its folder
        wait_for(lambda: not Path(f"/proc/{jailed}").exists(), 10, "the spare's jailed process to go")
        wait_for(lambda: not folder.exists(), 10, "the spare's folder to go")
        fn = _deployed(c, "after", "python", "def handler(e, c):\n    return {'ok': True}\n")
        r = c.get(f"/fn/{fn['id']}")
        assert r.status_code == 200 and r.json() == {"ok": True}, r.text
        assert _metric(c, "orva_spare_jails_used_total", runtime="python") == 0  # the usual way
        _spare_waiting(c)  # and a new spare follows


def test_a_version_with_more_files_than_a_spare_takes_starts_the_usual_way(
    make_orvad: Callable[..., Orvad],
) -> None:
    entries = [("file", "handler.py", "def handler(e, c):\n    return {'many': True}\n")]
    entries += [("file", f"data/f{i}.txt", str(i)) for i in range(600)]
    orvad = make_orvad()
    with orvad.admin() as c:
        _python_spare(c)
        fn = create_function(c, "many", runtime="python")
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("x.tgz", _tar(entries))})
        assert wait_deployed(c, r.json()["id"])["status"] == "succeeded"
        r = c.get(f"/fn/{fn['id']}")
        assert r.status_code == 200 and r.json() == {"many": True}, r.text
        assert _metric(c, "orva_spare_jails_used_total", runtime="python") == 0
        # its first start found out (the spare it took was stopped, half-linked); the next spare is started
        _spare_waiting(c)
        (waiting,) = _spare_processes(orvad)
        # a new pool of the same version (a changed variable): started the usual way, the spare left waiting
        assert c.put(f"/api/v1/functions/{fn['id']}", json={"env_vars": {"AGAIN": "1"}}).status_code == 200
        r = c.get(f"/fn/{fn['id']}")
        assert r.status_code == 200 and r.json() == {"many": True}, r.text
        assert _metric(c, "orva_spare_jails_used_total", runtime="python") == 0
        assert _spare_processes(orvad) == [waiting]


def test_spare_jails_off(make_orvad: Callable[..., Orvad]) -> None:
    orvad = make_orvad(env={"ORVA_SPARE_JAILS": "false"})
    with orvad.admin() as c:
        for name in ("one", "two"):
            fn = _deployed(c, name, "python", "def handler(e, c):\n    return {'ok': True}\n")
            assert c.get(f"/fn/{fn['id']}").json() == {"ok": True}
        assert _metric(c, "orva_spare_jails_waiting") == 0
        assert _metric(c, "orva_spare_jails_used_total", runtime="python") == 0
        assert _spare_processes(orvad) == []
        assert not (orvad.data_dir / "spares").exists()
        assert c.get("/api/v1/system/metrics.json").json()["spare_jails"] == {
            "enabled": False,
            "waiting": 0,
            "used": {},
        }
        check = c.get("/api/v1/system/health").json()["checks"]["spare_jails"]
        assert check == {"ok": True, "required": False, "detail": "off (ORVA_SPARE_JAILS=false)"}


def test_stopping_orvad_stops_its_spares_and_a_restart_clears_their_folders(
    make_orvad: Callable[..., Orvad],
) -> None:
    orvad = make_orvad()
    with orvad.admin() as c:
        warm = _python_spare(c)
    (spare,) = _spare_processes(orvad)
    (jailed,) = map(int, Path(f"/proc/{spare}/task/{spare}/children").read_text().split())
    stale = orvad.data_dir / "spares" / "left-by-a-killed-orvad"
    orvad.stop()
    assert not Path(f"/proc/{spare}").exists() and not Path(f"/proc/{jailed}").exists()
    stale.mkdir()
    (stale / "handler.py").write_text("x")
    orvad.start()
    assert not stale.exists()
    with orvad.admin() as c:
        assert json.loads(c.get(f"/fn/{warm['id']}").text) == {}
