"""What a build leaves behind: links out of the tree, per-function caches, the disk cap, folder modes.

The builds need no registry: a local `file:` dependency makes npm run the package's `postinstall`
script inside the build jail, standing in for a hostile dependency's install script.
"""

from __future__ import annotations

import io
import json
import stat
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

JS = "exports.handler = async () => ({ v: %d });\n"
SECRET = "TOPSECRET-host-file"


def _node_archive(postinstall: str, version: int = 1) -> bytes:
    package = {
        "name": "fn",
        "version": "1.0.0",
        "dependencies": {"localdep": "file:./localdep"},
        "scripts": {"postinstall": postinstall},
    }
    files = {
        "package.json": json.dumps(package),
        "handler.js": JS % version,
        "localdep/package.json": '{"name": "localdep", "version": "1.0.0"}',
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _deploy(c: httpx.Client, fn_id: str, archive: bytes, deadline_s: float = 300) -> dict[str, Any]:
    r = c.post(
        f"/api/v1/functions/{fn_id}/deploy", content=archive, headers={"content-type": "application/zip"}
    )
    assert r.status_code == 202, r.text
    return wait_deployed(c, r.json()["id"], deadline_s)


def _log(c: httpx.Client, dep: dict[str, Any]) -> list[str]:
    return [ln["line"] for ln in c.get(f"/api/v1/deployments/{dep['id']}/logs").json()["lines"]]


def test_build_links_to_host_files_fail_the_build_and_never_leak(orvad: Orvad, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    touched = tmp_path / "created-by-root"
    up = "/".join([".."] * 40) + str(secret)
    script = (
        f"ln -sf {secret} handler.js && ln -s {up} up.txt && ln -s {touched} .orva-built"
        " && ln -sf {secret} package-lock.json"
    )
    with orvad.admin() as c:
        fn = create_function(c, "link-leak", "node")
        good = _deploy(
            c, fn["id"], _node_archive("true", 1)
        )  # node_modules/localdep -> ../localdep stays inside
        assert good["status"] == "succeeded", _log(c, good)
        bad = _deploy(c, fn["id"], _node_archive(script.replace("{secret}", str(secret)), 2))
        assert bad["status"] == "failed", _log(c, bad)
        message = bad["error_message"]
        assert "outside the function's folder" in message and "'handler.js'" in message, "\n".join(
            _log(c, bad)
        )
        assert not touched.exists(), "root followed a link the build planted"
        src = c.get(f"/api/v1/functions/{fn['id']}/source")
        assert src.status_code == 200 and src.json()["code"] == JS % 1 and SECRET not in src.text
        diff = c.get(f"/api/v1/functions/{fn['id']}/diff", params={"from": good["id"], "to": bad["id"]})
        assert diff.status_code == 400 and SECRET not in diff.text
        rb = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": bad["id"]})
        assert rb.status_code == 400 and SECRET not in rb.text
        assert c.get(f"/fn/{fn['id']}").json() == {"v": 1}
        versions = orvad.data_dir / "functions" / fn["id"] / "versions"
        assert not (versions / str(bad["code_hash"])).exists(), "the refused build was kept as a version"


def test_links_planted_in_a_version_tree_are_never_followed(orvad: Orvad, tmp_path: Path) -> None:
    """A version tree holding links (left by an older orvad, or planted some other way) leaks nothing."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    with orvad.admin() as c:
        fn = create_function(c, "planted-links", "node")
        a = _deploy(c, fn["id"], _node_archive("true", 1))
        b = _deploy(c, fn["id"], _node_archive("true", 2))
        assert a["status"] == b["status"] == "succeeded"
        tree = orvad.data_dir / "functions" / fn["id"] / "versions" / str(b["code_hash"])
        for name in ("handler.js", "package.json"):
            (tree / name).unlink()
            (tree / name).symlink_to(secret)
        src = c.get(f"/api/v1/functions/{fn['id']}/source")
        assert src.status_code == 200 and SECRET not in src.text, src.text
        diff = c.get(f"/api/v1/functions/{fn['id']}/diff", params={"from": a["id"], "to": b["id"]})
        assert diff.status_code == 200 and SECRET not in diff.text, diff.text
        unified = c.get(
            f"/api/v1/functions/{fn['id']}/diff", params={"from": a["id"], "to": b["id"], "format": "unified"}
        )
        assert SECRET not in unified.text
        # a tree whose built marker is a link to a host path is not a built version
        older = tree.parent / str(a["code_hash"])
        (tree.parent / f"{a['code_hash']}.built").unlink()
        (older / ".orva-built").symlink_to(secret)
        rb = c.post(f"/api/v1/functions/{fn['id']}/rollback", json={"deployment_id": a["id"]})
        assert rb.status_code == 410 and SECRET not in rb.text, rb.text
        assert secret.read_text() == SECRET


def test_build_caches_are_per_function(orvad: Orvad) -> None:
    write = "node -e \"require('fs').writeFileSync('/cache/from-a', 'a')\""
    probe = "node -e \"process.exit(require('fs').existsSync('/cache/from-a') ? 7 : 0)\""
    with orvad.admin() as c:
        a = create_function(c, "cache-a", "node")
        b = create_function(c, "cache-b", "node")
        da = _deploy(c, a["id"], _node_archive(write))
        assert da["status"] == "succeeded", _log(c, da)
        assert (orvad.data_dir / "build-cache" / a["id"] / "from-a").is_file()
        db = _deploy(c, b["id"], _node_archive(probe))
        assert db["status"] == "succeeded", ("function b's build saw function a's cache", _log(c, db))
        again = _deploy(c, a["id"], _node_archive(probe.replace("? 7 : 0", "? 0 : 7"), 2))
        assert again["status"] == "succeeded", (
            "a function's cache persists for its own builds",
            _log(c, again),
        )


def test_build_folders_are_not_world_readable(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "modes", "node")
        assert _deploy(c, fn["id"], _node_archive("true"))["status"] == "succeeded"
    for path in (
        orvad.data_dir / "build-cache",
        orvad.data_dir / "build-cache" / fn["id"],
        orvad.data_dir / "functions" / fn["id"] / "staging",
        orvad.data_dir / "functions" / fn["id"],
    ):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & 0o066, f"{path} is {oct(mode)}: others may list or write it"


def test_a_build_writing_past_the_disk_cap_fails_quickly(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_BUILD_DISK_MB": "64"})
    fill = "node -e \"const fs=require('fs'); for (let i=0;;i++) fs.writeFileSync('fill'+i, Buffer.alloc(1<<20, 1))\""
    with server.admin() as c:
        fn = create_function(c, "disk-hog", "node")
        began = time.monotonic()
        dep = _deploy(c, fn["id"], _node_archive(fill), deadline_s=120)
        took = time.monotonic() - began
        assert dep["status"] == "failed" and "the build wrote more than 64 MiB" in dep["error_message"], dep
        assert took < 60, f"the cap stopped the build only after {took:.0f} s"
    wait_for(
        lambda: not list((server.data_dir / "functions" / fn["id"]).glob("staging/*")),
        10,
        "the failed build's folder to be removed",
    )


def test_slow_builds_of_one_function_do_not_hold_every_build_slot(make_orvad: Callable[..., Orvad]) -> None:
    """Two build slots, three slow builds of one function: another function's build still runs at once."""
    server = make_orvad(env={"ORVA_BUILD_CONCURRENCY": "2"})
    slow = _node_archive("echo slow-build-running && sleep 300")
    with server.admin() as c:
        hog = create_function(c, "slow-hog", "node")
        hogs = []
        for _ in range(3):
            r = c.post(
                f"/api/v1/functions/{hog['id']}/deploy",
                content=slow,
                headers={"content-type": "application/zip"},
            )
            assert r.status_code == 202, r.text
            hogs.append(r.json()["id"])
        wait_for(
            lambda: any("slow-build-running" in line for line in _log(c, {"id": hogs[0]})),
            120,
            "the first slow build to reach its install script",
        )
        other = create_function(c, "quick-one", "node")
        began = time.monotonic()
        quick = _deploy(c, other["id"], _node_archive("true"), deadline_s=60)
        assert quick["status"] == "succeeded", _log(c, quick)
        assert time.monotonic() - began < 30
        states = [c.get(f"/api/v1/deployments/{d}").json()["status"] for d in hogs]
        assert states.count("building") == 1 and states.count("queued") == 2, states


def test_a_build_leaving_a_fifo_fails_naming_it(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "fifo-build", "node")
        dep = _deploy(c, fn["id"], _node_archive("mkfifo pipe"))
        assert (
            dep["status"] == "failed"
            and "special file" in dep["error_message"]
            and "'pipe'" in dep["error_message"]
        ), (dep["error_message"], _log(c, dep))
