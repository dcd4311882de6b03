"""Whether an orvad runs on a data dir: a running orvad holds a shared lock on ``<data dir>/orvad.lock``
(taken at start, released when the process ends, however it ends); the offline ``orvad backup`` and
``orvad restore`` need the exclusive lock, so they refuse while any orvad holds it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "orvad.lock"


def hold(data_dir: Path) -> int:
    """Take the running orvad's shared lock; the descriptor stays open for the life of the process."""
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def exclusive(data_dir: Path) -> int | None:
    """The exclusive lock (an offline command's), or None when an orvad runs on ``data_dir``."""
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
