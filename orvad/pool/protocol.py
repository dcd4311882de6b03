"""Worker frames: a 4-byte big-endian length, then that many bytes of UTF-8 JSON (runtimes/PROTOCOL.md).

Pure: encoding, and an incremental decoder that accepts bytes in any split and refuses a frame
larger than the maximum before buffering it. orjson does the JSON: it is ten times faster than
the standard library here, and two frames cross per invocation.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import orjson

MAX_FRAME = 16 * 1024 * 1024
# A request's captured output kept with its execution (the adapters' ORVA_MAX_LOG_BYTES default). The
# adapters cap it too, but they run in the jail with the handler, which can lift their cap: orvad cuts
# every reply's logs to this when the frame arrives (cap_logs).
MAX_LOG_BYTES = 256 * 1024
_HEADER = struct.Struct(">I")


class FrameError(ValueError):
    """The peer broke the protocol (oversized or malformed frame)."""


def encode(message: dict[str, Any], max_frame: int = MAX_FRAME) -> bytes:
    """One frame. NaN and Infinity become null, as JavaScript's JSON.stringify writes them."""
    try:
        payload = orjson.dumps(message)
    except TypeError as exc:  # orjson.JSONEncodeError: a value JSON cannot carry
        raise FrameError(f"message is not JSON-encodable: {exc}") from None
    if len(payload) > max_frame:
        raise FrameError(f"frame of {len(payload)} bytes exceeds the {max_frame}-byte maximum")
    return _HEADER.pack(len(payload)) + payload


def cap_logs(logs: Any, limit: int = MAX_LOG_BYTES) -> tuple[str, bool]:
    """A reply frame's ``logs`` as at most ``limit`` UTF-8 bytes, cut on a character boundary, and
    whether anything was cut. A value that is not text is dropped (and reported cut)."""
    if not isinstance(logs, str):
        return "", logs is not None
    if len(logs) <= limit // 4:  # at most 4 bytes a character: surely within the limit, nothing to encode
        return logs, False
    data = logs.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return logs, False
    return data[:limit].decode("utf-8", "ignore"), True


def _loads(payload: memoryview) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    try:  # the standard library also reads the NaN and Infinity a Python handler's values may carry
        return json.loads(bytes(payload))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"frame is not JSON: {exc}") from None


class Decoder:
    """Frames out of a byte stream. A frame that arrives in pieces is joined once, when its last byte
    is here: joining on every read copied a 16 MiB frame about 64 times (13 ms of event loop per big
    reply for every other function, found by the red-team pass)."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._max = max_frame
        self._chunks: list[bytes] = []  # the start of a frame still incomplete
        self._pending = 0  # their total length
        self._need = 0  # bytes that frame needs in all (4 while its header is incomplete)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes; return every complete frame now available, in order."""
        if self._chunks:
            self._chunks.append(data)
            self._pending += len(data)
            if self._pending < self._need:
                return []
            data = b"".join(self._chunks)
            self._chunks, self._pending = [], 0
        view, end, pos, frames = memoryview(data), len(data), 0, []
        need = 4
        while end - pos >= 4:
            (size,) = _HEADER.unpack_from(data, pos)
            if size > self._max:
                raise FrameError(f"frame of {size} bytes exceeds the {self._max}-byte maximum")
            if end - pos - 4 < size:
                need = 4 + size
                break
            message = _loads(view[pos + 4 : pos + 4 + size])
            if not isinstance(message, dict):
                raise FrameError("frame is not a JSON object")
            frames.append(message)
            pos += 4 + size
        if pos < end:
            rest = bytes(view[pos:])
            self._chunks, self._pending, self._need = [rest], len(rest), need
        return frames

    @property
    def pending(self) -> int:
        return self._pending
