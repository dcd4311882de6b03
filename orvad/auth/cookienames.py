"""The session cookie's names: one per transport, so a cookie set over HTTPS carries the `__Host-` prefix.

`__Host-` cookies must be Secure, have Path=/ and no Domain: a browser then refuses any other site
or subdomain (or plain-HTTP page) that tries to set or overwrite it. Plain HTTP cannot use the
prefix, so there the cookie keeps its old name. Pure: the function-side code (invoke/event.py) imports
``NAMES`` to strip both from what handlers see and from what they send back.
"""

from __future__ import annotations

PLAIN = "session_token"
SECURE = "__Host-orva_session"
NAMES = (SECURE, PLAIN)


def name_for(secure_cookies: bool) -> str:
    """The cookie orvad sets and reads: `__Host-orva_session` behind HTTPS, `session_token` otherwise."""
    return SECURE if secure_cookies else PLAIN
