"""One lenient reader of the Cookie request header, for every part of orvad that reads it.

``http.cookies.SimpleCookie`` raises on what browsers and clients really send (``a=b; $yk=1``
gave 500 on every guarded route): here a pair that cannot be read is skipped, never an error.
Pure, no imports from orvad.
"""

from __future__ import annotations


def cookie_pairs(header: str) -> list[tuple[str, str]]:
    """``name=value`` pairs of one Cookie header, in order; parts without ``=`` or a name are skipped,
    a value's surrounding double quotes removed."""
    pairs = []
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        pairs.append((name, value))
    return pairs


def cookie_value(
    headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...], name: str
) -> str | None:
    """The first value of cookie ``name`` across the request's Cookie headers (ASGI pairs), or None."""
    for key, raw in headers:
        if key == b"cookie":
            for pair_name, value in cookie_pairs(raw.decode("latin-1")):
                if pair_name == name:
                    return value
    return None
