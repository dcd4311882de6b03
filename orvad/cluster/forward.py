"""Warm-aware forwarding (issue 25): a synchronous invoke for a function this node has no warm worker
for goes to a node that has an idle one, else it starts cold here.

Which node: among the live nodes whose last heartbeat (orvad/cluster/nodes.py, every ``heartbeat_s``)
reported idle workers for the function, the function's home node (rendezvous hashing over the live node
ids: every node picks the same home, and it moves only when its node leaves) when it is among them, else
the one reporting the most idle workers. The registry's view is in memory: choosing costs no database
or disk work.

The hop is a plain HTTP proxy to the peer's address (``ORVA_NODE_ADDRESS``): same method, path, query,
headers and body, plus ``X-Orva-Forwarded-By: <this node>`` and the caller's address appended to
``X-Forwarded-For``; the peer does every check itself (key, signature, replay, rate limit), so a request
is authorised once, where it runs. A request carrying ``X-Orva-Forwarded-By`` is never forwarded again
(no loops; a client that sends it only keeps its request where it landed). The answer streams back with
``X-Orva-Forwarded-To: <peer>``. When the peer cannot be reached the request runs here (the body was read
first, so nothing is lost). Event invocations (jobs) are never forwarded: any node's runner takes them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable

from starlette.types import Message, Receive, Scope, Send

from orvad.cluster.nodes import Node, NodeRegistry
from orvad.errors import PayloadTooLarge

log = logging.getLogger(__name__)

FORWARDED_BY = b"x-orva-forwarded-by"
FORWARDED_TO = "x-orva-forwarded-to"
# RFC 9110 7.6.1: meant for one connection, never passed on
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)


def home_of(function_id: str, node_ids: list[str]) -> str | None:
    """The function's home among ``node_ids``: rendezvous (highest random weight) hashing."""
    if not node_ids:
        return None
    return max(
        node_ids, key=lambda n: hashlib.blake2b(f"{n}\0{function_id}".encode(), digest_size=8).digest()
    )


class Forwarder:
    def __init__(
        self,
        registry: NodeRegistry,
        warm_here: Callable[[str], bool],
        max_body_bytes: int,
        timeout_s: float = 930.0,
    ) -> None:
        self._registry = registry
        self._warm_here = warm_here
        self._max_body = max_body_bytes
        import httpx  # noqa: PLC0415 (with the cluster: not at a single node's start)

        # one client for every hop: connections to the peers are kept and reused
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s, connect=2.0), follow_redirects=False
        )
        self.forwarded = 0
        self.fell_back = 0

    def peer_for(self, function_id: str) -> Node | None:
        """The node to send this function's request to, or None: serve it here."""
        if self._warm_here(function_id):
            return None
        me = self._registry.node_id
        alive = [n for n in self._registry.view if n.status == "alive"]
        warm = [n for n in alive if n.id != me and int((n.pools.get(function_id) or {}).get("idle", 0)) > 0]
        if not warm:
            return None
        home = home_of(function_id, [n.id for n in alive])
        for node in warm:
            if node.id == home:
                return node
        return max(warm, key=lambda n: (int(n.pools[function_id].get("idle", 0)), n.id))

    def take(
        self,
        function_id: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        local: Callable[[Receive], Awaitable[None]],
    ) -> Awaitable[None] | None:
        """The forwarding of this request when it should go elsewhere (await it), else None."""
        if any(name == FORWARDED_BY for name, _ in scope["headers"]):
            return None
        peer = self.peer_for(function_id)
        if peer is None:
            return None
        return self._forward(peer, scope, receive, send, local)

    async def _forward(
        self,
        peer: Node,
        scope: Scope,
        receive: Receive,
        send: Send,
        local: Callable[[Receive], Awaitable[None]],
    ) -> None:
        body = await self._read_body(receive)
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP_BY_HOP and k != b"x-forwarded-for"]
        forwarded_for = [v for k, v in scope["headers"] if k == b"x-forwarded-for"]
        client = scope.get("client")
        if client:
            forwarded_for.append(str(client[0]).encode())
        if forwarded_for:
            headers.append((b"x-forwarded-for", b", ".join(forwarded_for)))
        headers.append((FORWARDED_BY, self._registry.node_id.encode()))
        query = scope.get("query_string") or b""
        path = scope.get("raw_path") or scope["path"].encode()
        url = (
            peer.address.rstrip("/")
            + path.decode("latin-1")
            + ("?" + query.decode("latin-1") if query else "")
        )
        import httpx  # noqa: PLC0415 (imported by __init__ already)

        request = self._client.build_request(scope["method"], url, headers=headers, content=body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            self.fell_back += 1
            log.warning(
                "forwarding failed; the request runs here",
                extra={"peer": peer.id, "address": peer.address, "error": f"{type(exc).__name__}: {exc}"},
            )
            await local(_replay(body, receive))
            return
        self.forwarded += 1
        try:
            out = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in _HOP_BY_HOP]
            out.append((FORWARDED_TO.encode(), peer.id.encode()))
            await send({"type": "http.response.start", "status": response.status_code, "headers": out})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _read_body(self, receive: Receive) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                raise PayloadTooLarge(
                    f"the request body is larger than {self._max_body} bytes (ORVA_MAX_BODY_BYTES)",
                    details={"limit": self._max_body},
                )
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)

    async def aclose(self) -> None:
        await self._client.aclose()


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body already read, then hands over to the connection's own (disconnects)."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
