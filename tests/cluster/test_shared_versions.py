"""Shared versions (issue 25; orvad/builder/shared.py, docs/CLUSTER.md "Shared versions").

Two real orvads on ONE PostgreSQL database (the pg_dsn fixture; each its own data dir, port and node id, the
same master key): a function deployed through node A is answered by node B, which fetched the packed version
from the database, checked its SHA-256 and unpacked it safely; the same deployment put before two nodes at
once is built by exactly one; and the attacks on the fetch: a blob whose bytes do not match its hash, and
crafted blobs (``..``, an absolute path, a link out, a file written through a link, a link then a file of its
name, a device) are refused with 503 VERSION_UNAVAILABLE and write nothing outside the node's scratch folder.
The extractor's version-blob mode is also checked directly on each crafted blob.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orvad.builder.archive import ArchiveError, extract_into
from orvad.builder.shared import pack
from orvad.store.postgres.driver import PgDatabase
from orvad.store.version_blobs import VersionBlobStore
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for
from tests.pg import run_sql

pytestmark = pytest.mark.sandbox

PYTHON = """
def handler(event, context):
    return {"node": "any", "answer": 42, "path": event["path"]}
"""
NODE = """
exports.handler = async (event) => ({ answer: 43, runtime: process.version.startsWith("v") });
"""


def _node(make_orvad: Callable[..., Orvad], root: Path, name: str, dsn: str, *, start: bool = True) -> Orvad:
    """A node with its own data dir and node id on the shared database; the master key and the bootstrap
    admin key are the first node's (written before the second starts, as a cluster's operator does)."""
    data = root / name
    data.mkdir(mode=0o711, exist_ok=True)
    data.chmod(0o711)
    return make_orvad(
        data_dir=data,
        # no warm-aware forwarding (orvad/cluster/forward.py): each node answers from its own workers
        env={
            "ORVA_DATABASE_URL": dsn,
            "ORVA_NODE_ID": name,
            "ORVA_HEARTBEAT_S": "1",
            "ORVA_FORWARD_COLD": "0",
        },
        start=start,
    )


@pytest.fixture
def two_nodes(pg_dsn: str, make_orvad: Callable[..., Orvad], jail_tmp: Path) -> Iterator[tuple[Orvad, Orvad]]:
    a = _node(make_orvad, jail_tmp, "node-a", pg_dsn)
    b = _node(make_orvad, jail_tmp, "node-b", pg_dsn, start=False)
    for name in ("master.key", "admin.key"):
        shutil.copyfile(a.data_dir / name, b.data_dir / name)
        (b.data_dir / name).chmod(0o600)
    b.start()
    yield a, b


def _invoke(server: Orvad, fn: str, path: str = "/x", deadline_s: float = 60.0) -> dict:
    """The function's answer on ``server``; waits while the node is still hearing of the function."""
    answer: dict = {}

    def ok() -> bool:
        with server.client(server.admin_key) as c:
            r = c.get(f"/fn/{fn}{path}")
        if r.status_code == 200:
            assert "x-orva-forwarded-to" not in r.headers  # answered by this node's own worker
            answer.update(r.json())
            return True
        assert r.status_code in (404, 503), r.text  # not heard of yet, or still learning its version
        return False

    wait_for(ok, deadline_s, f"{fn} to answer on port {server.port}", interval_s=0.1)
    return answer


def _error(server: Orvad, fn: str) -> dict:
    with server.client(server.admin_key) as c:
        r = c.get(f"/fn/{fn}/x")
    assert r.status_code == 503, r.text
    return r.json()["error"]


def _restart(server: Orvad) -> None:
    server.stop()
    server.start()


def _versions(server: Orvad, fn_id: str) -> list[str]:
    folder = server.data_dir / "functions" / fn_id / "versions"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# the happy paths


