"""A non-editable install (a built wheel) carries and finds every data file orvad needs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_and_finds_its_data(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("orva-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "orvad/store/migrations/0001_auth.sql" in names
    assert "orvad/_data/web/index.html" in names
    for folder in ("runtimes", "seccomp", "sandbox", "docs"):
        tracked = subprocess.run(
            ["git", "ls-files", folder], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        for path in tracked:
            assert f"orvad/_data/{path}" in names, f"{path} is missing from the wheel"

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    probe = (
        "from orvad.resources import data_dir; from orvad.store.db import migration_files;"
        "print(data_dir('web')); print(len(migration_files()));"
        "from orvad.mcp.catalog.system import doc_files; print(data_dir('docs')); print(len(doc_files()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert out[0] == str(target / "orvad" / "_data" / "web")
    assert int(out[1]) >= 1
    assert out[2] == str(target / "orvad" / "_data" / "docs")  # get_orva_docs reads the shipped copy
    assert int(out[3]) >= 10
