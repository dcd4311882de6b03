"""Structured logging: one JSON object per line on stderr, configured once with dictConfig.

Lines are written by a thread of their own (``BackgroundStreamHandler``): a slow or blocked stderr
(a full pipe to a log collector) never stalls the event loop, and the lines of a busy moment go
out in one write.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import threading
import time
from typing import Any, TextIO

import orjson

from orvad.clock import epoch_iso

# Attributes every LogRecord has; anything else passed via ``extra=`` becomes a JSON field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": epoch_iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


# Lines gather this long between writes. Each write wakes the writer thread, which takes the GIL from
# the event loop: at 10 ms the wake-ups cost a warm invoke ~5 us of the writer's CPU and up to ~30 us
# of the loop's (A/B on Uvicorn, 3 rounds); a line still reaches stderr within a twentieth of a second.
LINGER_S = 0.05


class BackgroundStreamHandler(logging.Handler):
    """Formats on the logging thread; a writer thread writes whatever has queued up, in one go.

    Past ``max_pending`` unwritten lines (stderr not draining at all) new lines are counted and
    dropped, and a line saying how many follows as soon as stderr takes data again.
    """

    def __init__(self, stream: TextIO | None = None, max_pending: int = 10_000) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self._max_pending = max_pending
        self._pending: list[str] = []
        self._dropped = 0
        self._writing = False  # lines taken from _pending but not yet written
        self._closing = False
        self._flushing = 0  # callers of flush() waiting: no lingering
        self._idle = False  # the writer waits for a first line (not lingering after a write)
        self._changed = threading.Condition(self.lock)  # the handler's own lock
        self._thread = threading.Thread(target=self._write_forever, name="orva-log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:  # called with the handler's lock held
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._append(line)

    def write_line(self, line: str) -> None:
        """A line formatted already (``AccessLog``), queued like an emitted record's."""
        with self._changed:
            self._append(line)

    def _append(self, line: str) -> None:  # with the handler's lock held
        if len(self._pending) >= self._max_pending:
            self._dropped += 1
            return
        self._pending.append(line)
        if len(self._pending) == 1 and self._idle:  # a lingering writer comes for it anyway
            self._changed.notify_all()

    def _write_forever(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._dropped and not self._closing:
                    self._idle = True
                    self._changed.wait()
                    self._idle = False
                lines, self._pending = self._pending, []
                dropped, self._dropped = self._dropped, 0
                self._writing = bool(lines or dropped)
                if not lines and not dropped:
                    self._changed.notify_all()
                    return  # closing, and everything is written
            if dropped:
                lines.append(
                    orjson.dumps(
                        {
                            "ts": epoch_iso(time.time()),
                            "level": "warning",
                            "logger": "orvad.logs",
                            "msg": "log lines dropped: stderr did not keep up",
                            "dropped": dropped,
                        }
                    ).decode()
                )
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except Exception:  # a closed stderr: nothing left to tell
                pass
            with self._changed:
                self._writing = False
                self._changed.notify_all()
                # let lines gather before the next write (unless closing): one write, and one handover
                # of the GIL from the event loop, per LINGER_S instead of per line
                self._changed.wait_for(lambda: self._closing or self._flushing, LINGER_S)

    def flush(self) -> None:
        """Wait (up to 5 s) until every line emitted so far is written."""
        if threading.current_thread() is self._thread:
            return
        with self._changed:
            self._flushing += 1
            self._changed.notify_all()
            try:
                self._changed.wait_for(
                    lambda: (
                        not (self._pending or self._dropped or self._writing) or not self._thread.is_alive()
                    ),
                    5,
                )
            finally:
                self._flushing -= 1

    def close(self) -> None:
        # logging.shutdown() calls this holding the handler's lock, so no join (the writer needs the
        # lock to finish): flush() waits on the condition, which lets the writer write everything.
        self.flush()
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        super().close()


class AccessLog:
    """The one line per request, at `info`, without a ``LogRecord``: about 2 us of the event loop's
    time instead of 18 (a tenth of a warm invoke's). It is still the logger ``orvad.access`` for
    its level, handlers and filters: when its records would reach nothing but one
    ``BackgroundStreamHandler`` with the ``JsonFormatter`` (orvad's own set-up), the same JSON
    line goes to that handler directly; any other set-up gets an ordinary record."""

    def __init__(self, name: str = "orvad.access") -> None:
        self.logger = logging.getLogger(name)

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def write(self, msg: str, **fields: Any) -> None:
        handler = self._direct_handler()
        if handler is None:
            self.logger.info(msg, extra=fields)
            return
        line = orjson.dumps(
            {"ts": epoch_iso(time.time()), "level": "info", "logger": self.logger.name, "msg": msg, **fields},
            default=str,
        ).decode()
        handler.write_line(line)

    def _direct_handler(self) -> BackgroundStreamHandler | None:
        found: BackgroundStreamHandler | None = None
        logger: logging.Logger | None = self.logger
        while logger is not None:
            if logger.filters:
                return None
            for handler in logger.handlers:
                if (
                    found is not None
                    or type(handler) is not BackgroundStreamHandler
                    or handler.filters
                    or handler.level > logging.INFO
                    or type(handler.formatter) is not JsonFormatter
                ):
                    return None
                found = handler
            logger = logger.parent if logger.propagate else None
        return found


def configure_logging(level: str) -> None:
    # The logging HOWTO's "Optimization" switches: no line carries the caller's file and line, the
    # thread or the process, so a record (one per request at `info`) does not look them up.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"json": {"()": JsonFormatter}},
            "handlers": {
                "stderr": {
                    "class": "orvad.logs.BackgroundStreamHandler",
                    "formatter": "json",
                    "stream": "ext://sys.stderr",
                }
            },
            "root": {"level": level.upper(), "handlers": ["stderr"]},
            # Hypercorn's own access log is replaced by orvad's; its error log stays.
            "loggers": {"hypercorn.access": {"level": "WARNING"}},
        }
    )