@pytest.mark.parametrize("runtime, code", [("python", PYTHON), ("node", NODE)])
def test_deployed_on_a_answered_by_b(
    two_nodes: tuple[Orvad, Orvad], pg_dsn: str, runtime: str, code: str
) -> None:
    a, b = two_nodes
    name = f"shared-{runtime}"
    with a.admin() as c:
        fn = create_function(c, name, runtime=runtime)
        dep = wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
        assert dep["status"] == "succeeded", dep
        lines = [row["line"] for row in c.get(f"/api/v1/deployments/{dep['id']}/logs").json()["lines"]]
    shared = [ln for ln in lines if ln.startswith("shared with the other nodes")]
    assert len(shared) == 1, lines
    blob_hash = shared[0].rsplit("sha256 ", 1)[1].split(" ")[0]
    stored = run_sql(pg_dsn, "SELECT blob_hash, build_node FROM deployments WHERE id = ?", dep["id"])
    assert stored[0]["blob_hash"] == blob_hash and stored[0]["build_node"] == "node-a"
    (size, data) = run_sql(pg_dsn, "SELECT size, bytes FROM version_blobs WHERE hash = ?", blob_hash)[0]
    assert size == len(data) and hashlib.sha256(data).hexdigest() == blob_hash
    assert "build claimed" not in b.stderr()  # B built nothing (it may be fetching already: a change event)
    if _reaches_without_restart(b, name):
        pass  # the change reached B at once (LISTEN/NOTIFY): B fetched on the change
    else:
        _restart(b)  # without propagation B learns of the function when it loads the catalogue
    answer = _invoke(b, name)
    assert answer["answer"] == (42 if runtime == "python" else 43)
    code_hash = dep["code_hash"]
    assert _versions(b, fn["id"]) == [code_hash, f"{code_hash}.built"]
    assert "fetched a version built on another node" in b.stderr()
    # the tree B unpacked is the one A built, entry by entry (packing it again gives the same bytes)
    again, _ = pack(b.data_dir / "functions" / fn["id"] / "versions" / code_hash)
    assert hashlib.sha256(again).hexdigest() == blob_hash
    root_owned = os.stat(b.data_dir / "functions" / fn["id"] / "versions" / code_hash)
    assert root_owned.st_uid == os.geteuid() and root_owned.st_mode & 0o022 == 0


