"""`orva webhooks inbound list|create|get|update|rotate|delete` against a real orvad (issue 24): the secret
printed once by create and rotate (never by list or get), names or ids for WEBHOOK, a sender's secret from
stdin, and errors in orva's words."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from orvad.webhooks.inbound_formats import Settings, sign
from tests.cli.test_cli import Cli, error_line, logged_in
from tests.helpers import Orvad


@pytest.fixture(scope="module")
def cli(orvad: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(orvad, tmp_path_factory.mktemp("home"), "cliinbound-") as runner:
        yield runner


def test_inbound_webhooks_cli(cli: Cli, orvad: Orvad) -> None:
    fn = f"cliinbound-{uuid.uuid4().hex[:6]}"
    cli.ok("functions", "create", fn, "--runtime", "python")
    out = cli.ok("webhooks", "inbound", "create", fn, "github-push", "--format", "github").stdout
    assert "github-push (github, sync): POST http://" in out and "/webhook/iwh_" in out
    secret = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("secret: "))
    assert secret.startswith("whsec_") and "shown this once" in out and "X-Hub-Signature-256" in out
    made = cli.json(
        "webhooks",
        "inbound",
        "create",
        fn,
        "stripe",
        "--format",
        "stripe",
        "--tolerance",
        "60",
        "--mode",
        "async",
        "--secret-stdin",
        input="whsec_from_stripe_0123456789\n",
    )
    assert made["secret"] == "whsec_from_stripe_0123456789" and made["tolerance_s"] == 60
    listed = cli.ok("webhooks", "inbound", "list", fn).stdout
    assert listed.splitlines()[0].split() == [
        "NAME",
        "FORMAT",
        "MODE",
        "ENABLED",
        "DELIVERIES",
        "LAST_STATUS",
        "URL",
        "ID",
    ]
    assert "github-push" in listed and "stripe" in listed
    as_json = cli.json("webhooks", "inbound", "list", fn)
    assert {h["name"] for h in as_json} == {"github-push", "stripe"}
    for text in (
        listed,
        str(as_json),
        cli.ok("webhooks", "inbound", "get", fn, "github-push", "--json").stdout,
    ):
        assert secret not in text and "whsec_from_stripe" not in text
    got = cli.json("webhooks", "inbound", "get", fn, made["id"])  # by id too
    assert got["name"] == "stripe" and got["mode"] == "async"
    out = cli.ok("webhooks", "inbound", "update", fn, "github-push", "--disable", "--rename", "gh").stdout
    assert "gh (github, sync, disabled)" in out
    rotated = cli.json("webhooks", "inbound", "rotate", fn, "gh")
    assert rotated["secret"] != secret
    # the secret printed by rotate is the one the sender must use
    cli.ok("webhooks", "inbound", "update", fn, "gh", "--enable")
    body = b'{"cli": 1}'
    headers = sign("github", body, rotated["secret"].encode(), Settings(), int(time.time()))
    r = httpx.post(rotated["url"], content=body, headers=headers, timeout=30)
    assert (
        r.json()["error"]["code"] == "NOT_DEPLOYED"
    )  # past the signature check: the function has no code yet
    assert (
        httpx.post(
            rotated["url"],
            content=body,
            headers=sign("github", body, secret.encode(), Settings(), int(time.time())),
            timeout=30,
        ).status_code
        == 401
    )
    # errors in orva's words
    stderr = cli.fails(1, "webhooks", "inbound", "get", fn, "nope")
    assert "orva webhooks inbound list" in error_line(stderr, "NOT_FOUND")
    stderr = cli.fails(
        1, "webhooks", "inbound", "create", fn, "bad", "--format", "github", "--header", "X-Sig"
    )
    error_line(stderr, "VALIDATION")
    assert cli.run("webhooks", "inbound", "update", fn, "gh").returncode == 2  # nothing to change
    out = cli.ok("webhooks", "inbound", "delete", fn, "gh").stdout
    assert f"deleted inbound webhook gh of {fn}" in out
    assert [h["name"] for h in cli.json("webhooks", "inbound", "list", fn)] == ["stripe"]
