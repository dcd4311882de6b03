"""A function invoked from /mcp (operator mode's ``invoke_function`` and every channel tool): the tool's
arguments become an ``InvokeRequest`` (trigger ``mcp``) through the same dispatch as ``/fn``, and the reply
becomes a tool result.

Two shapes of arguments: the request's parts (``method``, ``path``, ``query``, ``headers``, ``body``:
``invoke``), or, for a function that declares an ``input_schema``, the arguments object itself, checked
against the schema and sent as the JSON body of ``POST /`` (``invoke_arguments``).

The headers an agent names never carry a credential or an Orva header to the function: ``X-Orva-*``,
``Authorization``, ``Proxy-Authorization`` and ``Cookie`` are dropped, and so are the headers a proxy or
the HTTP framing owns (``Host``, ``Content-Length``, ``X-Forwarded-*``, ...). Every call carries a
``Grant`` (orvad/invoke/request.py): a channel's call is authorised by the channel (any ``auth_mode``, the
channel recorded on the execution); operator mode's by its caller holding ``invoke`` (API key or OAuth
client: ``auth_mode: api_key``; ``signed`` still needs its signature). No token is ever added to the request.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from orvad.invoke import Grant, InvokeRequest
from orvad.invoke.request import DROPPED_HEADERS, DROPPED_PREFIXES
from orvad.mcp.results import Caller, ToolReply, bad, reply_result, string_arg
from orvad.mcp.schemacheck import check_arguments
from orvad.models import Function

if TYPE_CHECKING:
    from orvad.daemon import Daemon

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
_VALUE = re.compile(r"^[\t\x20-\x7e\x80-\xff]*$")  # no CR, LF, NUL or other controls; latin-1
JSON_TYPE = (b"content-type", b"application/json")


def dropped(name: str) -> bool:
    """A header an agent may not set on the request the handler sees."""
    return name in DROPPED_HEADERS or name.startswith(DROPPED_PREFIXES)


def agent_headers(sent: Any) -> list[tuple[bytes, bytes]]:
    """The headers the agent named, checked (RFC 9110 names, latin-1 values without controls), lower-case,
    without the dropped ones."""
    if not isinstance(sent, dict) or not all(isinstance(v, str) for v in sent.values()):
        raise bad("headers", "must be an object of strings", 'pass headers like {"x-trace": "1"}')
    headers: list[tuple[bytes, bytes]] = []
    for name, value in sent.items():
        if not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            raise bad(
                "headers",
                f"has a header that HTTP cannot carry: {name!r}",
                "header names are letters, digits and -; values are text without line breaks",
            )
        lower = name.lower()
        if not dropped(lower):
            headers.append((lower.encode("latin-1"), value.encode("latin-1")))
    return headers


async def invoke(daemon: Daemon, caller: Caller, fn: Function, args: dict[str, Any]) -> ToolReply:
    """Invoke ``fn`` with the tool arguments (method, path, query, headers, body)."""
    method = (string_arg(args, "method") or "POST").upper()
    if not _TOKEN.fullmatch(method):
        raise bad("method", "must be an HTTP method", "pass method like GET or POST")
    path = string_arg(args, "path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    sent = args.get("headers") or {}
    headers = agent_headers(sent)
    query = args.get("query") or {}
    if not isinstance(query, dict):
        raise bad("query", "must be an object", 'pass query like {"page": "2"}')
    body = args.get("body")
    raw: bytes
    if body is None:
        raw = b""
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = json.dumps(body).encode()
        if not any(name == b"content-type" for name, _ in headers):
            headers.append(JSON_TYPE)
    return await _dispatch(
        daemon, caller, fn, method, path, headers, urlencode({k: str(v) for k, v in query.items()}), raw
    )


async def invoke_arguments(daemon: Daemon, caller: Caller, fn: Function, args: dict[str, Any]) -> ToolReply:
    """A function with a declared ``input_schema``: the arguments, checked against it, are the JSON body
    of ``POST /``. The check runs in a checker process within a time budget (orvad/mcp/schemacheck.py)."""
    assert fn.input_schema is not None
    await check_arguments(fn.input_schema, args)
    return await _dispatch(daemon, caller, fn, "POST", "/", [JSON_TYPE], "", json.dumps(args).encode())


async def _dispatch(
    daemon: Daemon,
    caller: Caller,
    fn: Function,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    query: str,
    body: bytes,
) -> ToolReply:
    # the caller is authorised already: a channel bundling the function, or an operator caller (API
    # key or OAuth client) whose invoke permission the tool required; its token never reaches the handler
    grant = Grant("channel", caller.channel_id) if caller.channel_id else Grant("operator", caller.key_id)
    result = await daemon.invoker.dispatch(
        InvokeRequest(
            fn,
            subpath=path,
            trigger="mcp",
            method=method,
            headers=headers,
            query=query.encode(),
            body=body,
            client=caller.client,
            grant=grant,
        )
    )
    return reply_result(result.status, result.header("content-type"), result.body, result.complete)