def _reaches_without_restart(b: Orvad, name: str) -> bool:
    """True when B answers for the function without a restart within a few seconds (change propagation)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with b.client(b.admin_key) as c:
            r = c.get(f"/fn/{name}/x")
        if r.status_code == 200:
            return True
        time.sleep(0.1)
    return False


def test_identical_trees_share_one_blob(two_nodes: tuple[Orvad, Orvad], pg_dsn: str) -> None:
    a, b = two_nodes
    with a.admin() as c:
        fn = create_function(c, "twice")
        first = wait_deployed(c, deploy_inline(c, fn["id"], PYTHON)["id"])
        second = wait_deployed(c, deploy_inline(c, fn["id"], PYTHON)["id"])
    assert first["status"] == second["status"] == "succeeded"
    rows = run_sql(pg_dsn, "SELECT blob_hash FROM deployments WHERE function_id = ? ORDER BY id", fn["id"])
    assert len(rows) == 2 and rows[0]["blob_hash"] == rows[1]["blob_hash"] is not None
    assert run_sql(pg_dsn, "SELECT COUNT(*) AS n FROM version_blobs")[0]["n"] == 1
    with a.admin() as c:
        assert c.delete(f"/api/v1/functions/{fn['id']}").status_code in (200, 204)
    wait_for(
        lambda: run_sql(pg_dsn, "SELECT COUNT(*) AS n FROM version_blobs")[0]["n"] == 0,
        30,
        "the deleted function's blob to be swept",
    )


def test_concurrent_needs_of_one_version_fetch_once(two_nodes: tuple[Orvad, Orvad]) -> None:
    """Eight requests at once on a node that lacks the version: one fetch, all answered."""
    a, b = two_nodes
    with a.admin() as c:
        fn = create_function(c, "burst")
        assert wait_deployed(c, deploy_inline(c, fn["id"], PYTHON)["id"])["status"] == "succeeded"
    b.stop()
    b.start()
    answers: list[int] = []

    def call() -> None:
        with b.client(b.admin_key) as c:
            answers.append(c.get("/fn/burst/x", timeout=60).status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 8, answers
    assert b.stderr().count("fetched a version built on another node") == 1


# exactly one build


async def test_a_build_claim_is_won_by_exactly_one_node(pg_dsn: str) -> None:
    """Two nodes' stores (two connection pools) claim the same deployment 20 times at once each: one wins."""
    import asyncio

    dbs = [PgDatabase(pg_dsn), PgDatabase(pg_dsn)]
    for db in dbs:
        await db.open()
    try:
        await dbs[0].execute(
            "INSERT INTO functions (id, name, runtime, entrypoint, memory_mb, cpus, timeout_ms, network_mode,"
            " auth_mode, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("f1", "f1", "python", "handler.py", 128, 1.0, 3000, "none", "none", "building", "t", "t"),
        )
        await dbs[0].execute(
            "INSERT INTO deployments (id, function_id, version, status, phase, source, submitted_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("d1", "f1", 1, "queued", "queued", "inline", "2026-01-01T00:00:00Z"),
        )
        stores = [VersionBlobStore(db) for db in dbs]
        results = await asyncio.gather(*(stores[i % 2].claim_build("d1", f"node-{i % 2}") for i in range(40)))
        winners = {f"node-{i % 2}" for i, held in enumerate(results) if held is None}
        assert len(winners) == 1, results
        (winner,) = winners
        # the winner asking again keeps it (a restarted node resumes its own build); the loser is told who
        assert all(held in (None, winner) for held in results)
        assert await stores[0].claim_build("d1", winner) is None
        loser = "node-1" if winner == "node-0" else "node-0"
        assert await stores[0].claim_build("d1", loser) == winner
    finally:
        for db in dbs:
            await db.close()


def test_two_nodes_holding_one_deployment_build_it_once(
    pg_dsn: str, make_orvad: Callable[..., Orvad], jail_tmp: Path
) -> None:
    """A queued deployment whose source both nodes hold (a shared staging volume, or a build received before
    claims existed): both start at once and resume it; one builds, the other leaves it to that node."""
    a = _node(make_orvad, jail_tmp, "node-a", pg_dsn)
    b = _node(make_orvad, jail_tmp, "node-b", pg_dsn, start=False)
    for name in ("master.key", "admin.key"):
        shutil.copyfile(a.data_dir / name, b.data_dir / name)
        (b.data_dir / name).chmod(0o600)
    with a.admin() as c:
        fn = create_function(c, "once")
    a.stop()
    dep_id = "0190aaaa-0000-7000-8000-" + secrets.token_hex(6)
    run_sql(
        pg_dsn,
        "INSERT INTO deployments (id, function_id, version, status, phase, phases, source, submitted_at)"
        " VALUES (?, ?, 1, 'queued', 'queued', '[]', 'inline', '2026-12-06T00:00:00.000Z')",
        dep_id,
        fn["id"],
    )
    run_sql(pg_dsn, "UPDATE functions SET status = 'building' WHERE id = ?", fn["id"])
    for server in (a, b):
        source = server.data_dir / "functions" / fn["id"] / "staging" / dep_id / "source"
        source.mkdir(parents=True, mode=0o700)
        for folder in (source.parent.parent.parent, source.parent.parent, source.parent):
            folder.chmod(0o711)
        (source / "handler.py").write_text(PYTHON)
    for server in (a, b):  # both at once: each resumes the deployment it finds unfinished with its source
        server.start(wait=False)
    for server in (a, b):
        wait_for(server._up, 120, f"orvad on port {server.port} to start")
    with a.admin() as c:
        record = wait_deployed(c, dep_id)
        lines = [row["line"] for row in c.get(f"/api/v1/deployments/{dep_id}/logs").json()["lines"]]
    assert record["status"] == "succeeded", record
    assert sum(ln.startswith("code hash ") for ln in lines) == 1, lines  # one build ran
    builder = run_sql(pg_dsn, "SELECT build_node FROM deployments WHERE id = ?", dep_id)[0]["build_node"]
    assert builder in ("node-a", "node-b")
    other = b if builder == "node-a" else a
    # one claim was won in the cluster; the other node lost it, or found the deployment built when it started
    claims = [server.stderr().count("build claimed") for server in (a, b)]
    assert sorted(claims) == [0, 1], claims
    told = other.stderr()
    assert "build skipped: another node claimed it" in told or "resuming build" not in told, told[-3000:]
    # both answer: the builder from its build, the other from the shared blob (after a restart if need be)
    assert _invoke(a if builder == "node-a" else b, "once")["answer"] == 42
    _restart(other)
    assert _invoke(other, "once")["answer"] == 42


