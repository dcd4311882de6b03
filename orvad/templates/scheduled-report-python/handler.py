"""A scheduled report built in the background: the work runs as a job (retried when it fails), started by a
daily cron schedule the function declares itself, or on demand.

    POST /events {"kind": "signup"}   count an event (KV)
    POST /report                      queue a report now: 202 with the job's id (orva jobs get ID)
    GET /report                       the latest report
A report (the job, x-orva-trigger job or cron) counts the events of each kind and keeps the result in KV.
"""

import json
import time

from orva import cron, jobs, kv, log


def reply(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": body}


def build_report(reason):
    counts, cursor = {}, None
    while True:
        page = kv.list(prefix="events/", cursor=cursor, limit=100)
        for key, value in kv.get_many(list(page)).items() if page else ():
            counts[key.removeprefix("events/")] = value
        cursor = page.next_cursor
        if cursor is None:
            break
    report = {"generated_at": time.time(), "reason": reason, "total": sum(counts.values()), "by_kind": counts}
    kv.put("report/latest", report)
    log.info("report built", total=report["total"], kinds=len(counts))
    return report


def handler(event, context):
    trigger = event["headers"].get("x-orva-trigger")
    if trigger in ("job", "cron"):  # the background run
        payload = json.loads(event["body"] or "{}")
        return build_report(payload.get("reason", trigger))
    cron.upsert("daily-report", "0 8 * * *", payload={"reason": "daily"}, catch_up="skip")
    path, method = event["path"].rstrip("/"), event["method"]
    if path == "/events" and method == "POST":
        try:
            kind = json.loads(event["body"] or "{}").get("kind")
        except (ValueError, AttributeError):
            kind = None
        if not isinstance(kind, str) or not 0 < len(kind) <= 64:
            return reply(422, {"error": 'send {"kind": "..."} (1 to 64 characters)'})
        return {"kind": kind, "count": kv.incr(f"events/{kind}")}
    if path == "/report" and method == "POST":
        job_id = jobs.enqueue(None, {"reason": "requested"}, max_attempts=3)  # None: this function
        return reply(202, {"job_id": job_id, "status": jobs.get(job_id)["status"]})
    if path == "/report" and method == "GET":
        latest = kv.get("report/latest")
        return latest if latest is not None else reply(404, {"error": "no report yet: POST /report"})
    return reply(404, {"error": "POST /events, POST /report or GET /report"})
