"""The backup service: online snapshots (the API's download and the schedule), restores, and their status.

A snapshot first writes every row the batched writer holds (a row acknowledged before the backup is in
it), then builds the archive in a thread (orvad/backup/archive.py): the event loop and the invocations
go on. A restore is checked completely in a thread into a staging folder on the data dir's filesystem;
only then does the daemon stop its loops and pools, close the database, swap (orvad/backup/swap.py) and
load the restored state again (``Daemon.reload_from``). One restore at a time; snapshots wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from orvad.backup.archive import MASTER_KEY, BackupRefused, Limits, stage, write_backup
from orvad.backup.swap import RestoreNotLoaded, swap_back, swap_in
from orvad.builder.safetree import remove_tree
from orvad.clock import now_iso
from orvad.errors import BackupInvalid, RestoreRunning

log = logging.getLogger(__name__)

SCHEDULED = re.compile(r"orva-backup-(\d{8}T\d{6}Z)-[0-9a-f]{6}\.tar\.gz")
WORK_PREFIX = ".backup-"  # temp folders in the data dir: removed at start


class BackupService:
    def __init__(
        self,
        data_dir: Path,
        *,
        version: str,
        newest_schema: Callable[[], int],
        flush: Callable[[], Awaitable[None]],
        reload: Callable[[Callable[[], None], Callable[[], None]], Awaitable[None]],
        backup_dir: Path | None,
        every_s: float,
        keep: int,
        max_bytes: int,
    ) -> None:
        self.data_dir = data_dir
        self.version = version
        self._newest_schema = newest_schema
        self._flush = flush
        self._reload = reload
        self.backup_dir = backup_dir
        self.every_s = every_s
        self.keep = keep
        self.max_bytes = max_bytes
        self._restoring = asyncio.Lock()
        self.last: dict[str, Any] | None = None  # the last scheduled backup: file, at, bytes, ok, error, ms
        self.next_at: float | None = None  # wall time of the next scheduled backup
        self.last_restore: dict[str, Any] | None = None

    # temp space ------------------------------------------------------------------------------------------

    def workspace(self) -> Path:
        """A new private folder in the data dir (same filesystem as what a restore replaces)."""
        path = self.data_dir / f"{WORK_PREFIX}{secrets.token_hex(8)}"
        path.mkdir(mode=0o700)
        return path

    def clean_workspaces(self) -> None:
        """Folders a stopped orvad left behind (a download cut short by a crash, a restore that died)."""
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.data_dir):
                if entry.name.startswith(WORK_PREFIX) and entry.is_dir(follow_symlinks=False):
                    if not (Path(entry.path) / "previous").exists():  # a swap's previous files: kept
                        remove_tree(Path(entry.path))

    def discard(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            remove_tree(path)

    # snapshots -------------------------------------------------------------------------------------------

    async def snapshot(self, out: Path) -> dict[str, Any]:
        """Write a backup to ``out``; the rows acknowledged so far are in it."""
        if self._restoring.locked():
            raise RestoreRunning(
                "a restore is running: the backup would copy a data dir being replaced",
                hint="wait for POST /api/v1/restore to answer, then ask again",
            )
        await self._flush()
        return await asyncio.to_thread(write_backup, self.data_dir, out, orvad_version=self.version)

    # restores --------------------------------------------------------------------------------------------

    async def restore(self, upload: Path) -> dict[str, Any]:
        """Check ``upload`` completely, then swap it in and reload; the upload's folder is removed after.
        A refused archive raises BackupInvalid and changes nothing."""
        holder = upload.parent
        if self._restoring.locked():
            await asyncio.to_thread(self.discard, holder)
            raise RestoreRunning("a restore is running already", hint="wait for it to answer, then try again")
        async with self._restoring:
            started = time.monotonic()
            kept = False
            try:
                staged = holder / "staged"
                staged.mkdir(mode=0o700)
                try:
                    manifest = await asyncio.to_thread(
                        stage,
                        upload,
                        staged,
                        newest_schema=self._newest_schema(),
                        limits=Limits(max_bytes=self.max_bytes),
                        kept_key=self.data_dir / MASTER_KEY,
                    )
                except BackupRefused as exc:
                    raise BackupInvalid(f"the archive was not restored: {exc}") from None
                upload.unlink()
                previous = holder / "previous"
                moved_in: list[str] = []

                def swap() -> None:
                    moved_in.extend(swap_in(self.data_dir, staged, previous))

                def undo() -> None:
                    swap_back(self.data_dir, staged, previous, moved_in)

                try:
                    await self._reload(swap, undo)
                except RestoreNotLoaded as exc:  # the previous files are back and loaded: nothing changed
                    raise BackupInvalid(
                        f"the archive was not restored: its files passed the checks but orvad could not "
                        f"load them ({exc}); the previous data is back, nothing changed"
                    ) from None
                except BaseException:
                    # the reload failed and so did the undo: previous files still in the folder stay for the
                    # operator (docs/OPERATIONS.md); clean_workspaces keeps a folder holding them
                    kept = previous.is_dir() and any(previous.iterdir())
                    raise
            finally:
                if not kept:
                    await asyncio.to_thread(self.discard, holder)
            self.last_restore = {
                "at": now_iso(),
                "created_at": manifest.get("created_at"),
                "orvad_version": manifest.get("orvad_version"),
                "ms": round((time.monotonic() - started) * 1000),
            }
            log.info("restored a backup", extra=self.last_restore)
            return {
                "restored": True,
                "manifest": {k: manifest.get(k) for k in ("format_version", "orvad_version", "created_at")},
                "files": len(manifest["files"]),
                "versions": len(manifest.get("versions", [])),
                "ms": self.last_restore["ms"],
            }

    # the schedule ----------------------------------------------------------------------------------------

    @property
    def scheduled(self) -> bool:
        return self.backup_dir is not None and self.every_s > 0

    async def run(self) -> None:
        """Every ``every_s``: a backup into ``backup_dir`` (written to a temp name, fsynced, renamed), then
        all but the ``keep`` newest scheduled files removed."""
        assert self.backup_dir is not None
        await asyncio.to_thread(self.backup_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        while True:
            self.next_at = time.time() + self.every_s
            await asyncio.sleep(self.every_s)
            await self.scheduled_once()

    async def scheduled_once(self) -> None:
        assert self.backup_dir is not None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        out = self.backup_dir / f"orva-backup-{stamp}-{secrets.token_hex(3)}.tar.gz"
        started = time.monotonic()
        try:
            await self.snapshot(out)
            size = (await asyncio.to_thread(out.stat)).st_size
            pruned = await asyncio.to_thread(self.prune)
            self.last = {"file": str(out), "at": now_iso(), "bytes": size, "ok": True, "error": None}
            log.info("scheduled backup written", extra={"file": str(out), "bytes": size, "pruned": pruned})
        except Exception as exc:  # the loop goes on; the status says what failed
            self.last = {"file": str(out), "at": now_iso(), "bytes": 0, "ok": False, "error": str(exc)}
            log.exception("scheduled backup failed", extra={"file": str(out)})
        self.last["ms"] = round((time.monotonic() - started) * 1000)

    def files(self) -> list[dict[str, Any]]:
        """The scheduled backups in ``backup_dir``, newest first."""
        if self.backup_dir is None:
            return []
        found = []
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.backup_dir):
                if SCHEDULED.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    found.append({"name": entry.name, "bytes": entry.stat(follow_symlinks=False).st_size})
        return sorted(found, key=lambda f: str(f["name"]), reverse=True)

    def prune(self) -> list[str]:
        """Remove all but the ``keep`` newest scheduled backups; returns the names removed."""
        assert self.backup_dir is not None
        removed = []
        for entry in self.files()[self.keep :]:
            with contextlib.suppress(FileNotFoundError):
                (self.backup_dir / entry["name"]).unlink()
                removed.append(str(entry["name"]))
        return removed

    def status(self) -> dict[str, Any]:
        """GET /api/v1/backup/status (blocking: lists the backup dir)."""
        return {
            "scheduled": self.scheduled,
            "dir": str(self.backup_dir) if self.backup_dir is not None else None,
            "every_s": self.every_s,
            "keep": self.keep,
            "max_restore_bytes": self.max_bytes,
            "last": self.last,
            "next_at": (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.next_at))
                if self.scheduled and self.next_at
                else None
            ),
            "files": self.files(),
            "last_restore": self.last_restore,
            "restoring": self._restoring.locked(),
        }
