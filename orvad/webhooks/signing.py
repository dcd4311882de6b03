"""Signing outbound deliveries (pure): the Standard Webhooks layout (https://www.standardwebhooks.com) and
Orva's own header.

A secret is ``whsec_`` + base64 of 32 random bytes; the HMAC key is those bytes (base64-decoded, the prefix
removed), for both signatures:

- ``webhook-signature: v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">``
- ``X-Orva-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">``

``webhook-timestamp`` and ``X-Orva-Timestamp`` are the attempt's Unix seconds (each attempt signs anew).
docs/WEBHOOKS.md, "Verifying a delivery", shows a receiver's check in Python and Node.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_`` secret stands for."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def standard_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def orva_signature(key: bytes, timestamp: int, body: bytes) -> str:
    return "sha256=" + hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def headers(key: bytes, *, msg_id: str, event_type: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Every header of one attempt (besides Content-Type and User-Agent)."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(key, msg_id, timestamp, body),
        "X-Orva-Event": event_type,
        "X-Orva-Delivery": msg_id,
        "X-Orva-Timestamp": str(timestamp),
        "X-Orva-Signature": orva_signature(key, timestamp, body),
    }
