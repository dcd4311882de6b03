"""Pack a function's folder into a .tar.gz, leaving out what `.orvaignore` (gitignore syntax) names."""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pathspec

IGNORE_FILE = ".orvaignore"
# Never wanted in a function version; a `!pattern` line in .orvaignore can bring one back.
DEFAULT_IGNORES = (
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "*.pyc",
    ".venv/",
    "node_modules/",
    ".DS_Store",
    IGNORE_FILE,
)


@dataclass(frozen=True)
class Packed:
    data: bytes
    files: list[str]  # relative POSIX paths, in archive order


def ignore_spec(root: Path) -> pathspec.GitIgnoreSpec:
    lines = list(DEFAULT_IGNORES)
    ignore_file = root / IGNORE_FILE
    if ignore_file.is_file():
        lines += ignore_file.read_text().splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def selected(root: Path) -> list[str]:
    """The files to ship, sorted; an ignored folder is not even walked."""
    spec = ignore_spec(root)
    found: list[str] = []
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root)
        # a folder is matched with its trailing slash so that `build/` patterns apply to it
        dirs[:] = sorted(d for d in dirs if not spec.match_file(f"{(rel / d).as_posix()}/"))
        found += [(rel / f).as_posix() for f in files if not spec.match_file((rel / f).as_posix())]
    return sorted(found)


def pack(root: Path) -> Packed:
    """A gzip'd tar of the selected files; owners are blanked (the packing machine's users mean nothing to orvad)."""
    files = selected(root)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in files:
            info = tar.gettarinfo(str(root / name), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isfile():
                with (root / name).open("rb") as fh:
                    tar.addfile(info, fh)
            else:  # a symlink travels as a link; orvad refuses one that leaves the tree
                tar.addfile(info)
    return Packed(buf.getvalue(), files)
