"""Orva's Python adapter: runs inside the jail, imports the handler once, serves framed requests.

Frames (runtimes/PROTOCOL.md) arrive on stdin and leave on a private copy of the original
stdout; fd 1 is pointed at stderr so nothing the handler prints can corrupt a frame. Output
written during a request (print, logging, sys.stderr) is captured for that request only, via a
context variable, so concurrent async requests keep their logs apart. Standard library only.

The entry module may offer its code in several shapes (docs/HANDLERS.md, "Python handler shapes"): a function
named by ORVA_HANDLER (default `handler`), else `lambda_handler`, else `main`, called with (event, context)
or (event) as its signature asks; else an ASGI app (FastAPI, Starlette) or a WSGI app (Flask, Django)
named `app` or `application`, which gets the event as an HTTP request.
"""

import _thread
import binascii
import contextvars
import io
import os
import sys
import time
import types
from collections import deque
from importlib._bootstrap import module_from_spec  # importlib.util would cost ~7 ms more to import
from importlib._bootstrap_external import spec_from_file_location

# asyncio costs ~30 ms to import in the jail: it is loaded only for async handlers, so a plain
# `def handler` worker starts in little more than the interpreter's own start-up.
_CO_VARARGS, _CO_COROUTINE, _CO_ASYNC_GENERATOR = 0x04, 0x80, 0x200
FALLBACK_NAMES = ("lambda_handler", "main")  # looked for when the configured handler is absent
APP_NAMES = ("app", "application")  # an ASGI or WSGI app
ACCEPTED = ("a function handler(event, context) or handler(event), also named lambda_handler or main, async def "
            "too; or an ASGI app (FastAPI, Starlette) or WSGI app (Flask, Django) named app or application")
BUFFER_BYTES = 1 << 20  # an ASGI/WSGI body kept for one response frame up to this size, then streamed


