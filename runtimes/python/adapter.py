"""Orva's Python adapter: runs inside the jail, imports the handler once, serves framed requests.

Frames (runtimes/PROTOCOL.md) arrive on stdin and leave on a private copy of the original
stdout; fd 1 is pointed at stderr so nothing the handler prints can corrupt a frame. Output
written during a request (print, logging, sys.stderr) is captured for that request only, via a
context variable, so concurrent async requests keep their logs apart. Standard library only.
"""

import binascii
import contextvars
import io
import os
import sys
import time
import types
from importlib._bootstrap import module_from_spec  # importlib.util would cost ~7 ms more to import
from importlib._bootstrap_external import spec_from_file_location

# asyncio costs ~30 ms to import in the jail: it is loaded only for async handlers, so a plain
# `def handler` worker starts in little more than the interpreter's own start-up.
_CO_COROUTINE, _CO_ASYNC_GENERATOR = 0x80, 0x200


# JSON through CPython's C accelerator: the json package imports re (and enum with it), most of
# this adapter's own start-up. A handler that imports json pays that itself; the `json` package
# is the fallback where _json is missing.
def _json_codec():
    try:
        from _json import encode_basestring, encode_basestring_ascii, make_encoder, make_scanner
    except ImportError:
        import json

        return (lambda value, ascii=True, compact=False, nan=True: json.dumps(
            value, separators=(",", ":") if compact else None, ensure_ascii=ascii, default=str, allow_nan=nan),
            json.loads)

    class Options:  # the attributes the C scanner reads from a json.JSONDecoder
        strict, object_hook, object_pairs_hook, parse_float, parse_int = True, None, None, float, int

        @staticmethod
        def parse_constant(name):
            return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]

    scan = make_scanner(Options())

    def dumps(value, ascii=True, compact=False, nan=True):
        """json.dumps(value, default=str, allow_nan=nan) (its separators unless `compact`)."""
        encoder = make_encoder({}, str, encode_basestring_ascii if ascii else encode_basestring, None,
                               ":" if compact else ": ", "," if compact else ", ", False, False, nan)
        return "".join(encoder(value, 0))

    def loads(data):
        text = data.decode() if isinstance(data, (bytes, bytearray)) else data
        try:
            value, end = scan(text, 0)
        except StopIteration:
            raise ValueError("a frame is not JSON") from None
        if text[end:].strip():
            raise ValueError("extra data after a frame's JSON")
        return value

    return dumps, loads


json_dumps, json_loads = _json_codec()


def json_body(value):
    """A handler's value as a JSON body: NaN and Infinity become null, as JSON.stringify writes them
    (the text NaN is not JSON, and clients refuse it)."""
    try:
        return json_dumps(value, nan=False)
    except ValueError:  # a non-finite float somewhere (or a cycle, which stays an error)
        return json_dumps(_finite(value, set()), nan=False)


def _finite(value, seen):
    if isinstance(value, float):
        return value if value - value == 0 else None  # NaN and the infinities are not
    if isinstance(value, (dict, list, tuple)):
        if id(value) in seen:
            return value  # a cycle: json_dumps reports it
        seen.add(id(value))
        if isinstance(value, dict):
            return {k: _finite(v, seen) for k, v in value.items()}
        return [_finite(v, seen) for v in value]
    return value

MAX_FRAME = int(os.environ.get("ORVA_MAX_FRAME", str(16 * 1024 * 1024)))
MAX_LOG = int(os.environ.get("ORVA_MAX_LOG_BYTES", str(256 * 1024)))
CODE_DIR = os.environ.get("ORVA_CODE_DIR", "/code")  # the jail binds the code here

_PID = os.getpid()
_frames_fd = os.dup(1)
os.dup2(2, 1)
_real_stderr = sys.__stderr__
_capture = contextvars.ContextVar("orva_capture", default=None)


class Capture:
    __slots__ = ("parts", "size", "truncated")

    def __init__(self):
        self.parts = []
        self.size = 0
        self.truncated = False

    def add(self, text):
        if self.truncated:
            return
        room = MAX_LOG - self.size
        if len(text) > room:
            text, self.truncated = text[:room], True
        self.parts.append(text)
        self.size += len(text)

    def text(self):
        return "".join(self.parts)


class CaptureStream(io.TextIOBase):
    """sys.stdout/sys.stderr: into the current request's capture, else to the worker's stderr."""

    def write(self, text):
        cap = _capture.get()
        if cap is not None:
            cap.add(text)
        else:
            _real_stderr.write(text)
            _real_stderr.flush()
        return len(text)

    def flush(self):
        pass

    def writable(self):
        return True

    @property
    def encoding(self):
        return "utf-8"


sys.stdout = sys.stderr = CaptureStream()


