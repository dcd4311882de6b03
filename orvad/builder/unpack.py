"""Unpack an uploaded archive in a child process that runs as the jail user (65534), not as root.

orvad gives the child the archive on stdin and a folder it made for the jail user; the child
opens that folder, drops to 65534 (no groups, no capabilities), sets tight rlimits and only
then parses and writes. Whatever an archive tricks the unpacker into, it does so with the
rights of the jail user beneath a folder that user owns, and a bomb burns the child's time,
not the event loop's. The child answers one JSON line: ``{"ok": n}``, ``{"error": "..."}``, or
``{"disk_full": "..."}`` when a write found no space (raised here as ``InsufficientStorage``).
"""

from __future__ import annotations

import encodings.cp437  # noqa: F401  zip names; imported before the child drops to a user that cannot read the stdlib
import encodings.latin_1  # noqa: F401
import encodings.utf_8  # noqa: F401
import errno
import json
import logging
import os
import resource
import sys
from pathlib import Path

from orvad.builder.archive import ArchiveError, extract_into
from orvad.errors import InsufficientStorage
from orvad.host.process import PIPE, spawn

log = logging.getLogger(__name__)

JAIL_UID = 65534  # as orvad.host.sandbox.JAIL_UID; not imported so the child loads as little as possible
_ARCHIVE_EXIT = 3


async def unpack(
    data: bytes, dest: Path, *, max_files: int, max_bytes: int, timeout_s: float, version_blob: bool = False
) -> None:
    """Unpack ``data`` into the empty folder ``dest``; raises ArchiveError with a user-facing message.

    ``version_blob``: a packed version tree (archive.extract_into's mode for it)."""
    if os.geteuid() == 0:
        os.chown(dest, JAIL_UID, JAIL_UID, follow_symlinks=False)
    package_root = Path(__file__).resolve().parent.parent.parent
    argv = [sys.executable, "-P", "-m", "orvad.builder.unpack", str(dest), str(max_files), str(max_bytes)]
    if version_blob:
        argv.append("version")
    child = await spawn(
        argv,
        env={"PYTHONPATH": str(package_root), "PATH": os.defpath, "LANG": "C.UTF-8"},
        stdin=PIPE,
        stdout=PIPE,
        stderr=PIPE,
        start_new_session=True,
    )
    try:  # past the deadline (or cancelled) the child takes the kill path: TERM, grace, KILL its group, reaped
        out, err = await child.communicate(data, timeout_s=timeout_s, term_grace_s=0.5)
    except TimeoutError:
        raise ArchiveError(f"unpacking the archive took longer than {timeout_s:.0f} s") from None
    lines = out.decode(errors="replace").strip().splitlines()
    answer = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if child.returncode == 0 and "ok" in answer:
        return
    if "disk_full" in answer:
        raise InsufficientStorage(f"unpacking the archive found no space: {answer['disk_full']}")
    if "error" in answer:
        raise ArchiveError(str(answer["error"]))
    log.error(
        "archive unpacker failed",
        extra={"exit_code": child.returncode, "stderr": err.decode(errors="replace")[-2000:]},
    )
    raise ArchiveError(
        f"the archive could not be unpacked (the unpacker exited with {child.returncode}); "
        "it may be too large or malformed"
    )


def _drop_privileges(max_bytes: int, archive_bytes: int) -> None:
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(JAIL_UID)
        os.setuid(JAIL_UID)
    os.umask(0o022)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes + 1, max_bytes + 1))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    memory = (512 << 20) + 3 * archive_bytes
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def main(argv: list[str]) -> int:
    dest, max_files, max_bytes = argv[0], int(argv[1]), int(argv[2])
    version_blob = argv[3:] == ["version"]
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    data = sys.stdin.buffer.read()
    _drop_privileges(max_bytes, len(data))
    try:
        count = extract_into(
            data, root_fd, max_files=max_files, max_bytes=max_bytes, version_blob=version_blob
        )
    except ArchiveError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        return _ARCHIVE_EXIT
    except MemoryError:
        print(json.dumps({"error": "the archive needs more memory to unpack than allowed"}), flush=True)
        return _ARCHIVE_EXIT
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        print(json.dumps({"disk_full": exc.strerror}), flush=True)
        return _ARCHIVE_EXIT
    print(json.dumps({"ok": count}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
