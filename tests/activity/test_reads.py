"""Reads are activity rows (issue 24: "one row per API call") against a real orvad over HTTP: a GET by a key or a
session is a row with its method, status and actor (a 404 or a 403 too); what is left out (health probes,
/health/*, a scraper's /metrics, the public reads, anonymous refusals: counted, not stored); an open event
stream is one row when it opens, never one per event; reading the feed does not feed itself; and
?hide_reads=true (API, audit log) and `orva activity --hide-reads` leave the reads out, MCP tool calls kept."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.activity.test_activity import _mcp_health, _stream
from tests.cli.test_cli import logged_in
from tests.helpers import Orvad, wait_for

PASSWORD = "ReadsPass123!Secure"


def _key(server: Orvad, *permissions: str) -> dict[str, Any]:
    with server.admin() as admin:
        r = admin.post(
            "/api/v1/keys", json={"name": f"rd-{uuid.uuid4().hex[:8]}", "permissions": list(permissions)}
        )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _feed(server: Orvad, **params: Any) -> list[dict[str, Any]]:
    with server.admin() as admin:
        r = admin.get("/api/v1/activity", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()["activity"]  # type: ignore[no-any-return]


def _rows(server: Orvad, count: int, **params: Any) -> list[dict[str, Any]]:
    """The feed's rows for these filters once it holds at least ``count`` (the batched writer commits them)."""
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        found[:] = _feed(server, **params)
        return len(found) >= count

    wait_for(enough, 10, f"{count} activity rows for {params}")
    return found


def _marker(server: Orvad) -> dict[str, Any]:
    """A write by a fresh key, waited for: the batched writer is FIFO, so once its row can be read, every row
    queued before it has been written too (what is absent then was never queued)."""
    key = _key(server, "read", "write")
    with server.client(key["key"]) as c:
        assert c.delete(f"/api/v1/functions/marker-{uuid.uuid4().hex[:6]}").status_code == 404
    return _rows(server, 1, actor_id=key["id"])[0]


def _refused(c: httpx.Client, reason: str) -> float:
    for family in text_string_to_metric_families(c.get("/api/v1/system/metrics").text):
        for sample in family.samples:
            if sample.name == "orva_audit_refused_total" and sample.labels.get("reason") == reason:
                return sample.value
    return 0.0


def test_a_read_by_a_key_or_a_session_is_a_row_with_method_status_and_actor(orvad: Orvad) -> None:
    reader = _key(orvad, "read")
    missing = f"nope-{uuid.uuid4().hex[:6]}"
    with orvad.client(reader["key"]) as c:
        assert c.get("/api/v1/functions").status_code == 200
        assert c.get(f"/api/v1/functions/{missing}").status_code == 404
        assert c.get("/api/v1/keys").status_code == 403  # a read the key may not make: a row too
        assert c.head("/api/v1/functions").status_code == 200
    rows = _rows(orvad, 4, actor_id=reader["id"])
    assert [(r["method"], r["path"], r["status"]) for r in rows] == [
        ("HEAD", "/api/v1/functions", 200),
        ("GET", "/api/v1/keys", 403),
        ("GET", f"/api/v1/functions/{missing}", 404),
        ("GET", "/api/v1/functions", 200),
    ]
    for row in rows:
        assert row["source"] == "api" and row["actor_kind"] == "key" and row["actor_name"] == reader["name"]
        assert row["client_ip"] == "127.0.0.1" and row["request_id"] != "-" and row["ts"]
    assert rows[2]["target_id"] == missing  # the id a read names, as for a write


