"""/api/v1/backup, /api/v1/backup/status and /api/v1/restore (issue 24; docs/OPERATIONS.md, Backup and
restore). Admin only: a backup holds the master key and every secret; a restore replaces everything."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from orvad.api.common import daemon_of, principal_of
from orvad.errors import Forbidden, PayloadTooLarge, SqliteOnly, ValidationError

_CHUNK = 1 << 20


def _needs_admin(request: Request, what: str) -> None:
    principal = principal_of(request)
    if principal is None or not principal.can("admin"):
        raise Forbidden(
            f"{what} needs the admin permission",
            details={"required": "admin"},
            hint='use an admin key (POST /api/v1/keys {"permissions": ["admin"]}) or an admin\'s session',
        )


def _needs_sqlite(request: Request, what: str) -> None:
    if daemon_of(request).db.driver != "sqlite":
        raise SqliteOnly(
            f"{what} works on the embedded SQLite database; this orvad's database is PostgreSQL (ORVA_DATABASE_URL)",
            hint="back the database up with pg_dump (restore with pg_restore), and keep a copy of every "
            "node's master.key; docs/CLUSTER.md, Backups",
        )


async def download(request: Request) -> Response:
    """The backup as a .tar.gz, built in a thread into a temp file in the data dir, then streamed; the file
    is removed when the answer ends (or the client leaves)."""
    _needs_admin(request, "a backup (it holds the master key and every secret)")
    _needs_sqlite(request, "GET /api/v1/backup")
    backups = daemon_of(request).backups
    holder = await asyncio.to_thread(backups.workspace)
    out = holder / "backup.tar.gz"
    try:
        manifest = await backups.snapshot(out)
        size = (await asyncio.to_thread(out.stat)).st_size
        fh = await asyncio.to_thread(open, out, "rb")
    except BaseException:
        await asyncio.to_thread(backups.discard, holder)
        raise

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(fh.read, _CHUNK):
                yield chunk
        finally:
            fh.close()

    def done() -> None:
        fh.close()
        backups.discard(holder)

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return StreamingResponse(
        chunks(),
        media_type="application/gzip",
        headers={
            "Content-Disposition": f'attachment; filename="orva-backup-{stamp}.tar.gz"',
            "Content-Length": str(size),
            "X-Orva-Backup-Files": str(len(manifest["files"])),
            "X-Orva-Backup-Versions": str(len(manifest["versions"])),
            "Cache-Control": "no-store",
        },
        background=BackgroundTask(asyncio.to_thread, done),
    )


async def status(request: Request) -> Response:
    """The schedule (ORVA_BACKUP_DIR, _EVERY, _KEEP), the last scheduled backup, the files kept."""
    _needs_admin(request, "the backup status")
    return JSONResponse(await asyncio.to_thread(daemon_of(request).backups.status))


def _copy(source: IO[bytes], dest: Path, limit: int) -> int:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    copied = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(_CHUNK):
            copied += len(chunk)
            if copied > limit:
                raise PayloadTooLarge(
                    f"the archive is larger than {limit} bytes (ORVA_RESTORE_MAX_BYTES)",
                    details={"limit": limit},
                )
            out.write(chunk)
    return copied


async def restore(request: Request) -> Response:
    """Check the uploaded backup completely, then replace the database, master key and versions and reload
    without a restart. 422 BACKUP_INVALID (nothing changed) when any check fails."""
    _needs_admin(request, "a restore (it replaces every function, key and secret)")
    _needs_sqlite(request, "POST /api/v1/restore")
    if request.query_params.get("confirm") not in ("1", "true", "yes"):
        raise ValidationError(
            "a restore replaces every function, version, key, secret and setting with the archive's: "
            "confirm it with ?confirm=1",
            details={"field": "confirm"},
            hint="POST /api/v1/restore?confirm=1 with the archive in the multipart field `archive` "
            "(orva backup restore FILE --yes)",
        )
    backups = daemon_of(request).backups
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise ValidationError(
            "send the backup as multipart/form-data in the field `archive`",
            details={"field": "archive"},
            hint="curl -F archive=@orva-backup.tar.gz '.../api/v1/restore?confirm=1'",
        )
    holder = await asyncio.to_thread(backups.workspace)
    upload = holder / "upload.tar.gz"
    try:
        async with request.form(max_files=1, max_fields=4) as form:
            part = form.get("archive", form.get("file"))
            if part is None or isinstance(part, str):
                raise ValidationError(
                    "send the backup in the multipart field `archive`", details={"field": "archive"}
                )
            size = await asyncio.to_thread(_copy, part.file, upload, backups.max_bytes)
        if size == 0:
            raise ValidationError("the archive is empty", details={"field": "archive"})
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, holder, True)
        raise
    return JSONResponse(await backups.restore(upload))  # removes the holder in every case


routes = [
    Route("/api/v1/backup", download, methods=["GET"]),
    Route("/api/v1/backup/status", status, methods=["GET"]),
    Route("/api/v1/restore", restore, methods=["POST"]),
]
