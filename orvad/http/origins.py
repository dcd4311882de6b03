"""Which origin a request came to, and whether its Host may reach the dashboard and the API.

Pure: built once from the settings, then read per request from the ASGI scope. Also who the request came
from: ``client_address`` (X-Forwarded-For only behind a trusted proxy).

- ``functions_origin`` (``ORVA_FUNCTIONS_ORIGIN``): /fn and custom routes are also served there,
  and nothing else. With an explicit port other than ``port``, orvad listens on it too (same bind
  address) and a request is on the functions origin when it arrived there; otherwise (no port, or
  ``port``: a reverse proxy in front) when its ``Host`` names the functions origin's host.
- ``allowed_hosts`` (``ORVA_ALLOWED_HOSTS``): the ``Host`` names /api and /web answer, so a
  page on another name that resolves to orvad (DNS rebinding) is refused. Ports are not
  compared: the name is what rebinding changes.
- ``shares_cookies``: whether a reply on this request's origin can read or set the dashboard's
  cookies. Cookies are scoped by host name, not port, so a functions origin reached by a name the
  dashboard answers to (any port) still shares them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

Scope = Mapping[str, Any]  # an ASGI scope (no web framework import here)

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARD_BINDS = ("0.0.0.0", "::", "")


def host_name(host: str) -> str:
    """``Host`` header text -> lower-case name without port, brackets or trailing dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Origins:
    bind_host: str
    port: int
    allowed: frozenset[str]  # host names; empty with allow_any
    allow_any: bool  # ORVA_ALLOWED_HOSTS=*
    any_ip: bool  # bound to every address: any IP literal is one of ours
    functions_name: str | None  # the functions origin's host name
    functions_port: int | None  # and its explicit port

    @classmethod
    def from_settings(
        cls, *, host: str, port: int, public_url: str, allowed_hosts: str, functions_origin: str
    ) -> Origins:
        bind = host_name(host) if host else ""
        public = urlsplit(public_url).hostname if public_url else None
        listed = [entry.strip() for entry in allowed_hosts.split(",") if entry.strip()]
        names = {host_name(entry) for entry in listed if entry != "*"}
        if not listed:
            names |= {*_LOOPBACK_NAMES, *([bind] if bind not in _WILDCARD_BINDS else [])}
        if public:
            names.add(public.lower())
        fn_name = fn_port = None
        if functions_origin:
            parts = urlsplit(functions_origin)
            fn_name = (parts.hostname or "").lower()
            fn_port = parts.port  # none given: a proxy in front serves it on the default port
        return cls(
            bind_host=bind,
            port=port,
            allowed=frozenset(names),
            allow_any="*" in listed,
            any_ip=not listed and bind in _WILDCARD_BINDS,
            functions_name=fn_name,
            functions_port=fn_port,
        )

    @property
    def functions_listener(self) -> int | None:
        """The extra port to listen on for the functions origin: its explicit port, if not ``port``."""
        return self.functions_port if self.functions_port not in (None, self.port) else None

    def on_functions_origin(self, scope: Scope) -> bool:
        if self.functions_name is None:
            return False
        server = scope.get("server")
        listener = self.functions_listener
        if listener is not None and server is not None and server[1] == listener:
            return True
        if listener is None:  # same port: only the Host tells them apart
            host = _host(scope)
            return host is not None and host_name(host) == self.functions_name
        return False

    def host_allowed(self, scope: Scope) -> bool:
        host = _host(scope)
        if host is None or self.allow_any:  # no Host (HTTP/1.0): no browser sends that, no rebinding
            return True
        name = host_name(host)
        return name in self.allowed or (self.any_ip and _is_ip(name))

    def shares_cookies(self, scope: Scope) -> bool:
        """Whether a reply to this request may land where the dashboard's cookies live: anywhere but
        the functions origin reached by a host name the dashboard does not answer to."""
        return not self.on_functions_origin(scope) or self.host_allowed(scope)


def _host(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"host":
            return str(value.decode("latin-1"))
    return None


def client_address(
    peer: str, forwarded_for: str | None, trusted: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> str:
    """The caller's address: X-Forwarded-For's last untrusted hop, only behind a trusted proxy."""
    if not forwarded_for or not _in(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _is_address(hop):  # not an address (text a client put there): the trusted proxy's word ends
            return peer
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in(address: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
