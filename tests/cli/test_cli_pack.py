"""`orva deploy`'s packing: .orvaignore in gitignore syntax, the default ignores, a reproducible archive."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from orva_cli.pack import pack, selected


def _tree(root: Path, names: list[str], ignore: str | None = None) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    if ignore is not None:
        (root / ".orvaignore").write_text(ignore)
    return root


def test_defaults_leave_out_vcs_caches_and_installed_dependencies(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        [
            "handler.py",
            ".git/HEAD",
            "__pycache__/a.pyc",
            "lib/__pycache__/b.pyc",
            "lib/c.pyc",
            "node_modules/x/index.js",
            ".venv/bin/python",
            "lib/util.py",
            ".env",
        ],
    )
    assert selected(root) == [".env", "handler.py", "lib/util.py"]


def test_orvaignore_patterns_folders_anchors_and_negation(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        [
            "handler.py",
            "build/out.js",
            "src/build/keep.py",
            "docs/a.md",
            "x.log",
            "sub/y.log",
            "sub/important.log",
            "tests/test_a.py",
            "data/raw/big.csv",
            "data/small.csv",
        ],
        ignore="# comment\n\n/build/\n*.log\n!sub/important.log\ntests\ndata/**/*.csv\n!data/small.csv\n"
        "docs/\n",
    )
    assert selected(root) == ["data/small.csv", "handler.py", "src/build/keep.py", "sub/important.log"]


def test_negation_brings_back_a_default_ignore(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["handler.py", "lib/c.pyc"], ignore="!*.pyc\n!.orvaignore\n")
    assert selected(root) == [".orvaignore", "handler.py", "lib/c.pyc"]


def test_archive_holds_exactly_the_selected_files_with_neutral_owners(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["handler.py", "lib/util.py", "secret.key"], ignore="*.key\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    packed = pack(root)
    with tarfile.open(fileobj=io.BytesIO(packed.data), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == packed.files == ["handler.py", "lib/util.py", "run.sh"]
        assert all(m.uid == 0 and m.uname == "" for m in members.values())
        assert members["run.sh"].mode & 0o111 and tar.extractfile("lib/util.py").read() == b"lib/util.py"  # type: ignore[union-attr]
