"""Worker frames: a 4-byte big-endian length, then that many bytes of UTF-8 JSON (runtimes/PROTOCOL.md).

Pure: encoding, and an incremental decoder that accepts bytes in any split and refuses a frame
larger than the maximum before buffering it.
"""

from __future__ import annotations

import json
import struct
from typing import Any

MAX_FRAME = 16 * 1024 * 1024
_HEADER = struct.Struct(">I")


class FrameError(ValueError):
    """The peer broke the protocol (oversized or malformed frame)."""


def encode(message: dict[str, Any], max_frame: int = MAX_FRAME) -> bytes:
    try:  # allow_nan=False: NaN/Infinity are not JSON and Node's JSON.parse refuses them
        payload = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise FrameError(f"message is not JSON-encodable: {exc}") from None
    if len(payload) > max_frame:
        raise FrameError(f"frame of {len(payload)} bytes exceeds the {max_frame}-byte maximum")
    return _HEADER.pack(len(payload)) + payload


class Decoder:
    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._max = max_frame
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes; return every complete frame now available, in order."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= 4:
            (size,) = _HEADER.unpack_from(self._buffer)
            if size > self._max:
                raise FrameError(f"frame of {size} bytes exceeds the {self._max}-byte maximum")
            if len(self._buffer) < 4 + size:
                break
            payload = bytes(self._buffer[4:4 + size])
            del self._buffer[:4 + size]
            try:
                message = json.loads(payload)
            except (ValueError, UnicodeDecodeError) as exc:
                raise FrameError(f"frame is not JSON: {exc}") from None
            if not isinstance(message, dict):
                raise FrameError("frame is not a JSON object")
            frames.append(message)
        return frames

    @property
    def pending(self) -> int:
        return len(self._buffer)
