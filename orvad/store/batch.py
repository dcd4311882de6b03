"""A batched background writer for high-rate rows (executions, key last-use).

Rows are queued in memory without awaiting the database; a background task writes them in
one transaction per batch, when ``max_batch`` rows are waiting or ``interval_s`` has passed.
``stop()`` writes everything still queued, so a clean shutdown loses nothing. A row may carry
an ``after`` callback, called once the row is committed (so what it announces can be read).

A full disk (``InsufficientStorage``) never loses queued rows: they stay in memory and the writer
retries with a growing pause (up to ``_FULL_RETRY_MAX_S``) until a write commits.

A row the database refuses (``IntegrityError``: its parent was deleted meanwhile; ``ValueRefused``: a value it
cannot store at all, or a deferred row whose values could not be made) is written without: its batch is
retried one row at a time, and each refused row is logged and counted in ``rows_refused`` (the metric
``orva_store_rows_refused_total``), so one bad row never holds up the rows queued after it. Any other failure
(the database unreachable) keeps every row for the next attempt.

A row may be a ``DeferredRow``: its values are made on the writer's thread, when its batch is written, so
what the event loop pays for it is one append (request capture: redaction and JSON off the invoke path).
The statements of a batch are the driver's bulk path (``Database.write_batch``: on SQLite multi-row INSERTs,
``multi_row``, assembled on that thread too; on PostgreSQL binary COPY for a plain INSERT of many rows). The queue holds
at most ``max_pending`` rows and ``max_pending_bytes`` bytes of their values; past either, newly
submitted rows are dropped (their ``after`` is never called), counted in ``rows_dropped`` (the metric ``orva_store_rows_dropped_total``) and logged.

A row may name its ``parent``: the first value (the key) of a row queued just before it that it belongs to,
without a foreign key checking it per insert (an execution's captured request). It is written in the
same batch as its parent, and never when its parent's row is refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from orvad.errors import InsufficientStorage
from orvad.store.sql import Database, IntegrityError, ValueRefused

log = logging.getLogger(__name__)

MAX_PENDING = 200_000  # rows kept in memory while they cannot be written
MAX_PENDING_BYTES = 128 << 20  # and their values' bytes: an execution's logs alone may be 256 KiB
_ROW_OVERHEAD = 64  # bytes counted for each value besides its text
_FULL_RETRY_MAX_S = 2.0


class DeferredRow(Sequence[Any]):
    """A row whose values are made when its batch is written, on the writer's thread (``values``, once).
    ``held_bytes``: what it holds in memory, for the queue's byte bound (``row_bytes`` would make it)."""

    __slots__ = ("_values",)
    held_bytes: int

    def make(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def values(self) -> tuple[Any, ...]:
        try:
            return self._values
        except AttributeError:
            pass
        try:
            self._values: tuple[Any, ...] = self.make()
        except Exception as exc:  # the same every time: the row is refused, not retried
            raise ValueRefused(f"{type(self).__name__}'s values could not be made: {exc!r}") from exc
        return self._values

    # a sequence of its values, as sqlite3 and multi_row read it
    def __len__(self) -> int:
        return len(self.values())

    def __getitem__(self, index: Any) -> Any:  # an int or a slice, as a tuple's
        return self.values()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values())


Params = Sequence[Any]  # a DeferredRow is one too
Row = tuple[str, Params, Callable[[], None] | None, int, Any]  # sql, params, after, row_bytes, parent


