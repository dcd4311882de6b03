"""orva.invoke: call another function of this orvad (docs/SDK.md, Function-to-function calls).

The call goes to orvad over the worker's own channel; orvad checks it against this function's
``may_invoke`` (the callee's ``auth_mode`` is then satisfied), refuses chains deeper than 8 and cycles,
and gives the callee at most this invocation's remaining time::

    from orva import invoke, ainvoke
    reply = invoke("resize", {"url": url})          # POST / with a JSON body
    reply.status, reply.headers, reply.body, reply.json, reply.text
    reply["statusCode"], reply["body"]["x"]         # Go Orva's shape: body is the parsed JSON reply
    reply = invoke("users", event={"method": "GET", "path": "/42", "query": {"full": "1"}})
    for chunk in invoke("ticks", {}, stream=True):  # bytes, as the callee sends them
        ...
    reply = await ainvoke("resize", {"url": url})   # in an async def handler

A refusal or a failure of the callee raises ``orva.OrvaError`` with its code (FORBIDDEN, NOT_FOUND,
CALL_DEPTH_EXCEEDED, CALL_CYCLE, FUNCTION_ERROR, TIMEOUT, ...).
"""

from __future__ import annotations

import base64

from orva import _channel

__all__ = ["Reply", "Stream", "AsyncStream", "invoke", "ainvoke"]

_NONE = object()  # no payload: an empty POST /


def _bytes(value):
    if isinstance(value, dict) and set(value) == {"$bytes"}:
        return base64.b64decode(value["$bytes"])
    return value


def _wire_body(body):
    if isinstance(body, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(body)).decode("ascii")}
    return body


class Reply(dict):
    """The callee's reply: ``status`` and ``statusCode`` (the same int), ``headers`` (dict, lower-case
    names), ``body`` (the parsed JSON when the callee answered JSON, as Go Orva's SDK gives it; else the
    text, or bytes when it is not UTF-8), ``text`` (always the raw text, or bytes) and ``json`` (the parsed
    body when it is JSON, else None). Also a plain dict."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            if name == "json":
                return None
            raise AttributeError(name) from None


def _reply(value):
    reply = Reply(value)
    text = _bytes(reply.get("body", ""))
    reply["text"] = text
    reply["statusCode"] = reply.get("status")
    if "json" in reply:  # orvad parsed it: the callee answered application/json
        reply["body"] = reply["json"]
    else:
        reply["json"] = None
        reply["body"] = text
    return reply


def _args(function, payload, event):
    args = {"function": function}
    if event is not None:
        if payload is not _NONE:
            raise TypeError("invoke takes a payload or an event, not both")
        event = dict(event)
        if "body" in event:
            event["body"] = _wire_body(event["body"])
        args["event"] = event
    elif payload is not _NONE:
        args["payload"] = payload
    return args


class Stream:
    """A streamed reply: ``status`` and ``headers`` once the callee has answered; iterating gives the body's
    chunks (bytes) as they come. Stopping early (``close()``, or leaving a ``for``) cancels the call."""

    def __init__(self, chunks):
        self._chunks = chunks
        head = next(chunks)  # the callee's status and headers, or its refusal (raised here)
        self.status, self.headers = head.get("status"), head.get("headers", {})

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self._chunks)
        data = _bytes(item.get("chunk", ""))
        return data.encode() if isinstance(data, str) else data

    def close(self):
        self._chunks.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class AsyncStream:
    """The async twin of ``Stream``: ``async for chunk in await ainvoke(name, payload, stream=True)``."""

    def __init__(self, chunks, head):
        self._chunks = chunks
        self.status, self.headers = head.get("status"), head.get("headers", {})

    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await self._chunks.__anext__()
        data = _bytes(item.get("chunk", ""))
        return data.encode() if isinstance(data, str) else data

    async def aclose(self):
        await self._chunks.aclose()


def invoke(function, payload=_NONE, *, event=None, stream=False):
    """Call ``function`` (its name, or id) with ``payload`` (JSON: the body of a POST /) or ``event``
    ({method, path, query, headers, body}); the callee's ``Reply``, or a ``Stream`` with stream=True."""
    args = _args(function, payload, event)
    if stream:
        return Stream(_channel.stream("invoke", {**args, "stream": True}))
    return _reply(_channel.call("invoke", args))


async def ainvoke(function, payload=_NONE, *, event=None, stream=False):
    """The async twin of ``invoke``, for ``async def`` handlers."""
    args = _args(function, payload, event)
    if stream:
        chunks = _channel.astream("invoke", {**args, "stream": True})
        return AsyncStream(chunks, await chunks.__anext__())
    return _reply(await _channel.acall("invoke", args))
