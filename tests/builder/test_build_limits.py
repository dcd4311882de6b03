"""What a tenant's tree may not do to orvad's root-side walks, and to the disk, through HTTP.

Deep folder chains (from an archive or a build script) once made every recursive walk raise
RecursionError: builds failed as "internal build error", GET /system/info answered 500 for everyone
and DELETE of the function answered 500 with the tree left on disk. The builds here need no
registry: a local `file:` dependency makes npm run the package's `postinstall` script inside the
build jail, standing in for a hostile dependency's install script.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from orvad.builder import safetree
from tests.builder.test_builder_jail_outputs import _node_archive
from tests.builder.test_deploy import _tar
from tests.deploy_helpers import create_function, wait_deployed
from tests.helpers import Orvad, small_tmpfs, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

# mkdir d; cd d, 3000 times, beneath the folder the script is given (relative names: no path is long)
DEEP_CHAIN = "node -e \"const fs=require('fs'); process.chdir('%s'); for (let i=0;i<3000;i++){fs.mkdirSync('d'); process.chdir('d')}\""


def _deep_tar(depth: int) -> bytes:
    return _tar({"handler.py": b"def handler(e, c):\n    return 1\n", "d/" * depth + "f": b"x"})


def _deploy(c: httpx.Client, fn_id: str, archive: bytes, content_type: str) -> dict[str, Any]:
    r = c.post(f"/api/v1/functions/{fn_id}/deploy", content=archive, headers={"content-type": content_type})
    assert r.status_code == 202, r.text
    return wait_deployed(c, r.json()["id"], 300)


def _deleted_cleanly(server: Orvad, c: httpx.Client, fn_id: str) -> None:
    """/system/info answers, DELETE answers 200, and the function's folders are gone from disk."""
    info = c.get("/api/v1/system/info")
    assert info.status_code == 200 and info.json()["data_dir_bytes"] > 0, info.text
    r = c.delete(f"/api/v1/functions/{fn_id}")
    assert r.status_code == 200, r.text
    for folder in (server.data_dir / "functions" / fn_id, server.data_dir / "build-cache" / fn_id):
        assert not folder.exists(), f"{folder} is still on disk after DELETE"
    assert c.get("/api/v1/system/info").status_code == 200


def test_an_archive_nested_too_deep_is_refused_naming_the_entry(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "deep-archive")
        dep = _deploy(c, fn["id"], _deep_tar(1500), "application/gzip")
        assert dep["status"] == "failed", dep
        assert "is nested 1500 folders deep; the limit is 64 folders" in dep["error_message"], dep
        assert "'d/d/d/" in dep["error_message"], dep  # the entry is named
        wait_for(
            lambda: not list((orvad.data_dir / "functions" / fn["id"]).glob("staging/*")),
            10,
            "the failed build's staging folder to be removed",
        )
        # 64 folders deep is still a fine archive
        ok = _deploy(c, fn["id"], _deep_tar(64), "application/gzip")
        assert ok["status"] == "succeeded", ok
        _deleted_cleanly(orvad, c, fn["id"])


def test_a_build_nesting_folders_deep_in_its_cache_fails_clearly_and_is_removed(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "deep-cache", "node")
        dep = _deploy(c, fn["id"], _node_archive(DEEP_CHAIN % "/cache"), "application/zip")
        assert dep["status"] == "failed", dep
        assert "folders nested deeper than 256: d/d/d/" in dep["error_message"], dep
        assert "(in /cache)" in dep["error_message"], dep
        assert (orvad.data_dir / "build-cache" / fn["id"] / "d").exists()  # the chain really was made
        info = c.get("/api/v1/system/info")
        assert info.status_code == 200, info.text
        assert any("nested deeper than 256" in w for w in info.json()["host_warnings"]), info.json()
        # the next build of the function empties the cache it cannot walk instead of failing forever
        again = _deploy(c, fn["id"], _node_archive("true"), "application/zip")
        assert again["status"] == "succeeded", again
        assert not (orvad.data_dir / "build-cache" / fn["id"] / "d").exists()
        _deleted_cleanly(orvad, c, fn["id"])


