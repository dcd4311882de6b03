"""Property: whatever entries a tar or zip holds, unpacking writes only plain files and folders beneath
the destination, or refuses the archive; nothing outside it changes.

The unpacker's core (``extract_into``) runs in-process here; the HTTP tests (test_archive_escape.py)
cover the child process and the deploy pipeline around it.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
import warnings
import zipfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from orvad.builder.archive import ArchiveError, extract_into

SEGMENTS = st.sampled_from(["a", "b", "x", "..", ".", "", "outside", "/"])
NAMES = st.lists(SEGMENTS, min_size=1, max_size=6).map("/".join)
ENTRY = st.tuples(st.sampled_from(["file", "dir", "sym", "hard"]), NAMES, NAMES)


def _tar(entries: list[tuple[str, str, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for kind, name, target in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = 2
                tar.addfile(info, io.BytesIO(b"hi"))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE}[kind]
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def _zip(entries: list[tuple[str, str, str]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are part of the attack
        for kind, name, target in entries:
            info = zipfile.ZipInfo(name or "x")
            kind_bits = {
                "file": stat.S_IFREG,
                "dir": stat.S_IFDIR,
                "sym": stat.S_IFLNK,
                "hard": stat.S_IFREG,
            }[kind]
            info.external_attr = (kind_bits | 0o755) << 16
            zf.writestr(info, target if kind == "sym" else "hi")
    return buf.getvalue()


def _snapshot(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.lstat().st_mode) for p in root.rglob("*"))


@settings(max_examples=300, deadline=None)
@given(st.lists(ENTRY, min_size=1, max_size=8), st.booleans())
def test_unpacking_never_leaves_the_destination_nor_keeps_links(
    entries: list[tuple[str, str, str]], as_zip: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        dest = base / "a" / "b" / "dest"  # `..` from dest lands in folders the test watches
        dest.mkdir(parents=True)
        (base / "outside").mkdir()
        (base / "outside" / "keep").write_text("host")
        before = _snapshot(base)
        fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
        try:
            extract_into(_zip(entries) if as_zip else _tar(entries), fd)
        except ArchiveError:
            pass
        finally:
            os.close(fd)
        after = [(path, mode) for path, mode in _snapshot(base) if not path.startswith("a/b/dest/")]
        assert after == [(path, mode) for path, mode in before if not path.startswith("a/b/dest/")]
        for path in dest.rglob("*"):
            mode = path.lstat().st_mode
            assert stat.S_ISREG(mode) or stat.S_ISDIR(mode), f"{path} is neither a file nor a folder"


def test_chown_beneath_never_follows_a_link(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The build jail's tree is handed to 65534 and back to root by a descriptor walk: a link planted
    in the tree (to a host file, to a host folder) is changed itself, its target never."""
    import os

    from orvad.builder.safetree import chown_beneath

    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "secret").write_text("x")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text("y")
    os.symlink(outside / "secret", tree / "to-file")
    os.symlink(outside, tree / "sub" / "to-dir")
    chown_beneath(tree, 65534)
    assert (tree / "sub" / "file").stat().st_uid == 65534
    assert os.lstat(tree / "to-file").st_uid == 65534 and os.lstat(tree / "sub" / "to-dir").st_uid == 65534
    assert (outside / "secret").stat().st_uid == 0 and outside.stat().st_uid == 0
    chown_beneath(tree, 0)
    assert (tree / "sub" / "file").stat().st_uid == 0
