"""The frame codec (orvad/pool/protocol.py): round trips, any split, refusals."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orvad.pool.protocol import MAX_FRAME, Decoder, FrameError, encode

# JSON values as frames carry them (NaN goes out as null, see encode)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
frames = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


@given(st.lists(frames, min_size=1, max_size=5))
def test_round_trip(messages: list[dict[str, Any]]) -> None:
    decoder = Decoder()
    assert decoder.feed(b"".join(encode(m) for m in messages)) == messages
    assert decoder.pending == 0


@given(st.lists(frames, min_size=1, max_size=4), st.data())
def test_any_split_decodes_the_same(messages: list[dict[str, Any]], data: st.DataObject) -> None:
    wire = b"".join(encode(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=8)))
    decoder, out, last = Decoder(), [], 0
    for cut in [*cuts, len(wire)]:
        out += decoder.feed(wire[last:cut])
        last = cut
    assert out == messages
    assert decoder.pending == 0


@given(frames)
def test_byte_at_a_time(message: dict[str, Any]) -> None:
    wire, decoder, out = encode(message), Decoder(), []
    for i in range(len(wire)):
        out += decoder.feed(wire[i : i + 1])
        assert out == ([] if i < len(wire) - 1 else [message])


@settings(max_examples=30)
@given(st.integers(1, 4096))
def test_oversize_is_refused_both_ways(limit: int) -> None:
    message = {"body": "x" * limit}
    size = len(json.dumps(message, separators=(",", ":")))
    with pytest.raises(FrameError):
        encode(message, max_frame=size - 1)
    assert len(encode(message, max_frame=size)) == size + 4
    with pytest.raises(FrameError):
        Decoder(max_frame=size - 1).feed(encode(message))


def test_oversize_header_is_refused_before_the_payload_arrives() -> None:
    decoder = Decoder()
    with pytest.raises(FrameError, match="exceeds"):
        decoder.feed(struct.pack(">I", MAX_FRAME + 1))  # no payload sent: nothing is buffered first


@pytest.mark.parametrize("payload", [b"[1, 2]", b"42", b"not json", b"\xff\xfe{}", b'"text"'])
def test_malformed_frames_are_refused(payload: bytes) -> None:
    with pytest.raises(FrameError):
        Decoder().feed(struct.pack(">I", len(payload)) + payload)


@pytest.mark.parametrize("message", [{"x": object()}, {"x": 2**70}, {"x": "lone \ud800 surrogate"}])
def test_unencodable_messages_are_refused(message: dict[str, Any]) -> None:
    with pytest.raises(FrameError):
        encode(message)


def test_nan_and_infinity_go_out_as_null_as_javascript_writes_them() -> None:
    wire = encode({"x": float("nan"), "y": float("-inf")})
    assert b"NaN" not in wire and b"Infinity" not in wire  # strict JSON, which Node's JSON.parse accepts
    assert Decoder().feed(wire) == [{"x": None, "y": None}]


def test_non_ascii_is_utf8_on_the_wire() -> None:
    wire = encode({"s": "héllo ☃"})
    assert "héllo ☃".encode() in wire
    assert Decoder().feed(wire) == [{"s": "héllo ☃"}]


def test_nan_from_a_python_worker_is_read() -> None:
    payload = b'{"type": "response", "id": 1, "x": NaN}'
    (frame,) = Decoder().feed(struct.pack(">I", len(payload)) + payload)
    assert frame["id"] == 1 and frame["x"] != frame["x"]


def test_a_big_frame_in_pieces_costs_about_one_copy() -> None:
    """A 16 MiB frame fed in 64 KiB reads (as the pipe delivers it) is joined once, not on every read:
    the old decoder copied its buffer per read, ~64 copies of up to 16 MiB on the event loop."""
    import time

    from orvad.pool.protocol import Decoder, encode

    frame = encode({"kind": "reply", "body": "x" * ((16 << 20) - 64)})
    pieces = [frame[i : i + (64 << 10)] for i in range(0, len(frame), 64 << 10)]

    def timed(chunks: list[bytes]) -> float:
        best = float("inf")
        for _ in range(3):
            decoder = Decoder()
            began = time.perf_counter()
            frames = [f for chunk in chunks for f in decoder.feed(chunk)]
            best = min(best, time.perf_counter() - began)
            assert len(frames) == 1 and decoder.pending == 0
        return best

    whole, split = timed([frame]), timed(pieces)
    assert split < whole * 3 + 0.005, f"in pieces {split * 1000:.1f} ms, whole {whole * 1000:.1f} ms"