def send(message):
    payload = json_dumps(message, ascii=False, compact=True).encode()
    if len(payload) > MAX_FRAME:
        message = {"type": "error", "id": message.get("id"), "logs": message.get("logs", ""),
                   "error": {"kind": "protocol", "name": "ResponseTooLarge",
                             "message": f"the response ({len(payload)} bytes) exceeds the {MAX_FRAME}-byte limit"}}
        payload = json_dumps(message, compact=True).encode()
    data = len(payload).to_bytes(4, "big") + payload
    view = memoryview(data)
    while view:
        written = os.write(_frames_fd, view)
        view = view[written:]


class Context:
    """The Lambda-style context handed to the handler."""

    def __init__(self, ctx):
        self.request_id = self.aws_request_id = ctx.get("requestId", "")
        self.execution_id = ctx.get("executionId", "")
        self.function_id = ctx.get("functionId", "")
        self.function_name = ctx.get("functionName", "")
        self.memory_limit_in_mb = ctx.get("memoryLimitMb", 0)
        self._deadline_ms = ctx.get("deadlineMs", 0)

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _body(value):
    if isinstance(value, (bytes, bytearray)):
        return binascii.b2a_base64(bytes(value), newline=False).decode(), True
    if isinstance(value, str):
        return value, False
    return json_body(value), False


def _status(value):
    """orvad checks the status (200..599); a value JSON cannot carry goes as its repr, so the error names it."""
    return value if isinstance(value, (int, str)) else repr(value)


def normalise(result):
    """Any handler return value -> {statusCode, headers, body, isBase64Encoded}."""
    if isinstance(result, dict) and "statusCode" in result:
        headers = dict(result.get("headers") or {})
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers[key] = list(values)
        if result.get("cookies"):
            headers["set-cookie"] = list(result["cookies"])
        body = result.get("body", "")
        if result.get("isBase64Encoded"):
            text, b64 = str(body), True
        else:
            text, b64 = ("", False) if body is None else _body(body)
        return {"statusCode": _status(result["statusCode"]), "headers": headers, "body": text, "isBase64Encoded": b64}
    if isinstance(result, (bytes, bytearray)):
        text, b64 = _body(result)
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"}, "body": text,
                "isBase64Encoded": b64}
    if isinstance(result, str):
        return {"statusCode": 200, "headers": {"content-type": "text/plain; charset=utf-8"}, "body": result,
                "isBase64Encoded": False}
    return {"statusCode": 200, "headers": {"content-type": "application/json"},
            "body": json_body(result), "isBase64Encoded": False}


def _error(exc, kind="handler"):
    import traceback

    tb = exc.__traceback__  # the user's frames only: skip the adapter's and importlib's own
    while tb is not None and (tb.tb_frame.f_code.co_filename == __file__
                              or tb.tb_frame.f_code.co_filename.startswith("<frozen ")):
        tb = tb.tb_next
    return {"kind": kind, "name": type(exc).__name__, "message": str(exc),
            "stack": "".join(traceback.format_exception(type(exc), exc, tb))}


def _is_async(handler):
    code = getattr(handler, "__code__", None)  # functions; other callables are served synchronously
    return bool(code is not None and code.co_flags & (_CO_COROUTINE | _CO_ASYNC_GENERATOR))


def _chunk(item):
    return _body(item if isinstance(item, (bytes, bytearray, str)) else json_body(item))


class _Stream:
    """start / chunk / end frames for one streamed response; the first item may set status and headers."""

    def __init__(self, rid):
        self.rid, self.started = rid, False

    def item(self, item):
        if not self.started:
            self.started = True
            if isinstance(item, dict) and "statusCode" in item:
                send({"type": "start", "id": self.rid, "statusCode": _status(item["statusCode"]),
                      "headers": dict(item.get("headers") or {})})
                return
            send({"type": "start", "id": self.rid, "statusCode": 200, "headers": {}})
        data, b64 = _chunk(item)
        send({"type": "chunk", "id": self.rid, "data": data, "isBase64Encoded": b64})

    def end(self, cap):
        if not self.started:
            self.started = True
            send({"type": "start", "id": self.rid, "statusCode": 200, "headers": {}})
        send({"type": "end", "id": self.rid, "logs": cap.text(), "logsTruncated": cap.truncated})


def _finish(rid, error, cap, stream):
    error_frame = {"type": "end" if stream is not None and stream.started else "error", "id": rid,
                   "error": error, "logs": cap.text(), "logsTruncated": cap.truncated}
    send(error_frame)


