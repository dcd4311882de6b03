"""Backup and restore (docs/OPERATIONS.md, Backup and restore): consistent online snapshots of a data dir
(archive.py), archives checked before anything changes, an atomic swap (swap.py), the service that the API,
the schedule and the daemon's reload share (service.py), and the lock that tells a running orvad apart
(running.py)."""

from orvad.backup.archive import FORMAT_VERSION, BackupRefused, Limits, stage, write_backup
from orvad.backup.service import BackupService

__all__ = ["FORMAT_VERSION", "BackupRefused", "BackupService", "Limits", "stage", "write_backup"]
