"""Signed requests on a cluster (issue 25; orvad/invoke/signatures.py ``claim_everywhere``, docs/CLUSTER.md).

Each node keeps its replay memory in memory, so on its own a signature accepted by node A could be sent
once more to node B within its window. On PostgreSQL every key is also claimed in the shared database
(one INSERT ... ON CONFLICT DO NOTHING): two real orvads on ONE database, forwarding off (each runs what
it receives): a request accepted on one node is a replay on the other, and the same request raced to
both nodes at once runs exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox

SIGNING = "whsec-cluster-replay-7f3a"


def _sign(body: bytes, target: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(SIGNING.encode(), f"{stamp}.POST.{target}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Orva-Timestamp": stamp, "X-Orva-Signature": f"sha256={digest}"}


def _node(make_orvad: Callable[..., Orvad], root: Path, name: str, dsn: str, keys_of: Orvad | None) -> Orvad:
    data = root / name
    data.mkdir(mode=0o711, exist_ok=True)
    data.chmod(0o711)
    if keys_of is not None:
        for key in ("master.key", "admin.key"):
            shutil.copyfile(keys_of.data_dir / key, data / key)
            (data / key).chmod(0o600)
    env = {
        "ORVA_DATABASE_URL": dsn,
        "ORVA_NODE_ID": name,
        "ORVA_HEARTBEAT_S": "0.5",
        "ORVA_FORWARD_COLD": "false",
    }
    return make_orvad(data_dir=data, env=env)


@pytest.fixture
def signed_pair(pg_dsn: str, make_orvad: Callable[..., Orvad], jail_tmp: Path) -> tuple[Orvad, Orvad, str]:
    a = _node(make_orvad, jail_tmp, "node-a", pg_dsn, None)
    with a.admin() as c:
        fn = create_function(c, "signed-cluster", auth_mode="signed")
        code = "def handler(e, c):\n    return e['body']\n"
        assert wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])["status"] == "succeeded"
        r = c.post(
            f"/api/v1/functions/{fn['id']}/secrets", json={"key": "ORVA_SIGNING_SECRET", "value": SIGNING}
        )
        assert r.status_code == 200, r.text
    b = _node(make_orvad, jail_tmp, "node-b", pg_dsn, a)
    url = f"/fn/{fn['id']}"

    def b_runs_it() -> bool:  # B knows the function and its secret: a fresh signed call runs there
        body = f"probe-{time.monotonic_ns()}".encode()
        return httpx.post(b.url + url, content=body, headers=_sign(body, url), timeout=30).status_code == 200

    wait_for(b_runs_it, 60, "node B to run the signed function", interval_s=0.2)
    return a, b, url


def test_a_request_accepted_by_one_node_is_a_replay_on_the_other(
    signed_pair: tuple[Orvad, Orvad, str],
) -> None:
    a, b, url = signed_pair
    once = _sign(b"pay-1", url)
    first = httpx.post(a.url + url, content=b"pay-1", headers=once, timeout=30)
    assert first.status_code == 200 and first.text == "pay-1", first.text
    again = httpx.post(b.url + url, content=b"pay-1", headers=once, timeout=30)
    assert again.status_code == 401 and "replay" in again.json()["error"]["message"], again.text
    other = _sign(b"pay-2", url)  # and the other way round
    assert httpx.post(b.url + url, content=b"pay-2", headers=other, timeout=30).status_code == 200
    back = httpx.post(a.url + url, content=b"pay-2", headers=other, timeout=30)
    assert back.status_code == 401 and "replay" in back.json()["error"]["message"], back.text


def test_one_request_raced_to_both_nodes_runs_once(signed_pair: tuple[Orvad, Orvad, str]) -> None:
    a, b, url = signed_pair
    for round_ in range(3):
        body = f"race-{round_}".encode()
        headers = _sign(body, url)
        targets = [a.url, b.url] * 6

        def send(base: str, body: bytes = body, headers: dict[str, str] = headers) -> tuple[int, str]:
            r = httpx.post(base + url, content=body, headers=headers, timeout=60)
            return r.status_code, r.text

        with ThreadPoolExecutor(len(targets)) as pool:
            answers = list(pool.map(send, targets))
        codes = sorted(code for code, _ in answers)
        assert codes == [200] + [401] * (len(targets) - 1), (round_, answers)
        assert all("replay" in text for code, text in answers if code == 401), answers
