"""The pure core of cron (no I/O): expressions, timezones, the next tick, and what to run when a tick is due.

Ticks are computed in the schedule's IANA timezone. croniter walks the *local wall-clock* times that match
the expression (naive datetimes: plain calendar arithmetic, no offsets), and each wall time is then placed
on the UTC timeline with zoneinfo, following RFC 5545's rule for daylight-saving changes:

- spring forward (a gap: 02:30 does not exist that night in America/New_York): the wall time is read with
  the offset before the gap, so ``30 2 * * *`` runs at 03:30 EDT that day (never skipped); a wall time that
  lands on a tick that exists anyway (``0 * * * *``: 02:00 -> 03:00) is the same instant, run once;
- fall back (an overlap: 01:30 happens twice): a time of day named in the hour field runs at the first
  occurrence only (``30 1 * * *`` once, never doubled); an expression whose hour field is ``*`` (``0 * * *
  *``, ``*/15 * * * *``, ``@hourly``) runs in both occurrences, because each is a real hour that passes
  (25 hourly runs on that day, 23 on the spring-forward day).

A tick missed while orvad was down (``next_run_at`` already past at start) runs once, for the latest missed
tick, with ``catch_up: once`` (never once per missed tick), and not at all with ``skip``; see ``plan``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import (  # type: ignore[import-untyped]  # no type hints shipped
    CroniterBadCronError,
    CroniterBadDateError,
    CroniterError,
    croniter,
)

from orvad.errors import ValidationError

CATCH_UP = ("once", "skip")
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
MAX_EXPRESSION = 200
# the longest wall-clock jump any zone makes (DST shifts are 1 h, a few 2 h in history; date-line moves
# are whole days but have no overlap to resolve): how far around a wall time two instants can interleave
_SHIFT = timedelta(hours=3)
# the widening windows `latest_at_or_before` searches: a schedule with a tick in a smaller window never
# walks a bigger one, so the walk is at most ~1500 ticks whatever the downtime
_WINDOWS = (timedelta(hours=1), timedelta(days=1), timedelta(days=32), timedelta(days=400))
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_DOCS = "see docs/API.md, Cron"
_TZ_NAME = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+){0,3}$")


@dataclass(frozen=True, slots=True)
class Expression:
    """A checked cron expression: its text and whether its hour field is ``*`` (runs in both copies of a
    repeated hour)."""

    text: str
    every_hour: bool


def parse_expression(raw: object, field: str = "expression") -> Expression:
    """A 5-field expression (minute hour day-of-month month day-of-week) or an ``@hourly``-style descriptor;
    VALIDATION with a hint for anything else (6/7 fields, seconds, @reboot, a date that never comes)."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_EXPRESSION:
        raise ValidationError(
            f"{field} must be a cron expression of 1..{MAX_EXPRESSION} characters",
            hint='five fields "minute hour day-of-month month day-of-week" (e.g. "*/5 * * * *") or a '
            f"descriptor ({', '.join(DESCRIPTORS)}); {_DOCS}",
            details={"field": field},
        )
    text = " ".join(raw.split())
    if text.startswith("@"):
        if text.lower() not in DESCRIPTORS:
            raise ValidationError(
                f"{field}: unknown descriptor {text[:40]!r}",
                hint=f'use one of {", ".join(DESCRIPTORS)} or five fields (e.g. "0 * * * *"); '
                "@reboot is not supported: a function runs on requests, jobs and schedules",
                details={"field": field},
            )
        text = text.lower()
    else:
        parts = text.split(" ")
        if len(parts) != 5:
            extra = (
                " (6 or 7 fields carry seconds or a year: Orva schedules to the minute)"
                if len(parts) in (6, 7)
                else ""
            )
            raise ValidationError(
                f"{field} has {len(parts)} fields, not 5{extra}",
                hint='write five fields "minute hour day-of-month month day-of-week", e.g. "*/5 * * * *" '
                f'(every 5 minutes) or "30 2 * * *" (02:30 daily); the finest schedule is every minute; {_DOCS}',
                details={"field": field, "fields": len(parts)},
            )
    try:
        expanded, _ = croniter.expand(text)
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise ValidationError(
            f"{field} {text!r} never matches a date (e.g. the 30th of February)",
            hint=f"check the day-of-month and month fields; {_DOCS}",
            details={"field": field},
        ) from None
    except (CroniterBadCronError, CroniterError, ValueError, KeyError, IndexError) as exc:
        raise ValidationError(
            f"{field} {text!r} is not a valid cron expression: {_reason(exc)}",
            hint="fields in order: minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 (or jan-dec), day-of-week "
            f'0-6 (sun-sat); each a number, a range "1-5", a list "1,15", a step "*/10" or "*"; {_DOCS}',
            details={"field": field},
        ) from None
    return Expression(text, expanded[1] == ["*"])


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]


def parse_timezone(raw: object, field: str = "timezone") -> ZoneInfo:
    """An IANA zone name (``UTC``, ``Europe/Berlin``); VALIDATION with a hint otherwise."""
    hint = 'an IANA name such as "UTC", "Europe/Berlin" or "America/New_York" (tz database names, case as written)'
    if not isinstance(raw, str) or not raw or len(raw) > 64 or not _TZ_NAME.fullmatch(raw):
        raise ValidationError(f"{field} must be an IANA timezone name", hint=hint, details={"field": field})
    try:
        zone = ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        zone = None
    if zone is None or raw not in _zone_names():
        close = sorted(
            n for n in _zone_names() if n.lower() == raw.lower() or n.lower().endswith("/" + raw.lower())
        )
        raise ValidationError(
            f"{field}: unknown timezone {raw!r}" + (f" (did you mean {close[0]!r}?)" if close else ""),
            hint=hint,
            details={"field": field},
        )
    return zone


