"""The pure core of cron (orvad/cron/schedule.py): expression and timezone rules, the next tick in a timezone
across both daylight-saving transitions, and the catch-up decision; with properties over many start times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orvad.cron.schedule import (
    latest_at_or_before,
    next_tick,
    parse_expression,
    parse_timezone,
    plan,
    ticks,
)
from orvad.errors import ValidationError

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%m-%d %H:%M%z")


def day_ticks(expression: str, zone: ZoneInfo, day: datetime) -> list[str]:
    """The ticks of one local calendar day, as local times with their offset."""
    start = day.replace(tzinfo=zone).astimezone(UTC)
    end = (day + timedelta(days=1)).replace(tzinfo=zone).astimezone(UTC)
    return [
        local(t, zone)
        for t in ticks(
            parse_expression(expression),
            zone,
            start - timedelta(microseconds=1),
            end - timedelta(microseconds=1),
        )
    ]


# expressions
@pytest.mark.parametrize(
    "text, every_hour",
    [
        ("*/5 * * * *", True),
        ("30 2 * * *", False),
        ("0 9 * * mon-fri", False),
        ("0 0 1 jan *", False),
        ("@hourly", True),
        ("@daily", False),
        ("@Weekly", False),
        ("  0   *  * * *  ", True),
        ("0 0 L * *", False),
        ("0 12 * * 5#3", False),
    ],
)
def test_valid_expressions(text: str, every_hour: bool) -> None:
    expr = parse_expression(text)
    assert expr.every_hour is every_hour
    words = " ".join(text.split())
    assert expr.text == (words.lower() if words.startswith("@") else words)


@pytest.mark.parametrize(
    "text, words",
    [
        ("* * * * * *", "6 fields"),  # seconds
        ("0 * * * * * 2030", "7 fields"),
        ("* * * *", "4 fields"),
        ("61 * * * *", "not a valid cron expression"),
        ("* 24 * * *", "not a valid cron expression"),
        ("0 0 30 2 *", "never matches"),
        ("@reboot", "unknown descriptor"),
        ("@every 5m", "unknown descriptor"),
        ("H * * * *", "not a valid cron expression"),
        ("", "1..200"),
        ("x" * 201, "1..200"),
    ],
)
def test_invalid_expressions_say_why(text: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_expression(text)
    assert words in caught.value.message
    assert caught.value.hint and caught.value.details == {
        "field": "expression",
        **({"fields": len(text.split())} if "fields" in words else {}),
    }


def test_seconds_get_a_hint() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_expression("*/10 * * * * *")
    assert "seconds" in caught.value.message and "every minute" in (caught.value.hint or "")


@pytest.mark.parametrize(
    "name", ["UTC", "Europe/Berlin", "America/New_York", "America/Argentina/Buenos_Aires", "Etc/GMT+5"]
)
def test_valid_timezones(name: str) -> None:
    assert str(parse_timezone(name)) == name


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("Mars/Olympus", None),
        ("europe/berlin", "Europe/Berlin"),
        ("Berlin", "Europe/Berlin"),
        ("../../etc/passwd", None),
        ("", None),
        (5, None),
    ],
)
def test_unknown_timezones_are_refused_with_a_hint(name: object, suggestion: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_timezone(name)
    assert caught.value.details == {"field": "timezone"} and "IANA" in (caught.value.hint or "")
    if suggestion:
        assert f"did you mean {suggestion!r}" in caught.value.message


# next tick, plain
def test_next_tick_is_strictly_after() -> None:
    expr = parse_expression("*/15 * * * *")
    assert next_tick(expr, ZoneInfo("UTC"), utc(2026, 1, 1, 10, 0)) == utc(2026, 1, 1, 10, 15)
    assert next_tick(expr, ZoneInfo("UTC"), utc(2026, 1, 1, 10, 0, 1)) == utc(2026, 1, 1, 10, 15)
    assert next_tick(expr, ZoneInfo("UTC"), utc(2026, 1, 1, 9, 59, 59)) == utc(2026, 1, 1, 10, 0)


def test_timezone_moves_the_tick() -> None:
    expr = parse_expression("0 9 * * *")
    after = utc(2026, 1, 15, 0, 0)
    assert next_tick(expr, ZoneInfo("UTC"), after) == utc(2026, 1, 15, 9, 0)
    assert next_tick(expr, BERLIN, after) == utc(2026, 1, 15, 8, 0)  # CET +1
    assert next_tick(expr, NY, after) == utc(2026, 1, 15, 14, 0)  # EST -5
    assert next_tick(expr, ZoneInfo("Asia/Kolkata"), after) == utc(2026, 1, 15, 3, 30)  # +5:30


# DST: spring forward (a gap) and fall back (an overlap)
@pytest.mark.parametrize("zone, day", [(NY, datetime(2026, 3, 8)), (BERLIN, datetime(2026, 3, 29))])
def test_spring_forward_neither_skips_nor_doubles(zone: ZoneInfo, day: datetime) -> None:
    # 02:30 does not exist that night: it runs once, at 03:30 (the offset before the gap, RFC 5545)
    assert day_ticks("30 2 * * *", zone, day) == [
        day.strftime("%m-%d") + " 03:30" + local(day.replace(hour=12, tzinfo=zone), zone)[-5:]
    ]
    # the days around it: once each at 02:30
    for other in (day - timedelta(days=1), day + timedelta(days=1)):
        assert [t[6:11] for t in day_ticks("30 2 * * *", zone, other)] == ["02:30"]
    # hourly: 23 runs on a 23-hour day, 02:00 (absent) the same instant as 03:00, run once
    hourly = day_ticks("0 * * * *", zone, day)
    assert len(hourly) == 23 and len(set(hourly)) == 23
    assert [t[6:11] for t in hourly][:4] == ["00:00", "01:00", "03:00", "04:00"]


@pytest.mark.parametrize(
    "zone, day, repeated", [(NY, datetime(2026, 11, 1), 1), (BERLIN, datetime(2026, 10, 25), 2)]
)
def test_fall_back_does_not_double_a_daily_run(zone: ZoneInfo, day: datetime, repeated: int) -> None:
    at = f"30 {repeated} * * *"  # a time of the repeated hour: once, at its first occurrence (summer time)
    assert day_ticks(at, zone, day) == [
        local(day.replace(hour=repeated, minute=30, tzinfo=zone, fold=0), zone)
    ]
    assert day_ticks("30 2 * * *", zone, day) == [
        local(day.replace(hour=2, minute=30, tzinfo=zone, fold=0), zone)
    ]
    # hourly runs every real hour: 25 on a 25-hour day, the repeated hour once in each offset
    hourly = day_ticks("0 * * * *", zone, day)
    assert len(hourly) == 25 and len(set(hourly)) == 25
    repeated_runs = [t for t in hourly if t[6:8] == f"{repeated:02d}"]
    assert len(repeated_runs) == 2 and repeated_runs[0][-5:] != repeated_runs[1][-5:]


def test_every_fifteen_minutes_across_both_transitions_is_evenly_spaced() -> None:
    for zone, start in (
        (NY, utc(2026, 3, 8, 4)),
        (NY, utc(2026, 11, 1, 3)),
        (BERLIN, utc(2026, 3, 28, 23)),
        (BERLIN, utc(2026, 10, 24, 22)),
    ):
        found = ticks(parse_expression("*/15 * * * *"), zone, start, start + timedelta(hours=6))
        gaps = {b - a for a, b in zip(found, found[1:], strict=False)}
        assert gaps == {timedelta(minutes=15)}, (zone, start, gaps)


# properties
_EXPRESSIONS = [
    "* * * * *",
    "*/7 * * * *",
    "0 * * * *",
    "30 2 * * *",
    "30 1 * * *",
    "15 3 * * 0",
    "0 0 1 * *",
    "45 */2 * * *",
    "@daily",
    "0 9-17 * * 1-5",
]
_ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
    "Pacific/Chatham",
]
_moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_EXPRESSIONS), st.sampled_from(_ZONES), _moments)
def test_ticks_increase_and_match_the_expression(text: str, zone_name: str, start: datetime) -> None:
    expr, zone = parse_expression(text), ZoneInfo(zone_name)
    previous = start
    for _ in range(5):
        tick = next_tick(expr, zone, previous)
        assert tick > previous and tick.tzinfo is UTC and tick.second == 0 and tick.microsecond == 0
        # no tick is missed in between: the next tick after (previous, tick) from any point inside is tick
        assert next_tick(expr, zone, previous + (tick - previous) / 2) == tick
        previous = tick


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["30 2 * * *", "30 1 * * *", "0 0 * * *", "59 23 * * *", "0 3 * * *"]),
    st.sampled_from(_ZONES),
    _moments,
)
def test_a_daily_time_runs_exactly_once_per_local_day(text: str, zone_name: str, start: datetime) -> None:
    expr, zone = parse_expression(text), ZoneInfo(zone_name)
    found = ticks(expr, zone, start, start + timedelta(days=10))
    days = [t.astimezone(zone).date() for t in found]
    assert len(days) == len(set(days))  # never twice on a day
    first, last = days[0], days[-1]
    assert (last - first).days + 1 == len(days)  # never a day skipped


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_EXPRESSIONS), st.sampled_from(_ZONES), _moments, st.integers(0, 400 * 24 * 60))
def test_latest_tick_is_the_last_before_now(text: str, zone_name: str, since: datetime, minutes: int) -> None:
    expr, zone = parse_expression(text), ZoneInfo(zone_name)
    since = next_tick(expr, zone, since)
    now = since + timedelta(minutes=minutes)
    latest = latest_at_or_before(expr, zone, now, since)
    assert latest is not None and since <= latest <= now
    assert next_tick(expr, zone, latest) > now


# catch-up decisions
def test_plan_on_time_runs_the_tick() -> None:
    expr, zone = parse_expression("0 * * * *"), ZoneInfo("UTC")
    p = plan(expr, zone, utc(2026, 1, 1, 10), utc(2026, 1, 1, 10, 0, 0, 300), "once", down=False)
    assert (
        p is not None
        and p.run_tick == utc(2026, 1, 1, 10)
        and p.next_run_at == utc(2026, 1, 1, 11)
        and p.missed == 1
    )
    assert plan(expr, zone, utc(2026, 1, 1, 10), utc(2026, 1, 1, 9, 59), "once", down=False) is None


@pytest.mark.parametrize("down", [True, False])
def test_plan_after_many_missed_ticks_runs_once_for_the_latest(down: bool) -> None:
    expr, zone = parse_expression("*/5 * * * *"), ZoneInfo("UTC")
    p = plan(expr, zone, utc(2026, 1, 1, 10), utc(2026, 1, 1, 13, 2), "once", down=down)
    assert p is not None and p.run_tick == utc(2026, 1, 1, 13, 0) and p.next_run_at == utc(2026, 1, 1, 13, 5)
    assert p.missed == 37  # 10:00 .. 13:00 every 5 minutes: folded into one run


def test_plan_skip_runs_nothing_after_downtime_but_runs_a_late_tick_while_up() -> None:
    expr, zone = parse_expression("0 * * * *"), ZoneInfo("UTC")
    p = plan(expr, zone, utc(2026, 1, 1, 10), utc(2026, 1, 1, 12, 30), "skip", down=True)
    assert p is not None and p.run_tick is None and p.next_run_at == utc(2026, 1, 1, 13)
    p = plan(expr, zone, utc(2026, 1, 1, 10), utc(2026, 1, 1, 10, 0, 2), "skip", down=False)
    assert p is not None and p.run_tick == utc(2026, 1, 1, 10)


def test_plan_after_a_year_down_is_quick_and_once() -> None:
    import time

    expr, zone = parse_expression("* * * * *"), NY
    started = time.monotonic()
    p = plan(expr, zone, utc(2025, 1, 1), utc(2026, 3, 8, 7, 30, 30), "once", down=True)
    assert time.monotonic() - started < 1.0
    assert p is not None and p.run_tick == utc(2026, 3, 8, 7, 30) and p.missed == 1000  # counted up to 1000
    rare = parse_expression("0 0 29 2 1")  # 29 February or a Monday (day-of-month OR day-of-week, as cron)
    q = plan(rare, zone, utc(2020, 1, 1), utc(2026, 3, 8), "once", down=True)
    assert q is not None and q.run_tick is not None and q.run_tick < utc(2026, 3, 8)
