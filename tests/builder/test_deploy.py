"""The deploy pipeline over HTTP: inline and archive deploys, phases, SSE, hashes, rollback, diff, GC; the
build queue's bound."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import tarfile
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from orvad.builder.queue import BuildQueue
from orvad.errors import Unavailable
from tests.deploy_helpers import create_function, deploy_inline, sse_events, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

PY = "def handler(event, context):\n    return {'v': %d}\n"
JS = "exports.handler = async (event, context) => ({v: %d});\n"


@pytest.mark.parametrize(("runtime", "code"), [("python", PY), ("node", JS)])
def test_inline_deploy_builds_and_activates(orvad: Orvad, runtime: str, code: str) -> None:
    with orvad.admin() as c:
        fn = create_function(c, f"inline-{runtime}", runtime)
        dep = deploy_inline(c, fn["id"], code % 1)
        assert dep["status"] == "queued" and dep["source"] == "inline" and dep["version"] == 1
        events = sse_events(c, f"/api/v1/deployments/{dep['id']}/stream")
        phases = [d["phase"] for e, d in events if e == "phase"]
        assert phases == ["extracting", "installing", "activating"]
        assert events[-1][0] == "succeeded" and events[-1][1]["status"] == "succeeded"
        assert any(e == "log" and "code hash" in d["line"] for e, d in events)
        record = wait_deployed(c, dep["id"])
        assert record["code_hash"] and record["finished_at"] and record["duration_ms"] is not None
        assert [p["phase"] for p in record["phases"]] == [
            "queued",
            "extracting",
            "installing",
            "activating",
            "succeeded",
        ]
        got = c.get(f"/api/v1/functions/{fn['id']}").json()
        assert got["status"] == "active" and got["active_deployment_id"] == dep["id"]
        src = c.get(f"/api/v1/functions/{fn['id']}/source").json()
        assert src["code"] == code % 1 and src["code_hash"] == record["code_hash"]
        logs = c.get(f"/api/v1/deployments/{dep['id']}/logs").json()
        assert [ln["seq"] for ln in logs["lines"]] == list(range(1, len(logs["lines"]) + 1))
        # a client connecting after the end gets the whole log and the final event
        late = sse_events(c, f"/api/v1/deployments/{dep['id']}/stream")
        assert late[-1][0] == "succeeded"
        assert [d["line"] for e, d in late if e == "log"] == [d["line"] for e, d in events if e == "log"]


def test_same_code_same_hash_and_reused_build(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "hash-fn")
        first = wait_deployed(c, deploy_inline(c, fn["id"], PY % 7)["id"])
        second_dep = deploy_inline(c, fn["id"], PY % 7)
        events = sse_events(c, f"/api/v1/deployments/{second_dep['id']}/stream")
        second = wait_deployed(c, second_dep["id"])
        assert first["code_hash"] == second["code_hash"] and second["version"] == first["version"] + 1
        assert any("re-using" in d["line"] for e, d in events if e == "log")
        third = wait_deployed(c, deploy_inline(c, fn["id"], PY % 8)["id"])
        assert third["code_hash"] != first["code_hash"]


def _tar(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_archive_deploys_tar_and_zip(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "archive-fn")
        tgz = _tar({"myfn/handler.py": (PY % 3).encode(), "myfn/lib/util.py": b"X = 1\n"})
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("fn.tar.gz", tgz)})
        assert r.status_code == 202, r.text
        assert wait_deployed(c, r.json()["id"])["status"] == "succeeded"
        assert c.get(f"/api/v1/functions/{fn['id']}/source").json()["code"] == PY % 3
        r = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            content=_zip({"handler.py": (PY % 4).encode()}),
            headers={"content-type": "application/zip"},
        )
        assert r.status_code == 202 and wait_deployed(c, r.json()["id"])["status"] == "succeeded"
        assert c.get(f"/api/v1/functions/{fn['id']}/source").json()["code"] == PY % 4


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (_tar({"../evil.py": b"x"}), ".."),
        (_tar({"/etc/evil.py": b"x"}), "absolute"),
        (_tar({"handler.py": b"x"}, {"link": "../../etc/passwd"}), "outside"),
        (_tar({"handler.py": b"x"}, {"abs": "/etc/passwd"}), "absolute"),
        (_zip({"../../evil.py": b"x"}), ".."),
        (b"this is not an archive at all", "not a readable"),
    ],
)
def test_bad_archives_fail_cleanly_and_keep_the_old_version(
    orvad: Orvad, archive: bytes, reason: str
) -> None:
    with orvad.admin() as c:
        name = f"bad-{abs(hash(reason + str(len(archive)))) % 10**8}"
        fn = create_function(c, name)
        good = wait_deployed(c, deploy_inline(c, fn["id"], PY % 1)["id"])
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("x.tgz", archive)})
        assert r.status_code == 202
        bad = wait_deployed(c, r.json()["id"])
        assert bad["status"] == "failed" and reason in bad["error_message"]
        after = c.get(f"/api/v1/functions/{fn['id']}").json()
        assert after["active_deployment_id"] == good["id"] and after["status"] == "active"


def test_oversized_archive_is_refused(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_MAX_ARCHIVE_BYTES": "4096"})
    with server.admin() as c:
        fn = create_function(c, "big")
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("x.tgz", b"x" * 10_000)})
        assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_first_build_failure_sets_error_status(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "never-good")
        r = c.post(f"/api/v1/functions/{fn['id']}/deploy", files={"file": ("x.tgz", b"garbage")})
        assert wait_deployed(c, r.json()["id"])["status"] == "failed"
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["status"] == "error"


def test_rollback_and_its_errors(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "roll-fn")
        v1 = wait_deployed(c, deploy_inline(c, fn["id"], PY % 1)["id"])
        v2 = wait_deployed(c, deploy_inline(c, fn["id"], PY % 2)["id"])
        r = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": v1["id"]})
        assert r.status_code == 200, r.text
        rb = r.json()
        assert rb["source"] == "rollback" and rb["parent_deployment_id"] == v1["id"]
        assert rb["code_hash"] == v1["code_hash"] and rb["status"] == "succeeded"
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["active_deployment_id"] == rb["id"]
        assert c.get(f"/api/v1/functions/{fn['id']}/source").json()["code"] == PY % 1
        again = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": v1["id"]})
        assert again.status_code == 400 and again.json()["error"]["code"] == "VALIDATION"
        by_hash = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"code_hash": v2["code_hash"]})
        assert by_hash.status_code == 200 and by_hash.json()["parent_deployment_id"] == v2["id"]
        unknown = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": "nope"})
        assert unknown.status_code == 404
        both = c.post(
            f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": v1["id"], "code_hash": "x"}
        )
        assert both.status_code == 400
        history = c.get(f"/api/v1/functions/{fn['id']}/deployments").json()["deployments"]
        assert [d["source"] for d in history] == ["rollback", "rollback", "inline", "inline"]


def test_diff_json_and_unified(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "diff-fn")
        a = wait_deployed(c, deploy_inline(c, fn["id"], PY % 1)["id"])
        b = wait_deployed(c, deploy_inline(c, fn["id"], PY % 2, dependencies="")["id"])
        r = c.get(f"/api/v1/functions/{fn['id']}/diff", params={"from": a["id"], "to": b["id"]})
        assert r.status_code == 200
        body = r.json()
        assert body["from"] == a["id"] and body["to"] == b["id"]
        handler = body["files"][0]
        assert handler["kind"] == "handler" and handler["path"] == "handler.py"
        assert (handler["added"], handler["removed"]) == (1, 1)
        assert handler["before"] == PY % 1 and handler["after"] == PY % 2
        text = c.get(
            f"/api/v1/functions/{fn['id']}/diff", params={"from": a["id"], "to": b["id"], "format": "unified"}
        )
        assert text.headers["content-type"].startswith("text/x-diff")
        assert "--- a/handler.py" in text.text and "+++ b/handler.py" in text.text and "@@" in text.text
        assert "-    return {'v': 1}" in text.text and "+    return {'v': 2}" in text.text
        same = c.get(f"/api/v1/functions/{fn['id']}/diff", params={"from": a["id"], "to": a["id"]})
        assert same.status_code == 400
        missing = c.get(f"/api/v1/functions/{fn['id']}/diff", params={"from": a["id"], "to": "dep_unknown"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "VERSION_NOT_FOUND"
        other = create_function(c, "diff-other")
        o = wait_deployed(c, deploy_inline(c, other["id"], PY % 9)["id"])
        cross = c.get(f"/api/v1/functions/{fn['id']}/diff", params={"from": a["id"], "to": o["id"]})
        assert cross.status_code == 400


def test_gc_keeps_newest_versions_and_answers_410(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_VERSIONS_KEPT": "2"})
    with server.admin() as c:
        fn = create_function(c, "gc-fn")
        deps = [wait_deployed(c, deploy_inline(c, fn["id"], PY % i)["id"]) for i in range(4)]
        r = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": deps[0]["id"]})
        assert r.status_code == 410 and r.json()["error"]["code"] == "VERSION_GCD"
        available = r.json()["error"]["details"]["available_hashes"]
        assert set(available) == {deps[3]["code_hash"], deps[2]["code_hash"]}
        d = c.get(f"/api/v1/functions/{fn['id']}/diff", params={"from": deps[0]["id"], "to": deps[3]["id"]})
        assert d.status_code == 410 and "available_hashes" in d.json()["error"]["details"]
        assert (
            c.post(
                f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": deps[2]["id"]}
            ).status_code
            == 200
        )


def test_restart_resumes_interrupted_builds(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_BUILD_CONCURRENCY": "1"})
    with server.admin() as c:
        fns = [create_function(c, f"resume-{i}") for i in range(6)]
        deps = [deploy_inline(c, f["id"], PY % i) for i, f in enumerate(fns)]
    server.stop(signal.SIGKILL)  # no clean shutdown: whatever was queued or mid-build must survive
    again = make_orvad(data_dir=server.data_dir, env={"ORVA_BUILD_CONCURRENCY": "1"})
    with again.admin() as c:
        final = [wait_deployed(c, d["id"]) for d in deps]
        assert all(f["status"] == "succeeded" for f in final), final
        assert all(c.get(f"/api/v1/functions/{f['id']}").json()["status"] == "active" for f in fns)


def test_delete_removes_versions_on_disk(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "del-fn")
        wait_deployed(c, deploy_inline(c, fn["id"], PY % 1)["id"])
        folder = orvad.data_dir / "functions" / fn["id"]
        assert folder.is_dir()
        assert c.delete(f"/api/v1/functions/{fn['id']}").status_code == 200
        assert not folder.exists()


def test_concurrent_deploys_serve_the_newest_and_keep_its_version(make_orvad: Callable[..., Orvad]) -> None:
    """12 parallel deploys of one function: the newest submitted is active and served, older ones that
    finish after it end `superseded`, and GC never removes a version a build was about to activate."""
    env = {"ORVA_VERSIONS_KEPT": "2"}
    server = make_orvad(env=env)
    with server.admin() as c:
        fn = create_function(c, "burst")
        wait_deployed(c, deploy_inline(c, fn["id"], PY % 100)["id"])

    def submit(i: int) -> tuple[int, dict[str, Any]]:
        with server.admin() as c:
            return i, deploy_inline(c, fn["id"], PY % i)

    with ThreadPoolExecutor(12) as pool:
        submitted = dict(pool.map(submit, range(12)))
    with server.admin() as c:
        final = {i: wait_deployed(c, d["id"]) for i, d in submitted.items()}
        assert {f["status"] for f in final.values()} <= {"succeeded", "superseded"}, final
        newest = max(final, key=lambda i: final[i]["id"])
        assert final[newest]["status"] == "succeeded"
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["active_deployment_id"] == final[newest]["id"]
        assert c.get(f"/fn/{fn['id']}").json() == {"v": newest}
        versions = server.data_dir / "functions" / fn["id"] / "versions"
        succeeded = [
            d
            for d in c.get(f"/api/v1/functions/{fn['id']}/deployments", params={"limit": 100}).json()[
                "deployments"
            ]
            if d["status"] == "succeeded"
        ]
        kept = list(dict.fromkeys(d["code_hash"] for d in succeeded))[:2]  # newest first
        assert final[newest]["code_hash"] in kept
        for code_hash in kept:
            assert (versions / code_hash / "handler.py").is_file() and (
                versions / f"{code_hash}.built"
            ).is_file()
        for f in final.values():
            if f["status"] == "superseded":
                assert "newer deployment is active" in " ".join(
                    ln["line"] for ln in c.get(f"/api/v1/deployments/{f['id']}/logs").json()["lines"]
                )
    server.stop()
    again = make_orvad(data_dir=server.data_dir, env=env)
    with again.admin() as c:
        assert c.get(f"/fn/{fn['id']}").json() == {"v": newest}


def test_a_resumed_build_continues_its_log(make_orvad: Callable[..., Orvad]) -> None:
    """A build interrupted by a restart keeps its first lines and logs the rest after them (seq continues)."""
    package = {
        "name": "slow",
        "version": "1.0.0",
        "dependencies": {"localdep": "file:./localdep"},
        "scripts": {
            "postinstall": "test -e /cache/once || (touch /cache/once && echo waiting-for-restart"
            " && sleep 600)"
        },
    }
    files = {
        "package.json": json.dumps(package).encode(),
        "handler.js": (JS % 1).encode(),
        "localdep/package.json": b'{"name": "localdep", "version": "1.0.0"}',
    }
    server = make_orvad()
    with server.admin() as c:
        fn = create_function(c, "resumed-log", "node")
        r = c.post(
            f"/api/v1/functions/{fn['id']}/deploy",
            content=_zip(files),
            headers={"content-type": "application/zip"},
        )
        dep_id = r.json()["id"]
        # the echoed line itself (npm prints the script's command, which names it too, before it runs)
        wait_for(
            lambda: any(
                ln["line"].strip() == "waiting-for-restart"
                for ln in c.get(f"/api/v1/deployments/{dep_id}/logs").json()["lines"]
            ),
            120,
            "the slow install",
        )
    server.stop()
    again = make_orvad(data_dir=server.data_dir)
    with again.admin() as c:
        assert wait_deployed(c, dep_id, 120)["status"] == "succeeded"
        lines = c.get(f"/api/v1/deployments/{dep_id}/logs").json()["lines"]
        assert [ln["seq"] for ln in lines] == list(range(1, len(lines) + 1))
        text = [ln["line"] for ln in lines]
        assert any("waiting-for-restart" in t for t in text) and "resumed after a restart" in text, text
        assert sum("code hash" in t for t in text) == 2, text


def test_a_crash_under_concurrent_deploys_leaves_every_function_serving_its_newest_good_version(
    make_orvad: Callable[..., Orvad],
) -> None:
    """Three functions, four deploys each in flight at once, orvad SIGKILLed while they build: after the
    restart no deployment is left unfinished, and every function serves the code of its newest succeeded
    deployment, whose version folder exists."""
    env = {"ORVA_VERSIONS_KEPT": "2"}
    server = make_orvad(env=env)
    names = ["crash-a", "crash-b", "crash-c"]
    code_of: dict[str, int] = {}  # deployment id -> the v its code answers
    with server.admin() as c:
        for name in names:
            create_function(c, name)
            first = deploy_inline(c, name, PY % 100)
            code_of[first["id"]] = 100
            wait_deployed(c, first["id"])

    def submit(job: tuple[str, int]) -> tuple[str, int]:
        name, i = job
        with server.admin() as c:
            return deploy_inline(c, name, PY % i)["id"], i

    with ThreadPoolExecutor(12) as pool:
        code_of.update(pool.map(submit, [(name, i) for name in names for i in range(4)]))
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    again = make_orvad(data_dir=server.data_dir, env=env)
    with again.admin() as c:
        for name in names:
            deployments: list[dict[str, Any]] = []

            def settled(name: str = name, deployments: list[dict[str, Any]] = deployments) -> bool:
                deployments[:] = c.get(f"/api/v1/functions/{name}/deployments", params={"limit": 100}).json()[
                    "deployments"
                ]
                return all(d["status"] in ("succeeded", "failed", "superseded") for d in deployments)

            wait_for(settled, 120, f"the deployments of {name} to settle after the crash")
            assert len(deployments) == 5
            fn = c.get(f"/api/v1/functions/{name}").json()
            good = [d for d in deployments if d["status"] == "succeeded"]  # newest first
            assert good and fn["active_deployment_id"] == good[0]["id"], (fn, deployments)
            served = c.get(f"/fn/{name}")
            assert served.status_code == 200 and served.json() == {"v": code_of[good[0]["id"]]}, served.text
            versions = again.data_dir / "functions" / fn["id"] / "versions"
            assert (versions / good[0]["code_hash"] / "handler.py").is_file()


async def test_build_queue_backlog_is_bounded() -> None:
    ran: list[str] = []

    async def run(deployment_id: str) -> None:
        ran.append(deployment_id)

    queue = BuildQueue(run, concurrency=1, backlog=2)  # workers not started: everything waits
    queue.submit("a")
    queue.submit("b")
    with pytest.raises(Unavailable) as info:
        queue.submit("c")
    assert info.value.code == "BUILD_QUEUE_FULL" and info.value.retry_after_s
    queue.start()
    for _ in range(100):
        if len(ran) == 2:
            break
        await asyncio.sleep(0.01)
    await queue.stop()
    assert ran == ["a", "b"]