# JSON through CPython's C accelerator: the json package imports re (and enum with it), most of
# this adapter's own start-up. A handler that imports json pays that itself; the `json` package
# is the fallback where _json is missing.
def _json_codec():
    try:
        from _json import encode_basestring, encode_basestring_ascii, make_encoder, make_scanner
    except ImportError:
        import json

        return (lambda value, ascii=True, compact=False, nan=True, strict=False: json.dumps(
            value, separators=(",", ":") if compact else None, ensure_ascii=ascii, default=None if strict else str,
            allow_nan=nan), json.loads)

    class Options:  # the attributes the C scanner reads from a json.JSONDecoder
        strict, object_hook, object_pairs_hook, parse_float, parse_int = True, None, None, float, int

        @staticmethod
        def parse_constant(name):
            return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]

    scan = make_scanner(Options())

    def dumps(value, ascii=True, compact=False, nan=True, strict=False):
        """json.dumps(value, default=str, allow_nan=nan) (its separators unless `compact`); `strict`: a value
        JSON cannot carry raises TypeError instead of becoming its str()."""
        encoder = make_encoder({}, _refuse if strict else str,
                               encode_basestring_ascii if ascii else encode_basestring, None,
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


def _refuse(value):
    raise TypeError(f"a {type(value).__name__} is not JSON")


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
    """A request's captured output; `rid` tags the SDK calls made while it is current (orva/_channel.py)."""

    __slots__ = ("parts", "size", "truncated", "rid")

    def __init__(self, rid=None):
        self.parts = []
        self.size = 0
        self.truncated = False
        self.rid = rid

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
    write_frame(payload)


_write_lock = _thread.allocate_lock()  # SDK calls may come from a handler's threads: frames never interleave


def write_frame(payload):
    data = len(payload).to_bytes(4, "big") + payload
    view = memoryview(data)
    with _write_lock:
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
        self.trace_id = ctx.get("traceId", "")
        self.span_id = ctx.get("spanId", "")

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


class Target:
    """What the entry module offers: a function (called with `nargs` arguments), or an ASGI or WSGI app."""

    __slots__ = ("kind", "obj", "nargs", "is_async")

    def __init__(self, kind, obj, nargs=2, is_async=False):
        self.kind, self.obj, self.nargs, self.is_async = kind, obj, nargs, is_async


def _code_flags(obj):
    """co_flags of a function, a bound method, or an instance's __call__; None for other callables."""
    code = getattr(obj, "__code__", None)
    if code is None and not isinstance(obj, type):
        code = getattr(getattr(type(obj), "__call__", None), "__code__", None)  # noqa: B004
    return None if code is None else code.co_flags


def _arity(fn):
    """How a handler is called: 2 (event, context), 1 (event), or a str saying why it cannot take an event.

    Decided by the signature, never by calling it: a plain function's code object says it without
    importing inspect (which the start-up of a plain `def handler` worker would pay for); decorated
    functions (functools.wraps) and other callables go through inspect.signature."""
    if type(fn) is types.FunctionType and not hasattr(fn, "__wrapped__"):
        code = fn.__code__
        positional, optional = code.co_argcount, len(fn.__defaults__ or ())
        varargs = bool(code.co_flags & _CO_VARARGS)
        kwonly = code.co_kwonlyargcount - len(fn.__kwdefaults__ or {})
    else:
        import inspect

        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature: as it always was
            return 2
        kinds = inspect.Parameter
        plain = [p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
        positional, optional = len(plain), sum(p.default is not p.empty for p in plain)
        varargs = any(p.kind == kinds.VAR_POSITIONAL for p in params)
        kwonly = sum(p.kind == kinds.KEYWORD_ONLY and p.default is p.empty for p in params)
    if kwonly:
        return "needs keyword-only arguments"
    if positional - optional > 2:
        return f"needs {positional - optional} arguments"
    if positional >= 2 or varargs:
        return 2
    return 1 if positional == 1 else "takes no arguments"


def _is_async_callable(obj):
    flags = _code_flags(obj)
    if flags is not None:
        return bool(flags & (_CO_COROUTINE | _CO_ASYNC_GENERATOR))
    import inspect  # functools.partial and the like

    return any(inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)
               for f in (obj, getattr(obj, "__call__", None)) if f is not None)  # noqa: B004


def resolve(module, entry, name):
    """The Target the module offers, or an AttributeError naming what was looked for and the shapes accepted."""
    unusable = []
    for candidate in (name, *(n for n in FALLBACK_NAMES if n != name)):
        fn = getattr(module, candidate, None)
        if not callable(fn) or candidate in APP_NAMES:
            continue
        nargs = _arity(fn)
        if isinstance(nargs, str):
            unusable.append(f"{candidate}() {nargs}")
            continue
        return Target("function", fn, nargs, _is_async_callable(fn))
    for candidate in APP_NAMES:
        app = getattr(module, candidate, None)
        if callable(app):
            return Target("asgi" if _is_async_callable(app) else "wsgi", app)
    looked = ", ".join(dict.fromkeys((name, *FALLBACK_NAMES, *APP_NAMES)))
    why = f"; {', '.join(unusable)}" if unusable else ""
    raise AttributeError(f"{entry} does not define a callable handler (looked for {looked}{why}). Accepted: {ACCEPTED}")


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


def _trace_env(ctx):
    """ORVA_TRACE_ID / ORVA_SPAN_ID for the request (when orvad sent its trace); with async requests
    running at once they hold the latest request's (context.trace_id is each request's own)."""
    trace = ctx.get("traceId") if ctx else None
    if trace:
        os.environ["ORVA_TRACE_ID"], os.environ["ORVA_SPAN_ID"] = str(trace), str(ctx.get("spanId") or "")
    elif "ORVA_TRACE_ID" in os.environ:
        os.environ.pop("ORVA_TRACE_ID", None)
        os.environ.pop("ORVA_SPAN_ID", None)


def _call(target, message):
    event = message["event"]
    _trace_env(message.get("context"))
    if target.nargs == 1:
        return target.obj(event)
    return target.obj(event, Context(message.get("context") or {}))


def serve_sync(target, init_error, message):
    """One request to a plain `def` handler (or generator), on this thread, without asyncio."""
    rid = message["id"]
    cap = Capture(rid)
    token = _capture.set(cap)
    _Host.serving = rid
    stream = None
    try:
        if init_error is not None:
            cap.add(init_error["stack"])
            _finish(rid, init_error, cap, None)
            return
        result = _call(target, message)
        if isinstance(result, types.CoroutineType):  # a plain callable that hands back a coroutine
            import asyncio

            result = asyncio.run(result)
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
        _Host.serving = None
        _capture.reset(token)


async def serve_async(target, message):
    """One request to an `async def` handler (or async generator) as a task on the event loop."""
    import inspect

    rid = message["id"]
    cap = Capture(rid)
    token = _capture.set(cap)
    stream = None
    try:
        result = _call(target, message)
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


# ASGI and WSGI apps: the event becomes an HTTP request, the app's response goes back as the same frames.

def _wire(text):
    """A str as HTTP bytes: latin-1 as the servers write it, UTF-8 for what latin-1 cannot carry."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _request_body(event):
    body = event.get("body") or ""
    return binascii.a2b_base64(body) if event.get("isBase64Encoded") else body.encode("utf-8")


def _server(event):
    """(scheme, host name, port) as the client addressed orvad (Host and X-Forwarded-Proto)."""
    headers = event.get("headers") or {}
    scheme = "https" if headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https" else "http"
    host = headers.get("host") or "localhost"
    name, sep, port = host.rpartition(":")
    if not sep or "]" in port or not port.isdigit():  # no port (or an IPv6 literal without one)
        name, port = host, "443" if scheme == "https" else "80"
    return scheme, name, port


def _text_or_base64(data):
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return binascii.b2a_base64(data, newline=False).decode(), True


def _header_dict(pairs):
    """[(name, value)] (str or bytes) -> {lower-case name: value, or a list of values when repeated}."""
    headers = {}
    for name, value in pairs:
        name = (name.decode("latin-1") if isinstance(name, (bytes, bytearray)) else str(name)).lower()
        value = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
        if name not in headers:
            headers[name] = value
        elif isinstance(headers[name], list):
            headers[name].append(value)
        else:
            headers[name] = [headers[name], value]
    return headers


class _HttpOut:
    """An app's response on its way out: one `response` frame when the body came whole (or small), else
    start / chunk / end frames as the app produces it."""

    def __init__(self, rid):
        self.rid, self.status, self.headers = rid, None, {}
        self.parts, self.size, self.started = [], 0, False

    def add(self, data, flush):
        """A piece of the body; `flush` sends it (and what was kept) now, as a stream."""
        if data:
            self.parts.append(data)
            self.size += len(data)
        if not (self.started or flush or self.size > BUFFER_BYTES):
            return
        if not self.started:
            self.started = True
            send({"type": "start", "id": self.rid, "statusCode": _status(self.status), "headers": self.headers})
        for part in self.parts:  # in pieces of at most BUFFER_BYTES: one part may be past the frame cap
            for off in range(0, len(part), BUFFER_BYTES):
                text, b64 = _text_or_base64(part[off:off + BUFFER_BYTES])
                send({"type": "chunk", "id": self.rid, "data": text, "isBase64Encoded": b64})
        self.parts, self.size = [], 0

    def finish(self, cap):
        if self.started:
            self.add(b"", True)
            send({"type": "end", "id": self.rid, "logs": cap.text(), "logsTruncated": cap.truncated})
            return
        text, b64 = _text_or_base64(b"".join(self.parts))
        send({"type": "response", "id": self.rid, "logs": cap.text(), "logsTruncated": cap.truncated,
              "response": {"statusCode": _status(self.status), "headers": self.headers, "body": text,
                           "isBase64Encoded": b64}})


def _wsgi_environ(event):
    """PEP 3333's environ for the event. Header names with `_` are left out (as gunicorn and nginx do):
    X_Forwarded_For would otherwise arrive as HTTP_X_FORWARDED_FOR, the name a proxy's header has."""
    body = _request_body(event)
    scheme, name, port = _server(event)
    latin1 = lambda text: _wire(text).decode("latin-1")  # noqa: E731  "bytes as latin-1" strings
    path = (event.get("path") or "/").encode("utf-8", "surrogateescape").decode("latin-1")  # its UTF-8 bytes
    environ = {
        "REQUEST_METHOD": event.get("method") or "GET", "SCRIPT_NAME": "", "PATH_INFO": path,
        "QUERY_STRING": event.get("rawQuery") or "", "SERVER_NAME": name, "SERVER_PORT": port,
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": (event.get("requestContext") or {}).get("sourceIp") or "",
        "CONTENT_LENGTH": str(len(body)), "wsgi.version": (1, 0), "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True, "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False}
    for key, value in (event.get("headers") or {}).items():
        if key == "content-type":
            environ["CONTENT_TYPE"] = latin1(value)
        elif key != "content-length" and "_" not in key:
            environ["HTTP_" + key.upper().replace("-", "_")] = latin1(value)
    return environ


def _wsgi_status(status):
    code = str(status).split(" ", 1)[0]
    return int(code) if code.isdigit() else str(status)


def serve_wsgi(target, message):
    """One request to a WSGI app, on this thread. A list body, or one whose Content-Length the app set, goes
    as one response frame; any other iterable is streamed as it is produced."""
    rid = message["id"]
    cap = Capture(rid)
    _trace_env(message.get("context"))
    token = _capture.set(cap)
    _Host.serving = rid
    out, result = _HttpOut(rid), None
    try:
        def start_response(status, headers, exc_info=None):
            if exc_info is not None and out.started:
                raise exc_info[1].with_traceback(exc_info[2])
            if out.status is not None and exc_info is None:
                raise RuntimeError("start_response was called twice (without exc_info)")
            out.status, out.headers = _wsgi_status(status), _header_dict(headers)
            return write

        def write(data):  # PEP 3333's legacy write(): streamed at once
            out.add(bytes(data), True)

        result = target.obj(_wsgi_environ(message["event"]), start_response)
        if isinstance(result, (str, bytes, bytearray)):  # not an iterable of bytes, but meant as the body
            result = [result]
        whole = isinstance(result, (list, tuple))
        try:
            for data in result:
                if out.status is None:
                    raise RuntimeError("the WSGI app produced a body before calling start_response")
                out.add(data.encode("utf-8") if isinstance(data, str) else bytes(data),
                        not (whole or "content-length" in out.headers))
        finally:
            close, result = getattr(result, "close", None), None
            if close is not None:
                close()
        if out.status is None:
            raise RuntimeError("the WSGI app returned without calling start_response")
        out.finish(cap)
    except Exception as exc:
        error = _error(exc)
        cap.add(error["stack"])
        _finish(rid, error, cap, out)
    finally:
        _Host.serving = None
        _capture.reset(token)


ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}


