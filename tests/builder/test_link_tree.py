"""safetree.link_tree, the root-side fill of a spare jail's code folder (orvad/services/spares.py), against
hostile trees: links to host files and folders are linked as links and never followed or entered, a root that
is itself a link is refused, and a tree past the limit is refused. Deploy archives refuse links
(tests/builder/test_archive_escape.py) and builds keep only links inside the tree, so these trees are made on
disk directly: the guarantee must not depend on those checks."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from orvad.builder.safetree import TooManyFiles, link_tree


def _tree(base: Path) -> tuple[Path, Path]:
    outside = base / "host"
    outside.mkdir()
    (outside / "secret").write_text("host only")
    tree = base / "version"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "handler.py").write_text("def handler(e, c): return {}\n")
    (tree / "sub" / "deeper" / "data.txt").write_text("inside")
    os.chown(tree / "sub", 65534, 65534)
    (tree / "sub").chmod(0o750)
    os.symlink(outside / "secret", tree / "to-file")
    os.symlink(outside, tree / "sub" / "to-dir")
    os.symlink("sub/deeper", tree / "alias")
    return tree, outside


def _empty(base: Path) -> Path:
    target = base / "spare"
    target.mkdir()
    return target


def test_files_are_the_same_inodes_and_links_stay_links(tmp_path: Path) -> None:
    tree, outside = _tree(tmp_path)
    target = _empty(tmp_path)
    assert link_tree(tree, target, limit=100) == 7
    for rel in ("handler.py", "sub/deeper/data.txt"):
        assert os.stat(target / rel).st_ino == os.stat(tree / rel).st_ino
    for rel in ("to-file", "sub/to-dir", "alias"):
        assert stat.S_ISLNK(os.lstat(target / rel).st_mode)
        assert os.readlink(target / rel) == os.readlink(tree / rel)
    sub = os.stat(target / "sub")
    assert (sub.st_uid, sub.st_gid, stat.S_IMODE(sub.st_mode)) == (65534, 65534, 0o750)
    assert stat.S_IMODE(os.stat(target).st_mode) == stat.S_IMODE(os.stat(tree).st_mode)
    # nothing of the host folder was entered or linked: its only file has one link, the original
    assert os.stat(outside / "secret").st_nlink == 1
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


def test_a_root_that_is_a_link_is_refused(tmp_path: Path) -> None:
    tree, outside = _tree(tmp_path)
    swapped = tmp_path / "swapped"
    os.symlink(outside, swapped)
    target = _empty(tmp_path)
    with pytest.raises(OSError):
        link_tree(swapped, target, limit=100)
    assert list(target.iterdir()) == []
    assert os.stat(outside / "secret").st_nlink == 1


def test_past_the_limit_is_refused(tmp_path: Path) -> None:
    tree, _ = _tree(tmp_path)
    with pytest.raises(TooManyFiles):
        link_tree(tree, _empty(tmp_path), limit=3)


def test_a_folder_swapped_for_a_link_while_it_is_linked_is_never_followed(tmp_path: Path) -> None:
    """A race: another thread swaps a folder of the tree for a link to a host folder and back, again and again,
    while link_tree runs. Each run may fail (the folder went missing under it) but nothing of the host is ever
    linked: the walk opens folders with O_NOFOLLOW from their parent's descriptor, and a link is linked as a link."""
    tree, outside = _tree(tmp_path)
    swap, real = tree / "swap", tree / "swap-real"
    swap.mkdir()
    (swap / "inside.txt").write_text("inside")
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            os.rename(swap, real)
            os.symlink(outside, swap)
            os.unlink(swap)
            os.rename(real, swap)

    thread = threading.Thread(target=swapper)
    thread.start()
    linked = failed = 0
    try:
        for i in range(300):
            target = tmp_path / f"spare-{i}"
            target.mkdir()
            try:
                link_tree(tree, target, limit=100)
                linked += 1
            except OSError:
                failed += 1
    finally:
        stop.set()
        thread.join()
    assert linked + failed == 300 and linked > 0
    assert os.stat(outside / "secret").st_nlink == 1  # never hard-linked from a spare's folder
    for target in tmp_path.glob("spare-*"):
        for path in target.rglob("*"):
            if not path.is_symlink() and path.is_file():
                assert path.stat().st_ino != os.stat(outside / "secret").st_ino, path
