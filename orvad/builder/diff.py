"""Compare the handler and dependency manifest of two built versions (JSON or unified text)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from orvad.builder.safetree import is_file_beneath, read_text_beneath

MANIFEST_NAMES = ("requirements.txt", "package.json")


def _read(root: Path, rel: str) -> str:
    """The file's text, or "" when it is missing or not a plain file (a link is never followed)."""
    return read_text_beneath(root, rel) or ""


def compare(
    before_root: Path, after_root: Path, entrypoint_before: str, entrypoint_after: str
) -> list[dict[str, Any]]:
    """One entry per handler or manifest file present in either version."""
    pairs = [(entrypoint_before, entrypoint_after, "handler")]
    pairs += [
        (m, m, "manifest")
        for m in MANIFEST_NAMES
        if is_file_beneath(before_root, m) or is_file_beneath(after_root, m)
    ]
    files = []
    for path_before, path_after, kind in pairs:
        before, after = _read(before_root, path_before), _read(after_root, path_after)
        added = removed = 0
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0):
            if line.startswith("+") and not line.startswith("+++"):
                added += 1
            elif line.startswith("-") and not line.startswith("---"):
                removed += 1
        files.append(
            {
                "path": path_after,
                "kind": kind,
                "before": before,
                "after": after,
                "added": added,
                "removed": removed,
            }
        )
    return files


def unified(files: list[dict[str, Any]]) -> str:
    """git-style hunks per file (--- a/path, +++ b/path, @@ ...)."""
    out: list[str] = []
    for f in files:
        out.extend(
            difflib.unified_diff(
                f["before"].splitlines(keepends=True),
                f["after"].splitlines(keepends=True),
                fromfile=f"a/{f['path']}",
                tofile=f"b/{f['path']}",
            )
        )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in out)
    return text