def test_probes_public_reads_and_anonymous_refusals_are_not_rows(make_orvad: Any) -> None:
    server: Orvad = make_orvad()
    reader = _key(server, "read")
    with server.client() as anon:
        token = server.onboard(anon, "admin", PASSWORD).cookies["session_token"]
    with server.session_client(token) as s:  # a dashboard login's reads: the session's user is the actor
        me = s.get("/api/v1/auth/me")
        assert me.status_code == 200
        assert s.get("/api/v1/auth/status").status_code == 200  # a public read: no row, cookie or not
    with server.admin() as admin:
        before = _refused(admin, "unauthenticated")
    with server.client() as anon:
        for path in ("/health/live", "/health/ready", "/health", "/api/v1/system/health"):
            assert anon.get(path).status_code == 200, path
        assert anon.get("/api/v1/auth/status").status_code == 200
        assert anon.get("/api/v1/openapi.json").status_code == 200
        for _ in range(5):  # anonymous refused reads: counted, not stored
            assert anon.get("/api/v1/functions").status_code == 401
        assert anon.get("/api/v1/functions", headers={"X-Orva-API-Key": "orva_not_a_key"}).status_code == 401
    with server.client(reader["key"]) as c:  # a probe or a scraper that sends a key: still not rows
        assert c.get("/api/v1/system/health").status_code == 200
        assert c.get("/metrics").status_code == 200
        assert c.get("/api/v1/functions").status_code == 200  # this one is
    marker = _marker(server)
    rows = [r for r in _feed(server) if r["id"] <= marker["id"]]
    paths = {r["path"] for r in rows}
    for left_out in ("/api/v1/system/health", "/metrics", "/api/v1/auth/status", "/api/v1/openapi.json"):
        assert left_out not in paths, left_out
    assert not [p for p in paths if p.startswith("/health")]
    anonymous = [(r["method"], r["path"]) for r in rows if r["actor_kind"] == "anonymous"]
    assert anonymous == [("POST", "/api/v1/auth/onboard")]  # a write that succeeded: a row, as before
    assert [(r["method"], r["path"]) for r in rows if r["actor_id"] == reader["id"]] == [
        ("GET", "/api/v1/functions")
    ]
    user = me.json()["user"]
    mine = [
        (r["actor_kind"], r["actor_name"], r["method"], r["path"], r["status"])
        for r in rows
        if r["actor_id"] == user["id"]
    ]
    assert mine == [("session", user["username"], "GET", "/api/v1/auth/me", 200)]
    with server.admin() as admin:
        assert _refused(admin, "unauthenticated") == before + 6


def test_an_event_stream_is_one_row_when_it_opens_not_one_per_event(orvad: Orvad) -> None:
    reader = _key(orvad, "read")
    with orvad.admin() as admin:
        r = admin.post(
            "/api/v1/functions", json={"name": f"rd-sse-{uuid.uuid4().hex[:6]}", "runtime": "python"}
        )
        assert r.status_code == 201
        fn = r.json()
    with _stream(orvad, reader["key"], "/api/v1/events?types=function") as stream:
        assert stream.status == 200
        # the row is there while the stream is still open: written when it opened
        opened = _rows(orvad, 1, actor_id=reader["id"])
        assert [(r["method"], r["path"], r["status"]) for r in opened] == [("GET", "/api/v1/events", 200)]
        with orvad.admin() as admin:
            for i in range(5):
                assert (
                    admin.put(f"/api/v1/functions/{fn['id']}", json={"description": f"d{i}"}).status_code
                    == 200
                )
        for _ in range(5):
            stream.next("function")
        _marker(orvad)
        assert [r["id"] for r in _feed(orvad, actor_id=reader["id"])] == [opened[0]["id"]]
    # a stream refused when it opens is one row with the refusal
    with orvad.client(reader["key"]) as c:
        assert c.get("/api/v1/events", params={"types": "activity"}).status_code == 403
    refused = _rows(orvad, 2, actor_id=reader["id"])
    assert (refused[0]["path"], refused[0]["status"]) == ("/api/v1/events", 403)


