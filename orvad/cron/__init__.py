"""Schedules (issue 23): orvad/cron/schedule.py (the pure core: expressions, timezones, ticks, catch-up),
orvad/cron/service.py (the rules, the API's and the SDK's faces, the scheduler loop); SQL in orvad/store/cron.py."""

from orvad.cron.service import CronService

__all__ = ["CronService"]
