"""Custom routes: validation, the in-memory table that maps a request path to a function, and
the service that keeps the table in step with the database.

The table is pure (no I/O) and is what the invoke path reads. Exact routes ('/hooks/stripe') match only themselves; prefix routes ('/api2/*')
match the prefix and anything under it; the longest match wins. The function sees the path
after the route ('/' for an exact route).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from orvad.clock import now_iso
from orvad.errors import Conflict, NotFound, ValidationError
from orvad.ids import uuid7
from orvad.store.routes import RouteStore

RESERVED = (
    "/api/",
    "/fn/",
    "/mcp",
    "/web/",
    "/_orva/",
    "/health",
    "/healthz",
    "/metrics",
    "/oauth/",  # the MCP connectors' authorization server (orvad/api/oauth_server.py)
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-protected-resource",
    "/webhook/",  # inbound webhooks (orvad/webhooks/inbound.py, issue 24)
)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# no %: requests are matched on their decoded path, so a route written with escapes would never match
_PATH_RE = re.compile(r"^(/[A-Za-z0-9._~!$&'()+,;=:@_-]+)+/?(\*)?$|^/\*$")


@dataclass(frozen=True)
class RouteEntry:
    id: str
    path: str
    function_id: str
    methods: frozenset[str] | None  # None: every method
    created_at: str

    @property
    def is_prefix(self) -> bool:
        return self.path.endswith("/*")

    @property
    def base(self) -> str:
        return self.path[:-2] if self.is_prefix else self.path

    @cached_property
    def raw_skip(self) -> int | None:
        """Path segments that are the route's, not the function's (None: an exact route, whose
        function sees "/"); found once per route, not per request."""
        return self.base.count("/") if self.is_prefix else None

    def methods_text(self) -> str:
        return "*" if self.methods is None else ",".join(m for m in METHODS if m in self.methods)


def validate_path(path: object) -> str:
    if not isinstance(path, str) or not _PATH_RE.fullmatch(path) or "//" in path or len(path) > 512:
        raise ValidationError(
            "path must start with / and contain URL path characters; end with /* for a prefix",
            hint="examples: /webhooks/stripe, /shop/*"
            + (
                "; write it without %-escapes: requests are matched on their decoded path"
                if isinstance(path, str) and "%" in path
                else ""
            ),
            details={"field": "path"},
        )
    if path == "/*" or path == "/":
        raise ValidationError("the root cannot be routed", details={"field": "path"})
    base = path[:-2] if path.endswith("/*") else path.rstrip("/")
    for reserved in RESERVED:
        if (base + "/").startswith(reserved.rstrip("/") + "/") or base == reserved.rstrip("/"):
            raise ValidationError(
                f"paths under {reserved} are reserved for orvad",
                details={"field": "path", "reserved": list(RESERVED)},
            )
    return base + "/*" if path.endswith("/*") else base


def parse_methods(methods: object) -> frozenset[str] | None:
    if methods is None or methods == "*":
        return None
    parts = [m.strip().upper() for m in methods.split(",")] if isinstance(methods, str) else None
    if not parts or any(p not in METHODS for p in parts):
        raise ValidationError(
            f"methods must be * or a comma list of {', '.join(METHODS)}", details={"field": "methods"}
        )
    return frozenset(parts)


@dataclass(frozen=True)
class Match:
    route: RouteEntry
    subpath: str


class RouteTable:
    def __init__(self, entries: list[RouteEntry] | None = None) -> None:
        self._exact: dict[str, RouteEntry] = {}
        self._prefixes: list[RouteEntry] = []
        for entry in entries or []:
            self.add(entry)

    def add(self, entry: RouteEntry) -> None:
        if entry.is_prefix:
            self._prefixes.append(entry)
            self._prefixes.sort(key=lambda e: len(e.base), reverse=True)  # longest first
        else:
            self._exact[entry.path] = entry

    def remove(self, path: str) -> None:
        self._exact.pop(path, None)
        self._prefixes = [e for e in self._prefixes if e.path != path]

    def remove_function(self, function_id: str) -> None:
        for entry in self.all():
            if entry.function_id == function_id:
                self.remove(entry.path)

    def get(self, path: str) -> RouteEntry | None:
        return self._exact.get(path) or next((e for e in self._prefixes if e.path == path), None)

    def all(self) -> list[RouteEntry]:
        return sorted([*self._exact.values(), *self._prefixes], key=lambda e: e.id, reverse=True)

    def match(self, path: str) -> Match | None:
        """The route serving ``path``: an exact route, else the longest prefix route containing it."""
        trimmed = path.rstrip("/") or "/"
        exact = self._exact.get(trimmed)
        if exact is not None:  # as long as the path itself, so never shorter than a prefix match
            return Match(exact, "/")
        for entry in self._prefixes:  # sorted longest base first
            if trimmed == entry.base or trimmed.startswith(entry.base + "/"):
                return Match(entry, path[len(entry.base) :] or "/")
        return None


class RouteService:
    def __init__(self, store: RouteStore) -> None:
        self._store = store
        self.table = RouteTable()

    async def load(self) -> None:
        for row in await self._store.all_routes():
            self.table.add(
                RouteEntry(
                    row["id"],
                    row["path"],
                    row["function_id"],
                    parse_methods(row["methods"]),
                    row["created_at"],
                )
            )

    async def create(
        self, path: object, function_id: str, methods: object, *, replace: bool = False
    ) -> tuple[RouteEntry, bool]:
        """Add a route; with `replace`, one already at that path is swapped for it with no gap in
        between. Returns the route and whether it replaced one."""
        clean = validate_path(path)
        entry = RouteEntry(uuid7(), clean, function_id, parse_methods(methods), now_iso())
        existed = self.table.get(clean) is not None
        if existed and not replace:
            raise Conflict(
                f"route {clean} exists already",
                hint="PUT /api/v1/routes replaces it, or DELETE /api/v1/routes?path=... first",
                details={"path": clean},
            )
        await self._store.insert_route(
            entry.id, entry.path, entry.function_id, entry.methods_text(), entry.created_at, replace=replace
        )
        self.table.remove(clean)  # no await from here on: requests see the old route or the new one
        self.table.add(entry)
        return entry, existed

    async def delete(self, path: object) -> None:
        # a route stored before the rules tightened (one with %-escapes) can still be deleted by its path
        clean = path if isinstance(path, str) and self.table.get(path) is not None else validate_path(path)
        if not await self._store.delete_route(clean):
            raise NotFound(
                f"no route {clean}", hint="list routes with GET /api/v1/routes", details={"path": clean}
            )
        self.table.remove(clean)

    def forget_function(self, function_id: str) -> None:
        """The database cascade removed the rows; drop them from the table too."""
        self.table.remove_function(function_id)
