"""Metrics (Prometheus text and JSON), the live event stream, and the audit trail."""

from __future__ import annotations

import json
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for


def test_metrics_parse_and_need_read(orvad: Orvad) -> None:
    with orvad.admin() as c:
        r = c.get("/api/v1/system/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        names = {f.name for f in text_string_to_metric_families(r.text)}
        assert {
            "orva_invocations",
            "orva_invocation_duration_seconds",
            "orva_host_memory_reserved_bytes",
        } <= names
        snap = c.get("/api/v1/system/metrics.json").json()
        assert {"invocations_total", "rate_per_s", "latency_ms", "pools", "error_rate"} <= set(snap)
    with orvad.client() as c:
        assert c.get("/api/v1/system/metrics").status_code == 401


def _collect_events(
    url: str,
    headers: dict[str, str],
    cookies: dict[str, str],
    want: int,
    found: list[tuple[str, dict]],
    ready: threading.Event,
) -> None:
    import httpx

    with httpx.Client(timeout=30, cookies=cookies) as c, c.stream("GET", url, headers=headers) as r:
        ready.set()
        event = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event:
                found.append((event, json.loads(line.split(":", 1)[1])))
                if sum(1 for e, d in found if e == "deployment" and d["status"] == "succeeded") >= want:
                    return


def test_events_stream_to_key_and_cookie_clients(orvad: Orvad) -> None:
    with orvad.client() as anon:
        r = anon.post("/api/v1/auth/login", json={"username": "nobody", "password": "x" * 12})
        assert r.status_code in (401, 429)
    with orvad.admin() as c:
        status = c.get("/api/v1/auth/status").json()
        if not status["has_user"]:
            c.post(
                "/api/v1/auth/onboard", json={"username": "events-admin", "password": "AdminPass123!Secure"}
            )
        fn = create_function(c, "events-fn")
    with orvad.client() as c:
        login = c.post(
            "/api/v1/auth/login", json={"username": "events-admin", "password": "AdminPass123!Secure"}
        )
        cookie = login.cookies["session_token"]
    url = f"{orvad.url}/api/v1/events?types=deployment&function_id={fn['id']}"
    results: dict[str, list[tuple[str, dict]]] = {"key": [], "cookie": []}
    threads = []
    for who, headers, cookies in (
        ("key", {"X-Orva-API-Key": orvad.admin_key}, {}),
        ("cookie", {}, {"session_token": cookie}),
    ):
        ready = threading.Event()
        t = threading.Thread(
            target=_collect_events, args=(url, headers, cookies, 1, results[who], ready), daemon=True
        )
        t.start()
        assert ready.wait(10)
        threads.append(t)
    with orvad.admin() as c:
        wait_deployed(c, deploy_inline(c, fn["id"], "def handler(e, c):\n    return 1\n")["id"])
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    for who, events in results.items():
        phases = [d["phase"] for e, d in events if e == "deployment"]
        assert "queued" in phases and "succeeded" in phases, (who, phases)
        assert all(d["function_id"] == fn["id"] for e, d in events if e == "deployment")


def test_audit_trail_records_management_calls(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "audited-fn")
        c.put(f"/api/v1/functions/{fn['id']}", json={"description": "changed", "env_vars": {"TOKEN": "hush"}})
        c.delete(f"/api/v1/functions/{fn['id']}")
        c.post("/api/v1/keys", json={"name": "bad", "permissions": ["nope"]})

        def rows() -> list[dict]:
            return c.get("/api/v1/audit-log", params={"limit": 500}).json()["entries"]

        def written(entries: list[dict]) -> bool:  # batched rows: each is written a moment after its answer
            return sum(1 for r in entries if r["target_id"] == fn["id"]) >= 2 and any(
                r["path"] == "/api/v1/keys" and r["status"] == 400 for r in entries
            )

        wait_for(lambda: written(rows()), 10, "audit rows")
        mine = [r for r in rows() if r["target_id"] == fn["id"]]
        assert {(r["method"], r["status"]) for r in mine} >= {("PUT", 200), ("DELETE", 200)}
        assert all(r["actor_kind"] == "key" and r["actor_name"] == "bootstrap-admin" for r in mine)
        assert "hush" not in c.get("/api/v1/audit-log", params={"limit": 500}).text
        reader = c.post("/api/v1/keys", json={"name": "r", "permissions": ["read"]}).json()["key"]
    with orvad.client(reader) as c:
        assert c.get("/api/v1/audit-log").status_code == 403


@pytest.mark.sandbox
def test_prometheus_counts_match_the_executions_made(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "counted-fn")
        code = (
            "def handler(e, c):\n    if e['path'] == '/bad':\n        raise ValueError('x')\n    return 1\n"
        )
        wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
        for _ in range(7):
            assert c.get(f"/fn/{fn['id']}").status_code == 200
        for _ in range(3):
            assert c.get(f"/fn/{fn['id']}/bad").status_code == 500
        families = {f.name: f for f in text_string_to_metric_families(c.get("/api/v1/system/metrics").text)}
    counts = {
        s.labels["status"]: s.value
        for s in families["orva_invocations"].samples
        if s.name == "orva_invocations_total" and s.labels["function"] == "counted-fn"
    }
    assert counts == {"success": 7.0, "error": 3.0}
    durations = [
        s.value
        for s in families["orva_invocation_duration_seconds"].samples
        if s.name.endswith("_count") and s.labels["function"] == "counted-fn"
    ]
    assert durations == [10.0]
    waits = [s.value for s in families["orva_queue_wait_seconds"].samples if s.name.endswith("_count")]
    assert waits and waits[0] >= 10
    builds = {
        s.labels["status"]: s.value for s in families["orva_builds"].samples if s.name == "orva_builds_total"
    }
    assert builds.get("succeeded", 0) >= 1
    spawns = [s.value for s in families["orva_spawn_duration_seconds"].samples if s.name.endswith("_count")]
    assert sum(spawns) >= 1


async def test_a_slow_subscriber_is_told_what_it_missed() -> None:
    from orvad.services.bus import Bus

    bus = Bus()
    async with bus.subscribe(maxsize=5) as slow:
        for i in range(12):
            bus.publish("execution", {"n": i})
        first = await slow.get()
        assert first == ("dropped", {"count": 7})
        rest = [await slow.get() for _ in range(5)]
        assert [d["n"] for _, d in rest] == [7, 8, 9, 10, 11]
        assert slow.queue.qsize() == 0  # memory stays bounded by maxsize


@pytest.mark.sandbox
def test_an_execution_event_names_a_row_that_can_be_read_at_once(orvad: Orvad) -> None:
    """The event goes out after the row and its logs are committed: no client has to retry."""
    import httpx

    with orvad.admin() as c:
        fn = create_function(c, "events-exec")
        code = "def handler(e, c):\n    print('logged line')\n    return 1\n"
        assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
        url = f"{orvad.url}/api/v1/events?types=execution&function_id={fn['id']}"
        with (
            httpx.Client(timeout=30, headers={"X-Orva-API-Key": orvad.admin_key}) as sse,
            sse.stream("GET", url) as stream,
        ):
            invoked = threading.Thread(target=lambda: httpx.get(f"{orvad.url}/fn/{fn['id']}", timeout=30))
            invoked.start()
            event = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "execution":
                    execution = json.loads(line.split(":", 1)[1])
                    break
            invoked.join(30)
            # read straight away, no retry: both are there
            assert c.get(f"/api/v1/executions/{execution['id']}").json()["status"] == "success"
            assert "logged line" in c.get(f"/api/v1/executions/{execution['id']}/logs").json()["logs"]
        c.delete(f"/api/v1/functions/{fn['id']}")
