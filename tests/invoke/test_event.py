"""The handler event and response headers, built from raw HTTP parts (pure)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orvad.invoke.event import (
    BadResponse,
    body_field,
    build_event,
    handler_headers,
    response_headers,
    status_code,
)


def test_credentials_are_removed_and_repeats_joined() -> None:
    raw = [
        (b"X-Orva-API-Key", b"orva_" + b"a" * 64),
        (b"Authorization", b"Bearer orva_" + b"b" * 64),
        (b"Cookie", b"session_token=abc; theme=dark"),
        (b"Accept", b"text/html"),
        (b"accept", b"*/*"),
        (b"cookie", b"lang=en"),
    ]
    headers = handler_headers(raw)
    assert "x-orva-api-key" not in headers and "authorization" not in headers
    assert headers["cookie"] == "theme=dark; lang=en"
    assert headers["accept"] == "text/html, */*"
    assert handler_headers([(b"authorization", b"Bearer someone-elses-token")])["authorization"].endswith(
        "token"
    )
    assert "cookie" not in handler_headers([(b"cookie", b"session_token=only")])


def test_event_fields_and_aliases() -> None:
    event = build_event(
        method="POST",
        path="/a/b",
        raw_query="x=1&x=2&y=",
        headers={"h": "v"},
        body=b"hi",
        request_context={"requestId": "r", "sourceIp": "1.2.3.4"},
    )
    assert event["query"] == {"x": "2", "y": ""} and event["multiQuery"] == {"x": ["1", "2"], "y": [""]}
    assert event["rawPath"] == event["path"] == "/a/b" and event["httpMethod"] == "POST"
    assert event["requestContext"]["http"] == {"method": "POST", "path": "/a/b", "sourceIp": "1.2.3.4"}
    assert event["queryStringParameters"] == event["query"] and event["rawQueryString"] == "x=1&x=2&y="
    assert (event["body"], event["isBase64Encoded"]) == ("hi", False)


@given(st.binary(max_size=256))
def test_body_round_trips(body: bytes) -> None:
    text, is_b64 = body_field(body)
    assert (base64.b64decode(text) if is_b64 else text.encode()) == body


def test_response_headers_lists_and_injection() -> None:
    out = response_headers({"Set-Cookie": ["a=1", "b=2"], "Content-Type": "text/plain"})
    assert out.count((b"set-cookie", b"a=1")) == 1 and (b"set-cookie", b"b=2") in out
    assert (b"content-type", b"text/plain") in out
    for bad in (
        {"X-Bad": "x\r\nInjected: 1"},
        {"bad name": "x"},
        {"": "x"},
        {"x-list": ["ok", "a\nb"]},
        ["x"],
    ):
        with pytest.raises(BadResponse):
            response_headers(bad)  # type: ignore[arg-type]


def test_response_header_values_read_as_json_spells_them_and_orvas_own_win() -> None:
    out = response_headers(
        {
            "x-bool": True,
            "x-off": False,
            "x-null": None,
            "x-num": 5,
            "x-obj": {"a": 1},
            "X-Request-ID": "mine",
            "X-Orva-Execution-Id": "fake",
            "Content-Length": "3",
        }
    )
    assert out == [(b"x-bool", b"true"), (b"x-off", b"false"), (b"x-num", b"5"), (b"x-obj", b'{"a":1}')]


def test_status_code_must_be_a_final_status() -> None:
    assert status_code(201) == 201 and status_code("404") == 404
    for bad in (99, 100, 199, 600, 1000, -1, "abc", None, True, 2.5):
        with pytest.raises(BadResponse):
            status_code(bad)
