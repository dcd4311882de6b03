"""A function invoked from /mcp (operator mode's ``invoke_function`` and every channel tool): the tool's
arguments become an ``InvokeRequest`` (trigger ``mcp``) through the same dispatch as ``/fn``, and the reply
becomes a tool result."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from orvad.invoke import InvokeRequest
from orvad.mcp.results import Caller, ToolReply, bad, reply_result, string_arg
from orvad.models import Function

if TYPE_CHECKING:
    from orvad.daemon import Daemon


async def invoke(daemon: Daemon, caller: Caller, fn: Function, args: dict[str, Any]) -> ToolReply:
    """Invoke ``fn`` with the tool arguments (method, path, query, headers, body)."""
    method = (string_arg(args, "method") or "POST").upper()
    path = string_arg(args, "path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    headers: list[tuple[bytes, bytes]] = []
    sent = args.get("headers") or {}
    if not isinstance(sent, dict) or not all(isinstance(v, str) for v in sent.values()):
        raise bad("headers", "must be an object of strings", 'pass headers like {"x-trace": "1"}')
    for name, value in sent.items():
        if name.lower() in ("x-orva-api-key", "authorization"):
            continue  # the caller's own credential admits it (below), never one the agent names
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
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
        if "content-type" not in sent:
            headers.append((b"content-type", b"application/json"))
    # an api_key function admits the caller's own key (it has invoke: the tool requires it);
    # the handler never sees it (orvad/invoke/event.py removes Orva's credentials)
    headers.append((b"x-orva-api-key", caller.token.encode()))
    result = await daemon.invoker.dispatch(
        InvokeRequest(
            fn,
            subpath=path,
            trigger="mcp",
            method=method,
            headers=headers,
            query=urlencode({k: str(v) for k, v in query.items()}).encode(),
            body=raw,
        )
    )
    return reply_result(result.status, result.header("content-type"), result.body, result.complete)
