"""Inbound webhooks (issue 24) and the operator's side: ``orvad rotate-master-key`` re-seals their secrets
(deliveries signed with the same secret still run), and ORVA_FUNCTIONS_ORIGIN serves /webhook/ too (senders
call it from outside), while the API stays off that origin and /webhook/ needs no Orva key on either."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from orvad.webhooks.inbound_formats import Settings, sign
from tests.helpers import free_port
from tests.webhooks.test_inbound import _create, _deploy, _post

pytestmark = pytest.mark.sandbox


def test_rotate_master_key_reseals_webhook_secrets(make_orvad: Any) -> None:
    server = make_orvad()
    with server.admin() as c:
        name = _deploy(c, "rotated-master")["name"]
        hook = _create(c, name, name="gh", format="github")
    assert server.stop() == 0
    done = subprocess.run(
        [sys.executable, "-m", "orvad", "rotate-master-key", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **server.database_env()},
    )
    assert done.returncode == 0, done.stderr
    assert "1 inbound webhook secret(s)" in done.stdout and hook["secret"] not in done.stdout + done.stderr
    server.start()
    body = b'{"after": "rotation"}'
    r = _post(server, hook, body, sign("github", body, hook["secret"].encode(), Settings(), int(time.time())))
    assert r.status_code == 200, r.text


def test_the_functions_origin_serves_webhooks(make_orvad: Any) -> None:
    fn_port = free_port()
    server = make_orvad(env={"ORVA_FUNCTIONS_ORIGIN": f"http://127.0.0.1:{fn_port}"})
    with server.admin() as c:
        name = _deploy(c, "fn-origin")["name"]
        hook = _create(c, name, name="slack", format="slack")
    assert hook["url"] == f"http://127.0.0.1:{fn_port}/webhook/{hook['id']}"  # the URL senders are given
    body = b"payload=%7B%7D"
    headers = sign("slack", body, hook["secret"].encode(), Settings(), int(time.time()))
    r = httpx.post(hook["url"], content=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    # the API is not served there, with or without a key
    r = httpx.get(f"http://127.0.0.1:{fn_port}/api/v1/functions/{name}/inbound-webhooks", timeout=30)
    assert r.status_code == 404
    # and a bad signature on that origin: 401, as on the main port
    r = httpx.post(
        hook["url"], content=body, headers={**headers, "X-Slack-Signature": "v0=" + "0" * 64}, timeout=30
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "WEBHOOK_SIGNATURE_INVALID"


def test_a_deleted_functions_webhooks_go_with_it(make_orvad: Any) -> None:
    server = make_orvad()
    with server.admin() as c:
        c.post("/api/v1/functions", json={"name": "short-lived", "runtime": "python"}).raise_for_status()
        hook = _create(c, "short-lived", name="gh", format="github")
        body = b"{}"
        headers = sign("github", body, hook["secret"].encode(), Settings(), int(time.time()))
        assert _post(server, hook, body, headers).json()["error"]["code"] == "NOT_DEPLOYED"  # it is there
        c.delete("/api/v1/functions/short-lived").raise_for_status()
        assert _post(server, hook, body, headers).status_code == 404
    assert server.stop() == 0
    # the row went with the function's (ON DELETE CASCADE)
    assert server.sql("SELECT COUNT(*) FROM inbound_webhooks") == [(0,)]
    server.start()
    headers = sign("github", b"[]", hook["secret"].encode(), Settings(), int(time.time()))
    assert _post(server, hook, b"[]", headers).status_code == 404
