"""Red-team pass over `orva init [--template]` (no orvad needed: it writes files from the package's catalog):
a template name that is a path, a folder already holding files, and links planted in the folder."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import Cli, error_line


def test_a_template_name_is_never_a_path(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    (tmp_path / "home").mkdir()
    for name in ("../../etc", "../hello-python", "hello-python/../hello-node", "/etc/passwd", "x" * 5000):
        line = error_line(cli.fails(1, "init", str(tmp_path / "out"), "--template", name), "NOT_FOUND")
        assert "orva templates list" in line
    assert not (tmp_path / "out").exists()


def test_init_never_writes_through_a_link_planted_in_the_folder(tmp_path: Path) -> None:
    """A folder someone else prepared (a cloned repository, a shared checkout) held `handler.py` as a link to
    a file that did not exist yet: init saw no file, wrote through the link and created the link's target
    wherever it pointed, outside the folder."""
    cli = Cli(tmp_path / "home")
    (tmp_path / "home").mkdir()
    folder, outside = tmp_path / "cloned", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (folder / "handler.py").symlink_to(outside / "planted.py")
    line = error_line(cli.fails(1, "init", str(folder)), "FILE_EXISTS")
    assert "link" in line
    assert not (outside / "planted.py").exists() and (folder / "handler.py").is_symlink()
    # the same with a template's dependency manifest
    (folder / "handler.py").unlink()
    (folder / "requirements.txt").symlink_to(outside / "requirements.txt")
    error_line(cli.fails(1, "init", str(folder), "-t", "image-thumbnail-python"), "FILE_EXISTS")
    assert sorted(p.name for p in outside.iterdir()) == [] and sorted(p.name for p in folder.iterdir()) == [
        "requirements.txt"
    ]
    # a link to an existing different file is refused as before; the folder argument itself a link to
    # nowhere (or a file) is a FILE_EXISTS error, not a traceback
    (outside / "mine.py").write_text("mine\n")
    (folder / "requirements.txt").unlink()
    (folder / "handler.py").symlink_to(outside / "mine.py")
    error_line(cli.fails(1, "init", str(folder)), "FILE_EXISTS")
    assert (outside / "mine.py").read_text() == "mine\n"
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    line = error_line(cli.fails(1, "init", str(tmp_path / "dangling")), "FILE_EXISTS")
    assert "not a folder" in line and not (tmp_path / "nowhere").exists()
