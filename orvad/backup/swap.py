"""The swap of a restore: the staged database, master key and versions replace the data dir's, each by one
rename on the same filesystem; the previous ones are moved aside first and put back if any step fails.

The three renames are each atomic, not the three together: a crash between them leaves the previous files
in ``<data dir>/.restore-*/previous`` (docs/OPERATIONS.md says how to put them back by hand)."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from orvad.backup.archive import DATABASE, FUNCTIONS, MASTER_KEY

log = logging.getLogger(__name__)


class RestoreNotLoaded(RuntimeError):
    """Daemon.reload_from could not load the restored files; it put the previous ones back and loaded
    those again (the message says what failed)."""


_SIDE_FILES = (DATABASE + "-wal", DATABASE + "-shm", DATABASE + "-journal")


def swap_in(data_dir: Path, staged: Path, previous: Path) -> list[str]:
    """Move ``staged``'s database, versions and (when it has one) master key into ``data_dir``; the
    data dir's own go to the new folder ``previous``. Run with the database closed. Returns the names
    moved in (for ``swap_back``)."""
    (staged / FUNCTIONS).mkdir(mode=0o711, exist_ok=True)
    previous.mkdir(mode=0o700)
    incoming = [DATABASE, FUNCTIONS] + ([MASTER_KEY] if (staged / MASTER_KEY).exists() else [])
    outgoing = [n for n in (*incoming, *_SIDE_FILES) if os.path.lexists(data_dir / n)]
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        for name in outgoing:
            os.rename(data_dir / name, previous / name)
            moved_out.append(name)
        for name in incoming:
            os.rename(staged / name, data_dir / name)
            moved_in.append(name)
        (data_dir / FUNCTIONS).chmod(0o711)
        _fsync(data_dir)
        return moved_in
    except BaseException:
        log.error("restore swap failed: the previous files are put back", extra={"moved": moved_out})
        for name in reversed(moved_in):
            with contextlib.suppress(OSError):
                os.rename(data_dir / name, staged / name)
        for name in reversed(moved_out):
            with contextlib.suppress(OSError):
                os.rename(previous / name, data_dir / name)
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_back(data_dir: Path, staged: Path, previous: Path, moved_in: list[str]) -> None:
    """Undo a ``swap_in`` whose restored files orvad could not load (Daemon.reload_from): the restored
    names, and the ``-wal``/``-shm`` their opening made, go back into ``staged``; the previous files in
    ``previous`` return to ``data_dir``. Run with the database closed."""
    for name in (*moved_in, *_SIDE_FILES):
        if os.path.lexists(data_dir / name):
            if os.path.lexists(staged / name):  # never: staged was emptied by swap_in
                raise FileExistsError(staged / name)
            os.rename(data_dir / name, staged / name)
    for name in sorted(os.listdir(previous)):
        os.rename(previous / name, data_dir / name)
    _fsync(data_dir)
    log.warning("restore undone: the previous files are back", extra={"names": moved_in})
