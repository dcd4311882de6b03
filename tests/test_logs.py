"""The log handler: lines in order, written off the logging thread; a stalled stderr never blocks
the caller, and lines it could not take are counted and reported, not lost without a word."""

from __future__ import annotations

import io
import json
import logging
import threading

from orvad.logs import BackgroundStreamHandler, JsonFormatter


class GatedStream(io.StringIO):
    """A stderr that blocks every write until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.blocked = threading.Event()

    def write(self, text: str) -> int:
        self.blocked.set()
        assert self.gate.wait(10), "the test never opened the gate"
        return super().write(text)


def logger_on(handler: logging.Handler, name: str) -> logging.Logger:
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    return logger


def test_lines_are_written_in_order_as_json() -> None:
    stream = io.StringIO()
    handler = BackgroundStreamHandler(stream)
    log = logger_on(handler, "orva-test-order")
    for i in range(500):
        log.info("line", extra={"n": i})
    handler.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["n"] for line in lines] == list(range(500))
    assert all(line["msg"] == "line" and line["level"] == "info" for line in lines)
    handler.close()


def test_a_stalled_stderr_blocks_nobody_and_dropped_lines_are_reported() -> None:
    stream = GatedStream()
    handler = BackgroundStreamHandler(stream, max_pending=100)
    log = logger_on(handler, "orva-test-stall")
    log.info("first")
    assert stream.blocked.wait(10)  # the writer thread is now stuck in write()
    for i in range(250):  # the caller goes on: 100 lines wait, 150 are counted
        log.info("more", extra={"n": i})
    stream.gate.set()
    handler.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["msg"] == "first"
    assert [line["n"] for line in lines if line["msg"] == "more"] == list(range(100))
    assert [line["dropped"] for line in lines if "dropped" in line] == [150]
    handler.close()


def test_access_lines_match_ordinary_records_and_any_other_setup_gets_records() -> None:
    from orvad.logs import AccessLog

    stream = io.StringIO()
    handler = BackgroundStreamHandler(stream)
    logger_on(handler, "orva-test-access")
    access = AccessLog("orva-test-access")
    assert access.enabled() and access._direct_handler() is handler
    fields = {"request_id": "req_1", "method": "GET", "path": "/fn/x/", "status": 200, "duration_ms": 1.5}
    access.write("request", **fields)  # straight to the handler
    access.logger.info("request", extra=fields)  # the ordinary way
    handler.flush()
    direct, ordinary = (json.loads(line) for line in stream.getvalue().splitlines())
    assert direct.pop("ts") and ordinary.pop("ts")
    assert direct == ordinary == {"level": "info", "logger": "orva-test-access", "msg": "request", **fields}

    seen: list[logging.LogRecord] = []
    extra = logging.Handler()
    extra.emit = seen.append  # type: ignore[method-assign]
    access.logger.addHandler(extra)  # a second destination: records again, so both get the line
    assert access._direct_handler() is None
    access.write("request", **fields)
    handler.flush()
    assert len(seen) == 1 and seen[0].path == "/fn/x/"  # type: ignore[attr-defined]
    assert len(stream.getvalue().splitlines()) == 3
    access.logger.setLevel(logging.WARNING)
    assert not access.enabled()
    handler.close()