def test_a_build_nesting_folders_deep_in_its_code_fails_clearly_and_is_removed(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "deep-code", "node")
        dep = _deploy(c, fn["id"], _node_archive(DEEP_CHAIN % "/code"), "application/zip")
        assert dep["status"] == "failed", dep
        assert "folders nested deeper than 256: d/d/d/" in dep["error_message"], dep
        assert "internal build error" not in dep["error_message"], dep
        wait_for(
            lambda: not list((orvad.data_dir / "functions" / fn["id"]).glob("staging/*")),
            30,
            "the failed build's staging folder (with the chain) to be removed",
        )
        _deleted_cleanly(orvad, c, fn["id"])


def test_removal_follows_no_link_a_tree_holds(orvad: Orvad, tmp_path: Path) -> None:
    """A build leaves a link to a host folder in its cache: deleting the function removes the link, not the folder."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("host data")
    with orvad.admin() as c:
        fn = create_function(c, "link-cache", "node")
        dep = _deploy(
            c,
            fn["id"],
            _node_archive(f"ln -s {victim} /cache/out && mkdir -p /cache/x && ln -s {victim} /cache/x/out"),
            "application/zip",
        )
        assert dep["status"] == "succeeded", dep
        assert (orvad.data_dir / "build-cache" / fn["id"] / "x" / "out").is_symlink()
        _deleted_cleanly(orvad, c, fn["id"])
    assert (victim / "keep").read_text() == "host data"


# Space no name shows: O_TMPFILE files (0o20200001 = O_TMPFILE | O_WRONLY) or files unlinked while open,
# written until the disk is full or 2 GiB, then held (the build sleeps) while the rest of the host needs it.
_HIDDEN = (
    "node -e \"const fs=require('fs'); const b=Buffer.alloc(1<<20,170); const held=[]; "
    "try { for (let n=0;n<2048;) { %s; held.push(fd); for (let i=0;i<256;i++,n++) fs.writeSync(fd,b); } } "
    "catch (e) { console.log('fill stopped: '+e.code); } setTimeout(()=>{}, 60000)\""
)
TMPFILE_FILL = _HIDDEN % "const fd=fs.openSync('/code', 0o20200001, 0o600)"
UNLINKED_FILL = _HIDDEN % "const p='/code/x'+n; const fd=fs.openSync(p,'w'); fs.unlinkSync(p)"


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _hidden_fill_is_stopped(server: Orvad, disk: Path, fill: str, message: str) -> None:
    """Deploy a build that hides its writes from a walk: it fails with ``message``, quickly, and the space comes back."""
    with server.admin() as c:
        before = _free(disk)
        fn = create_function(c, "hidden-fill", "node")
        began = time.monotonic()
        dep = _deploy(c, fn["id"], _node_archive(fill), "application/zip")
        took = time.monotonic() - began
        log = [ln["line"] for ln in c.get(f"/api/v1/deployments/{dep['id']}/logs").json()["lines"]]
        assert dep["status"] == "failed", (dep, log)
        assert message in dep["error_message"], (dep, log)
        assert took < 30, f"the build was stopped only after {took:.0f} s"
        wait_for(lambda: _free(disk) > before - (16 << 20), 30, "the build's hidden space to come back")
        wait_for(
            lambda: c.get("/api/v1/system/health").json()["checks"]["disk"]["ok"] is True,
            30,
            "the health check's disk to be ok again",
        )


@pytest.mark.parametrize(
    ("disk_mb", "cap_mb", "fill", "message"),
    [
        # O_TMPFILE files past a 64 MiB cap on a 400 MiB disk: the drop in free space gives them away
        (
            400,
            64,
            TMPFILE_FILL,
            "the build used more than 64 MiB of disk (counting files it deleted but kept open)",
        ),
        # unlinked open files, a cap larger than the disk: the free-space floor stops the build before the disk is full
        (
            200,
            4096,
            UNLINKED_FILL,
            "the disk holding orvad's data dir fell below 5% free while this build ran",
        ),
    ],
    ids=["tmpfiles-past-the-cap", "unlinked-files-to-the-floor"],
)
def test_a_build_hiding_its_writes_from_the_walk_is_stopped(
    make_orvad: Callable[..., Orvad], jail_tmp: Path, disk_mb: int, cap_mb: int, fill: str, message: str
) -> None:
    with small_tmpfs(jail_tmp / "disk", disk_mb) as disk:
        server = make_orvad(data_dir=disk / "data", env={"ORVA_BUILD_DISK_MB": str(cap_mb)})
        try:
            _hidden_fill_is_stopped(server, disk, fill, message)
        finally:
            server.stop()


# empty files in the build's cache until the filesystem refuses one (or 100,000): no blocks, only inodes
EMPTY_FILES = (
    "node -e \"const fs=require('fs'); let n=0; try { for (let d=0; d<100; d++) { fs.mkdirSync('/cache/e'+d); "
    "for (let f=0; f<1000; f++, n++) fs.closeSync(fs.openSync('/cache/e'+d+'/'+f, 'w')); } } "
    "catch (e) { console.log('stopped at '+n+': '+e.code); }\""
)


def test_a_build_creating_empty_files_cannot_take_the_filesystems_inodes(
    make_orvad: Callable[..., Orvad], jail_tmp: Path
) -> None:
    """Found by the red-team pass: empty files hold no block, so the cap never saw them; the build left
    30,000 of them in its cache, every other tenant's deploy then failed, and health said ok. Every entry
    now counts at least 4 KiB against ORVA_BUILD_DISK_MB, a stopped build's cache is emptied, and the
    health disk check reads inodes too."""
    with small_tmpfs(jail_tmp / "disk", 400, inodes=30000) as disk:
        server = make_orvad(data_dir=disk / "data", env={"ORVA_BUILD_DISK_MB": "64"})
        try:
            with server.admin() as c:
                fn = create_function(c, "empty-files", "node")
                dep = _deploy(c, fn["id"], _node_archive(EMPTY_FILES), "application/zip")
                assert dep["status"] == "failed", dep
                assert (
                    "wrote more than 64 MiB" in dep["error_message"] or "free inodes" in dep["error_message"]
                ), dep
                wait_for(lambda: os.statvfs(disk).f_favail > 20000, 30, "the build's files to be removed")
                health = c.get("/api/v1/system/health").json()["checks"]["disk"]
                assert health["ok"] and "of inodes free" in health["detail"], health
                other = create_function(c, "other-tenant")
                r = c.post(
                    f"/api/v1/functions/{other['id']}/deploy-inline",
                    json={"code": "def handler(e, c):\n    return 'fine'\n"},
                )
                assert r.status_code == 202 and wait_deployed(c, r.json()["id"])["status"] == "succeeded"
                assert c.get("/fn/other-tenant").text == "fine"
        finally:
            server.stop()


def test_remove_tree_removes_any_depth_and_follows_no_link(tmp_path: Path) -> None:
    """3000 levels (far past the 64 descriptors the remover keeps open, so shallow levels are reopened
    by name), each with a file, a link to a host folder and a link to a host file: all of the tree
    goes, nothing the links point to does, and no descriptor is left open."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("host data")
    tree = tmp_path / "tree"
    tree.mkdir()
    fds_before = len(os.listdir("/proc/self/fd"))
    fd = os.open(tree, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(3000):  # descriptor-relative: the full path is far longer than PATH_MAX
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
        os.symlink(victim, "to-dir", dir_fd=fd)
        os.symlink(victim / "keep", "to-file", dir_fd=fd)
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    safetree.remove_tree(tree)
    assert not tree.exists()
    assert (victim / "keep").read_text() == "host data" and sorted(os.listdir(victim)) == ["keep"]
    assert len(os.listdir("/proc/self/fd")) == fds_before