def test_a_build_whose_node_stopped_for_good_is_failed_by_a_live_node(
    pg_dsn: str, make_orvad: Callable[..., Orvad], jail_tmp: Path
) -> None:
    """Only the node that received an upload can build it. When that node stops and does not come back (three
    heartbeats missed), a live node fails its unfinished build, with the reason and what to do, instead of
    leaving it queued for ever; the function keeps serving its active version. A build held by a node that
    is alive is left to it."""
    a = _node(make_orvad, jail_tmp, "node-a", pg_dsn)
    with a.admin() as c:
        fn = create_function(c, "orphan")
        assert wait_deployed(c, deploy_inline(c, "orphan", PYTHON)["id"])["status"] == "succeeded"
    assert _invoke(a, "orphan")["answer"] == 42

    versions = iter(range(2, 10))

    def queued(holder: str) -> str:
        dep_id = "0190aaaa-0000-7000-8000-" + secrets.token_hex(6)
        run_sql(
            pg_dsn,
            "INSERT INTO deployments (id, function_id, version, status, phase, phases, source, submitted_at,"
            " build_node) VALUES (?, ?, ?, 'building', 'installing', '[]', 'inline', '2026-12-06T00:00:00.000Z', ?)",
            dep_id,
            fn["id"],
            next(versions),
            holder,
        )
        run_sql(
            pg_dsn,
            "INSERT INTO deployment_logs (deployment_id, seq, stream, line, ts) VALUES (?, 1, 'system',"
            " 'installing dependencies', '2026-12-06T00:00:01.000Z')",
            dep_id,
        )
        return dep_id

    # a node that left long ago (its row says so), one that never had a row (forgotten), one alive
    run_sql(
        pg_dsn,
        "INSERT INTO cluster_nodes (id, run_id, address, version, started_at, last_seen_at, left_at, pools, load)"
        " VALUES ('node-left', 'run_left', 'http://127.0.0.1:1', '0', '2026-12-06T00:00:00.000Z',"
        " '2026-12-06T00:00:05.000Z', '2026-12-06T00:00:05.000Z', '{}', '{}'),"
        " ('node-alive', 'run_alive', 'http://127.0.0.1:1', '0', '2026-12-06T00:00:00.000Z',"
        " '2999-01-01T00:00:00.000Z', NULL, '{}', '{}')",
    )
    left, forgotten, alive = queued("node-left"), queued("node-forgotten"), queued("node-alive")
    with a.admin() as c:
        for dep_id, holder in ((left, "node-left"), (forgotten, "node-forgotten")):
            record = wait_deployed(c, dep_id, deadline_s=30)
            assert record["status"] == "failed", record
            assert f"node {holder}, which held this deployment's upload, stopped" in record["error_message"]
            assert "deploy again" in record["error_message"]
            lines = [
                (row["seq"], row["line"])
                for row in c.get(f"/api/v1/deployments/{dep_id}/logs").json()["lines"]
            ]
            assert lines[0] == (
                1,
                "installing dependencies",
            )  # the holder's lines kept, the reason after them
            assert lines[-1][0] == 2 and lines[-1][1].startswith(f"build failed: node {holder}"), lines
        assert c.get(f"/api/v1/deployments/{alive}").json()["status"] == "building"
        assert c.get(f"/api/v1/functions/{fn['id']}").json()["status"] == "active"
    assert (
        run_sql(pg_dsn, "SELECT build_node FROM deployments WHERE id = ?", alive)[0]["build_node"]
        == "node-alive"
    )
    assert _invoke(a, "orphan")["answer"] == 42  # still its active version
    assert a.stderr().count("build failed: its node stopped") == 2


