"""`orva backup`: download a backup of a running orvad, restore one into it, see the scheduled backups
(issue 24; docs/OPERATIONS.md, Backup and restore). Admin keys only."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
import httpx

from orva_cli.client import CliError
from orva_cli.context import App, json_option, pass_app

# a backup or a restore of a large data dir takes its time: no read timeout beyond this
_TIMEOUT = httpx.Timeout(30.0, read=3600.0, write=3600.0)


@click.group()
def backup() -> None:
    """Back up and restore a whole orvad: database, master key and every retained version.

    \b
    Examples:
      orva backup download --out orva-backup.tar.gz
      orva backup restore orva-backup.tar.gz --yes
      orva backup status
    """


@backup.command("download")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The file to write (default: orva-backup-<time>.tar.gz here). Written to a temp name, then renamed.",
)
@json_option
@pass_app
def download(app: App, out: Path | None) -> None:
    """Download a consistent backup (GET /api/v1/backup) while orvad keeps serving.

    \b
    Example:
      orva backup download --out /srv/backups/orva.tar.gz
    """
    target = out or Path(f"orva-backup-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.tar.gz")
    partial = target.with_name(f".{target.name}.part")
    size = 0
    try:
        with app.client.http.stream("GET", "/api/v1/backup", timeout=_TIMEOUT) as response:
            if response.status_code >= 400:
                response.read()
                raise app.client.failure(response)
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                for chunk in response.iter_bytes(1 << 20):
                    fh.write(chunk)
                    size += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            files = response.headers.get("x-orva-backup-files", "?")
            versions = response.headers.get("x-orva-backup-versions", "?")
    except httpx.TransportError as exc:
        partial.unlink(missing_ok=True)
        raise app.client.unreachable(exc) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    result = {"file": str(target), "bytes": size, "files": files, "versions": versions}
    app.out.show(
        result,
        lambda r: click.echo(f"backup written to {r['file']} ({r['bytes']} bytes, {r['versions']} versions)"),
    )


@backup.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Confirm: every function, key, secret and setting is replaced.")
@json_option
@pass_app
def restore(app: App, file: Path, yes: bool) -> None:
    """Restore FILE into the running orvad (POST /api/v1/restore?confirm=1).

    The archive is checked completely first (manifest, sizes, sha256, paths, database); a bad one changes
    nothing. Then the database, master key and versions are replaced and orvad reloads without a restart.
    Your API key must be in the restored backup to go on using it.

    \b
    Example:
      orva backup restore orva-backup.tar.gz --yes
    """
    if not yes:
        raise CliError(
            "CONFIRM",
            "a restore replaces every function, version, key, secret and setting of this orvad",
            "run it again with --yes",
        )
    try:
        with file.open("rb") as fh:
            response = app.client.http.post(
                "/api/v1/restore",
                params={"confirm": "1"},
                files={"archive": (file.name, fh, "application/gzip")},
                timeout=_TIMEOUT,
            )
    except httpx.TransportError as exc:
        raise app.client.unreachable(exc) from None
    if response.status_code >= 400:
        err = app.client.failure(response)
        if err.code == "BACKUP_INVALID":  # nothing changed; say so in this CLI's words
            err.api_hint, err.hint = err.hint, "restore a file made by `orva backup download`, unchanged"
        raise err
    answer = response.json()
    app.out.show(
        answer,
        lambda r: click.echo(
            f"restored {r['files']} files and {r['versions']} versions (backup of "
            f"{r['manifest']['created_at']}, orvad {r['manifest']['orvad_version']}) in {r['ms']} ms"
        ),
    )


@backup.command("status")
@json_option
@pass_app
def status(app: App) -> None:
    """The scheduled backups (ORVA_BACKUP_DIR, ORVA_BACKUP_EVERY, ORVA_BACKUP_KEEP) and the last one.

    \b
    Example:
      orva backup status --json
    """
    answer = app.get("/api/v1/backup/status")

    def human(r: dict[str, object]) -> None:
        if not r["scheduled"]:
            click.echo("scheduled backups: off (set ORVA_BACKUP_DIR)")
        else:
            click.echo(f"scheduled backups: every {r['every_s']} s into {r['dir']}, keeping {r['keep']}")
            click.echo(f"last: {r['last'] or 'none yet'}; next at {r['next_at']}")
        for f in r["files"]:  # type: ignore[attr-defined]
            click.echo(f"  {f['name']}  {f['bytes']} bytes")

    app.out.show(answer, human)


commands = [backup]
