"""UUIDv7 identifiers (RFC 9562): time-ordered, so lists sort newest-first by id.

The standard library gains uuid.uuid7 only in Python 3.14.
"""

from __future__ import annotations

import random
import time

# Identifiers need to be unique, not secret (every resource is behind a permission check), so a
# seeded PRNG serves; os.urandom costs a system call per id on the invoke path.
_random = random.Random()


def uuid7() -> str:
    ms = time.time_ns() // 1_000_000
    rand = _random.getrandbits(80)
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | (rand >> 68 & 0xFFF) << 64
        | 0b10 << 62
        | (rand & (1 << 62) - 1)
    )
    text = f"{value:032x}"  # what str(uuid.UUID(int=value)) gives, without building the object
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
