"""UUIDv7 identifiers (RFC 9562): time-ordered, so lists sort newest-first by id.

Monotonic within a process (RFC 9562 6.2, method 2: an id made in the same millisecond as the last, or
after the clock stepped back, is the last one plus one), so ordering by id is insertion order, on SQLite
and on PostgreSQL alike (PostgreSQL has no rowid to order by).

The standard library gains uuid.uuid7 only in Python 3.14.
"""

from __future__ import annotations

import random
import threading
import time

# Identifiers need to be unique, not secret (every resource is behind a permission check), so a
# seeded PRNG serves; os.urandom costs a system call per id on the invoke path.
_random = random.Random()
_last = 0
_lock = threading.Lock()  # ids are made on the event loop and in threads


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
    global _last
    with _lock:
        if value <= _last:  # the same millisecond (or the clock went back): one more than the last
            value = _last + 1
        _last = value
    text = f"{value:032x}"  # what str(uuid.UUID(int=value)) gives, without building the object
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
