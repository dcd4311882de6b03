"""A scheduled cleanup: every 15 minutes (a cron schedule the function declares itself) it deletes the KV
entries under a prefix whose "seen" time is older than a maximum age.

- any HTTP call declares the schedule (cron.upsert is idempotent: it keeps an operator's changes)
- PUT /sessions/ID stores a session {"seen": now} (something to clean up)
- POST /run cleans up now; a cron run (x-orva-trigger: cron) does the same with the schedule's payload

Run it once now from outside: orva cron run NAME cleanup
"""

import json
import os
import time

from orva import cron, kv, log

SCHEDULE = "*/15 * * * *"


def max_age_s():
    return float(os.environ.get("CLEANUP_MAX_AGE_S", "3600"))


def cleanup(prefix, max_age):
    cutoff = time.time() - max_age
    scanned = deleted = 0
    cursor = None
    while True:
        page = kv.list(prefix=prefix, cursor=cursor, limit=100)
        values = kv.get_many(list(page)) if page else {}
        stale = [k for k, v in values.items() if not isinstance(v, dict) or v.get("seen", 0) < cutoff]
        scanned += len(page)
        if stale:
            deleted += kv.delete_many(stale)
        cursor = page.next_cursor
        if cursor is None:
            break
    log.info("cleanup", prefix=prefix, scanned=scanned, deleted=deleted)
    return {"prefix": prefix, "scanned": scanned, "deleted": deleted}


def handler(event, context):
    if event["headers"].get("x-orva-trigger") == "cron":
        payload = json.loads(event["body"] or "{}")
        return cleanup(payload.get("prefix", "session/"), float(payload.get("max_age_s", max_age_s())))
    schedule = cron.upsert("cleanup", SCHEDULE, payload={"prefix": "session/", "max_age_s": max_age_s()})
    parts = event["path"].strip("/").split("/")
    if event["method"] == "PUT" and len(parts) == 2 and parts[0] == "sessions" and parts[1]:
        kv.put(f"session/{parts[1]}", {"seen": time.time()})
        return {"stored": f"session/{parts[1]}"}
    if event["method"] == "POST" and parts == ["run"]:
        return cleanup("session/", max_age_s())
    return {
        "schedule": schedule["name"],
        "expression": schedule["expression"],
        "next_run_at": schedule["next_run_at"],
    }
