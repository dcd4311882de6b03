"""A counter per name in the function's KV, updated with compare-and-swap: read the entry and its version,
write the new value only if nobody wrote in between, and try again when somebody did. (kv.incr does a plain
+1 atomically; cas is the pattern for any read-modify-write, here a counter with a maximum.)

    GET /NAME      the count
    POST /NAME     +1 (409 once it reaches COUNTER_MAX)
    DELETE /NAME   back to 0
"""

import os

from orva import kv


def reply(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": body}


def add_one(key, limit):
    for attempt in range(1, 51):
        entry = kv.get_entry(key)
        count, version = (entry.value, entry.version) if entry else (0, 0)
        if count >= limit:
            return reply(
                409, {"counter": key, "value": count, "error": f"the counter is at its maximum {limit}"}
            )
        ok, _ = kv.cas(key, count + 1, version)  # version 0: only if the key is still absent
        if ok:
            return {"counter": key, "value": count + 1, "attempts": attempt}
    return reply(503, {"counter": key, "error": "too much contention, try again"})


def handler(event, context):
    name = event["path"].strip("/") or "default"
    if len(name) > 200 or "/" in name:
        return reply(400, {"error": "use /NAME with a short name without /"})
    key = f"counter/{name}"
    if event["method"] == "POST":
        return add_one(key, int(os.environ.get("COUNTER_MAX", "1000000")))
    if event["method"] == "DELETE":
        return {"counter": key, "value": 0, "existed": kv.delete(key)}
    return {"counter": key, "value": kv.get(key, default=0)}
