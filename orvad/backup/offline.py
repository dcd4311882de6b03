"""`orvad backup --to FILE` and `orvad restore FILE`: the same archive on a stopped data dir (orvad/cli.py).

Both take the data dir's exclusive lock (orvad/backup/running.py) and refuse while an orvad runs on it:
use `orva backup download` / `orva backup restore` (or the API) against a running one."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from orvad.backup.archive import MASTER_KEY, BackupRefused, Limits, stage, write_backup
from orvad.backup.running import exclusive
from orvad.backup.swap import swap_in
from orvad.builder.safetree import remove_tree
from orvad.store.db import migration_files


def _refuse_running(data_dir: Path, what: str) -> int | None:
    if not data_dir.is_dir():
        print(f"orvad: no data dir at {data_dir}: pass --data-dir (or ORVA_DATA_DIR)", file=sys.stderr)
        return None
    lock = exclusive(data_dir)
    if lock is None:
        print(
            f"orvad: an orvad is running on {data_dir}; stop it first, or {what} it while it runs with "
            "`orva backup download` / `orva backup restore FILE --yes`",
            file=sys.stderr,
        )
    return lock


def backup_to(data_dir: Path, out: Path, version: str) -> int:
    lock = _refuse_running(data_dir, "back up")
    if lock is None:
        return 1
    try:
        if not (data_dir / "orva.db").exists():
            print(f"orvad: no database at {data_dir / 'orva.db'}: nothing to back up", file=sys.stderr)
            return 1
        manifest = write_backup(data_dir, out.absolute(), orvad_version=version)
    finally:
        os.close(lock)
    print(f"backup written to {out} ({len(manifest['files'])} files, {len(manifest['versions'])} versions)")
    return 0


def restore_from(data_dir: Path, archive: Path, max_bytes: int) -> int:
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
    lock = _refuse_running(data_dir, "restore")
    if lock is None:
        return 1
    holder = data_dir / f".backup-offline-{os.getpid()}"
    try:
        holder.mkdir(mode=0o700)
        staged = holder / "staged"
        staged.mkdir(mode=0o700)
        try:
            manifest = stage(
                archive,
                staged,
                newest_schema=len(migration_files()),
                limits=Limits(max_bytes),
                kept_key=data_dir / MASTER_KEY,
            )
        except BackupRefused as exc:
            print(f"orvad: the archive was not restored (nothing changed): {exc}", file=sys.stderr)
            return 1
        swap_in(data_dir, staged, holder / "previous")
    finally:
        if holder.exists():
            remove_tree(holder)
        os.close(lock)
    print(
        f"restored {len(manifest['files'])} files and {len(manifest['versions'])} versions from the backup of "
        f"{manifest.get('created_at')} into {data_dir}; start orvad on it"
    )
    return 0
