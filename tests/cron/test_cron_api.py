"""Schedules through the operator API on a real orvad whose cron clock a test moves (issue 23): create, upsert by
name, change, delete; validation with hints (6-field expressions, unknown timezones, duplicate names, the
limit); the global list; permissions; runs enqueued as jobs at their tick (never twice, also when the advance
after an enqueue was lost), disabled schedules, both DST transitions and a deleted function's schedules."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.cron.conftest import TestClock, clocked_orvad
from tests.helpers import Orvad, free_port, wait_for


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture
def admin(clocked: tuple[Orvad, TestClock]) -> Iterator[httpx.Client]:
    with clocked[0].admin() as c:
        yield c


@pytest.fixture
def fn(admin: httpx.Client) -> str:
    name = f"cron-{uuid.uuid4().hex[:8]}"
    admin.post("/api/v1/functions", json={"name": name, "runtime": "python"}).raise_for_status()
    return name


def _error(r: httpx.Response, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["request_id"], err
    if field is not None:
        assert err["details"]["field"] == field, err
    return dict(err)


def _jobs(c: httpx.Client, fn: str) -> list[dict[str, Any]]:
    return list(c.get("/api/v1/jobs", params={"function_id": fn, "limit": 500}).json()["jobs"])


def _cron_jobs(c: httpx.Client, fn: str) -> list[dict[str, Any]]:
    return [j for j in _jobs(c, fn) if j["trigger"] == "cron"]


def _schedule(c: httpx.Client, fn: str, cid: str) -> dict[str, Any]:
    r = c.get(f"/api/v1/functions/{fn}/cron/{cid}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_create_upsert_change_and_delete(
    clocked: tuple[Orvad, TestClock], admin: httpx.Client, fn: str
) -> None:
    _, clock = clocked
    now = clock.set(datetime(2026, 1, 10, 8, 7, tzinfo=UTC))
    base = f"/api/v1/functions/{fn}/cron"
    r = admin.post(base, json={"name": "nightly", "expression": "30 2 * * *", "timezone": "Europe/Berlin"})
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["name"] == "nightly" and s["function_name"] == fn and s["expression"] == "30 2 * * *"
    assert s["timezone"] == "Europe/Berlin" and s["payload"] is None and s["enabled"] is True
    assert s["catch_up"] == "once" and s["source"] == "api"
    assert s["next_run_at"] == "2026-01-11T01:30:00.000Z"  # 02:30 CET
    assert s["last_run_at"] is None and s["last_status"] is None and s["last_job_id"] is None
    # the same name again: that schedule changes (fields left out keep their value), 200
    r = admin.post(base, json={"name": "nightly", "payload": {"report": "daily"}, "catch_up": "skip"})
    assert r.status_code == 200, r.text
    same = r.json()
    assert same["id"] == s["id"] and same["payload"] == {"report": "daily"} and same["catch_up"] == "skip"
    assert same["expression"] == "30 2 * * *" and same["next_run_at"] == s["next_run_at"]
    # Go Orva's body: no name (one is made up), descriptor expressions
    r = admin.post(base, json={"expression": "*/5 * * * *", "timezone": "UTC", "enabled": True})
    assert r.status_code == 201, r.text
    unnamed = r.json()
    assert unnamed["name"].startswith("cron-") and unnamed["next_run_at"] == "2026-01-10T08:10:00.000Z"
    hourly = admin.post(base, json={"name": "hourly", "expression": "@hourly"}).json()
    assert hourly["expression"] == "@hourly" and hourly["next_run_at"] == "2026-01-10T09:00:00.000Z"
    # a function's list, newest first; one by name or id
    listed = admin.get(base).json()
    assert [x["name"] for x in listed["schedules"]] == ["hourly", unnamed["name"], "nightly"]
    assert _schedule(admin, fn, "nightly") == _schedule(admin, fn, s["id"])
    # PUT changes the fields sent; a new expression or timezone recomputes next_run_at from now
    changed = admin.put(f"{base}/nightly", json={"expression": "0 3 * * *", "timezone": "UTC"}).json()
    assert changed["next_run_at"] == "2026-01-11T03:00:00.000Z" and changed["payload"] == {"report": "daily"}
    renamed = admin.put(f"{base}/{s['id']}", json={"name": "early"}).json()
    assert renamed["name"] == "early" and renamed["next_run_at"] == changed["next_run_at"]
    # disabled: no next run; enabled again: from the next tick after now
    off = admin.put(f"{base}/early", json={"enabled": False}).json()
    assert off["enabled"] is False and off["next_run_at"] is None
    clock.set(now + timedelta(days=2))
    on = admin.put(f"{base}/early", json={"enabled": True}).json()
    assert on["next_run_at"] == "2026-01-13T03:00:00.000Z"
    # delete by name or id; then 404 with a hint naming the list
    gone = admin.delete(f"{base}/early").json()
    assert gone == {
        "id": s["id"],
        "name": "early",
        "function_id": listed["schedules"][0]["function_id"],
        "deleted": True,
    }
    err = _error(admin.get(f"{base}/early"), 404, "NOT_FOUND")
    assert f"GET /api/v1/functions/{fn}/cron" in err["hint"]
    _error(admin.delete(f"{base}/{s['id']}"), 404, "NOT_FOUND")
    assert admin.delete(f"{base}/{hourly['id']}").status_code == 200
    _error(admin.get("/api/v1/functions/no-such-fn/cron"), 404, "NOT_FOUND")


def test_validation_errors_carry_hints(admin: httpx.Client, fn: str) -> None:
    base = f"/api/v1/functions/{fn}/cron"
    err = _error(
        admin.post(base, json={"name": "s", "expression": "*/10 * * * * *"}), 400, "VALIDATION", "expression"
    )
    assert "6 fields" in err["message"] and "seconds" in err["message"] and "five fields" in err["hint"]
    err = _error(
        admin.post(base, json={"name": "s", "expression": "0 * * * * 2030"}), 400, "VALIDATION", "expression"
    )
    assert "7 fields" in err["message"]
    err = _error(
        admin.post(base, json={"name": "s", "expression": "61 * * * *"}), 400, "VALIDATION", "expression"
    )
    assert "not a valid cron expression" in err["message"] and "minute 0-59" in err["hint"]
    err = _error(
        admin.post(base, json={"name": "s", "expression": "@reboot"}), 400, "VALIDATION", "expression"
    )
    assert "@hourly" in err["hint"]
    err = _error(
        admin.post(base, json={"name": "s", "expression": "0 0 30 2 *"}), 400, "VALIDATION", "expression"
    )
    assert "never matches" in err["message"]
    err = _error(
        admin.post(base, json={"name": "s", "expression": "@daily", "timezone": "Mars/Olympus"}),
        400,
        "VALIDATION",
        "timezone",
    )
    assert "unknown timezone" in err["message"] and "IANA" in err["hint"]
    err = _error(
        admin.post(base, json={"name": "s", "expression": "@daily", "timezone": "berlin"}),
        400,
        "VALIDATION",
        "timezone",
    )
    assert "did you mean 'Europe/Berlin'" in err["message"]
    _error(
        admin.post(base, json={"name": "s", "expression": "@daily", "catch_up": "all"}),
        400,
        "VALIDATION",
        "catch_up",
    )
    _error(
        admin.post(base, json={"name": "s", "expression": "@daily", "enabled": "yes"}),
        400,
        "VALIDATION",
        "enabled",
    )
    _error(admin.post(base, json={"name": "Bad Name", "expression": "@daily"}), 400, "VALIDATION", "name")
    err = _error(admin.post(base, json={"name": "s"}), 400, "VALIDATION", "expression")
    assert "expression is required" in err["message"]
    err = _error(
        admin.post(base, json={"name": "s", "expression": "@daily", "function_id": "x"}), 400, "VALIDATION"
    )
    assert err["details"]["fields"] == ["function_id"]
    err = _error(
        admin.post(base, json={"name": "s", "expression": "@daily", "payload": "x" * 70_000}),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    assert err["details"]["max"] == 65536
    _error(
        admin.post(base, content=b"not json", headers={"content-type": "application/json"}),
        400,
        "INVALID_JSON",
    )
    # nothing above was created
    assert admin.get(base).json()["schedules"] == []
    # a rename onto a name the function has: 409 with a hint
    admin.post(base, json={"name": "a", "expression": "@daily"}).raise_for_status()
    admin.post(base, json={"name": "b", "expression": "@daily"}).raise_for_status()
    err = _error(admin.put(f"{base}/b", json={"name": "a"}), 409, "CONFLICT", "name")
    assert f"PUT /api/v1/functions/{fn}/cron/a" in err["hint"]
    _error(admin.put(f"{base}/b", json={}), 400, "VALIDATION")
    _error(admin.put(f"{base}/b", json={"expression": "* * * *"}), 400, "VALIDATION", "expression")
    # the same name in another function is another schedule
    other = f"{fn}-o"
    admin.post("/api/v1/functions", json={"name": other, "runtime": "python"}).raise_for_status()
    assert (
        admin.post(f"/api/v1/functions/{other}/cron", json={"name": "a", "expression": "@hourly"}).status_code
        == 201
    )
    assert _schedule(admin, fn, "a")["expression"] == "@daily"
    # at most ORVA_CRON_MAX_PER_FUNCTION (5 here): the sixth is 409 CRON_LIMIT_REACHED; an upsert of a held name is not
    for name in ("c", "d", "e"):
        admin.post(base, json={"name": name, "expression": "@daily"}).raise_for_status()
    err = _error(admin.post(base, json={"name": "f", "expression": "@daily"}), 409, "CRON_LIMIT_REACHED")
    assert err["details"] == {"count": 5, "max": 5} and "ORVA_CRON_MAX_PER_FUNCTION" in err["hint"]
    assert admin.post(base, json={"name": "e", "expression": "@weekly"}).status_code == 200


def test_global_list_pages_and_filters(admin: httpx.Client, fn: str) -> None:
    other = f"{fn}-b"
    admin.post("/api/v1/functions", json={"name": other, "runtime": "python"}).raise_for_status()
    made = []
    for target, name, enabled in (
        (fn, "one", True),
        (fn, "two", False),
        (other, "three", True),
        (fn, "four", True),
    ):
        made.append(
            admin.post(
                f"/api/v1/functions/{target}/cron",
                json={"name": name, "expression": "@daily", "enabled": enabled},
            ).json()
        )
    page = admin.get("/api/v1/cron", params={"function_id": fn, "limit": 2}).json()
    assert (
        [s["name"] for s in page["schedules"]] == ["four", "two"]
        and page["total"] == 3
        and page["next_cursor"]
    )
    rest = admin.get(
        "/api/v1/cron", params={"function_id": fn, "limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert [s["name"] for s in rest["schedules"]] == ["one"] and rest["next_cursor"] is None
    enabled = admin.get("/api/v1/cron", params={"function_id": fn, "enabled": "true"}).json()
    assert {s["name"] for s in enabled["schedules"]} == {"one", "four"}
    disabled = admin.get("/api/v1/cron", params={"function_id": fn, "enabled": "false"}).json()
    assert [s["name"] for s in disabled["schedules"]] == ["two"] and disabled["schedules"][0][
        "next_run_at"
    ] is None
    everything = admin.get("/api/v1/cron", params={"limit": 1000}).json()
    names = {(s["function_name"], s["name"]) for s in everything["schedules"]}
    assert {(fn, "one"), (fn, "two"), (other, "three"), (fn, "four")} <= names
    _error(admin.get("/api/v1/cron", params={"enabled": "maybe"}), 400, "VALIDATION", "enabled")
    _error(admin.get("/api/v1/cron", params={"limit": "0"}), 400, "VALIDATION", "limit")
    _error(admin.get("/api/v1/cron", params={"function_id": "no-such-function"}), 404, "NOT_FOUND")


def test_permissions_and_audit(clocked: tuple[Orvad, TestClock], admin: httpx.Client, fn: str) -> None:
    server, _ = clocked
    admin.post(f"/api/v1/functions/{fn}/cron", json={"name": "x", "expression": "@daily"}).raise_for_status()
    read = admin.post("/api/v1/keys", json={"name": f"r-{fn}", "permissions": ["read"]}).json()["key"]
    with server.client(read) as c:
        assert c.get(f"/api/v1/functions/{fn}/cron").status_code == 200
        assert c.get("/api/v1/cron").status_code == 200
        for method, path, body in (
            ("POST", f"/api/v1/functions/{fn}/cron", {"name": "y", "expression": "@daily"}),
            ("PUT", f"/api/v1/functions/{fn}/cron/x", {"enabled": False}),
            ("DELETE", f"/api/v1/functions/{fn}/cron/x", None),
            ("POST", f"/api/v1/functions/{fn}/cron/x/run", None),
        ):
            err = _error(c.request(method, path, json=body), 403, "FORBIDDEN")
            assert err["details"]["required"] == "write"
    with server.client() as anonymous:
        _error(anonymous.get("/api/v1/cron"), 401, "UNAUTHORIZED")

    def audited() -> bool:
        rows = admin.get("/api/v1/audit-log", params={"limit": 200}).json()["entries"]
        return any(r["path"] == f"/api/v1/functions/{fn}/cron" and r["method"] == "POST" for r in rows)

    wait_for(audited, 10, "the schedule's creation in the audit log")


def _wait_job(c: httpx.Client, fn: str, count: int, what: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        found[:] = _cron_jobs(c, fn)
        return len(found) >= count

    wait_for(enough, 30, what, interval_s=0.05)
    return found


def test_a_tick_enqueues_one_job_and_disabled_schedules_do_not(
    clocked: tuple[Orvad, TestClock], admin: httpx.Client, fn: str
) -> None:
    _, clock = clocked
    clock.set(datetime(2026, 4, 1, 9, 58, 30, tzinfo=UTC))
    base = f"/api/v1/functions/{fn}/cron"
    on = admin.post(base, json={"name": "on", "expression": "0 * * * *", "payload": {"n": 1}}).json()
    off = admin.post(base, json={"name": "off", "expression": "0 * * * *", "enabled": False}).json()
    sentinel = admin.post(base, json={"name": "sentinel", "expression": "59 9 * * *"}).json()
    assert on["next_run_at"] == "2026-04-01T10:00:00.000Z"
    # 09:59: the sentinel's tick comes (the scheduler has looked at 09:59), "on" is not due yet
    clock.set(datetime(2026, 4, 1, 9, 59, tzinfo=UTC))
    jobs = _wait_job(admin, fn, 1, "the sentinel's run")
    assert [j["idempotency_key"] for j in jobs] == [f"cron:{sentinel['id']}:2026-04-01T09:59:00.000Z"]
    # 10:00: exactly one run of "on", none of "off"
    clock.set(datetime(2026, 4, 1, 10, 0, tzinfo=UTC))
    jobs = _wait_job(admin, fn, 2, "the 10:00 run")
    keys = sorted(j["idempotency_key"] for j in jobs)
    assert f"cron:{on['id']}:2026-04-01T10:00:00.000Z" in keys and len(jobs) == 2
    job = next(j for j in jobs if j["idempotency_key"].startswith(f"cron:{on['id']}"))
    assert job["trigger"] == "cron" and job["source"] == "cron"
    full = admin.get(f"/api/v1/jobs/{job['id']}").json()
    assert full["function_name"] == fn
    after = _schedule(admin, fn, "on")
    assert after["next_run_at"] == "2026-04-01T11:00:00.000Z" and after["last_job_id"] == job["id"]
    assert (
        after["last_tick_at"] == "2026-04-01T10:00:00.000Z"
        and after["last_run_at"] == "2026-04-01T10:00:00.000Z"
    )
    assert after["last_status"] in ("pending", "running", "failed", "dead")  # the function has no code
    assert _schedule(admin, fn, "off")["last_run_at"] is None
    # the clock standing at 10:00 a while longer runs nothing more (the sentinel proves a later pass)
    admin.post(
        base, json={"name": "sentinel", "expression": "0 10 * * *"}
    ).raise_for_status()  # 10:00 has passed
    clock.set(datetime(2026, 4, 1, 10, 0, 30, tzinfo=UTC))
    admin.post(base, json={"name": "probe", "expression": "* * * * *"}).raise_for_status()
    clock.set(datetime(2026, 4, 1, 10, 1, tzinfo=UTC))
    jobs = _wait_job(admin, fn, 3, "the probe's run at 10:01")
    assert len([j for j in jobs if j["idempotency_key"].startswith(f"cron:{on['id']}")]) == 1
    assert not [j for j in jobs if j["idempotency_key"].startswith(f"cron:{off['id']}")]
    # a run by hand: a job now, next_run_at unchanged
    r = admin.post(f"{base}/on/run")
    assert r.status_code == 202, r.text
    assert r.json()["schedule"]["next_run_at"] == "2026-04-01T11:00:00.000Z"
    assert admin.get(f"/api/v1/jobs/{r.json()['job_id']}").json()["trigger"] == "cron"


def _next_runs(c: httpx.Client, fn: str) -> tuple[str, str]:
    return _schedule(c, fn, "hourly")["next_run_at"], _schedule(c, fn, "daily")["next_run_at"]


def test_daylight_saving_transitions_through_the_scheduler(
    clocked: tuple[Orvad, TestClock], admin: httpx.Client, fn: str
) -> None:
    _, clock = clocked
    base = f"/api/v1/functions/{fn}/cron"
    # spring forward, New York, 8 March 2026: 02:30 does not exist; it runs once, at 03:30 EDT (07:30Z)
    clock.set(datetime(2026, 3, 8, 6, 0, tzinfo=UTC))
    ny = admin.post(
        base, json={"name": "ny", "expression": "30 2 * * *", "timezone": "America/New_York"}
    ).json()
    assert ny["next_run_at"] == "2026-03-08T07:30:00.000Z"
    clock.set(datetime(2026, 3, 8, 7, 30, tzinfo=UTC))
    _wait_job(admin, fn, 1, "the spring-forward run")
    assert _schedule(admin, fn, "ny")["next_run_at"] == "2026-03-09T06:30:00.000Z"  # 02:30 EDT the next day
    admin.delete(f"{base}/ny").raise_for_status()  # (the jump to October would run it once more)
    # fall back, Berlin, 25 October 2026: hourly runs in both 02:00s (CEST 00:00Z, CET 01:00Z), "30 2" once
    clock.set(datetime(2026, 10, 24, 23, 30, tzinfo=UTC))
    hourly = admin.post(
        base, json={"name": "hourly", "expression": "0 * * * *", "timezone": "Europe/Berlin"}
    ).json()
    daily = admin.post(
        base, json={"name": "daily", "expression": "30 2 * * *", "timezone": "Europe/Berlin"}
    ).json()
    assert (
        hourly["next_run_at"] == "2026-10-25T00:00:00.000Z"
        and daily["next_run_at"] == "2026-10-25T00:30:00.000Z"
    )
    expected = 1  # the New York run
    for minutes, next_hourly, next_daily in (
        (30, "2026-10-25T01:00:00.000Z", "2026-10-25T00:30:00.000Z"),  # 00:00Z = 02:00 CEST
        (60, "2026-10-25T01:00:00.000Z", "2026-10-26T01:30:00.000Z"),  # 00:30Z = 02:30 CEST: the daily run
        (90, "2026-10-25T02:00:00.000Z", "2026-10-26T01:30:00.000Z"),  # 01:00Z = 02:00 CET: hourly again
        (120, "2026-10-25T02:00:00.000Z", "2026-10-26T01:30:00.000Z"),  # 01:30Z = 02:30 CET: no second daily
        (150, "2026-10-25T03:00:00.000Z", "2026-10-26T01:30:00.000Z"),  # 02:00Z = 03:00 CET
    ):
        if (
            minutes == 120
        ):  # nothing of these two is due then: a probe due then shows the scheduler saw the time
            probe = admin.post(
                base, json={"name": "probe", "expression": "30 1 25 10 *", "timezone": "UTC"}
            ).json()
            assert probe["next_run_at"] == "2026-10-25T01:30:00.000Z"
        clock.set(datetime(2026, 10, 24, 23, 30, tzinfo=UTC) + timedelta(minutes=minutes))
        expected += 1
        _wait_job(admin, fn, expected, f"the run at +{minutes} min")
        want = (next_hourly, next_daily)
        wait_for(
            lambda want=want: _next_runs(admin, fn) == want,  # type: ignore[misc]
            30,
            f"the next runs after +{minutes} min",
        )
        if minutes == 120:
            admin.delete(f"{base}/probe").raise_for_status()
        assert len(_cron_jobs(admin, fn)) == expected
    keys = sorted(
        j["idempotency_key"]
        for j in _cron_jobs(admin, fn)
        if j["idempotency_key"].startswith(f"cron:{daily['id']}")
    )
    assert keys == [f"cron:{daily['id']}:2026-10-25T00:30:00.000Z"]
    hours = [j for j in _cron_jobs(admin, fn) if j["idempotency_key"].startswith(f"cron:{hourly['id']}")]
    assert len(hours) == 3


def test_deleting_the_function_deletes_its_schedules(admin: httpx.Client, fn: str) -> None:
    made = admin.post(f"/api/v1/functions/{fn}/cron", json={"name": "x", "expression": "@daily"}).json()
    admin.delete(f"/api/v1/functions/{fn}").raise_for_status()
    ids = {s["id"] for s in admin.get("/api/v1/cron", params={"limit": 1000}).json()["schedules"]}
    assert made["id"] not in ids


def test_catch_up_once_and_skip_after_downtime_and_no_double_run_after_a_lost_advance(fresh_base) -> None:  # type: ignore[no-untyped-def]
    server, clock = clocked_orvad(fresh_base)
    clock.set(datetime(2026, 5, 1, 11, 58, tzinfo=UTC))
    server.start()
    fn = "catchup"
    with server.admin() as c:
        c.post("/api/v1/functions", json={"name": fn, "runtime": "python"}).raise_for_status()
        base = f"/api/v1/functions/{fn}/cron"
        once = c.post(base, json={"name": "once", "expression": "*/5 * * * *"}).json()
        skip = c.post(base, json={"name": "skip", "expression": "*/5 * * * *", "catch_up": "skip"}).json()
        assert once["next_run_at"] == skip["next_run_at"] == "2026-05-01T12:00:00.000Z"
    server.stop()
    # down across 13 ticks (12:00 .. 13:00)
    clock.set(datetime(2026, 5, 1, 13, 2, tzinfo=UTC))
    server.start()
    with server.admin() as c:

        def advanced() -> bool:
            return all(
                _schedule(c, fn, n)["next_run_at"] == "2026-05-01T13:05:00.000Z" for n in ("once", "skip")
            )

        wait_for(advanced, 30, "both schedules to move past the downtime")
        jobs = _cron_jobs(c, fn)
        assert [j["idempotency_key"] for j in jobs] == [f"cron:{once['id']}:2026-05-01T13:00:00.000Z"]
        assert _schedule(c, fn, "skip")["last_run_at"] is None
        # the next tick runs both, once each
        clock.set(datetime(2026, 5, 1, 13, 5, tzinfo=UTC))
        jobs = _wait_job(c, fn, 3, "the 13:05 runs")
        assert sorted(j["idempotency_key"] for j in jobs) == sorted(
            [
                f"cron:{once['id']}:2026-05-01T13:00:00.000Z",
                f"cron:{once['id']}:2026-05-01T13:05:00.000Z",
                f"cron:{skip['id']}:2026-05-01T13:05:00.000Z",
            ]
        )
    server.stop()
    # a crash between the enqueue of 13:05 and the move to 13:10: the job is there, next_run_at still 13:05
    server.sql(
        "UPDATE cron_schedules SET next_run_at = ? WHERE id = ?", ("2026-05-01T13:05:00.000Z", once["id"])
    )
    clock.set(datetime(2026, 5, 1, 13, 7, tzinfo=UTC))
    server.start()
    with server.admin() as c:
        wait_for(
            lambda: _schedule(c, fn, "once")["next_run_at"] == "2026-05-01T13:10:00.000Z",
            30,
            "the schedule to move on after the restart",
        )
        keys = [j["idempotency_key"] for j in _cron_jobs(c, fn)]
        assert len(keys) == 3 and keys.count(f"cron:{once['id']}:2026-05-01T13:05:00.000Z") == 1
    server.stop()


def test_the_clock_file_must_be_orvads_own(fresh_base) -> None:  # type: ignore[no-untyped-def]
    server, clock = clocked_orvad(fresh_base)
    clock.path.chmod(0o666)  # writable by anyone: whoever could write it could fire every schedule
    server.start(wait=False)
    assert server.proc is not None and server.proc.wait(timeout=60) != 0
    assert "ORVA_TEST_CLOCK_FILE" in server.stderr() and "writable by no one else" in server.stderr()
    clock.path.unlink()
    server.start(wait=False)
    assert server.proc.wait(timeout=60) != 0 and "ORVA_TEST_CLOCK_FILE" in server.stderr()
    # unset: the system clock, and no warning
    plain = Orvad(fresh_base / "plain", free_port()).start()
    try:
        with plain.admin() as c:
            c.post("/api/v1/functions", json={"name": "plain", "runtime": "python"}).raise_for_status()
            before = datetime.now(UTC)
            s = c.post("/api/v1/functions/plain/cron", json={"name": "m", "expression": "* * * * *"}).json()
            moment = datetime.fromisoformat(s["next_run_at"].replace("Z", "+00:00"))
            assert before < moment <= datetime.now(UTC) + timedelta(minutes=1)
        assert "TEST CLOCK" not in plain.stderr()
    finally:
        plain.stop()