def _asgi_scope(event, state):
    scheme, name, port = _server(event)
    path = event.get("path") or "/"
    source = (event.get("requestContext") or {}).get("sourceIp")
    scope = {"type": "http", "asgi": dict(ASGI_VERSION), "http_version": "1.1", "method": event.get("method") or "GET",
             "scheme": scheme, "path": path, "raw_path": _wire(event.get("rawPath") or path),
             "query_string": _wire(event.get("rawQuery") or ""), "root_path": "",
             "headers": [(_wire(k), _wire(v)) for k, v in (event.get("headers") or {}).items()],
             "client": (source, 0) if source else None, "server": (name, int(port))}
    if state is not None:
        scope["state"] = dict(state)
    return scope


async def serve_asgi(target, state, message):
    """One request to an ASGI 3 app as a task on the event loop. The body arrives in one http.request
    message; after it, receive() waits until the response is complete, then says http.disconnect."""
    import asyncio

    rid = message["id"]
    cap = Capture(rid)
    _trace_env(message.get("context"))
    token = _capture.set(cap)
    out, done = _HttpOut(rid), asyncio.Event()
    pending = [{"type": "http.request", "body": _request_body(message["event"]), "more_body": False}]
    state_of = {"ended": False}

    async def receive():
        if pending:
            return pending.pop()
        await done.wait()
        return {"type": "http.disconnect"}

    async def send_message(msg):
        kind = msg.get("type")
        if kind == "http.response.start":
            if out.status is not None:
                raise RuntimeError("the ASGI app sent http.response.start twice")
            out.status, out.headers = msg["status"], _header_dict(msg.get("headers") or ())
        elif kind == "http.response.body":
            if out.status is None:
                raise RuntimeError("the ASGI app sent http.response.body before http.response.start")
            if done.is_set():
                return
            more = bool(msg.get("more_body", False))
            out.add(bytes(msg.get("body") or b""), more)
            if not more:
                done.set()
                # The response is complete: it goes now, whatever the app does after it (background tasks);
                # but a whole 5xx answer waits for the app to return: frameworks render their error page and
                # then re-raise (Starlette's ServerErrorMiddleware), and that exception is a FUNCTION_ERROR.
                if out.started or not (isinstance(out.status, int) and out.status >= 500):
                    state_of["ended"] = True
                    out.finish(cap)

    try:
        await target.obj(_asgi_scope(message["event"], state), receive, send_message)
        if out.status is None:
            raise RuntimeError("the ASGI app returned without sending http.response.start")
        if not state_of["ended"]:  # returned without a last body (more_body false): that ends it too
            state_of["ended"] = True
            out.finish(cap)
    except Exception as exc:
        error = _error(exc)
        if state_of["ended"]:  # after its response (a background task): the worker's log has it
            _real_stderr.write(error["stack"])
        else:
            cap.add(error["stack"])
            _finish(rid, error, cap, out)
    finally:
        done.set()
        _capture.reset(token)


