"""AES-256-GCM under orvad's master key: every value orvad stores sealed (function secrets, webhook
secrets, AI provider keys) is ``seal``-ed with associated data naming what it belongs to, so a sealed
value moved to another row does not open.

``cryptography`` (its OpenSSL bindings, about 6 MB) is imported at the first seal or open, not at
orvad's start; ``ready()`` imports it off the event loop (about 25 ms), awaited where values are opened at a
worker's start and where the sealed rows are loaded.
"""

from __future__ import annotations

import os

from orvad.imports import imported

_AEAD = "cryptography.hazmat.primitives.ciphers.aead"


class Unsealable(ValueError):
    """The value does not open: another master key, other associated data, or changed bytes."""


async def ready() -> None:
    """cryptography imported, in a thread the first time (orvad/imports.py)."""
    await imported(_AEAD)


def seal(master: bytes, plaintext: str, aad: bytes) -> tuple[bytes, bytes]:
    """A fresh 96-bit nonce and the ciphertext (with its tag)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 (see the docstring)

    nonce = os.urandom(12)
    return nonce, AESGCM(master).encrypt(nonce, plaintext.encode(), aad)


def unseal(master: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> str:
    """The plaintext; raises Unsealable when it does not open."""
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

    try:
        return AESGCM(master).decrypt(nonce, sealed, aad).decode()
    except InvalidTag:
        raise Unsealable("the value does not open with this master key") from None