def serve_sync(handler, init_error, message):
    """One request to a plain `def` handler (or generator), on this thread, without asyncio."""
    rid, cap = message["id"], Capture()
    token = _capture.set(cap)
    stream = None
    try:
        if init_error is not None:
            cap.add(init_error["stack"])
            _finish(rid, init_error, cap, None)
            return
        result = handler(message["event"], Context(message.get("context") or {}))
        if isinstance(result, types.GeneratorType):
            stream = _Stream(rid)
            for item in result:
                stream.item(item)
            stream.end(cap)
            return
        send({"type": "response", "id": rid, "response": normalise(result), "logs": cap.text(),
              "logsTruncated": cap.truncated})
    except Exception as exc:
        error = _error(exc)
        cap.add(error["stack"])
        _finish(rid, error, cap, stream)
    finally:
        _capture.reset(token)


async def serve_async(handler, message):
    """One request to an `async def` handler (or async generator) as a task on the event loop."""
    import inspect

    rid, cap = message["id"], Capture()
    token = _capture.set(cap)
    stream = None
    try:
        result = handler(message["event"], Context(message.get("context") or {}))
        if inspect.isawaitable(result):
            result = await result
        if inspect.isasyncgen(result) or isinstance(result, types.GeneratorType):
            stream = _Stream(rid)
            if inspect.isasyncgen(result):
                async for item in result:
                    stream.item(item)
            else:
                for item in result:
                    stream.item(item)
            stream.end(cap)
            return
        send({"type": "response", "id": rid, "response": normalise(result), "logs": cap.text(),
              "logsTruncated": cap.truncated})
    except Exception as exc:
        error = _error(exc)
        cap.add(error["stack"])
        _finish(rid, error, cap, stream)
    finally:
        _capture.reset(token)


def reap_strays():
    """Between requests no process but the adapter may run in the jail (a handler's forgotten children, a
    fork bomb's survivors): kill them. The jail's PID 1 is the adapter, so every other process in the jail
    descends from it and keeps it in children until reaped; no children (the usual case) costs one
    syscall. Outside a jail (PID is not 1) nothing is touched: kill(-1) there would reach the whole host."""
    if _PID != 1:
        return
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return
    try:
        os.kill(-1, 9)  # from a pid namespace's init: every other process in that namespace
    except OSError:
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue


def load_handler():
    entry = os.environ.get("ORVA_ENTRYPOINT", "handler.py")
    name = os.environ.get("ORVA_HANDLER", "handler")
    for path in (os.path.join(CODE_DIR, ".packages"), CODE_DIR):
        if os.path.isdir(path):
            sys.path.insert(0, path)
    spec = spec_from_file_location("orva_function", os.path.join(CODE_DIR, entry))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {entry}")
    module = module_from_spec(spec)
    sys.modules["orva_function"] = module
    spec.loader.exec_module(module)
    handler = getattr(module, name, None)
    if not callable(handler):
        raise AttributeError(f"{entry} does not define a callable {name}(event, context)")
    return handler


def read_exactly(size):
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def frames():
    """Request frames from stdin until it closes or a quit frame arrives."""
    while True:
        header = read_exactly(4)
        if header is None:
            return
        size = int.from_bytes(header, "big")
        if size > MAX_FRAME:
            _real_stderr.write(f"orva adapter: refused a {size}-byte frame\n")
            return
        payload = read_exactly(size)
        if payload is None:
            return
        message = json_loads(payload)
        if message.get("type") == "quit":
            return
        yield message


async def serve_concurrently(handler):
    """Async handlers: stdin is read in a thread, each request becomes a task on the loop."""
    import asyncio

    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    def pump():
        for message in frames():
            loop.call_soon_threadsafe(queue.put_nowait, message)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    loop.run_in_executor(None, pump)
    tasks = set()

    def done(task):
        tasks.discard(task)
        if not tasks:
            reap_strays()

    while (message := await queue.get()) is not None:
        if message.get("type") == "invoke":
            task = loop.create_task(serve_async(handler, message))
            tasks.add(task)
            task.add_done_callback(done)
    if tasks:
        await asyncio.wait(tasks, timeout=5)


def main():
    # Imported by the boot line (spawner.PYTHON_BOOT): leave no trace a handler could import.
    if sys.path and sys.path[0] == os.path.dirname(__file__):
        del sys.path[0]
    sys.modules.pop("adapter", None)
    handler, init_error = None, None
    init_cap = Capture()
    token = _capture.set(init_cap)
    try:
        handler = load_handler()
    except BaseException as exc:  # a SyntaxError or SystemExit at import must not kill the worker
        init_error = _error(exc, "import")
    _capture.reset(token)
    if init_cap.parts:
        _real_stderr.write(init_cap.text())
    send({"type": "ready", "runtime": "python", "version": sys.version.split()[0], "initError": init_error})
    if handler is not None and _is_async(handler):
        import asyncio

        asyncio.run(serve_concurrently(handler))
        os._exit(0)  # the stdin reader thread may still block in read()
    for message in frames():
        if message.get("type") == "invoke":
            serve_sync(handler, init_error, message)
            reap_strays()


if __name__ == "__main__":
    main()
