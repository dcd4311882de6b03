"""Outbound webhooks and the operator's side: ``orvad rotate-master-key`` re-seals their signing secrets, so a
receiver keeps verifying deliveries with the secret it was shown at create; a signing secret that does not open
under the current key stops the rotation with nothing changed (inbound secrets put back, master.key kept)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from orvad.webhooks.inbound_formats import Settings, sign
from tests.helpers import Orvad
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_inbound import _create as _create_inbound
from tests.webhooks.test_inbound import _post as _post_inbound
from tests.webhooks.test_outbound_api import FAST, _create, _python_verifiers, _wait_status


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _rotate(server: Orvad) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orvad", "rotate-master-key", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **server.database_env()},
    )


def test_rotate_master_key_reseals_outbound_signing_secrets(
    make_orvad: Callable[..., Orvad], receiver: Receiver
) -> None:
    server = make_orvad(env=FAST)
    with server.admin() as c:
        hook = _create(c, receiver.url, ["function.created"])
        secret = hook["secret"]
    old_key = (server.data_dir / "master.key").read_text()
    assert server.stop() == 0
    done = _rotate(server)
    assert done.returncode == 0, done.stderr
    assert "1 outbound webhook signing secret(s)" in done.stdout, done.stdout
    assert secret not in done.stdout + done.stderr
    assert (server.data_dir / "master.key").read_text() != old_key
    server.start()
    with server.admin() as c:
        listed = c.get(f"/api/v1/webhooks/{hook['id']}").json()
        assert listed["secret_usable"] is True, listed
        r = c.post(f"/api/v1/webhooks/{hook['id']}/test")
        assert r.status_code == 202, r.text
        got = receiver.wait("ping")[0]
        _wait_status(c, hook["id"], "delivered")
        # an event after the rotation, too
        c.post("/api/v1/functions", json={"name": "after-rotation", "runtime": "python"}).raise_for_status()
        created = receiver.wait("function.created")[0]
    py = _python_verifiers()  # docs/WEBHOOKS.md's snippet, with the secret shown at create
    for delivery in (got, created):
        assert py["verify"](secret, delivery.headers, delivery.body)
        assert py["verify_orva"](secret, delivery.headers, delivery.body)


def test_rotate_master_key_with_a_signing_secret_that_does_not_open_changes_nothing(
    make_orvad: Callable[..., Orvad], receiver: Receiver
) -> None:
    server = make_orvad(env=FAST)
    with server.admin() as c:
        c.post(
            "/api/v1/functions", json={"name": "kept-under-old-key", "runtime": "python"}
        ).raise_for_status()
        inbound = _create_inbound(c, "kept-under-old-key", name="gh", format="github")
        good = _create(c, receiver.url, ["*"])
        bad = _create(c, receiver.url, ["*"])
    assert server.stop() == 0
    # sealed under some other key
    server.sql("UPDATE webhooks SET secret_sealed = ? WHERE id = ?", (b"\0" * 48, bad["id"]))
    old_key = (server.data_dir / "master.key").read_text()
    done = _rotate(server)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert bad["id"] in done.stderr and "nothing was changed" in done.stderr
    assert "Traceback" not in done.stderr
    assert (server.data_dir / "master.key").read_text() == old_key
    assert not (server.data_dir / "master.key.new").exists()
    assert not (server.data_dir / "master.key.old").exists()
    server.start()
    # the inbound secret (re-sealed first, then put back) still opens: the delivery reaches the function
    body = b"{}"
    headers = sign("github", body, inbound["secret"].encode(), Settings(), int(time.time()))
    r = _post_inbound(server, inbound, body, headers)
    assert r.json()["error"]["code"] == "NOT_DEPLOYED", r.text
    with server.admin() as c:
        assert c.get(f"/api/v1/webhooks/{good['id']}").json()["secret_usable"] is True
        assert c.get(f"/api/v1/webhooks/{bad['id']}").json()["secret_usable"] is False
        c.post(f"/api/v1/webhooks/{good['id']}/test").raise_for_status()
        got = receiver.wait("ping")[0]
    assert _python_verifiers()["verify"](good["secret"], got.headers, got.body)