_names: list[frozenset[str]] = []


def _zone_names() -> frozenset[str]:
    if not _names:
        _names.append(frozenset(available_timezones() | {"UTC"}))
    return _names[0]


def instants(wall: datetime, zone: ZoneInfo, both: bool) -> list[datetime]:
    """The UTC instants a naive local wall time names in ``zone``: one; for a time in a spring-forward gap,
    the instant read with the offset before the gap; for a time in a fall-back overlap, the first occurrence,
    or both when ``both``."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    exists = first.astimezone(zone).replace(tzinfo=None) == wall
    if not exists:  # a gap: fold=0 keeps the offset from before it (RFC 5545)
        return [first]
    return [first, second] if both else [first]


def _near_change(zone: ZoneInfo, moment: datetime) -> bool:
    """Whether ``zone`` changes its UTC offset within _SHIFT of ``moment``: only there can a later wall time
    name an earlier instant."""
    return (moment - _SHIFT).astimezone(zone).utcoffset() != (moment + _SHIFT).astimezone(zone).utcoffset()


def next_tick(expr: Expression, zone: ZoneInfo, after: datetime) -> datetime:
    """The first tick strictly after ``after`` (aware), as an aware UTC datetime."""
    after = after.astimezone(UTC)
    start = after.astimezone(zone).replace(tzinfo=None)
    if _near_change(zone, after):  # a wall time before after's own may name a later instant (fold=1)
        start -= _SHIFT
    walk = croniter(expr.text, start)
    best: datetime | None = None
    best_wall = start
    while True:
        wall = walk.get_next(datetime)
        if best is not None and wall > best_wall + _SHIFT:
            return best
        for moment in instants(wall, zone, expr.every_hour):
            if moment > after and (best is None or moment < best):
                best, best_wall = moment, wall
        if best is not None and not _near_change(zone, best):
            return best


def ticks(expr: Expression, zone: ZoneInfo, after: datetime, until: datetime) -> list[datetime]:
    """Every tick in (after, until], in order (for tests and previews: keep the range small)."""
    found: list[datetime] = []
    moment = next_tick(expr, zone, after)
    while moment <= until:
        found.append(moment)
        moment = next_tick(expr, zone, moment)
    return found


def latest_at_or_before(expr: Expression, zone: ZoneInfo, now: datetime, since: datetime) -> datetime | None:
    """The last tick in [since, now], or None; the walk grows a window back from ``now`` so a long downtime
    costs no more than a short one."""
    floor = since - timedelta(microseconds=1)
    for window in _WINDOWS:
        start = max(now - window, floor)
        found = _last_in(expr, zone, start, now)
        if found is not None or start == floor:
            return found
    return _yearly(expr, zone, now - _WINDOWS[-1], floor)


def _last_in(expr: Expression, zone: ZoneInfo, start: datetime, now: datetime) -> datetime | None:
    last = None
    moment = next_tick(expr, zone, start)
    while moment <= now:
        last = moment
        moment = next_tick(expr, zone, moment)
    return last


def _yearly(expr: Expression, zone: ZoneInfo, now: datetime, floor: datetime) -> datetime | None:
    """A schedule with no tick in 400 days (a 29th of February on a Monday...) after a very long downtime:
    step back a few years at a time."""
    end = now
    while end > floor:
        start = max(end - timedelta(days=5 * 366), floor)
        found = _last_in(expr, zone, start, end)
        if found is not None:
            return found
        end = start
    return None


@dataclass(frozen=True, slots=True)
class Plan:
    """What the scheduler does with a due schedule: run ``run_tick`` (None: run nothing), then wait for
    ``next_run_at``."""

    run_tick: datetime | None
    next_run_at: datetime
    missed: int  # ticks from the scheduled one to now (at most COUNT_MAX counted); 1: on time


COUNT_MAX = 1000


def plan(
    expr: Expression, zone: ZoneInfo, next_run_at: datetime, now: datetime, catch_up: str, *, down: bool
) -> Plan | None:
    """The decision for a schedule whose ``next_run_at`` has come (None when it has not).

    ``down``: the tick came while orvad was not running (``next_run_at`` was already past when it started):
    ``catch_up`` decides, once -> one run for the latest missed tick, skip -> none. While orvad runs, a due
    tick always runs, once, whatever the lateness (a loop held up past several ticks runs the latest one).
    Either way the next tick is the first one after ``now``, so a tick never runs twice and missed ticks
    never pile up."""
    if next_run_at > now:
        return None
    latest = latest_at_or_before(expr, zone, now, next_run_at) or next_run_at
    following = next_tick(expr, zone, now)
    missed = 1 if latest == next_run_at else _count(expr, zone, next_run_at, latest)
    if down and catch_up == "skip":
        return Plan(None, following, missed)
    return Plan(latest, following, missed)


def _count(expr: Expression, zone: ZoneInfo, first: datetime, last: datetime) -> int:
    """Ticks in [first, last] (both ticks), counted up to COUNT_MAX."""
    n, moment = 1, first
    while moment < last and n < COUNT_MAX:
        moment = next_tick(expr, zone, moment)
        n += 1
    return n
