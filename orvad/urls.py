"""URLs said in messages and logs without their secrets."""

from __future__ import annotations

from urllib.parse import urlsplit


def redact_url(text: str) -> str:
    """A URL with its password replaced by *** (``postgresql://orva:***@db:5432/orva``)."""
    parts = urlsplit(text)
    if parts.password is None:
        return text
    host = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()
