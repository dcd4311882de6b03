"""The deploy pipeline: queued -> extracting -> installing -> activating -> succeeded | failed.

Sources are written to ``<data>/functions/<fid>/staging/<deployment>/`` before the API answers
202, so a restart can resume any build. A finished build lives in ``versions/<code hash>/``
(content-addressed: the same tree deployed twice re-uses the finished build) and is switched
to by one database transaction; the old version serves until then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from orvad.builder.archive import MAX_BYTES, MAX_FILES, ArchiveError
from orvad.builder.buildlog import FINAL_EVENTS, MAX_LINES, BuildLog
from orvad.builder.diskwatch import BuildDiskWatch, DiskLedger
from orvad.builder.gc import collect, is_built, mark_built
from orvad.builder.importcheck import CheckedWorker, CheckSkipped, ImportFailed
from orvad.builder.installer import BuildFailed, InstallJob, InstallRunner
from orvad.builder.queue import BuildQueue
from orvad.builder.safetree import (
    TooDeep,
    UnsafeTree,
    disk_usage,
    escaping_links,
    is_file_beneath,
    read_text_beneath,
    remove_tree,
    seal,
    tree_hash,
)
from orvad.builder.shared import SharedVersions, TooLarge
from orvad.builder.unpack import unpack
from orvad.clock import now_iso
from orvad.errors import InsufficientStorage, ValidationError, VersionGCd, VersionNotFound, is_disk_full
from orvad.ids import uuid7
from orvad.models import Deployment, DeploymentSource, DeploymentStatus, Function, Phase, PhaseMark
from orvad.services.bus import Bus
from orvad.services.changes import Change, Changes, FunctionDeleted, VersionBuilt
from orvad.services.functions import FunctionService
from orvad.services.serialisers import deployment_json
from orvad.services.versionrefs import resolve_code_hash, resolve_deployment
from orvad.store.functions import FunctionStore

log = logging.getLogger(__name__)

_LIVE_LOG_KEEP_S = 600.0  # a finished build's events stay in memory this long for late SSE clients
_UNPACK_TIMEOUT_S = 60.0
_DISK_POLL_S = 0.2  # how often a running install's disk use is measured (longer for big trees)
_FREE_POLL_S = 0.05  # how often the data dir's free space is read while an install runs (one statvfs)
MANIFESTS = {"python": "requirements.txt", "node": "package.json"}
_RECORD_RETRY_MAX_S = 2.0  # longest pause between attempts to record a build's end while the disk is full
# what pip and npm print when a write finds no space (a build that fakes it only mislabels its own failure)
_DISK_FULL_TEXT = ("No space left on device", "ENOSPC", "Disk quota exceeded", "EDQUOT")


def disk_full_reason(exc: BaseException | None) -> str:
    """The build failure reason for a write that found the disk full."""
    what = "no space left on device"
    if isinstance(exc, InsufficientStorage):
        what = exc.message
    elif isinstance(exc, OSError) and exc.strerror:
        what = exc.strerror
    return (
        f"the disk holding orvad's data dir is full ({what}); free space there (GET /api/v1/system/health "
        "shows the disk check) and deploy again"
    )


class VersionHost(Protocol):
    """What builds ask of whoever runs versions (orvad/services/reconciler.py)."""

    async def check_import(self, fn: Function, dep: Deployment) -> CheckedWorker:
        """Start one worker of ``dep`` as its pool would; ImportFailed or CheckSkipped when it cannot serve."""
        ...

    def hashes_in_use(self, function_id: str) -> set[str]:
        """Code hashes a worker runs or is warmed for: GC never removes those."""
        ...


def install_argv(language: str, tree: Path, interpreter: str) -> list[str] | None:
    """The dependency install command for this tree, or None when there is nothing to install."""
    if language == "python":
        req = read_text_beneath(tree, "requirements.txt")
        if req is None or not any(ln.strip() and not ln.strip().startswith("#") for ln in req.splitlines()):
            return None
        return [
            interpreter,
            "-m",
            "pip",
            "install",
            "--no-input",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--break-system-packages",  # Debian marks its Python externally managed; --target is ours
            "--progress-bar",
            "off",
            "--cache-dir",
            "/cache/pip",
            "--target",
            "/code/.packages",
            "-r",
            "/code/requirements.txt",
        ]
    manifest = read_text_beneath(tree, "package.json")
    if manifest is None:
        return None
    try:
        deps = json.loads(manifest).get("dependencies") or {}
    except (ValueError, AttributeError):
        raise BuildFailed("package.json is not a valid JSON object") from None
    if not deps:
        return None
    verb = "ci" if is_file_beneath(tree, "package-lock.json") else "install"
    # an installed runtime (node22, node24) installs with its own npm, so addons build for its ABI
    npm = (
        ["/usr/bin/npm"]
        if interpreter == "/usr/bin/node"
        else [
            interpreter,
            str(Path(interpreter).parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"),
        ]
    )
    return [*npm, verb, "--omit=dev", "--no-audit", "--no-fund", "--cache", "/cache/npm", "--prefix", "/code"]


def manifest_for(language: str, dependencies: str) -> str:
    """Turn the inline ``dependencies`` field into requirements.txt or package.json text."""
    text = dependencies.strip()
    if language == "python" or text.startswith("{"):
        if language == "node":
            try:
                parsed = json.loads(text)
            except ValueError:
                raise ValidationError(
                    "dependencies looks like package.json but is not valid JSON",
                    details={"field": "dependencies"},
                ) from None
            if not isinstance(parsed, dict):
                raise ValidationError(
                    "dependencies JSON must be an object", details={"field": "dependencies"}
                )
            return json.dumps(parsed, indent=2) + "\n"
        return "\n".join(p for p in text.replace(",", "\n").split("\n") if p.strip()) + "\n"
    deps: dict[str, str] = {}
    for spec in text.replace(",", " ").split():
        name, sep, version = spec.rpartition("@") if spec.rfind("@") > 0 else (spec, "", "")
        deps[name if sep else spec] = version if sep else "*"
    return json.dumps({"name": "orva-function", "private": True, "dependencies": deps}, indent=2) + "\n"


class DiskCapExceeded(BuildFailed):
    """The build passed ORVA_BUILD_DISK_MB or took the disk's last free space or inodes."""


