"""A GitHub webhook receiver: checks X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the webhook's
secret) before anything else and answers 401 when it does not match.

Set the same secret here and in the repository's Settings > Webhooks:
    orva secrets set NAME GITHUB_WEBHOOK_SECRET
Payload URL: https://YOUR-ORVA/fn/NAME, content type application/json.
"""

import base64
import hashlib
import hmac
import json
import os

from orva import log


def raw_body(event):
    """The bytes GitHub signed: the body as it arrived."""
    if event["isBase64Encoded"]:
        return base64.b64decode(event["body"])
    return event["body"].encode()


def reply(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": body}


def handler(event, context):
    secret = os.environ.get("GITHUB_WEBHOOK_SECRET", "")
    if not secret:
        return reply(
            500, {"error": "GITHUB_WEBHOOK_SECRET is not set: orva secrets set NAME GITHUB_WEBHOOK_SECRET"}
        )
    body = raw_body(event)
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = event["headers"].get("x-hub-signature-256", "")
    if not hmac.compare_digest(expected, given):
        log.warn("bad signature", delivery=event["headers"].get("x-github-delivery"))
        return reply(401, {"error": "bad or missing X-Hub-Signature-256"})

    kind = event["headers"].get("x-github-event", "")
    payload = json.loads(body or b"{}")
    repo = (payload.get("repository") or {}).get("full_name")
    log.info("github event", event=kind, repository=repo, delivery=event["headers"].get("x-github-delivery"))
    if kind == "ping":
        return {"ok": True, "event": "ping", "zen": payload.get("zen")}
    if kind == "push":
        commits = payload.get("commits") or []
        return {
            "ok": True,
            "event": "push",
            "repository": repo,
            "ref": payload.get("ref"),
            "commits": len(commits),
        }
    if kind in ("issues", "pull_request"):
        return {"ok": True, "event": kind, "repository": repo, "action": payload.get("action")}
    return {"ok": True, "event": kind, "ignored": True}
