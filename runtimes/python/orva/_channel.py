"""The SDK's channel to orvad (runtimes/PROTOCOL.md, "SDK calls"): ``call(op, args)`` (sync) and
``acall(op, args)`` (async), ``stream``/``astream`` for streamed results. The namespaces (kv, jobs, ...)
are thin wrappers over these.

A call is a ``call`` frame on the worker's frame channel, tagged with the request the handler is serving;
orvad answers with a ``result`` frame. How the answer comes back depends on the adapter's mode:

- plain ``def`` handlers (the synchronous frame loop): the waiting call reads stdin itself, keeps frames
  for other requests in the adapter's inbox, and hands results of other threads' calls to them;
- ``async def`` handlers and ASGI apps: stdin is read by the adapter's thread, which resolves the waiting
  futures (and wakes sync calls made from threads, or from the loop itself, which then blocks).
"""

import _thread
import sys

__all__ = ["OrvaError", "call", "acall", "stream", "astream", "context", "request_id"]

CREDIT_EVERY = 8  # streamed results: chunks taken before the credit frame that lets orvad send more


class OrvaError(Exception):
    """A refused or failed SDK call: ``code`` (e.g. KV_QUOTA_EXCEEDED, TIMEOUT), ``message``, ``hint``,
    ``status`` (the HTTP status orvad would answer with: 404 not found, 504 timeout, ...), ``details``."""

    def __init__(self, code, message, hint=None, status=None, details=None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.hint, self.status, self.details = code, message, hint, status, details

    def __reduce__(self):
        return (OrvaError, (self.code, self.message, self.hint, self.status, self.details))


def _error(body):
    body = body if isinstance(body, dict) else {}
    return OrvaError(
        str(body.get("code") or "INTERNAL"),
        str(body.get("message") or "the call failed"),
        body.get("hint"),
        body.get("status"),
        body.get("details"),
    )


class _Outside:
    """Not inside an Orva worker (a unit test importing the handler): every call says so."""

    mode = "none"

    @staticmethod
    def request_id():
        return None


_host = sys.modules.get("_orva_adapter") or _Outside()
_slots = {}  # (request id, call id) -> _Slot
_ids = iter(range(1, 1 << 62))  # call ids: unique within the worker, so within each request
_lock = _thread.allocate_lock()


class _Slot:
    """One call waiting for its result frame(s)."""

    __slots__ = ("frames", "signal", "loop", "event")

    def __init__(self, loop=None):
        self.frames = []
        self.signal = _thread.allocate_lock()
        self.signal.acquire()
        self.loop, self.event = loop, None
        if loop is not None:
            import asyncio

            self.event = asyncio.Event()

    def wake(self):
        """A frame arrived (any thread)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.event.set)
        elif self.signal.locked():
            try:
                self.signal.release()
            except RuntimeError:  # released by another wake meanwhile
                pass


def _on_result(frame):
    """A result frame from orvad, on whichever thread read it."""
    slot = _slots.get((frame.get("id"), frame.get("call")))
    if slot is not None:
        slot.frames.append(frame)
        slot.wake()


if not isinstance(_host, _Outside):
    _host.on_result = _on_result


def request_id():
    """The id of the request the current code serves (None outside one)."""
    return _host.request_id()


def _start(op, args, loop=None):
    """Send the call frame; the slot its answer lands in."""
    rid = _host.request_id()
    if rid is None:
        if isinstance(_host, _Outside):
            raise OrvaError(
                "NOT_IN_WORKER",
                f"{op}: orva calls work only inside an Orva worker",
                "run the function on orvad (orva deploy, then orva invoke)",
            )
        raise OrvaError(
            "NO_REQUEST",
            f"{op}: orva calls work only while a request is being served",
            "make SDK calls from the handler (or code it runs), not at import time",
        )
    if not isinstance(args, dict):
        raise TypeError(f"{op}: the arguments must be a dict")
    call_id = next(_ids)
    try:
        payload = _host.dumps(
            {"type": "call", "id": rid, "call": call_id, "op": op, "args": args}, ascii=False, strict=True
        ).encode()
    except (TypeError, ValueError) as exc:
        raise OrvaError(
            "VALIDATION",
            f"{op}: the arguments are not JSON: {exc}",
            "pass JSON values (dict, list, str, int, float, bool, None); bytes go through the namespaces",
        ) from None
    if len(payload) > _host.MAX_FRAME:
        raise OrvaError(
            "PAYLOAD_TOO_LARGE",
            f"{op}: the call ({len(payload)} bytes) exceeds the {_host.MAX_FRAME}-byte frame limit",
            "send less at once",
            413,
        )
    key = (rid, call_id)
    slot = _slots[key] = _Slot(loop)
    try:
        _host.write(payload)
    except BaseException:
        _slots.pop(key, None)
        raise
    return key, slot


def _next_sync(slot):
    """The slot's next frame, waiting on this thread."""
    while not slot.frames:
        if _host.mode == "sync" and _host.reader.acquire(False):
            # nobody is reading stdin (the frame loop is running this handler): read it ourselves
            try:
                if slot.frames:
                    break
                frame = _host.read_frame()
            finally:
                _host.reader.release()
            if frame is None:
                _host.inbox.append(None)  # stdin closed: the frame loop ends too
                raise OrvaError("WORKER_STOPPING", "the worker is stopping", status=503)
            if frame.get("type") == "result":
                _on_result(frame)
            else:
                _host.inbox.append(frame)  # another request's frame (or quit): the frame loop takes it
        else:
            slot.signal.acquire(timeout=0.05 if _host.mode == "sync" else -1)
    return slot.frames.pop(0)


async def _next_async(slot):
    while not slot.frames:
        slot.event.clear()
        if slot.frames:
            break
        await slot.event.wait()
    return slot.frames.pop(0)


def _value(frame, key):
    if frame.get("ok"):
        return frame.get("value")
    raise _error(frame.get("error"))


def call(op, args=None):
    """Run SDK operation ``op`` in orvad and return its JSON value (sync). A streamed result comes back as
    the list of its chunks. Raises OrvaError."""
    key, slot = _start(op, {} if args is None else args)
    chunks = None
    try:
        while True:
            frame = _next_sync(slot)
            if frame.get("more"):
                chunks = [] if chunks is None else chunks
                chunks.append(frame.get("value"))
                _credit(key, 1, force=True)
                continue
            value = _value(frame, key)
            return chunks if chunks is not None else value
    finally:
        _slots.pop(key, None)


async def acall(op, args=None):
    """The async twin of ``call``, for ``async def`` handlers."""
    import asyncio

    if _host.mode != "async":  # a sync worker running a coroutine (asyncio.run): wait on a thread
        return await asyncio.to_thread(call, op, args)
    key, slot = _start(op, {} if args is None else args, asyncio.get_running_loop())
    chunks = None
    try:
        while True:
            frame = await _next_async(slot)
            if frame.get("more"):
                chunks = [] if chunks is None else chunks
                chunks.append(frame.get("value"))
                _credit(key, 1, force=True)
                continue
            value = _value(frame, key)
            return chunks if chunks is not None else value
    finally:
        _slots.pop(key, None)


_taken = {}  # streamed results: chunks taken since the last credit frame


def _credit(key, n, force=False):
    count = _taken.get(key, 0) + n
    if force or count >= CREDIT_EVERY:
        _taken.pop(key, None)
        _send_control("credit", key, count)
    else:
        _taken[key] = count


def _send_control(kind, key, n=None):
    message = {"type": kind, "id": key[0], "call": key[1]}
    if n is not None:
        message["n"] = n
    _host.write(_host.dumps(message, strict=True).encode())


def stream(op, args=None):
    """A streamed SDK result as a generator of its chunks (sync). Leaving it early cancels the stream."""
    key, slot = _start(op, {} if args is None else args)
    done = False
    try:
        while True:
            frame = _next_sync(slot)
            if not frame.get("more"):
                done = True
                _value(frame, key)
                return
            yield frame.get("value")
            _credit(key, 1)
    finally:
        _slots.pop(key, None)
        _taken.pop(key, None)
        if not done:
            _cancel(key)


async def astream(op, args=None):
    """A streamed SDK result as an async generator of its chunks."""
    import asyncio

    if _host.mode != "async":
        raise OrvaError("USE_SYNC", f"{op}: astream needs an async def handler", "use orva's stream() here")
    key, slot = _start(op, {} if args is None else args, asyncio.get_running_loop())
    done = False
    try:
        while True:
            frame = await _next_async(slot)
            if not frame.get("more"):
                done = True
                _value(frame, key)
                return
            yield frame.get("value")
            _credit(key, 1)
    finally:
        _slots.pop(key, None)
        _taken.pop(key, None)
        if not done:
            _cancel(key)


def _cancel(key):
    try:
        _send_control("cancel", key)
    except OSError:
        pass


def context():
    """Who orvad says is calling: {functionId, functionName, executionId, traceId, spanId, depth, remainingMs}."""
    return call("context", {})