class BatchWriter:
    def __init__(
        self,
        db: Database,
        *,
        interval_s: float = 0.025,
        max_batch: int = 500,
        max_pending: int = MAX_PENDING,
        max_pending_bytes: int = MAX_PENDING_BYTES,
    ) -> None:
        self._db = db
        self._interval_s = interval_s
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._max_pending_bytes = max_pending_bytes
        self._bytes = 0  # the queued rows' size (row_bytes)
        self._queue: list[Row] = []
        self._wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.rows_written = 0
        self.rows_dropped = 0
        self.rows_refused = 0
        self.full_since: float | None = (
            None  # loop time since which queued rows cannot be written (disk full)
        )

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def submit(
        self, sql: str, params: Params, after: Callable[[], None] | None = None, parent: Any = None
    ) -> bool:
        """Queue one row; never blocks and never touches the database on the caller's path. False when it
        was dropped (the queue is full). ``parent``: the key of the row it belongs to (queued just before)."""
        if self._stopping and self._task is None:
            raise RuntimeError("batch writer is stopped")
        size = params.held_bytes if isinstance(params, DeferredRow) else row_bytes(params)
        if len(self._queue) >= self._max_pending or (
            self._queue and self._bytes + size > self._max_pending_bytes
        ):
            self._drop(
                1, "the batched writer's queue is full (the disk has been full for a while); rows dropped"
            )
            return False
        self._queue.append((sql, params, after, size, parent))
        self._bytes += size
        if len(self._queue) >= self._max_batch:
            self._wake.set()
        return True

    def start(self) -> None:
        self._stopping = False  # started again after a stop: a restore's reload (Daemon.reload_from)
        self._stop_requested.clear()
        self._task = asyncio.create_task(self._run(), name="orva-batch-writer")

    async def stop(self) -> None:
        self._stopping = True
        self._stop_requested.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            await self.flush()  # anything queued while the task was finishing
        except InsufficientStorage:
            lost = len(self._queue)
            self._queue.clear()
            self._bytes = 0
            self._drop(
                lost, "stopping with the disk full: rows that could not be written are lost", always=True
            )

    def _drop(self, count: int, message: str, *, always: bool = False) -> None:
        before, self.rows_dropped = self.rows_dropped, self.rows_dropped + count
        if (
            always or before == 0 or before // 10_000 != self.rows_dropped // 10_000
        ):  # the first, then every 10,000
            log.error(
                message,
                extra={
                    "rows_dropped_total": self.rows_dropped,
                    "max_pending": self._max_pending,
                    "max_pending_bytes": self._max_pending_bytes,
                },
            )

    async def flush(self) -> None:
        """Write every queued row, including rows queued while it writes."""
        while self._queue:
            await self._write_queued()

    async def _write_queued(self) -> None:
        """Write the rows queued now (rows that arrive meanwhile wait for the next pass). Under
        steady load a drain-until-empty loop would chase the arrivals: one small commit after
        another (260 a second at 3,500 invocations/s, 13 rows each), with their file locks, WAL
        page writes and thread hand-overs, instead of one commit per interval."""
        for _ in range(-(-len(self._queue) // self._max_batch)):
            cut = self._max_batch
            # a row stays in its parent's batch
            while cut < len(self._queue) and self._queue[cut][4] is not None:
                cut += 1
            batch, self._queue = self._queue[:cut], self._queue[cut:]
            self._bytes -= sum(row[3] for row in batch)
            grouped: dict[str, list[Params]] = defaultdict(list)
            for sql, params, _, _, _ in batch:
                grouped[sql].append(params)
            try:
                # the driver's bulk path; on SQLite the statements (and deferred rows' values) are made on
                # the writer's thread
                await self._db.write_batch(list(grouped.items()))
            except (IntegrityError, ValueRefused):
                await self._write_one_by_one(batch)  # isolate the refused row(s)
            except Exception:
                self._requeue(batch)  # keep the rows; the next flush retries them
                raise
            else:
                self.rows_written += len(batch)
                _announce(after for _, _, after, _, _ in batch)

    def _requeue(self, rows: list[Row]) -> None:
        self._queue[:0] = rows
        self._bytes += sum(row[3] for row in rows)

    async def _write_one_by_one(self, batch: list[Row]) -> None:
        refused: set[Any] = set()  # the keys (first values) of the rows refused
        for index, (sql, params, after, _, parent) in enumerate(batch):
            if parent is not None and parent in refused:
                self.rows_refused += 1
                log.error(
                    "batched row not written: the row it belongs to was refused",
                    extra={"sql": sql.split("(")[0]},
                )
                continue
            try:
                await self._db.write_all([(sql, params)])
                self.rows_written += 1
                _announce([after])
            except (IntegrityError, ValueRefused) as exc:
                # a row whose parent was deleted meanwhile (a log line of a deleted function), or a value
                # the database cannot store
                self.rows_refused += 1
                log.error(
                    "batched row refused by the database", extra={"sql": sql.split("(")[0], "error": str(exc)}
                )
                key = _key(params)
                if key is not None:
                    refused.add(key)
            except Exception:
                # this row and the rest: kept for the next attempt (but not those whose parent was refused)
                self._requeue([row for row in batch[index:] if row[4] is None or row[4] not in refused])
                raise

    async def _run(self) -> None:
        pause = self._interval_s
        while not self._stopping:
            try:
                if self.full_since is None:
                    await asyncio.wait_for(self._wake.wait(), pause)
                else:  # a full queue wakes us on every submit; while the disk is full, wait the pause out
                    await asyncio.wait_for(self._stop_requested.wait(), pause)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._write_queued()
            except InsufficientStorage:
                if self.full_since is None:
                    self.full_since = asyncio.get_running_loop().time()
                    log.error(
                        "the disk is full: batched rows are kept in memory and retried until space returns",
                        extra={"pending": self.pending, "max_pending": self._max_pending},
                    )
                pause = min(_FULL_RETRY_MAX_S, max(pause, 0.05) * 2)
                continue
            except Exception:
                log.exception(
                    "batched write failed; rows kept for the next attempt", extra={"pending": self.pending}
                )
                continue
            if self.full_since is not None:
                log.info(
                    "the disk has space again: batched rows are written",
                    extra={"pending": self.pending, "rows_dropped_total": self.rows_dropped},
                )
                self.full_since = None
            pause = self._interval_s


# SQLite's smallest limit on host parameters per statement (builds before 3.32; later ones allow 32,766).
MAX_VARIABLES = 999


def multi_row(sql: str, rows: Sequence[Params]) -> Iterator[tuple[str, Params]]:
    """Rows of one ``INSERT ... VALUES (?, ...)`` as few statements of many rows each.

    executemany steps once per row, and the writer thread gives the GIL up around every step; under
    load each re-take waits for orvad's busy event loop (up to the 5 ms switch interval), which held
    the writer to a few hundred rows a second. A multi-row statement is one step. Other statements
    (an UPDATE) run once per row. A clause after the row's ``(...)`` (``ON CONFLICT DO NOTHING``) is kept
    once, at the end.
    """
    head, sep, values = sql.rpartition(" VALUES ")
    if not sep or not head.lstrip().upper().startswith("INSERT"):
        for params in rows:
            yield sql, params
        return
    end = _tuple_end(values)
    one, tail = values[:end], values[end:]
    per = max(1, MAX_VARIABLES // max(1, len(rows[0])))
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        yield f"{head} VALUES {', '.join([one] * len(chunk))}{tail}", [v for row in chunk for v in row]


def _tuple_end(values: str) -> int:
    """Where the first parenthesised group of ``values`` ends (its closing paren included)."""
    depth = 0
    for index, char in enumerate(values):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(values)


def row_bytes(params: Sequence[Any]) -> int:
    """What a queued row holds in memory, roughly: its text and blob values plus a little for each value."""
    return sum(len(v) + _ROW_OVERHEAD if isinstance(v, str | bytes) else _ROW_OVERHEAD for v in params)


def _key(params: Params) -> Any:
    """A row's first value (what its children name as ``parent``), or None when it has none to give."""
    try:
        return params[0] if len(params) else None
    except ValueRefused:  # a deferred row whose values could not be made: a captured request, no row's parent
        return None


def _announce(callbacks: Iterable[Callable[[], None] | None]) -> None:
    for after in callbacks:
        if after is not None:
            try:
                after()
            except Exception:
                log.exception("a committed row's callback failed")
