"""Red-team pass over the activity feed (issue 24), against a real orvad over HTTP: forged and out-of-range
filters, control characters smuggled into a row through a request path, who may read the feed (channel and
OAuth tokens, a read key), and an open event stream whose key is deleted."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tests.helpers import Orvad, wait_for

CONTROL = [chr(c) for c in (*range(0x20), 0x7F, 0x85, 0x9B, 0x2028, 0x202E)]


def _key(server: Orvad, *permissions: str) -> dict[str, Any]:
    with server.admin() as admin:
        r = admin.post(
            "/api/v1/keys", json={"name": f"rt-{uuid.uuid4().hex[:8]}", "permissions": list(permissions)}
        )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _rows(server: Orvad, count: int, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        with server.admin() as admin:
            r = admin.get("/api/v1/activity", params={"limit": 500, **params})
        assert r.status_code == 200, r.text
        found[:] = r.json()["activity"]
        return len(found) >= count

    wait_for(enough, 10, f"{count} activity rows for {params}")
    return found


def test_out_of_range_times_are_400_and_forged_filters_match_nothing(orvad: Orvad) -> None:
    """A valid RFC 3339 time whose offset moves it past year 1 or 9999 was a 500 (OverflowError) on every
    list that takes ?since= / ?until= (activity, audit log, executions, traces)."""
    key = _key(orvad, "read")
    with orvad.client(key["key"]) as c:
        assert c.post("/api/v1/functions", json={"name": "rt-refused"}).status_code == 403
    _rows(orvad, 1, actor_id=key["id"])  # the feed holds a row: a filter that matches everything shows
    with orvad.admin() as admin:
        for path in ("/api/v1/activity", "/api/v1/audit-log", "/api/v1/executions", "/api/v1/traces"):
            for field, value in (
                ("since", "0001-01-01T00:00:00+01:00"),
                ("until", "9999-12-31T23:59:59-01:00"),
            ):
                if path == "/api/v1/audit-log" and field == "until":
                    continue  # the audit log takes only since
                r = admin.get(path, params={field: value})
                assert r.status_code == 400, (path, field, r.text)
                assert r.json()["error"]["code"] == "VALIDATION"
                assert r.json()["error"]["details"]["field"] == field
        # forged cursors and filters are data, never SQL: they page or match nothing, and nothing breaks
        for params in (
            {"cursor": "-1"},
            {"cursor": "' OR 1=1 --"},
            {"cursor": "z" * 4000},
            {"actor_id": "' OR ''='"},
            {"q": "%' OR 1=1 --"},
            {"q": f"{uuid.uuid4().hex}\x00"},
        ):
            r = admin.get("/api/v1/activity", params=params)
            assert r.status_code == 200, (params, r.text)
            if "cursor" not in params or params["cursor"] == "-1":
                assert r.json() == {"activity": [], "next_cursor": None}, params
        # a NUL was the pattern '%' (SQLite's LIKE ends at a NUL), so every row matched: now it finds only
        # rows holding one (stored escaped; other tests on this shared orvad make such rows)
        r = admin.get("/api/v1/activity", params={"q": "\x00", "limit": "200"})
        assert r.status_code == 200, r.text
        found = r.json()["activity"]
        assert all(
            any("\\x00" in str(row.get(c) or "") for c in ("path", "method", "actor_name", "target_id"))
            for row in found
        ), found
        assert key["id"] not in {row.get("actor_id") for row in found}  # this test's own row holds no NUL
        assert admin.get("/api/v1/activity", params={"q": "\\"}).status_code == 200
        for params, field in (
            ({"limit": "1000000"}, "limit"),
            ({"limit": "9" * 5000}, "limit"),
            ({"status_min": "-1"}, "status_min"),
            ({"status_min": "1e3"}, "status_min"),
            ({"status_min": "٣"}, "status_min"),
        ):
            r = admin.get("/api/v1/activity", params=params)
            assert r.status_code == 400 and r.json()["error"]["details"]["field"] == field, params


def test_control_characters_in_a_request_path_are_stored_escaped(orvad: Orvad) -> None:
    """A path is percent-decoded before it is recorded: %1B, %07, %0A and a right-to-left override reached
    the row as raw characters, so `orva activity` (a terminal) obeyed an escape sequence any key holder
    chose (here: set the window title), and a line-based reader saw a forged second line."""
    key = _key(orvad, "read")  # the least a caller needs to get a row: a refused change is recorded
    marker = uuid.uuid4().hex[:8]
    raw = f"rt{marker}\x1b]0;pwned\x07\nforged\u202egpj.exe"
    with orvad.client(key["key"]) as c:
        r = c.post(f"/api/v1/functions/{quote(raw, safe='')}/deploy")
        assert r.status_code == 403
    (row,) = _rows(orvad, 1, actor_id=key["id"])
    for column in ("path", "target_id"):
        assert not any(ch in row[column] for ch in CONTROL), (column, row[column])
    assert row["target_id"] == f"rt{marker}\\x1b]0;pwned\\x07\\nforged\\u202egpj.exe"
    assert row["path"] == f"/api/v1/functions/{row['target_id']}/deploy"
    assert [r["id"] for r in _rows(orvad, 1, q=f"rt{marker}\\x1b")] == [row["id"]]  # findable as shown


def test_channel_and_oauth_tokens_and_read_keys_cannot_read_the_feed(orvad: Orvad) -> None:
    with orvad.admin() as admin:
        channel = admin.post("/api/v1/channels", json={"name": f"rt-{uuid.uuid4().hex[:8]}"})
        assert channel.status_code == 201, channel.text
    reader = _key(orvad, "read", "write")
    for token, status in (
        (channel.json()["token"], 401),
        ("orva_oat_" + "A" * 43, 401),
        ("orva_ort_" + "A" * 43, 401),
        (reader["key"], 403),
    ):
        for headers in ({"Authorization": f"Bearer {token}"}, {"X-Orva-API-Key": token}):
            with orvad.client(headers=headers) as c:
                assert c.get("/api/v1/activity").status_code == status, token[:12]
                assert c.get("/api/v1/events", params={"types": "activity"}).status_code == status
                assert c.get("/api/v1/audit-log").status_code == status


class _Stream:
    """An SSE stream read on a thread: its events, and whether the server ended it."""

    def __init__(self, client: httpx.Client, params: dict[str, str]) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.status: int | None = None
        self.ended = threading.Event()
        self._opened = threading.Event()
        self._client, self._params = client, params
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        try:
            with self._client.stream(
                "GET", "/api/v1/events", params=self._params, timeout=httpx.Timeout(30, read=60)
            ) as r:
                self.status = r.status_code
                self._opened.set()
                event = None
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event:
                        self.events.append((event, json.loads(line.split(":", 1)[1])))
                        event = None
        except httpx.HTTPError:
            pass
        finally:
            self._opened.set()
            self.ended.set()

    def start(self) -> _Stream:
        self._thread.start()
        assert self._opened.wait(10)
        assert self.status == 200
        return self

    def paths(self) -> list[str]:
        return [data["path"] for event, data in self.events if event == "activity"]


@contextmanager
def event_stream(client: httpx.Client, **params: str) -> Iterator[_Stream]:
    with client:
        stream = _Stream(client, params).start()
        yield stream
        client.close()


def ends_after_revocation(server: Orvad, stream: _Stream, revoke: Any) -> None:
    """Activity flows, then ``revoke()`` ends the stream's credential: the stream must end, and a change
    made once it had time to notice (a second later) must never reach it."""
    with server.admin() as admin:
        before = f"/api/v1/functions/rt-before-{uuid.uuid4().hex[:6]}"
        admin.delete(before)
        wait_for(lambda: before in stream.paths(), 10, "the stream to carry activity")
        revoke()
        made: list[str] = []

        def ended() -> bool:
            after = f"/api/v1/functions/rt-after-{uuid.uuid4().hex[:6]}"
            admin.delete(after)  # a change each round: a row for the stream to (not) carry
            made.append(after)
            return stream.ended.wait(0.2)

        wait_for(ended, 20, "the server to end the stream of a revoked credential")
    leaked = [p for p in stream.paths() if "rt-after-" in p]
    assert len(leaked) < len(made) and made[-1] not in leaked, leaked


def test_an_open_event_stream_ends_when_its_key_is_deleted(orvad: Orvad) -> None:
    """The guard checked the key when the stream opened; a deleted key's stream went on carrying every
    audit row (actor names, client addresses) for as long as the connection lasted."""
    key = _key(orvad, "read", "admin")

    def delete() -> None:
        with orvad.admin() as admin:
            assert admin.delete(f"/api/v1/keys/{key['id']}").status_code in (200, 204)
        with orvad.client(key["key"]) as c:
            assert c.get("/api/v1/activity").status_code == 401

    with event_stream(orvad.client(key["key"]), types="activity") as stream:
        ends_after_revocation(orvad, stream, delete)


def test_the_dashboard_views_never_set_raw_html() -> None:
    """User-Agents, paths and names are shown as text (Preact escapes them); no view writes HTML."""
    web = Path(__file__).resolve().parents[2] / "web" / "src"
    for view in ("views/activity.jsx", "views/settings-operate.jsx"):
        text = (web / view).read_text()
        assert "dangerouslySetInnerHTML" not in text and "innerHTML" not in text, view