def test_reading_the_feed_makes_one_row_a_read_and_its_live_event_no_more(orvad: Orvad) -> None:
    """A dashboard or `orva activity --follow` shows each live row; the row of its own read arrives as such an
    event, and showing it must not be a read: K reads are K rows, the follower's stream one, nothing after."""
    watcher = _key(orvad, "admin", "read")
    poller = _key(orvad, "admin", "read")
    with _stream(orvad, watcher["key"], "/api/v1/events?types=activity") as stream:
        with orvad.client(poller["key"]) as c:
            for _ in range(3):
                assert c.get("/api/v1/activity", params={"limit": 5}).status_code == 200
        seen = []
        while len(seen) < 3:
            _, row = stream.next("activity")
            if row["actor_id"] == poller["id"]:
                seen.append(row)
        assert all(r["path"] == "/api/v1/activity" and r["method"] == "GET" for r in seen)
        marker = _marker(orvad)
        while stream.next("activity")[1]["id"] != marker["id"]:
            pass
        assert len(_feed(orvad, actor_id=poller["id"])) == 3
        assert [r["path"] for r in _feed(orvad, actor_id=watcher["id"])] == ["/api/v1/events"]


async def test_hide_reads_leaves_out_the_reads_in_the_feed_and_the_audit_log(orvad: Orvad) -> None:
    key = _key(orvad, "read", "write")
    with orvad.client(key["key"]) as c:
        assert c.get("/api/v1/functions").status_code == 200
        assert c.head("/api/v1/functions").status_code == 200
        assert c.post("/api/v1/functions", json={"name": "Not A Name!"}).status_code == 400
    await _mcp_health(orvad, key["key"])  # an MCP tool call stays, a read or not: an agent acting
    everything = _rows(orvad, 4, actor_id=key["id"])
    assert [r["method"] for r in everything] == ["MCP", "POST", "HEAD", "GET"]
    for value in ("true", "1", "TRUE"):
        assert [r["method"] for r in _feed(orvad, actor_id=key["id"], hide_reads=value)] == ["MCP", "POST"]
    for value in ("false", "0", ""):
        assert len(_feed(orvad, actor_id=key["id"], hide_reads=value)) == 4
    with orvad.admin() as admin:
        entries = admin.get("/api/v1/audit-log", params={"actor_id": key["id"], "hide_reads": "true"})
        assert [e["method"] for e in entries.json()["entries"]] == ["MCP", "POST"]
        reads = admin.get("/api/v1/audit-log", params={"actor_id": key["id"], "method": "GET"})
        assert [e["path"] for e in reads.json()["entries"]] == ["/api/v1/functions"]
        for path in ("/api/v1/activity", "/api/v1/audit-log"):
            bad = admin.get(path, params={"hide_reads": "maybe"})
            assert bad.status_code == 400, path
            error = bad.json()["error"]
            assert (
                error["code"] == "VALIDATION" and error["details"]["field"] == "hide_reads" and error["hint"]
            )


def test_orva_activity_hide_reads(orvad: Orvad, tmp_path: Path) -> None:
    with logged_in(orvad, tmp_path, "rd-cli-") as cli:
        name = f"rd-cli-{uuid.uuid4().hex[:6]}"
        cli.ok("functions", "create", name, "--runtime", "python")
        cli.ok("functions", "get", name)
        wanted = {("POST", "/api/v1/functions"), ("GET", f"/api/v1/functions/{name}")}
        wait_for(
            lambda: wanted <= {(r["method"], r["path"]) for r in cli.json("activity", "-q", "functions")},
            10,
            "the CLI's read and write rows",
        )
        shown = cli.json("activity", "-q", "functions", "--hide-reads")
        assert shown and all(r["method"] not in ("GET", "HEAD") for r in shown)
        assert ("POST", "/api/v1/functions") in {(r["method"], r["path"]) for r in shown}
        # the table cuts a long "what" with an ellipsis when other rows widen its other columns (the shared
        # orvad's rows from other modules): whole values are checked through --json above and below
        table = cli.ok("activity", "--hide-reads", "--limit", "500").stdout
        assert "POST " in table and "GET /" not in table
        every = cli.json("activity", "--limit", "500")
        assert ("GET", "/api/v1/activity") in {(r["method"], r["path"]) for r in every}
        assert "--hide-reads" in cli.ok("activity", "--help").stdout
