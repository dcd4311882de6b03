"""A Slack slash command (and Events API) receiver: checks X-Slack-Signature (v0=HMAC-SHA256 of
"v0:TIMESTAMP:BODY" with the app's signing secret) and refuses with 401 a wrong signature or a timestamp
more than five minutes away (a replay).

    orva secrets set NAME SLACK_SIGNING_SECRET     (the app's Basic Information > Signing Secret)
Request URL of the command or of Event Subscriptions: https://YOUR-ORVA/fn/NAME
"""

import base64
import hashlib
import hmac
import json
import os
import time
from urllib.parse import parse_qs

TOLERANCE_S = 300


def reply(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": body}


def check(event, secret):
    """None when Slack signed this request, else why not."""
    headers = event["headers"]
    timestamp = headers.get("x-slack-request-timestamp", "")
    if not timestamp.isdigit():
        return "no X-Slack-Request-Timestamp"
    if abs(time.time() - int(timestamp)) > TOLERANCE_S:
        return "the timestamp is more than five minutes away"
    body = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get("x-slack-signature", "")):
        return "bad or missing X-Slack-Signature"
    return None


def handler(event, context):
    secret = os.environ.get("SLACK_SIGNING_SECRET", "")
    if not secret:
        return reply(
            500, {"error": "SLACK_SIGNING_SECRET is not set: orva secrets set NAME SLACK_SIGNING_SECRET"}
        )
    problem = check(event, secret)
    if problem:
        return reply(401, {"error": problem})

    if event["headers"].get("content-type", "").startswith("application/json"):  # the Events API
        payload = json.loads(event["body"])
        if payload.get("type") == "url_verification":
            return {"challenge": payload.get("challenge")}
        print("slack event:", (payload.get("event") or {}).get("type"))
        return {"ok": True}

    form = {k: v[-1] for k, v in parse_qs(event["body"]).items()}  # a slash command: form-encoded
    command, text, user = (
        form.get("command", ""),
        form.get("text", "").strip(),
        form.get("user_name", "someone"),
    )
    if text == "help" or not text:
        return {
            "response_type": "ephemeral",
            "text": f"Usage: {command} WORDS (I say them back to the channel)",
        }
    return {"response_type": "in_channel", "text": f"{user} said: {text}"}
