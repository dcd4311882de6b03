"""orva.log: structured lines in the request's captured logs (docs/SDK.md, Logs).

    from orva import log
    log.info("order stored", order_id=42, total=9.5)
    # {"level": "info", "msg": "order stored", "order_id": 42, "total": 9.5}

Each call writes one JSON line to the request's output (the execution's logs in the dashboard and
``GET /api/v1/executions/{id}``); values JSON cannot carry are written as their ``str()``. Outside a
request the line goes to the worker's stderr, as ``print`` does.
"""

import sys
import time

__all__ = ["debug", "info", "warn", "warning", "error", "write"]


def _dumps(record):
    host = sys.modules.get("_orva_adapter")  # the adapter's JSON encoder: no `json` (and `re`) import
    if host is not None:
        return host.dumps(record, ascii=False)
    import json

    return json.dumps(record, default=str, ensure_ascii=False)


def write(level, msg, **fields):
    """One structured line at ``level`` (debug, info, warn, error)."""
    record = {"level": str(level), "msg": str(msg), "time": round(time.time(), 3)}
    for key, value in fields.items():
        if key not in record:
            record[key] = value
    sys.stderr.write(_dumps(record) + "\n")


def debug(msg, **fields):
    write("debug", msg, **fields)


def info(msg, **fields):
    write("info", msg, **fields)


def warn(msg, **fields):
    write("warn", msg, **fields)


warning = warn


def error(msg, **fields):
    write("error", msg, **fields)
