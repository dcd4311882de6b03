"""`orva webhooks list|create|get|update|test|deliveries|rotate|retry|delete` against a real orvad and a
127.0.0.1 receiver (issue 24): the signing secret printed once by create and rotate (never by list or get),
a ping queued by `test` arriving signed and listed in `deliveries`, a failed delivery sent again by `retry`,
and refusals in orva's words."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.test_cli import Cli, error_line, logged_in
from tests.helpers import Orvad, wait_for
from tests.webhooks.receiver import Receiver


@pytest.fixture(scope="module")
def cli(orvad: Orvad, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with logged_in(orvad, tmp_path_factory.mktemp("home"), "clioutbound-") as runner:
        yield runner


def test_outbound_webhooks_cli(cli: Cli) -> None:
    receiver = Receiver().start()
    # ping is no event a receiver subscribes to (it is what `orva webhooks test` sends)
    assert "'ping' is not one of" in cli.fails(2, "webhooks", "create", receiver.url, "--event", "ping")
    try:
        out = cli.ok("webhooks", "create", receiver.url, "--event", "function.created").stdout
        secret = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("secret: "))
        assert secret.startswith("whsec_") and "shown this once" in out
        wid = out.split(":", 1)[0]
        assert wid.startswith("wh_")
        listed = cli.ok("webhooks", "list").stdout
        assert wid in listed and "function.created" in listed and secret not in listed
        assert [h["url"] for h in cli.json("webhooks", "list") if h["id"] == wid] == [receiver.url]
        got = cli.json("webhooks", "get", wid)
        assert got["id"] == wid and "secret" not in got and secret not in str(got)

        queued = cli.ok("webhooks", "test", wid).stdout
        assert "queued ping" in queued and f"orva webhooks deliveries {wid}" in queued
        [ping] = receiver.wait("ping")
        assert ping.headers["webhook-signature"].startswith("v1,")
        wait_for(
            lambda: any(
                d["status"] == "delivered" for d in cli.json("webhooks", "deliveries", wid)["deliveries"]
            ),
            30,
            "the ping listed as delivered",
        )
        assert "ping" in cli.ok("webhooks", "deliveries", wid, "--status", "delivered").stdout

        rotated = cli.ok("webhooks", "rotate", wid).stdout
        new_secret = next(
            line.split(": ", 1)[1] for line in rotated.splitlines() if line.startswith("secret: ")
        )
        assert new_secret != secret and new_secret.startswith("whsec_")

        assert cli.json("webhooks", "update", wid, "--disable")["enabled"] is False
        refused = error_line(cli.fails(1, "webhooks", "test", wid), "WEBHOOK_DISABLED")
        assert "hint:" in refused
        cli.ok("webhooks", "update", wid, "--enable")
        assert error_line(cli.fails(1, "webhooks", "retry", "msg_nope"), "NOT_FOUND")

        bad = error_line(
            cli.fails(1, "webhooks", "create", "ftp://127.0.0.1/x", "--event", "*"), "VALIDATION"
        )
        assert "url" in bad
        assert "nothing to change" in cli.fails(2, "webhooks", "update", wid)

        assert f"deleted webhook {wid}" in cli.ok("webhooks", "delete", wid).stdout
        assert error_line(cli.fails(1, "webhooks", "get", wid), "NOT_FOUND")
    finally:
        receiver.stop()
