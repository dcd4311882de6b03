"""Spare jails (issue 26): a worker's jail and interpreter started before its function is known, one per runtime,
handed a function at that runtime's next cold start.

A spare is the usual jail (the same nsjail flags, binds, seccomp policy and rlimits, built by the spawner) with two
differences: its /code is bound read-only from an empty folder of its own, and its boot (runtimes/*/spare.*) says
``spare`` and waits for one ``environment`` frame before it runs the adapter. Handing it a function:

1. the version's files are hard-linked into that folder (orvad/builder/safetree.py link_tree: never following a link);
2. the function's memory limit and CPU quota are written to the jail's cgroups (orvad/host/cgroups.py);
3. the environment frame (variables, secrets, ORVA_*) is sent; the adapter loads the handler and says ready.

Nothing of the function reaches the jail before its code and limits are in place, and a spare serves one function
only: it becomes that function's worker and is never given back. A failure before the environment frame (a version
on another filesystem, a limit the kernel refuses) stops the spare and the caller starts a worker the usual way.

Used only for functions without egress networking (a jail's network namespace is fixed at its start), on hosts with
the cgroup v1 layout, and for versions of up to ``max_files`` entries (linking costs about as much as a start past
that). Node sizes its heap and threads from the cgroup limits it finds at start, so a Node spare is started with
its function's memory and CPU and kept per (runtime, memory, CPU); Python reads neither, so one Python spare per
runtime serves every size. The first cold start of a kind starts its spare; each hand-over starts the next one in
the background; at most ``max_waiting`` wait at once (the least recently wanted goes first).

Spares count in the host memory gate (orvad/pool/manager.py) at the memory limit they wait under, but never keep a
worker out (a spare is only a guess at the next cold start): one is started only into room no worker holds
(``fits``), and once workers hold that room the waiting ones are stopped, the least recently wanted first
(``trim``: at each cold start, after its own spare was taken, and every autoscaler tick).
``ORVA_SPARE_JAILS=false`` turns them off (docs/PERFORMANCE.md, "Cold starts").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from orvad.builder.safetree import TooManyFiles, link_tree, remove_tree
from orvad.errors import WorkerCrashed
from orvad.host.cgroups import write_v1_limits
from orvad.pool.worker import Worker
from orvad.services.runtimes import Runtime
from orvad.tasks import Tasks

log = logging.getLogger(__name__)

MAX_FILES = 512
# a waiting Python spare's memory limit until it is handed a function (it uses about 5 MB)
SPARE_MEMORY_MB = 64
# the jail's user binds a spare's folder at its start; at the hand-over it takes the version folder's mode
_SPARE_FOLDER_MODE = 0o755

MAX_WAITING = 4


class Shape(NamedTuple):
    """What a spare is started with besides its runtime: the limits a runtime reads at its start."""

    memory_mb: int
    cpus: float


PYTHON_SHAPE = Shape(SPARE_MEMORY_MB, 1.0)  # Python reads no limit at start: one spare serves every size

# (runtime, its code folder, its shape, the on_exit that removes that folder) -> a Worker not started yet
MakeSpare = Callable[[Runtime, Path, Shape, Callable[[Worker], None]], Worker]


_Key = tuple[str, str, Shape]  # (runtime id, interpreter, shape)


# Variables an interpreter reads at its start (a spare has started already): a function that sets one starts
# its jails the usual way. Python: PYTHON* (PYTHONPATH, PYTHONHASHSEED, ...); Node: NODE_* (NODE_OPTIONS, ...),
# libuv's UV_*, OpenSSL's (initialised at Node's start); both: the locale and the time zone.
_READ_AT_START_PREFIXES = ("PYTHON", "NODE_", "UV_", "OPENSSL_", "LC_")
_READ_AT_START = frozenset({"LANG", "LANGUAGE", "TZ"})


def read_at_start(variable: str) -> bool:
    return variable in _READ_AT_START or variable.startswith(_READ_AT_START_PREFIXES)


class _Spare(NamedTuple):
    worker: Worker
    folder: Path


class SpareJails:
    def __init__(
        self,
        *,
        folder: Path,
        make: MakeSpare,
        tasks: Tasks,
        enabled: bool = True,
        max_files: int = MAX_FILES,
        max_waiting: int = MAX_WAITING,
        start_timeout_s: float = 30.0,
        observe_used: Callable[[str], None] = lambda runtime: None,
        fits: Callable[[int], bool] = lambda memory_mb: True,
    ) -> None:
        self.enabled = enabled
        self._folder = folder
        self._make = make
        self._tasks = tasks
        self._max_files = max_files
        self._max_waiting = max_waiting
        self._start_timeout_s = start_timeout_s
        self._observe_used = observe_used
        self._fits = fits  # the memory gate: may one more spare of this many MB be started
        self._stock: dict[_Key, _Spare] = {}  # waiting spares, the least recently wanted first
        self._starting: set[_Key] = set()
        self._too_many: set[str] = set()  # version folders past max_files: started the usual way
        self._closed = False

    def prepare(self) -> None:
        """At orvad's start: the folders a killed orvad's spares left are removed (hard links, no data)."""
        if self.enabled:
            remove_tree(self._folder)
            self._folder.mkdir(mode=0o711, parents=True, exist_ok=True)

    def waiting(self) -> int:
        """Spares started and waiting for a function (orva_spare_jails_waiting)."""
        return sum(1 for spare in self._stock.values() if spare.worker.alive)

    def reserved_mb(self) -> int:
        """The memory limits of the waiting spares (the memory gate counts them). One being started is counted
        once it waits (and stopped then if workers took the room meanwhile)."""
        return sum(key[2].memory_mb for key in self._stock)

    def trim(self) -> None:
        """Stop waiting spares, the least recently wanted first, while workers and spares together are past the
        memory gate's cap (workers were admitted into the spares' room)."""
        while self._stock and not self._fits(0):
            key = next(iter(self._stock))
            self._discard(self._stock.pop(key).worker)
            log.info("a spare jail stopped: workers need its memory", extra={"runtime": key[0]})

    async def take(
        self,
        runtime: Runtime,
        *,
        source: Path,
        environment: dict[str, str],
        name: str,
        memory_mb: int,
        cpus: float,
        on_log_drop: Callable[[int], None] | None,
        timeout_s: float = 30.0,
    ) -> Worker | None:
        """This runtime's spare, handed the function; None when there is none to hand it to (the caller
        starts a worker the usual way). Raises WorkerCrashed as ``Worker.start`` does once the environment is
        sent (the function's own start failed)."""
        if not self.enabled or self._closed:
            return None
        # not for a version past max_files, nor a variable the interpreter would have read at its start
        usable = str(source) not in self._too_many and not any(map(read_at_start, environment))
        shape = PYTHON_SHAPE if runtime.language == "python" else Shape(memory_mb, cpus)
        key = (runtime.id, runtime.interpreter, shape)
        spare = self._stock.pop(key, None) if usable else None
        self.trim()  # this worker is admitted already: the spares it leaves waiting must fit beside it
        if not usable:
            return None
        self._replenish(runtime, key)
        if spare is None:
            return None
        worker = spare.worker
        started = time.monotonic()
        if not await self._prepared(spare, source, name, memory_mb=memory_mb, cpus=cpus):
            return None
        try:
            await worker.hand_over(
                environment, timeout_s, name=name, memory_mb=memory_mb, on_log_drop=on_log_drop
            )
        except BaseException:  # a value the frame cannot carry, or cancelled: no spare is left running
            self._discard(worker)
            raise
        worker.spawn_s = time.monotonic() - started  # what the request waited: the links, limits and boot
        self._observe_used(runtime.language)
        return worker

    async def _prepared(self, spare: _Spare, source: Path, name: str, *, memory_mb: int, cpus: float) -> bool:
        """The version's files linked into the spare's folder and the function's limits on its cgroups, with the
        spare still alive after both; False (the spare stopped) when that could not be done."""
        worker = spare.worker
        linking = asyncio.ensure_future(
            asyncio.to_thread(link_tree, source, spare.folder, limit=self._max_files)
        )
        try:
            await asyncio.shield(linking)
            # alive before and after the writes (its pidfd): the pid named its cgroups all along, since a pid is
            # reused only once its process is reaped
            if worker.jail_pid is None or not worker.alive or not worker.jailed_process_alive():
                raise ProcessLookupError("the spare ended before it was handed the function")
            write_v1_limits(worker.jail_pid, memory_mb=memory_mb, cpus=cpus)
            if not worker.jailed_process_alive():
                raise ProcessLookupError("the spare ended while it was handed the function")
        except TooManyFiles:
            self._too_many.add(str(source))
            self._discard(worker)
            return False
        except (OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.EXDEV:
                self.enabled = False
                log.warning(
                    "spare jails are off: the spares folder and the versions are on different filesystems",
                    extra={"folder": str(self._folder)},
                )
            else:
                log.warning(
                    "a spare jail could not be handed a function; starting its worker the usual way",
                    extra={"function": name, "reason": f"{type(exc).__name__}: {exc}"[:300]},
                )
            self._discard(worker)
            return False
        except BaseException:
            # cancelled (its pool closed): the links made so far finish, then the spare goes
            self._tasks.start(f"orva-spare-stop-{worker.name}", self._stop_after(linking, worker))
            raise
        return True

    async def _stop_after(self, linking: asyncio.Future[int], worker: Worker) -> None:
        with contextlib.suppress(Exception):
            await linking
        await worker.stop(grace_s=0)

    async def close(self) -> None:
        """Stop the waiting spares (orvad stopping); spares being started stop when their task is cancelled."""
        self._closed = True
        spares = list(self._stock.values())
        self._stock.clear()
        await asyncio.gather(*(spare.worker.stop(grace_s=0) for spare in spares))

    def _replenish(self, runtime: Runtime, key: _Key) -> None:
        if key in self._stock:
            self._stock[key] = self._stock.pop(key)  # wanted now: the last to go
            return
        if key in self._starting or self._closed or len(self._starting) >= self._max_waiting:
            return
        # at most max_waiting: the least recently wanted make way, which frees their room in the memory gate too
        over = len(self._stock) + len(self._starting) + 1 - self._max_waiting
        oldest = list(self._stock)[: max(0, over)]
        if not self._fits(key[2].memory_mb - sum(k[2].memory_mb for k in oldest)):
            return  # no room for a guess beside the workers: none is stopped for it either
        for k in oldest:
            self._discard(self._stock.pop(k).worker)
        self._starting.add(key)
        self._tasks.start(f"orva-spare-{runtime.id}", self._start(runtime, key))

    async def _start(self, runtime: Runtime, key: _Key) -> None:
        try:
            worker, folder = await self._started(runtime, key)
        finally:
            self._starting.discard(key)
        if worker is None:
            return
        if self._closed or not self._fits(key[2].memory_mb):  # workers took the room while it started
            await worker.stop(grace_s=0)
            return
        self._stock[key] = _Spare(worker, folder)

    async def _started(self, runtime: Runtime, key: _Key) -> tuple[Worker | None, Path]:
        folder = Path(tempfile.mkdtemp(prefix=f"{runtime.id}-", dir=self._folder))
        folder.chmod(_SPARE_FOLDER_MODE)
        worker = self._make(runtime, folder, key[2], lambda exited: self._exited(key, exited, folder))
        try:
            await worker.start_spare(self._start_timeout_s)
        except BaseException as exc:  # it did not start, or orvad is stopping (cancelled)
            if worker.proc is None:  # never spawned: no exit will remove its folder
                self._remove(folder)
            if not isinstance(exc, (WorkerCrashed, OSError)):
                raise
            log.warning(
                "a spare jail did not start; cold starts of this runtime start jails the usual way",
                extra={"runtime": runtime.id, "reason": str(exc)[:300]},
            )
            return None, folder
        return worker, folder

    def _discard(self, worker: Worker) -> None:
        self._tasks.start(f"orva-spare-stop-{worker.name}", worker.stop(grace_s=0))

    def _exited(self, key: _Key, worker: Worker, folder: Path) -> None:
        """A spare's process ended: one still waiting (killed from outside, say) leaves the stock; its folder goes."""
        waiting = self._stock.get(key)
        if waiting is not None and waiting.worker is worker:
            del self._stock[key]
        self._remove(folder)

    def _remove(self, folder: Path) -> None:
        """A spare's worker exited: its folder of hard links goes (in a thread: a big version is many unlinks)."""
        self._tasks.start(f"orva-spare-remove-{folder.name}", asyncio.to_thread(remove_tree, folder))
