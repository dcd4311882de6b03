"""The activity feed (issue 24) against a real orvad: GET /api/v1/activity reads the audit log as a feed (API
calls that change state, MCP tool calls), each filter, cursor pages without duplicates while rows are
added, the live `activity` event on /api/v1/events, who may read it (admin), and no secret in any row."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import httpx2
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.deploy_helpers import create_function
from tests.helpers import Orvad, wait_for


def _key(server: Orvad, *permissions: str) -> dict[str, Any]:
    with server.admin() as admin:
        r = admin.post(
            "/api/v1/keys", json={"name": f"act-{uuid.uuid4().hex[:8]}", "permissions": list(permissions)}
        )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _feed(server: Orvad, **params: Any) -> dict[str, Any]:
    with server.admin() as admin:
        r = admin.get("/api/v1/activity", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def _rows(server: Orvad, count: int, **params: Any) -> list[dict[str, Any]]:
    """The feed's rows for these filters once it holds ``count`` (rows are written by the batched writer)."""
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        found[:] = _feed(server, limit=500, **params)["activity"]
        return len(found) >= count

    wait_for(enough, 10, f"{count} activity rows for {params}")
    return found


async def _mcp_health(server: Orvad, key: str) -> None:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        result = await session.call_tool("health", {})
        assert not result.is_error


async def test_api_calls_and_an_mcp_tool_call_are_rows_and_each_filter_narrows(orvad: Orvad) -> None:
    key = _key(orvad, "read", "write")
    name = f"act-{uuid.uuid4().hex[:6]}"
    with orvad.client(key["key"]) as c:
        fn = create_function(c, name)
        assert c.post("/api/v1/functions", json={"name": "Not A Name!"}).status_code == 400
    await _mcp_health(orvad, key["key"])
    rows = _rows(orvad, 3, actor_id=key["id"])
    assert len(rows) == 3
    assert [r["source"] for r in rows] == ["mcp", "api", "api"]  # newest first
    mcp, refused, created = rows
    assert mcp["method"] == "MCP" and mcp["path"] == "/mcp tools/call health" and mcp["status"] == 200
    assert created["method"] == "POST" and created["path"] == "/api/v1/functions" and created["status"] == 201
    assert refused["status"] == 400
    for row in rows:
        assert row["actor_kind"] == "key" and row["actor_name"] == key["name"]
        assert row["client_ip"] == "127.0.0.1" and row["request_id"] and row["ts"]
    ids = lambda **p: [r["id"] for r in _feed(orvad, actor_id=key["id"], **p)["activity"]]  # noqa: E731
    assert ids(source="mcp") == [mcp["id"]]
    assert ids(source="api") == [refused["id"], created["id"]]
    assert ids(source="webhook") == []
    assert ids(status_min=400) == [refused["id"]]
    assert ids(q="tools/call HEALTH") == [mcp["id"]]  # any letter case
    assert ids(q=key["name"]) == [mcp["id"], refused["id"], created["id"]]  # the actor's name
    assert ids(q="%") == [] and ids(q="_") == []  # LIKE's wildcards are taken literally
    assert {mcp["id"], refused["id"]} <= set(ids(since=refused["ts"]))
    assert ids(since=mcp["ts"])[0] == mcp["id"] and refused["id"] not in ids(since=mcp["ts"])
    assert ids(until=created["ts"]) == []  # until is exclusive; created is this key's first row
    assert ids(until=mcp["ts"]) == [refused["id"], created["id"]]  # the MCP session took milliseconds
    # a row about the function names its id, so its id finds it
    with orvad.client(key["key"]) as c:
        assert c.put(f"/api/v1/functions/{fn['id']}", json={"description": "x"}).status_code == 200
    assert [r["method"] for r in _rows(orvad, 1, q=fn["id"])] == ["PUT"]
    # bad filters are the envelope with a hint
    with orvad.admin() as admin:
        for params, field in (
            ({"source": "ftp"}, "source"),
            ({"status_min": "x"}, "status_min"),
            ({"since": "yesterday"}, "since"),
            ({"q": "x" * 201}, "q"),
            ({"limit": "0"}, "limit"),
        ):
            r = admin.get("/api/v1/activity", params=params)
            assert r.status_code == 400, params
            assert r.json()["error"]["details"]["field"] == field and r.json()["error"]["hint"]