class Lifespan:
    """The ASGI lifespan protocol around an app's life in this worker: startup before the ready frame,
    shutdown at quit. An app that raises (or returns) before answering startup does not support it."""

    def __init__(self, app):
        self.app, self.state, self.supported = app, {}, False
        self.inbox = self.started = self.stopped = None

    async def startup(self):
        """None, or why the app's startup failed."""
        import asyncio

        loop = asyncio.get_running_loop()
        self.inbox, self.started, self.stopped = asyncio.Queue(), loop.create_future(), loop.create_future()

        async def send_message(msg):
            kind = msg.get("type", "")
            if kind.startswith("lifespan.startup.") and not self.started.done():
                self.started.set_result((msg.get("message") or "lifespan.startup.failed") if kind.endswith(".failed")
                                        else None)
            elif kind.startswith("lifespan.shutdown.") and not self.stopped.done():
                self.stopped.set_result(None)

        async def run():
            scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self.state}
            try:
                await self.app(scope, self.inbox.get, send_message)
            except BaseException as exc:
                if self.started.done():
                    _real_stderr.write(f"orva adapter: the ASGI app's lifespan raised {type(exc).__name__}: {exc}\n")
            finally:
                for future in (self.started, self.stopped):
                    if not future.done():
                        future.set_result(_UNSUPPORTED if future is self.started else None)

        self.task = loop.create_task(run())
        self.inbox.put_nowait({"type": "lifespan.startup"})
        outcome = await self.started
        self.supported = outcome is None
        return None if outcome is None or outcome is _UNSUPPORTED else str(outcome)

    async def shutdown(self, timeout_s=3.0):
        import asyncio

        if not self.supported:
            return
        self.inbox.put_nowait({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(asyncio.shield(self.stopped), timeout_s)
        except TimeoutError:
            _real_stderr.write("orva adapter: the ASGI app's lifespan shutdown did not finish in time\n")


_UNSUPPORTED = object()


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


def load_target():
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
    return resolve(module, entry, name)


_inbox = deque()  # frames an SDK call read while waiting for its result: the frame loop takes them first
_reader = _thread.allocate_lock()  # held by whoever reads stdin (the frame loop, or a waiting SDK call)


def read_exactly(size):
    data = b""
    while len(data) < size:
        chunk = os.read(0, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame():
    """One frame from stdin; None when it closed (or sent a frame over the limit)."""
    header = read_exactly(4)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME:
        _real_stderr.write(f"orva adapter: refused a {size}-byte frame\n")
        return None
    payload = read_exactly(size)
    if payload is None:
        return None
    return json_loads(payload)


def frames():
    """Request frames from stdin until it closes or a quit frame arrives. SDK results go to orva._channel
    (from the thread that read them); a result nobody waits for any more is dropped."""
    while True:
        if _inbox:
            message = _inbox.popleft()
        else:
            with _reader:
                message = _inbox.popleft() if _inbox else read_frame()
        if message is None:
            return
        kind = message.get("type")
        if kind == "quit":
            return
        if kind == "result":
            if _host.on_result is not None:
                _host.on_result(message)
            continue
        yield message


async def serve_concurrently(serve_one, on_quit=None):
    """Async handlers and ASGI apps: stdin is read in a thread, each request becomes a task on the loop."""
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
            task = loop.create_task(serve_one(message))
            tasks.add(task)
            task.add_done_callback(done)
    if tasks:
        await asyncio.wait(tasks, timeout=5)
    if on_quit is not None:
        await on_quit()


class _Host:
    """What orva/_channel.py uses of this adapter: it finds this class as sys.modules["_orva_adapter"] once
    `import orva` ran (the adapter itself is not importable, see main)."""

    MAX_FRAME = MAX_FRAME
    mode = "sync"  # "async": stdin is read by serve_concurrently's thread, which hands results on
    on_result = None  # orva._channel's result dispatcher, set when it is imported
    inbox, reader = _inbox, _reader
    dumps = staticmethod(json_dumps)
    write = staticmethod(write_frame)
    read_frame = staticmethod(read_frame)

    serving = None  # the synchronous frame loop's request: what threads its handler starts call for

    @staticmethod
    def request_id():
        cap = _capture.get()
        return _Host.serving if cap is None else cap.rid


_host = _Host


class _SdkFinder:
    """`import orva` finds the SDK shipped beside this adapter (runtimes/python/orva) without the adapter's
    folder on sys.path. Last on sys.meta_path: a function's own `orva` package would win. Costs nothing
    until a handler imports orva."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "orva":
            return None
        sys.modules["_orva_adapter"] = _Host
        folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "orva")
        return spec_from_file_location("orva", os.path.join(folder, "__init__.py"),
                                       submodule_search_locations=[folder])


def ready(init_error):
    send({"type": "ready", "runtime": "python", "version": sys.version.split()[0], "initError": init_error})


async def serve_asgi_app(target):
    """An ASGI app's worker: lifespan startup (its failure is the worker's init error), ready, requests."""
    lifespan = Lifespan(target.obj)
    try:
        failure = await lifespan.startup()
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}"
    if failure is not None:
        return {"kind": "import", "name": "LifespanStartupFailed",
                "message": f"the ASGI app's lifespan startup failed: {failure}"[:2000],
                "stack": f"the ASGI app's lifespan startup failed: {failure}\n"}
    ready(None)
    await serve_concurrently(lambda message: serve_asgi(target, lifespan.state if lifespan.supported else None,
                                                        message), lifespan.shutdown)
    return None


def main():
    # Imported by the boot line (spawner.PYTHON_BOOT): leave no trace a handler could import.
    if sys.path and sys.path[0] == os.path.dirname(__file__):
        del sys.path[0]
    sys.modules.pop("adapter", None)
    sys.meta_path.append(_SdkFinder)
    target, init_error = None, None
    init_cap = Capture()
    token = _capture.set(init_cap)
    try:
        target = load_target()
    except BaseException as exc:  # a SyntaxError or SystemExit at import must not kill the worker
        init_error = _error(exc, "import")
    _capture.reset(token)
    if init_cap.parts:
        _real_stderr.write(init_cap.text())
    if target is not None and (target.kind == "asgi" or target.is_async):
        _Host.mode = "async"
    if target is not None and target.kind == "asgi":
        import asyncio

        init_error = asyncio.run(serve_asgi_app(target))
        if init_error is None:
            os._exit(0)  # the stdin reader thread may still block in read()
        target = None
    ready(init_error)
    if target is not None and target.is_async:
        import asyncio

        asyncio.run(serve_concurrently(lambda message: serve_async(target, message)))
        os._exit(0)
    serve = serve_wsgi if target is not None and target.kind == "wsgi" else serve_sync
    for message in frames():
        if message.get("type") == "invoke":
            if target is None:
                serve_sync(None, init_error, message)
            elif serve is serve_sync:
                serve_sync(target, None, message)
            else:
                serve_wsgi(target, message)
            reap_strays()


if __name__ == "__main__":
    main()