class Builder:
    def __init__(
        self,
        *,
        root: Path,
        store: FunctionStore,
        functions: FunctionService,
        bus: Bus,
        language_of: Callable[[str], str | None],
        interpreter_of: Callable[[str], str],
        install: InstallRunner | None,
        concurrency: int,
        backlog: int,
        timeout_s: float,
        versions_kept: int,
        disk_mb: int = 2048,
        disk_floor_percent: float = 5.0,
        changes: Changes | None = None,
        versions: VersionHost | None = None,
        observe_build: Callable[[str, float | None], None] | None = None,
        ensure_runtime: Callable[[str, Callable[[str], Awaitable[None]]], Awaitable[None]] | None = None,
        shared: SharedVersions | None = None,
    ) -> None:
        self.root = root
        self._store = store
        self._functions = functions
        self._bus = bus
        self._language_of = language_of
        self._interpreter_of = interpreter_of
        self.install = install
        self._timeout_s = timeout_s
        self._versions_kept = versions_kept
        self._disk_mb = disk_mb
        self._disk = DiskLedger(root.parent, disk_floor_percent)  # the data dir's filesystem
        self._changes = changes if changes is not None else Changes()  # VersionBuilt
        # the import check before activation and the hashes GC keeps; None: no check, nothing in use
        self._versions = versions
        self._observe_build = observe_build  # (status, seconds or None for a rollback) of each finished build
        self.queue = BuildQueue(self._build, concurrency=concurrency, backlog=backlog)
        self._logs: dict[str, BuildLog] = {}
        self._seq: dict[str, int] = {}
        # Per function: activation, rollback and GC take turns; hashes of builds between hashing and their
        # end are held so GC never removes a version a build is about to activate.
        self._locks: dict[str, asyncio.Lock] = {}
        self._held: dict[str, Counter[str]] = {}
        # installs a pinned runtime (node22, node24) the function needs and this host lacks; lines go to the log
        self.ensure_runtime = ensure_runtime
        # issue 25: build claims and the packed copies other nodes fetch (orvad/builder/shared.py)
        self.shared = shared
        self.builds_run = 0  # builds this node ran past its claim (tests and logs)

    # paths
    def function_dir(self, function_id: str) -> Path:
        return self.root / function_id

    def version_dir(self, function_id: str, code_hash: str) -> Path:
        return self.function_dir(function_id) / "versions" / code_hash

    def cache_dir(self, function_id: str) -> Path:
        return self.root.parent / "build-cache" / function_id

    def _staging(self, deployment_id: str, function_id: str) -> Path:
        return self.function_dir(function_id) / "staging" / deployment_id

    def _lock(self, function_id: str) -> asyncio.Lock:
        return self._locks.setdefault(function_id, asyncio.Lock())

    # lifecycle
    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.root.chmod(0o711)
        await asyncio.to_thread(self._drop_shared_cache)
        self.queue.start()
        for dep in await self._store.unfinished_deployments():
            holder = await self.shared.holder(dep.id) if self.shared is not None else None
            if holder and self.shared is not None and holder != self.shared.node_id:
                # another node claimed it (it holds the upload): that node builds or resumes it
                log.info("unfinished build left to its node", extra={"deployment_id": dep.id, "node": holder})
                continue
            if (self._staging(dep.id, dep.function_id) / "source").exists():
                log.info("resuming build interrupted by a restart", extra={"deployment_id": dep.id})
                self._seq[dep.id] = await self._store.last_log_seq(
                    dep.id
                )  # its log continues, never restarts
                await self._save(
                    replace(dep, status=DeploymentStatus.QUEUED, phase=Phase.QUEUED),
                    note="resumed after a restart",
                )
                self.queue.submit(dep.id, dep.function_id)
            else:
                await self._finish(dep, None, "orvad restarted before the upload was stored; deploy again")

    async def stop(self) -> None:
        await self.queue.stop()

    async def fail_orphans(self, seen_since: str) -> list[str]:
        """Fail the unfinished builds claimed by another node not seen since ``seen_since`` (three heartbeats
        missed: crashed, or stopped and not back): that node alone held the upload, so no other node can
        build them, and they would wait forever. Each is taken over by one live node (a conditional write),
        which records the failure and what it does to the function. Returns the deployment ids it failed."""
        if self.shared is None:
            return []
        failed = []
        for deployment_id, holder in await self.shared.take_orphans(seen_since):
            dep = await self._store.deployment(deployment_id)
            if dep is None:
                continue
            self._seq[dep.id] = await self._store.last_log_seq(dep.id)  # its log continues after the holder's
            log.warning("build failed: its node stopped", extra={"deployment_id": dep.id, "node": holder})
            await self._finish(
                dep,
                None,
                f"node {holder}, which held this deployment's upload, stopped before the build finished"
                " (missed 3 heartbeats); deploy again",
            )
            failed.append(dep.id)
        return failed

    def _drop_shared_cache(self) -> None:
        """Remove the download cache every function's builds shared before caches were per function."""
        shared = self.cache_dir("_").parent
        for legacy in ("pip", "npm"):
            _discard(shared / legacy)

    def live_log(self, deployment_id: str) -> BuildLog | None:
        return self._logs.get(deployment_id)

    async def wait(self, deployment_id: str, timeout_s: float) -> Deployment | None:
        """The record of a deployment once its build has ended, None while it runs past ``timeout_s``.

        The end event is emitted after the function's record names the new version and its pool
        was switched to the pre-warmed one (``_finish``), so the next invocation runs the new version."""
        live = self._logs.get(deployment_id)
        if live is not None:

            async def ended() -> None:
                async for event, _ in live.follow():
                    if event in FINAL_EVENTS:
                        return

            try:
                await asyncio.wait_for(ended(), timeout_s)
            except TimeoutError:
                return None
        dep = await self._store.deployment(deployment_id)
        return dep if dep is not None and dep.status in FINAL_EVENTS else None

    # submissions
    async def submit_inline(
        self, fn: Function, code: str, filename: str, dependencies: str | None
    ) -> Deployment:
        language = self._language(fn)
        files = {filename: code}
        if dependencies and dependencies.strip():
            files[MANIFESTS[language]] = manifest_for(language, dependencies)

        def write(source: Path) -> None:
            for name, text in files.items():
                path = source / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)

        return await self._submit(fn, DeploymentSource.INLINE, write)

    async def submit_archive(self, fn: Function, data: bytes) -> Deployment:
        def write(source: Path) -> None:
            (source / "upload.bin").write_bytes(data)

        return await self._submit(fn, DeploymentSource.ARCHIVE, write, archive=True)

    async def _submit(
        self,
        fn: Function,
        source_kind: DeploymentSource,
        write: Callable[[Path], None],
        *,
        archive: bool = False,
    ) -> Deployment:
        dep = Deployment(
            id=uuid7(),
            function_id=fn.id,
            version=0,
            code_hash=None,
            status=DeploymentStatus.QUEUED,
            phase=Phase.QUEUED,
            phases=[PhaseMark(phase=Phase.QUEUED, ts=now_iso())],
            source=source_kind,
            parent_deployment_id=None,
            error_message=None,
            submitted_at=now_iso(),
            started_at=None,
            finished_at=None,
            duration_ms=None,
        )
        staging = self._staging(dep.id, fn.id)

        def prepare() -> None:
            _private_dir(self.function_dir(fn.id), 0o711)
            _private_dir(
                staging.parent, 0o711
            )  # listing it would show deployment ids; the jail only traverses
            staging.mkdir(mode=0o711)  # the build jail reaches tree/ through it
            (staging / "source").mkdir(mode=0o700)  # the upload itself stays private
            write(staging / "source")
            if archive:
                (staging / "ARCHIVE").touch()

        try:
            await asyncio.to_thread(prepare)
            dep = await self._store.insert_deployment(dep)
            if self.shared is not None:  # this node holds the upload: no other node builds or fails it
                await self.shared.claim(dep.id)
        except Exception as exc:
            if not is_disk_full(exc):
                raise
            await asyncio.to_thread(_discard, staging)  # a half-written upload is of no use
            if isinstance(exc, InsufficientStorage):
                raise
            raise InsufficientStorage(
                f"the upload could not be stored: {getattr(exc, 'strerror', None) or exc}"
            ) from exc
        self._logs[dep.id] = BuildLog(dep.id)
        try:
            self.queue.submit(dep.id, fn.id)
        except Exception:
            await self._finish(dep, None, "the build queue was full")
            raise
        await self._functions.build_submitted(fn.id)  # nothing to serve yet: the function shows building
        self._bus.publish("deployment", deployment_json(dep))
        return dep

    # the pipeline
    async def _build(self, deployment_id: str) -> None:
        dep = await self._store.deployment(deployment_id)
        fn = self._functions.get(dep.function_id) if dep is not None else None
        if dep is None or fn is None:  # the function (and with it its deployments) was deleted meanwhile
            log.info("build skipped: its function is gone", extra={"deployment_id": deployment_id})
            return
        staging = self._staging(dep.id, fn.id)
        holder = await self.shared.claim(dep.id) if self.shared is not None else None
        if holder is not None:  # another node builds it (or it was built meanwhile): exactly one node does
            log.info(
                "build skipped: another node claimed it",
                extra={"deployment_id": dep.id, "node": holder or "(no longer waiting)"},
            )
            self._logs.pop(dep.id, None)
            await asyncio.to_thread(_discard, staging)
            return
        self.builds_run += 1
        log.info("build claimed", extra={"deployment_id": dep.id})
        self._logs.setdefault(dep.id, BuildLog(dep.id))
        started = time.monotonic()
        tree = staging / "tree"
        dep = replace(dep, status=DeploymentStatus.BUILDING, started_at=now_iso())
        interrupted = False
        held: str | None = None
        try:
            if self.ensure_runtime is not None:
                building = dep
                await self.ensure_runtime(fn.runtime, lambda line: self._line(building, "system", line))
            dep = await self._phase(dep, Phase.EXTRACTING)
            await self._materialise(staging, tree)
            if not await asyncio.to_thread(is_file_beneath, tree, fn.entrypoint):
                raise BuildFailed(
                    f"{fn.entrypoint} not found in the deployed code; put the entrypoint at the top "
                    "of the archive, or change the function's entrypoint"
                )
            code_hash = await asyncio.to_thread(tree_hash, tree)
            held = self._hold(fn.id, code_hash)  # from here until the end GC keeps this version
            dep = replace(dep, code_hash=code_hash)
            await self._line(dep, "system", f"code hash {code_hash}")
            target = self.version_dir(fn.id, code_hash)
            if await asyncio.to_thread(is_built, target):
                await self._line(dep, "system", "this exact code was built before; re-using that build")
            else:
                dep = await self._phase(dep, Phase.INSTALLING)
                await self._install_deps(fn, dep, tree)
                await asyncio.to_thread(self._promote, tree, target)
            await self._share(dep, target)
            dep = await self._phase(dep, Phase.ACTIVATING)
            async with self._lock(fn.id):
                if not self._newer_active(fn.id, dep.id):  # else it ends superseded, never activated
                    checked = await self._check_import(fn, dep)
                    try:
                        await self._activate(fn, dep, target, checked)
                    finally:
                        if checked is not None:  # not taken by the new pool (min_warm 0, paused): stopped
                            await checked.discard()
                await self._finish(dep, started, None)
                self._release(fn.id, held)
                held = None
                await self.collect(fn.id)
        except asyncio.CancelledError:
            interrupted = True
            await self._line(dep, "system", "build interrupted by shutdown; it resumes on the next start")
            raise
        except (BuildFailed, ArchiveError, UnsafeTree) as exc:  # UnsafeTree: e.g. folders nested too deep
            await self._finish(dep, started, str(exc))
        except Exception as exc:
            if is_disk_full(exc):
                log.error(
                    "build failed: the disk is full", extra={"deployment_id": dep.id, "error": str(exc)}
                )
                await asyncio.to_thread(_discard, staging)  # give its space back before recording the end
                await self._finish(dep, started, disk_full_reason(exc))
            else:
                log.exception("build failed unexpectedly", extra={"deployment_id": dep.id})
                await self._finish(dep, started, f"internal build error: {type(exc).__name__}")
        finally:
            if held is not None:
                self._release(fn.id, held)
            if not interrupted:  # keep the source of an interrupted build so the next start resumes it
                await asyncio.to_thread(_discard, staging)

    def _hold(self, function_id: str, code_hash: str) -> str:
        self._held.setdefault(function_id, Counter())[code_hash] += 1
        return code_hash

    def _release(self, function_id: str, code_hash: str) -> None:
        held = self._held.get(function_id)
        if held is not None:
            held[code_hash] -= 1
            if held[code_hash] <= 0:
                del held[code_hash]

    def _newer_active(self, function_id: str, deployment_id: str) -> bool:
        current = self._functions.get(function_id)
        return current is not None and (current.active_deployment_id or "") > deployment_id

    async def _materialise(self, staging: Path, tree: Path) -> None:
        """Write the code into tree/: an archive is unpacked by a child running as the jail user."""

        def fresh() -> bool:
            remove_tree(tree)  # left by an interrupted build; fd-based, any depth, never follows a link
            tree.mkdir(mode=0o700)
            if (staging / "ARCHIVE").exists():
                return True
            shutil.copytree(staging / "source", tree, dirs_exist_ok=True)  # orvad's own files
            return False

        if await asyncio.to_thread(fresh):
            data = await asyncio.to_thread((staging / "source" / "upload.bin").read_bytes)
            await unpack(data, tree, max_files=MAX_FILES, max_bytes=MAX_BYTES, timeout_s=_UNPACK_TIMEOUT_S)

    async def _install_deps(self, fn: Function, dep: Deployment, tree: Path) -> None:
        language = self._language(fn)
        argv = await asyncio.to_thread(install_argv, language, tree, self._interpreter_of(fn.runtime))
        if argv is None:
            await self._line(dep, "system", "no dependencies to install")
            return
        if self.install is None:
            raise BuildFailed(
                "dependencies cannot be installed: the build sandbox is unavailable on this host"
            )
        await self._line(
            dep, "system", "installing dependencies in the build sandbox: " + " ".join(argv[1:4]) + " ..."
        )

        no_space: list[str] = []

        async def on_line(stream: str, line: str) -> None:
            if not no_space and any(text in line for text in _DISK_FULL_TEXT):
                no_space.append(line.strip()[-200:])
            await self._line(dep, stream, line)

        cache = await asyncio.to_thread(self._prepare_cache, fn.id)
        job = InstallJob(fn, language, argv, tree, cache, self._timeout_s, on_line)
        try:
            code = await self._install_within_disk_cap(job)
        except (DiskCapExceeded, InsufficientStorage):
            # a build stopped for its disk use leaves no oversized cache behind for the other tenants
            await asyncio.to_thread(self._prepare_cache, fn.id)
            raise
        if code != 0 and no_space:
            await asyncio.to_thread(self._prepare_cache, fn.id)
            raise InsufficientStorage(f"the dependency install found no space: {no_space[0]}")
        if code != 0:
            raise BuildFailed(f"dependency install failed (exit code {code}); see the build log")
        escaping = await asyncio.to_thread(escaping_links, tree)
        if escaping:
            shown = ", ".join(repr(p) for p in escaping[:5]) + (
                f" and {len(escaping) - 5} more" if len(escaping) > 5 else ""
            )
            raise BuildFailed(
                f"the build created links that point outside the function's folder: {shown}; "
                "links may only point to files of the function itself"
            )

    def _prepare_cache(self, function_id: str) -> Path:
        """This function's own download cache (never another function's); emptied when it nears the disk cap."""
        cache = self.cache_dir(function_id)
        _private_dir(cache.parent, 0o711)
        try:
            oversized = cache.exists() and disk_usage(cache) > self._disk_mb * 1024 * 1024 // 2
        except UnsafeTree as exc:  # e.g. folders nested too deep: emptied, never failing every later build
            log.warning(
                "emptying a build cache orvad cannot walk",
                extra={"function_id": function_id, "error": str(exc)},
            )
            oversized = True
        if oversized:
            remove_tree(cache)
        _private_dir(cache, 0o700)
        return cache

    async def _install_within_disk_cap(self, job: InstallJob) -> int:
        """Run the install; stop it as soon as it passes ``build_disk_mb`` or the disk nears full.

        Two measures: a walk of the tree and cache (named files), and statvfs of the data dir's
        filesystem (space no name shows: files deleted but kept open, O_TMPFILE files).
        """
        assert self.install is not None
        cap = self._disk_mb * 1024 * 1024
        watch = BuildDiskWatch(self._disk, cap, await asyncio.to_thread(_build_usage, job.tree, job.cache))
        task: asyncio.Future[int] = asyncio.ensure_future(self.install(job))
        walk_every = _DISK_POLL_S
        next_walk = time.monotonic() + walk_every
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=_FREE_POLL_S)
                reason = watch.check(await asyncio.to_thread(self._disk.free))
                if reason is not None or done or time.monotonic() >= next_walk:
                    began = time.monotonic()
                    used = await asyncio.to_thread(_build_usage, job.tree, job.cache)
                    watch.named(used)
                    if used > cap:  # named files: say so, whichever measure noticed first
                        raise DiskCapExceeded(
                            f"the build wrote more than {self._disk_mb} MiB (its folder and download "
                            "cache together); raise ORVA_BUILD_DISK_MB or install fewer dependencies"
                        )
                    if reason is not None:
                        raise DiskCapExceeded(reason)
                    walk_every = max(_DISK_POLL_S, 4 * (time.monotonic() - began))
                    next_walk = time.monotonic() + walk_every
                if done:
                    return task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    @staticmethod
    def _promote(tree: Path, target: Path) -> None:
        try:
            seal(
                tree, 0 if os.geteuid() == 0 else None
            )  # the jail runs as 65534: readable, not writable, by it
        except UnsafeTree as exc:
            raise BuildFailed(str(exc)) from None
        _private_dir(target.parent, 0o711)
        if target.exists():  # a concurrent build of the same code won the race
            remove_tree(tree)
        else:
            tree.rename(target)
        mark_built(target)

    async def _share(self, dep: Deployment, target: Path) -> None:
        """Store the version packed, for the other nodes (before it is activated, so a node that learns of
        the activation finds it); a version too large to share still serves here, with a line saying so."""
        if self.shared is None or not self.shared.enabled:
            return
        try:
            shared = await self.shared.publish(dep.id, target)
        except (TooLarge, UnsafeTree) as exc:
            await self._line(dep, "system", f"this version is not shared with the other nodes: {exc}")
            return
        if shared is not None:
            reused = "stored" if shared.added else "the same packed tree is stored already"
            await self._line(
                dep,
                "system",
                f"shared with the other nodes: {shared.size} bytes packed ({shared.entries} entries) in "
                f"{shared.pack_ms:.0f} ms, sha256 {shared.blob_hash} ({reused})",
            )

    async def _check_import(self, fn: Function, dep: Deployment) -> CheckedWorker | None:
        """A fresh worker of the new version imports its entry module (importcheck.py); a failure fails
        the build with the traceback in the log, and the active version keeps serving."""
        if self._versions is None:
            return None
        try:
            checked = await self._versions.check_import(fn, dep)
        except CheckSkipped as exc:
            await self._line(dep, "system", f"import check skipped: {exc}")
            return None
        except ImportFailed as exc:
            for line in exc.lines:
                await self._line(dep, "stderr", line)
            raise
        await self._line(
            dep,
            "system",
            f"import check: {fn.entrypoint} imported on a fresh worker in {checked.took_ms:.0f} ms",
        )
        return checked

    async def _activate(
        self, fn: Function, dep: Deployment, target: Path, checked: CheckedWorker | None = None
    ) -> None:
        # the reconciler warms the new version before the function's record names it
        await self._changes.publish(VersionBuilt(fn, dep, target, checked))

    async def _finish(self, dep: Deployment, started: float | None, error: str | None) -> None:
        """Record the end of a build (FunctionService.build_ended: a success switches the function to it in
        the same transaction).

        A build that succeeds after a newer deployment was activated ends ``superseded``: the newest
        submitted deployment wins. While the disk is too full to record the end, it is retried
        (without holding the functions' lock in between) until it is written: never left ``building``.
        """
        pause, attempt = 0.05, 0
        while True:
            try:
                dep = await self._record_end(dep, started, error, first=attempt == 0)
                break
            except InsufficientStorage:
                if attempt == 0:
                    log.error(
                        "the end of a build cannot be recorded: the disk is full; retrying until space returns",
                        extra={"deployment_id": dep.id, "error": error},
                    )
                attempt += 1
                await asyncio.sleep(pause)
                pause = min(_RECORD_RETRY_MAX_S, pause * 2)
        if attempt:
            log.info(
                "the end of a build was recorded after the disk had space again",
                extra={"deployment_id": dep.id, "attempts": attempt + 1},
            )
        status = str(dep.status)  # the SSE event name and the metrics label: a plain string
        buildlog = self._logs.get(dep.id)
        if buildlog is not None:
            await buildlog.emit(status, deployment_json(dep))
        self._bus.publish("deployment", deployment_json(dep))
        if self._observe_build is not None:
            self._observe_build(
                status,
                dep.duration_ms / 1000
                if dep.duration_ms is not None and dep.source != DeploymentSource.ROLLBACK
                else None,
            )
        self._seq.pop(dep.id, None)
        loop = asyncio.get_running_loop()
        loop.call_later(_LIVE_LOG_KEEP_S, self._logs.pop, dep.id, None)

    async def _record_end(
        self, dep: Deployment, started: float | None, error: str | None, *, first: bool
    ) -> Deployment:
        """The function service writes the end and what it does to the function (one transaction);
        ``first``: the first attempt (later ones, while the disk is full, add no log line again)."""
        if error and first:
            await self._line(dep, "system", f"build failed: {error}")
        duration_ms = int((time.monotonic() - started) * 1000) if started is not None else None
        # the log lines (queued in the batch writer) are stored before the end is: a client that sees the
        # deployment finished reads its whole log
        try:
            await self._store.flush_logs()
        except InsufficientStorage:
            raise  # _finish retries until the disk has space
        except Exception:  # the lines stay queued for the writer's next pass; the end is recorded anyway
            log.warning("the build log could not be written before the build's end", exc_info=True)
        end = await self._functions.build_ended(dep, error=error, duration_ms=duration_ms)
        if end.status == DeploymentStatus.SUPERSEDED:  # written once: the attempt that succeeded
            await self._line(
                end, "system", "a newer deployment is active already; this one was not activated"
            )
        return end

    async def collect(self, function_id: str) -> list[str]:
        """Remove built versions beyond the newest ``versions_kept``; never the active one, one in use,
        or one a running build or rollback holds. Callers hold the function's lock."""
        fn = self._functions.get(function_id)
        if fn is None:
            return []
        active = await self._store.deployment(fn.active_deployment_id) if fn.active_deployment_id else None
        held = set(self._held.get(function_id, ()))
        return await collect(
            self.function_dir(function_id) / "versions",
            await self._store.succeeded_hashes(function_id),
            active.code_hash if active else None,
            lambda: self._in_use(function_id) | held,
            self._versions_kept,
        )

    def _in_use(self, function_id: str) -> set[str]:
        return self._versions.hashes_in_use(function_id) if self._versions is not None else set()

    async def _phase(self, dep: Deployment, phase: Phase) -> Deployment:
        ts = now_iso()
        dep = dep.entering(phase, ts)
        await self._save(dep)
        buildlog = self._logs.get(dep.id)
        if buildlog is not None:
            await buildlog.emit("phase", {"phase": phase, "ts": ts})
        return dep

    async def _save(self, dep: Deployment, note: str | None = None) -> None:
        await self._store.update_deployment(dep)
        if note:
            await self._line(dep, "system", note)
        self._bus.publish("deployment", deployment_json(dep))

    async def _line(self, dep: Deployment, stream: str, line: str) -> None:
        buildlog = self._logs.setdefault(dep.id, BuildLog(dep.id))
        if buildlog.lines >= MAX_LINES:
            buildlog.omitted += 1
            if buildlog.omitted > 1:
                return
            stream, line = "system", f"build log reached {MAX_LINES} lines; further lines are not kept"
        buildlog.lines += 1
        seq = self._seq.get(dep.id, 0) + 1
        self._seq[dep.id] = seq
        ts = now_iso()
        line = line.rstrip("\n")[:4096]
        self._store.append_log(dep.id, seq, stream, line, ts)
        await buildlog.emit("log", {"seq": seq, "stream": stream, "line": line, "ts": ts})

    # rollback
    async def rollback(self, fn: Function, deployment_id: str | None, code_hash: str | None) -> Deployment:
        if (deployment_id is None) == (code_hash is None):
            raise ValidationError(
                "send exactly one of deployment_id or code_hash", details={"field": "deployment_id"}
            )
        listed = f"GET /api/v1/functions/{fn.name}/deployments lists its versions"
        if deployment_id is not None:  # a whole id, or a unique prefix of one (versionrefs.py)
            target = await resolve_deployment(self._store, fn, deployment_id, "deployment_id")
            if target is None or target.function_id != fn.id:
                raise VersionNotFound(
                    f"no deployment {deployment_id} of function {fn.name}",
                    details={"deployment_id": deployment_id},
                    hint=listed,
                )
            if target.status != DeploymentStatus.SUCCEEDED:
                raise ValidationError(
                    f"deployment {target.id} did not succeed; only built versions can be rolled back to",
                    details={"field": "deployment_id"},
                    hint=listed,
                )
        else:  # a whole code hash, or a unique prefix of one
            full = await resolve_code_hash(self._store, fn, str(code_hash))
            found = await self._store.succeeded_by_hash(fn.id, full) if full else None
            if found is None:
                raise VersionNotFound(
                    f"no succeeded deployment of {fn.name} has a code hash starting with {code_hash}",
                    details={"code_hash": code_hash},
                    hint=listed,
                )
            target = found
        assert target.code_hash is not None
        async with self._lock(fn.id):  # GC and activations of this function wait for the rollback
            fn = self._functions.get(fn.id) or fn
            active = (
                await self._store.deployment(fn.active_deployment_id) if fn.active_deployment_id else None
            )
            if active is not None and active.code_hash == target.code_hash:
                raise ValidationError(
                    "that version is already active",
                    details={"field": "deployment_id"},
                    hint=f"pick another deployment from GET /api/v1/functions/{fn.name}/deployments",
                )
            path = self.version_dir(fn.id, target.code_hash)
            if not await asyncio.to_thread(is_built, path):
                raise VersionGCd(
                    f"version {target.code_hash[:12]} was removed by the garbage collector",
                    hint="roll back to one of details.available_hashes, or deploy the code again",
                    details={
                        "code_hash": target.code_hash,
                        "available_hashes": await self.available_hashes(fn.id),
                    },
                )
            now = now_iso()
            dep = await self._store.insert_deployment(
                Deployment(
                    id=uuid7(),
                    function_id=fn.id,
                    version=0,
                    code_hash=target.code_hash,
                    status=DeploymentStatus.BUILDING,
                    phase=Phase.ACTIVATING,
                    phases=[PhaseMark(phase=Phase.ACTIVATING, ts=now)],
                    source=DeploymentSource.ROLLBACK,
                    parent_deployment_id=target.id,
                    error_message=None,
                    submitted_at=now,
                    started_at=now,
                    finished_at=None,
                    duration_ms=None,
                )
            )
            started = time.monotonic()
            # a rollback has a log too: the deployments list opens every row's log
            await self._line(
                dep,
                "system",
                f"rolled back to version {target.version} (deployment {target.id}, "
                f"code hash {target.code_hash})",
            )
            await self._activate(fn, dep, path)
            await self._finish(dep, started, None)
            await self.collect(fn.id)
        final = await self._store.deployment(dep.id)
        assert final is not None
        return final

    async def available_hashes(self, function_id: str) -> list[str]:
        hashes = await self._store.succeeded_hashes(function_id)
        built = await asyncio.to_thread(
            lambda: {h for h in hashes if is_built(self.version_dir(function_id, h))}
        )
        return [h for h in hashes if h in built]

    async def apply(self, change: Change) -> None:
        """A deleted function's files go (subscribed after the reconciler, which drained its pool)."""
        if isinstance(change, FunctionDeleted):
            await self.remove_function(change.fn.id)

    async def remove_function(self, function_id: str) -> None:
        await asyncio.to_thread(_discard, self.function_dir(function_id))
        await asyncio.to_thread(_discard, self.cache_dir(function_id))
        if self.shared is not None:  # blobs only the deleted function's deployments named
            try:
                await self.shared.sweep()
            except Exception:
                log.warning("unnamed version blobs could not be swept", exc_info=True)
        self._locks.pop(function_id, None)
        self._held.pop(function_id, None)

    def _language(self, fn: Function) -> str:
        language = self._language_of(fn.runtime)
        if language is None:
            raise BuildFailed(f"runtime {fn.runtime} is not available on this host")
        return language


def _build_usage(tree: Path, cache: Path) -> int:
    """Bytes a build's folder (/code) and download cache (/cache) hold; BuildFailed when one nests too deep."""
    total = 0
    for root, shown in ((tree, "/code"), (cache, "/cache")):
        try:
            total += disk_usage(root)
        except TooDeep as exc:
            raise BuildFailed(
                f"the build made {exc} (in {shown}); orvad does not keep trees that deep"
            ) from None
    return total


def _discard(path: Path) -> None:
    """Remove a tree a tenant may have written (any depth, no link followed); a failure is logged, not raised."""
    try:
        remove_tree(path)
    except OSError as exc:
        log.error("a folder could not be removed", extra={"path": str(path), "error": str(exc)})


def _private_dir(path: Path, mode: int) -> None:
    """Create ``path`` (and missing parents) with ``mode``, and set it when it exists with another."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    if path.stat().st_mode & 0o777 != mode:
        path.chmod(mode)