def test_cursor_pages_have_no_duplicates_while_rows_are_added(orvad: Orvad) -> None:
    key = _key(orvad, "read", "write")
    first = 40
    with orvad.client(key["key"]) as c:
        for _ in range(first):
            assert c.delete(f"/api/v1/functions/none-{uuid.uuid4().hex[:6]}").status_code == 404
    before = [r["id"] for r in _rows(orvad, first, actor_id=key["id"])]
    stop = threading.Event()
    added = 0

    def insert() -> None:
        nonlocal added
        with orvad.client(key["key"]) as c:
            while not stop.is_set() and added < 200:
                c.delete(f"/api/v1/functions/none-{uuid.uuid4().hex[:6]}")
                added += 1

    writer = threading.Thread(target=insert)
    writer.start()
    try:
        wait_for(lambda: added >= 3, 10, "rows added while paging")
        seen: list[str] = []
        cursor = None
        while True:
            page = _feed(orvad, actor_id=key["id"], limit=7, **({"cursor": cursor} if cursor else {}))
            seen += [r["id"] for r in page["activity"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        writer.join()
    assert added > 0
    assert len(seen) == len(set(seen)), "a row came twice"
    assert set(before) <= set(seen), "a row that existed before paging began was skipped"
    assert seen == sorted(seen, reverse=True)


class _Stream:
    """An SSE stream read on a thread: events land in a queue, so a test waits for one with a deadline."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.status: int | None = None
        self._client, self._url = client, url
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        try:
            with self._client.stream("GET", self._url, timeout=httpx.Timeout(30, read=60)) as r:
                self.status = r.status_code
                self._opened.set()
                event = None
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        event = line.split(":", 1)[1].strip()
                    elif line.startswith("data:") and event:
                        self.events.put((event, json.loads(line.split(":", 1)[1])))
                        event = None
        except httpx.HTTPError:
            pass
        finally:
            self._opened.set()

    def start(self) -> _Stream:
        self._thread.start()
        assert self._opened.wait(10)
        return self

    def next(self, wanted: str, deadline_s: float = 10) -> tuple[list[str], dict[str, Any]]:
        """(every event type seen before it, the first `wanted` event's data)."""
        seen: list[str] = []
        while True:
            event, data = self.events.get(timeout=deadline_s)
            if event == wanted:
                return seen, data
            seen.append(event)


@contextmanager
def _stream(server: Orvad, key: str, url: str) -> Iterator[_Stream]:
    with server.client(key) as c:
        stream = _Stream(c, url).start()
        yield stream
        c.close()  # ends the read on its thread


def test_each_row_is_a_live_activity_event_for_admins_only(orvad: Orvad) -> None:
    reader = _key(orvad, "read")
    writer = _key(orvad, "read", "write")
    with (
        _stream(orvad, orvad.admin_key, "/api/v1/events?types=activity") as admin_stream,
        _stream(orvad, reader["key"], "/api/v1/events") as read_stream,
    ):
        assert admin_stream.status == 200 and read_stream.status == 200
        name = f"act-sse-{uuid.uuid4().hex[:6]}"
        with orvad.client(writer["key"]) as c:
            fn = create_function(c, name)
        while True:
            _, row = admin_stream.next("activity")
            if row["actor_id"] == writer["id"]:
                break
        assert row["source"] == "api" and row["path"] == "/api/v1/functions" and row["status"] == 201
        # the row is committed when its event is out: the feed has it
        assert row["id"] in [r["id"] for r in _feed(orvad, actor_id=writer["id"])["activity"]]
        # the read key's stream: a function event published after that row's event, and no activity
        # event before it (the stream keeps the order of publication)
        with orvad.client(writer["key"]) as c:
            assert c.put(f"/api/v1/functions/{fn['id']}", json={"description": "later"}).status_code == 200
        while True:
            seen, data = read_stream.next("function")
            assert "activity" not in seen
            if data["id"] == fn["id"]:
                break
    with orvad.client(reader["key"]) as c:
        named = c.get("/api/v1/events", params={"types": "activity"})
        assert named.status_code == 403 and named.json()["error"]["details"]["required"] == "admin"
        listed = c.get("/api/v1/activity")
        assert listed.status_code == 403 and listed.json()["error"]["code"] == "FORBIDDEN"
    with orvad.client(writer["key"]) as c:
        assert c.get("/api/v1/activity").status_code == 403


def test_secret_values_and_passwords_are_in_no_row(make_orvad: Any) -> None:
    server = make_orvad()
    with server.admin() as admin:
        fn = create_function(admin, "secretive")
        value = f"sv-{uuid.uuid4().hex}"
        r = admin.post(f"/api/v1/functions/{fn['id']}/secrets", json={"key": "API_TOKEN", "value": value})
        assert r.status_code in (200, 201), r.text
    with server.client() as anon:
        assert server.onboard(anon, "admin", "AdminPass123!Secure").status_code == 201
    rows = _rows(server, 1, q="secrets")
    assert rows[0]["path"] == f"/api/v1/functions/{fn['id']}/secrets" and rows[0]["method"] == "POST"
    _rows(server, 1, q="onboard")
    assert _feed(server, q=value)["activity"] == []
    assert _feed(server, q="AdminPass123")["activity"] == []
    everything = json.dumps(_feed(server, limit=500))
    assert value not in everything and "AdminPass123" not in everything
