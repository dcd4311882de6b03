"""The typed request every trigger hands to the one dispatch path.

HTTP (``/fn/...`` and custom routes) builds it from the ASGI scope (``from_scope``); any other
trigger (MCP tools, jobs, cron, a function calling a function) fills the fields itself and leaves
``scope`` empty. Headers stay as the raw pairs HTTP delivers (lower-case names, bytes), so the HTTP
path copies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from starlette.types import Scope

from orvad.models import Function
from orvad.traces.context import TraceContext

# never taken from a caller that is not HTTP (an MCP agent, a calling function): credentials, orvad's own
# headers, and what a proxy or the framing owns
DROPPED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "forwarded",
        "x-real-ip",
    }
)
DROPPED_PREFIXES = ("x-orva-", "x-forwarded-")


@dataclass(frozen=True, slots=True)
class Grant:
    """A caller the MCP layer has already authorised (orvad/mcp): a channel's token for a function it
    bundles (satisfies every ``auth_mode``, recorded on the execution), or an operator-mode caller
    (API key or OAuth client) holding ``invoke`` (satisfies ``api_key``; a ``signed`` function still
    needs its signature). A function-to-function call (orvad/invoke/f2f.py) carries kind ``function``: the
    calling function's ``may_invoke`` named the callee, which satisfies every ``auth_mode``. HTTP never sets one."""

    kind: Literal["channel", "operator", "function", "job", "webhook"]
    id: str  # the channel's id, the key's / OAuth client's, the calling function's, the job's, the webhook's

    def satisfies(self, auth_mode: str) -> bool:
        # a job's attempt (orvad/jobs): its enqueue was authorised (the API's invoke permission, the
        # function's own auth_mode for an Event invocation, may_invoke for the SDK)
        # an inbound webhook's delivery (orvad/webhooks/inbound.py): its sender's signature was verified
        return self.kind in ("channel", "function", "job", "webhook") or auth_mode == "api_key"

    @property
    def channel_id(self) -> str | None:
        return self.id if self.kind == "channel" else None


@dataclass(slots=True)
class InvokeRequest:
    function: Function
    subpath: str = "/"  # the decoded path after the function's own prefix (/fn/<id> or the route's)
    trigger: str = "http"  # recorded in the execution row: http, route, ...
    method: str = "POST"
    headers: list[tuple[bytes, bytes]] = field(
        default_factory=list
    )  # lower-case names, as HTTP delivers them
    query: bytes = b""  # the raw query string, without '?'
    body: bytes | None = b""  # None: still to be read from the HTTP connection (after the gates)
    client: str = ""  # the peer's address ("" when there is none)
    request_id: str = ""  # X-Request-ID of the HTTP request; the handler sees it as requestContext.requestId
    raw_path: bytes | None = None  # the path as sent, %-escapes kept (HTTP)
    raw_skip: int | None = (
        None  # leading segments of raw_path that are not the function's (None: use subpath)
    )
    scope: Scope | None = (
        None  # the HTTP request's scope: its origin and session cookie; None for other triggers
    )
    grant: Grant | None = None  # authorised already: by the MCP layer (a channel, an operator caller) or F2F
    timeout_s: float | None = None  # a cap on the function's timeout_ms (F2F: the caller's remaining time)
    chain: tuple[
        str, ...
    ] = ()  # F2F: function ids of the calls that led here, outermost first (Caller.chain)
    # the calling span (jobs, cron, F2F: the caller's trace_id and span_id, orvad/traces/context.py): the
    # execution joins that trace as its child. None: HTTP reads the traceparent header; else a new trace
    trace_parent: TraceContext | None = None
    job_id: str | None = None  # a job's attempt (orvad/jobs): the handler sees it as requestContext.jobId
    webhook_id: str | None = None  # an inbound webhook's delivery: the handler sees requestContext.webhookId

    @classmethod
    def from_scope(
        cls, fn: Function, subpath: str, trigger: str, scope: Scope, raw_skip: int | None
    ) -> InvokeRequest:
        client = scope.get("client")
        return cls(
            fn,
            subpath,
            trigger,
            scope["method"],
            scope["headers"],
            scope.get("query_string", b""),
            None,
            client[0] if client else "",
            scope.get("state", {}).get("request_id", ""),
            scope.get("raw_path"),
            raw_skip,
            scope,
        )

    def time_limit_s(self, elapsed: float = 0.0) -> float:
        """The invocation's time limit: the function's ``timeout_ms``; with a cap (``timeout_s``, counted
        from the request's start) what is left of the cap ``elapsed`` seconds in, when that is less."""
        limit = self.function.timeout_ms / 1000
        return limit if self.timeout_s is None else max(0.001, min(limit, self.timeout_s - elapsed))

    def header(self, name: bytes) -> str | None:
        """The first value of header ``name`` (lower-case), as text."""
        for key, value in self.headers:  # a loop, not next(generator): asked on every invocation
            if key == name:
                return value.decode("latin-1")
        return None

    def target(self) -> str:
        """The request target a signature covers (``signed_target``); a request that did not come
        over HTTP covers ``/fn/<id><subpath>`` and its query."""
        if self.scope is not None:
            return signed_target(self.scope)
        path = self.raw_path.decode("latin-1") if self.raw_path else f"/fn/{self.function.id}{self.subpath}"
        return f"{path}?{self.query.decode('latin-1')}" if self.query else path


def signed_target(scope: Scope) -> str:
    """The request target a signature covers: the path as sent (%-escapes kept, /fn/<id> or the
    route's path included) and ``?query`` when the query is not empty."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"]
    query = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path