# attacks on the fetch


def _tar(entries: list[tarfile.TarInfo], contents: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for info in entries:
            data = (contents or {}).get(info.name) if info.isreg() else None
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return out.getvalue()


def _file(name: str, mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
    return info


HANDLER = {"handler.py": PYTHON.encode(), "evil": b"x", "d/evil": b"x", "ok/../../escaped": b"x"}
CRAFTED = {
    "dotdot": [_file("handler.py"), _file("../escaped")],
    "nested dotdot": [_file("handler.py"), _file("ok/../../escaped")],
    "absolute": [_file("handler.py"), _file("/tmp/escaped-abs")],
    "link out": [_file("handler.py"), _link("out", "../../../../..")],
    "absolute link": [_file("handler.py"), _link("etc", "/etc")],
    "file through a link": [_file("handler.py"), _link("d", "."), _file("d/evil")],
    "link then a file of its name": [_file("handler.py"), _link("evil", "handler.py"), _file("evil")],
    "hard link": [_file("handler.py"), _link("hard", "handler.py", tarfile.LNKTYPE)],
    "device": [_file("handler.py"), _device("null")],
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_the_extractor_refuses_a_crafted_blob(case: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = set(os.listdir(tmp_path))
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(ArchiveError):
            extract_into(_tar(CRAFTED[case], HANDLER), fd, version_blob=True)
    finally:
        os.close(fd)
    assert set(os.listdir(tmp_path)) == outside
    assert not Path("/tmp/escaped-abs").exists()


def test_the_extractor_keeps_links_inside_and_refuses_setid(tmp_path: Path) -> None:
    """A link inside (npm's .bin) is kept as a link; set-id and group/other write bits are never written."""
    blob = _tar([_dir("bin"), _file("handler.py", 0o6777), _link("bin/run", "../handler.py")], HANDLER)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert extract_into(blob, fd, version_blob=True) == 3
    finally:
        os.close(fd)
    assert os.readlink(tmp_path / "bin" / "run") == "../handler.py"
    assert os.stat(tmp_path / "handler.py").st_mode & 0o7022 == 0


def test_pack_is_deterministic_and_keeps_links(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "node_modules" / ".bin").mkdir(parents=True)
    (tree / "handler.py").write_text(PYTHON)
    (tree / "tool.js").write_text("1")
    (tree / "tool.js").chmod(0o755)
    os.symlink("../../tool.js", tree / "node_modules" / ".bin" / "tool")
    first, entries = pack(tree)
    os.utime(tree / "handler.py", (1, 1))  # times and owners are not packed
    second, _ = pack(tree)
    assert first == second and entries == 5
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        extract_into(first, fd, version_blob=True)
    finally:
        os.close(fd)
    assert pack(out)[0] == first
    assert os.readlink(out / "node_modules" / ".bin" / "tool") == "../../tool.js"
    assert os.stat(out / "tool.js").st_mode & 0o111


def _plant(pg_dsn: str, dep_id: str, blob_hash: str, data: bytes) -> None:
    run_sql(
        pg_dsn,
        "INSERT INTO version_blobs (hash, size, bytes, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (hash) DO UPDATE SET bytes = excluded.bytes, size = excluded.size",
        blob_hash,
        len(data),
        data,
        "2026-12-06T00:00:00.000Z",
    )
    run_sql(pg_dsn, "UPDATE deployments SET blob_hash = ? WHERE id = ?", blob_hash, dep_id)


@pytest.fixture
def deployed_on_a(two_nodes: tuple[Orvad, Orvad], pg_dsn: str) -> tuple[Orvad, Orvad, dict, dict]:
    a, b = two_nodes
    b.stop()  # B learns of it at its next start, after the test tampered with the blob
    with a.admin() as c:
        fn = create_function(c, "target")
        dep = wait_deployed(c, deploy_inline(c, fn["id"], PYTHON)["id"])
    assert dep["status"] == "succeeded"
    assert _versions(b, fn["id"]) == []
    return a, b, fn, dep


def test_a_blob_whose_bytes_do_not_match_its_hash_is_refused(
    deployed_on_a: tuple[Orvad, Orvad, dict, dict], pg_dsn: str
) -> None:
    a, b, fn, dep = deployed_on_a
    (blob_hash,) = run_sql(pg_dsn, "SELECT blob_hash FROM deployments WHERE id = ?", dep["id"])[0]
    (data,) = run_sql(pg_dsn, "SELECT bytes FROM version_blobs WHERE hash = ?", blob_hash)[0]
    evil = _tar([_file("handler.py")], {"handler.py": b"def handler(e, c):\n    return {'answer': 666}\n"})
    assert evil != data
    run_sql(pg_dsn, "UPDATE version_blobs SET bytes = ? WHERE hash = ?", evil, blob_hash)
    b.start()
    error = _wait_error(b, "target")
    assert error["code"] == "VERSION_UNAVAILABLE" and "does not match its hash" in error["message"]
    assert _versions(b, fn["id"]) == []
    assert "a version blob's bytes do not match its hash: refused" in b.stderr()
    # the right bytes back: B fetches and answers
    run_sql(pg_dsn, "UPDATE version_blobs SET bytes = ? WHERE hash = ?", data, blob_hash)
    assert _invoke(b, "target")["answer"] == 42


def _wait_error(server: Orvad, fn: str) -> dict:
    found: dict = {}

    def failed() -> bool:
        with server.client(server.admin_key) as c:
            r = c.get(f"/fn/{fn}/x")
        assert r.status_code != 200, r.text
        if r.status_code == 503 and r.json()["error"]["code"] == "VERSION_UNAVAILABLE":
            found.update(r.json()["error"])
            return "learning" not in found["message"]
        return False

    wait_for(failed, 60, f"{fn} to be refused on port {server.port}", interval_s=0.1)
    return found


@pytest.mark.parametrize(
    "case", ["dotdot", "link out", "file through a link", "link then a file of its name", "device"]
)
def test_a_crafted_blob_with_its_right_hash_is_refused_and_writes_nothing_outside(
    deployed_on_a: tuple[Orvad, Orvad, dict, dict], pg_dsn: str, case: str
) -> None:
    """Whoever could write version_blobs and the deployment's blob_hash (not a tenant: a hostile database)
    still gets nothing past the extractor: the blob's hash matches, its content is refused."""
    a, b, fn, dep = deployed_on_a
    data = _tar(CRAFTED[case], HANDLER)
    blob_hash = hashlib.sha256(data).hexdigest()
    _plant(pg_dsn, dep["id"], blob_hash, data)
    before = _snapshot(b.data_dir.parent)
    b.start()
    error = _wait_error(b, "target")
    assert error["code"] == "VERSION_UNAVAILABLE" and "was refused" in error["message"], error
    assert _versions(b, fn["id"]) == []  # no version, no scratch folder left
    after = _snapshot(b.data_dir.parent)
    created = {p for p in after - before if "/functions/" not in p or "escaped" in p or "evil" in p}
    assert not {p for p in created if "escaped" in p or "evil" in p}, created
    assert not Path("/tmp/escaped-abs").exists()


def _snapshot(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}
