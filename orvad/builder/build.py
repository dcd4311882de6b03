"""The deploy pipeline: queued -> extracting -> installing -> activating -> succeeded | failed.

Sources are written to ``<data>/functions/<fid>/staging/<deployment>/`` before the API answers
202, so a restart can resume any build. A finished build lives in ``versions/<code hash>/``
(content-addressed: the same tree deployed twice re-uses the finished build) and is switched
to by one database transaction; the old version serves until then.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from orvad.builder.archive import ArchiveError, extract, tree_hash
from orvad.builder.buildlog import MAX_LINES, BuildLog
from orvad.builder.gc import collect
from orvad.builder.installer import BuildFailed, InstallJob, InstallRunner
from orvad.builder.queue import BuildQueue
from orvad.bus import Bus
from orvad.clock import now_iso
from orvad.errors import NotFound, ValidationError, VersionGCd
from orvad.functions import FunctionService
from orvad.ids import uuid7
from orvad.store.functions import Deployment, Function, FunctionStore

log = logging.getLogger(__name__)

BUILT_MARKER = ".orva-built"
_LIVE_LOG_KEEP_S = 600.0  # a finished build's events stay in memory this long for late SSE clients
MANIFESTS = {"python": "requirements.txt", "node": "package.json"}


def _make_world_readable(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        path.chmod(mode | 0o444 | (0o111 if path.is_dir() or mode & 0o100 else 0))


ActivateHook = Callable[[Function, Deployment, Path], Awaitable[None]]


def install_argv(language: str, tree: Path, interpreter: str) -> list[str] | None:
    """The dependency install command for this tree, or None when there is nothing to install."""
    if language == "python":
        req = tree / "requirements.txt"
        if not req.exists() or not any(ln.strip() and not ln.strip().startswith("#") for ln in req.read_text().splitlines()):
            return None
        return [interpreter, "-m", "pip", "install", "--no-input", "--disable-pip-version-check", "--no-warn-script-location",
                "--break-system-packages",  # Debian marks its Python externally managed; --target is ours
                "--progress-bar", "off", "--cache-dir", "/cache/pip", "--target", "/code/.packages",
                "-r", "/code/requirements.txt"]
    manifest = tree / "package.json"
    if not manifest.exists():
        return None
    try:
        deps = json.loads(manifest.read_text()).get("dependencies") or {}
    except (ValueError, AttributeError):
        raise BuildFailed("package.json is not a valid JSON object") from None
    if not deps:
        return None
    verb = "ci" if (tree / "package-lock.json").exists() else "install"
    return ["/usr/bin/npm", verb, "--omit=dev", "--no-audit", "--no-fund", "--cache", "/cache/npm",
            "--prefix", "/code"]


def manifest_for(language: str, dependencies: str) -> str:
    """Turn the inline ``dependencies`` field into requirements.txt or package.json text."""
    text = dependencies.strip()
    if language == "python" or text.startswith("{"):
        if language == "node":
            try:
                parsed = json.loads(text)
            except ValueError:
                raise ValidationError("dependencies looks like package.json but is not valid JSON",
                                      details={"field": "dependencies"}) from None
            if not isinstance(parsed, dict):
                raise ValidationError("dependencies JSON must be an object", details={"field": "dependencies"})
            return json.dumps(parsed, indent=2) + "\n"
        return "\n".join(p for p in text.replace(",", "\n").split("\n") if p.strip()) + "\n"
    deps: dict[str, str] = {}
    for spec in text.replace(",", " ").split():
        name, sep, version = spec.rpartition("@") if spec.rfind("@") > 0 else (spec, "", "")
        deps[name if sep else spec] = version if sep else "*"
    return json.dumps({"name": "orva-function", "private": True, "dependencies": deps}, indent=2) + "\n"


class Builder:
    def __init__(self, *, root: Path, store: FunctionStore, functions: FunctionService, bus: Bus,
                 language_of: Callable[[str], str | None], interpreter_of: Callable[[str], str],
                 install: InstallRunner | None, concurrency: int, backlog: int, timeout_s: float,
                 versions_kept: int) -> None:
        self.root = root
        self._store = store
        self._functions = functions
        self._bus = bus
        self._language_of = language_of
        self._interpreter_of = interpreter_of
        self.install = install
        self._timeout_s = timeout_s
        self._versions_kept = versions_kept
        # Code hashes a running worker uses (the pool sets this); GC never removes those.
        self.in_use: Callable[[str], set[str]] = lambda function_id: set()
        self.queue = BuildQueue(self._build, concurrency=concurrency, backlog=backlog)
        self._logs: dict[str, BuildLog] = {}
        self._seq: dict[str, int] = {}
        self.on_activate: list[ActivateHook] = []
        self.on_finished: list[Callable[[Deployment], None]] = []  # e.g. build metrics

    # paths
    def function_dir(self, function_id: str) -> Path:
        return self.root / function_id

    def version_dir(self, function_id: str, code_hash: str) -> Path:
        return self.function_dir(function_id) / "versions" / code_hash

    def _staging(self, deployment_id: str, function_id: str) -> Path:
        return self.function_dir(function_id) / "staging" / deployment_id

    # lifecycle
    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.root.chmod(0o711)
        self.queue.start()
        for dep in await self._store.unfinished_deployments():
            if (self._staging(dep.id, dep.function_id) / "source").exists():
                log.info("resuming build interrupted by a restart", extra={"deployment_id": dep.id})
                await self._save(replace(dep, status="queued", phase="queued"), note="resumed after a restart")
                self.queue.submit(dep.id)
            else:
                await self._finish(dep, None, "orvad restarted before the upload was stored; deploy again")

    async def stop(self) -> None:
        await self.queue.stop()

    def live_log(self, deployment_id: str) -> BuildLog | None:
        return self._logs.get(deployment_id)

    # submissions
    async def submit_inline(self, fn: Function, code: str, filename: str, dependencies: str | None) -> Deployment:
        language = self._language(fn)
        files = {filename: code}
        if dependencies and dependencies.strip():
            files[MANIFESTS[language]] = manifest_for(language, dependencies)

        def write(source: Path) -> None:
            for name, text in files.items():
                path = source / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)

        return await self._submit(fn, "inline", write)

    async def submit_archive(self, fn: Function, data: bytes) -> Deployment:
        def write(source: Path) -> None:
            (source / "upload.bin").write_bytes(data)

        return await self._submit(fn, "archive", write, archive=True)

    async def _submit(self, fn: Function, source_kind: str, write: Callable[[Path], None], *,
                      archive: bool = False) -> Deployment:
        dep = Deployment(id=uuid7(), function_id=fn.id, version=0, code_hash=None, status="queued", phase="queued",
                         phases=[{"phase": "queued", "ts": now_iso()}], source=source_kind,
                         parent_deployment_id=None, error_message=None, submitted_at=now_iso(), started_at=None,
                         finished_at=None, duration_ms=None)
        staging = self._staging(dep.id, fn.id)

        def prepare() -> None:
            self.function_dir(fn.id).mkdir(parents=True, exist_ok=True, mode=0o711)
            staging.mkdir(parents=True, mode=0o711)  # the build jail reaches tree/ through it
            (staging / "source").mkdir(mode=0o700)  # the upload itself stays private
            write(staging / "source")
            if archive:
                (staging / "ARCHIVE").touch()

        await asyncio.to_thread(prepare)
        dep = await self._store.insert_deployment(dep)
        self._logs[dep.id] = BuildLog(dep.id)
        try:
            self.queue.submit(dep.id)
        except Exception:
            await self._finish(dep, None, "the build queue was full")
            raise
        if fn.status in ("created", "error"):
            async with self._functions.lock:
                current = self._functions.get(fn.id)
                if current is not None and current.active_deployment_id is None:
                    new = replace(current, status="building", updated_at=now_iso())
                    await self._store.update_function(new)
                    await self._functions.set_state(new)
        self._bus.publish("deployment", self.record(dep))
        return dep

    # the pipeline
    async def _build(self, deployment_id: str) -> None:
        dep = await self._store.deployment(deployment_id)
        fn = self._functions.get(dep.function_id) if dep is not None else None
        if dep is None or fn is None:  # the function (and with it its deployments) was deleted meanwhile
            log.info("build skipped: its function is gone", extra={"deployment_id": deployment_id})
            return
        self._logs.setdefault(dep.id, BuildLog(dep.id))
        started = time.monotonic()
        staging = self._staging(dep.id, fn.id)
        tree = staging / "tree"
        dep = replace(dep, status="building", started_at=now_iso())
        interrupted = False
        try:
            dep = await self._phase(dep, "extracting")
            await asyncio.to_thread(self._materialise, staging, tree)
            code_hash = await asyncio.to_thread(tree_hash, tree)
            dep = replace(dep, code_hash=code_hash)
            await self._line(dep, "system", f"code hash {code_hash}")
            target = self.version_dir(fn.id, code_hash)
            if (target / BUILT_MARKER).exists():
                await self._line(dep, "system", "this exact code was built before; re-using that build")
            else:
                dep = await self._phase(dep, "installing")
                await self._install_deps(fn, dep, tree)
                await asyncio.to_thread(self._promote, tree, target)
            dep = await self._phase(dep, "activating")
            await self._activate(fn, dep, target)
            await self._finish(dep, started, None)
        except asyncio.CancelledError:
            interrupted = True
            await self._line(dep, "system", "build interrupted by shutdown; it resumes on the next start")
            raise
        except (BuildFailed, ArchiveError) as exc:
            await self._finish(dep, started, str(exc))
        except Exception as exc:
            log.exception("build failed unexpectedly", extra={"deployment_id": dep.id})
            await self._finish(dep, started, f"internal build error: {type(exc).__name__}")
        finally:
            if not interrupted:  # keep the source of an interrupted build so the next start resumes it
                await asyncio.to_thread(shutil.rmtree, staging, True)

    def _materialise(self, staging: Path, tree: Path) -> None:
        if tree.exists():
            shutil.rmtree(tree)
        tree.mkdir(parents=True)
        source = staging / "source"
        if (staging / "ARCHIVE").exists():
            extract((source / "upload.bin").read_bytes(), tree)
        else:
            shutil.copytree(source, tree, dirs_exist_ok=True)

    async def _install_deps(self, fn: Function, dep: Deployment, tree: Path) -> None:
        language = self._language(fn)
        argv = install_argv(language, tree, self._interpreter_of(fn.runtime))
        if argv is None:
            await self._line(dep, "system", "no dependencies to install")
            return
        if self.install is None:
            raise BuildFailed("dependencies cannot be installed: the build sandbox is unavailable on this host")
        await self._line(dep, "system", "installing dependencies in the build sandbox: " + " ".join(argv[1:4]) + " ...")

        async def on_line(stream: str, line: str) -> None:
            await self._line(dep, stream, line)

        cache = self.root.parent / "build-cache"
        job = InstallJob(fn, language, argv, tree, cache, self._timeout_s, on_line)
        code = await self.install(job)
        if code != 0:
            raise BuildFailed(f"dependency install failed (exit code {code}); see the build log")

    @staticmethod
    def _promote(tree: Path, target: Path) -> None:
        (tree / BUILT_MARKER).touch()
        _make_world_readable(tree)  # the jail runs as 65534, not as orvad's user
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
        if target.exists():  # a concurrent build of the same code won the race
            shutil.rmtree(tree)
            return
        tree.rename(target)

    async def _activate(self, fn: Function, dep: Deployment, target: Path) -> None:
        for hook in self.on_activate:  # e.g. the pool warms the new version before it takes traffic
            await hook(fn, dep, target)

    async def _finish(self, dep: Deployment, started: float | None, error: str | None) -> None:
        """Record the end of a build; on success switch the function to it in the same transaction."""
        now = now_iso()
        status = "failed" if error else "succeeded"
        dep = replace(dep, status=status, phase=status, phases=[*dep.phases, {"phase": status, "ts": now}],
                      error_message=error, finished_at=now,
                      duration_ms=int((time.monotonic() - started) * 1000) if started is not None else None)
        async with self._functions.lock:
            fn = self._functions.get(dep.function_id)
            new_fn = None
            if fn is not None:
                if error is None and (fn.active_deployment_id or "") < dep.id:
                    new_fn = replace(fn, active_deployment_id=dep.id,
                                     status="inactive" if fn.status == "inactive" else "active", updated_at=now)
                elif error is None:
                    await self._line(dep, "system", "a newer deployment is active already; this one was not activated")
                elif fn.active_deployment_id is None and fn.status == "building":
                    new_fn = replace(fn, status="error", updated_at=now)
            if error:
                await self._line(dep, "system", f"build failed: {error}")
            await self._store.update_deployment(dep, new_fn)
            if new_fn is not None:
                await self._functions.set_state(new_fn)
        buildlog = self._logs.get(dep.id)
        if buildlog is not None:
            await buildlog.emit(status, self.record(dep))
        self._bus.publish("deployment", self.record(dep))
        for hook in self.on_finished:
            hook(dep)
        self._seq.pop(dep.id, None)
        loop = asyncio.get_running_loop()
        loop.call_later(_LIVE_LOG_KEEP_S, self._logs.pop, dep.id, None)
        if error is None:
            await self.collect(dep.function_id)

    async def collect(self, function_id: str) -> list[str]:
        """Remove built versions beyond the newest ``versions_kept``, never the active or an in-use one."""
        fn = self._functions.get(function_id)
        if fn is None:
            return []
        active = await self._store.deployment(fn.active_deployment_id) if fn.active_deployment_id else None
        return await collect(self.function_dir(function_id) / "versions", await self._store.succeeded_hashes(function_id),
                             active.code_hash if active else None, lambda: self.in_use(function_id),
                             self._versions_kept)

    async def _phase(self, dep: Deployment, phase: str) -> Deployment:
        ts = now_iso()
        dep = replace(dep, phase=phase, phases=[*dep.phases, {"phase": phase, "ts": ts}])
        await self._save(dep)
        buildlog = self._logs.get(dep.id)
        if buildlog is not None:
            await buildlog.emit("phase", {"phase": phase, "ts": ts})
        return dep

    async def _save(self, dep: Deployment, note: str | None = None) -> None:
        await self._store.update_deployment(dep)
        if note:
            await self._line(dep, "system", note)
        self._bus.publish("deployment", self.record(dep))

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
            raise ValidationError("send exactly one of deployment_id or code_hash", details={"field": "deployment_id"})
        if deployment_id is not None:
            target = await self._store.deployment(deployment_id)
            if target is None or target.function_id != fn.id:
                raise NotFound(f"no deployment {deployment_id} of function {fn.name}", code="VERSION_NOT_FOUND",
                               details={"deployment_id": deployment_id})
            if target.status != "succeeded":
                raise ValidationError(f"deployment {deployment_id} did not succeed; only built versions can be "
                                      "rolled back to", details={"field": "deployment_id"})
        else:
            found = await self._store.succeeded_by_hash(fn.id, str(code_hash))
            if found is None:
                raise NotFound(f"no succeeded deployment of {fn.name} has code hash {code_hash}",
                               code="VERSION_NOT_FOUND", details={"code_hash": code_hash})
            target = found
        assert target.code_hash is not None
        active = await self._store.deployment(fn.active_deployment_id) if fn.active_deployment_id else None
        if active is not None and active.code_hash == target.code_hash:
            raise ValidationError("that version is already active", details={"field": "deployment_id"},
                                  hint="pick another deployment from GET /api/v1/functions/{id}/deployments")
        path = self.version_dir(fn.id, target.code_hash)
        if not (path / BUILT_MARKER).exists():
            raise VersionGCd(f"version {target.code_hash[:12]} was removed by the garbage collector",
                             hint="roll back to one of details.available_hashes, or deploy the code again",
                             details={"code_hash": target.code_hash,
                                      "available_hashes": await self.available_hashes(fn.id)})
        now = now_iso()
        dep = await self._store.insert_deployment(Deployment(
            id=uuid7(), function_id=fn.id, version=0, code_hash=target.code_hash, status="building",
            phase="activating", phases=[{"phase": "activating", "ts": now}], source="rollback",
            parent_deployment_id=target.id, error_message=None, submitted_at=now, started_at=now,
            finished_at=None, duration_ms=None))
        started = time.monotonic()
        await self._activate(fn, dep, path)
        await self._finish(dep, started, None)
        final = await self._store.deployment(dep.id)
        assert final is not None
        return final

    async def available_hashes(self, function_id: str) -> list[str]:
        return [h for h in await self._store.succeeded_hashes(function_id)
                if (self.version_dir(function_id, h) / BUILT_MARKER).exists()]

    async def remove_function(self, function_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.function_dir(function_id), True)

    def _language(self, fn: Function) -> str:
        language = self._language_of(fn.runtime)
        if language is None:
            raise BuildFailed(f"runtime {fn.runtime} is not available on this host")
        return language

    @staticmethod
    def record(dep: Deployment) -> dict[str, Any]:
        return asdict(dep)
