"""A pool's limits on a real orvad: workers recycled after ORVA_WORKER_MAX_REQUESTS, and the memory gate
refusing a worker past ORVA_MEMORY_SHARE (503 MEMORY_EXHAUSTED)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

# every worker is pid 1 in its own namespace, so identify workers by a token made at import
PID = "import os\nTOKEN = os.urandom(6).hex()\n\ndef handler(e, c):\n    return TOKEN\n"


def test_workers_are_recycled_after_max_requests(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_WORKER_MAX_REQUESTS": "3"})
    with server.admin() as c:
        fn = create_function(c, "recycled-fn")
        c.put("/api/v1/pool/config", json={"function_id": fn["id"], "max_warm": 1})
        wait_deployed(c, deploy_inline(c, fn["id"], PID)["id"])
        pids = [c.get(f"/fn/{fn['id']}").text for _ in range(7)]
    assert len(set(pids[:3])) == 1 and pids[3] != pids[0] and len(set(pids)) == 3, pids


def test_memory_gate_refuses_workers_past_the_share(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_MEMORY_SHARE": "0.05"})
    with server.admin() as c:
        fn = create_function(c, "hungry-fn", memory_mb=4096)
        c.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 0})
        wait_deployed(c, deploy_inline(c, fn["id"], PID)["id"])
        r = c.get(f"/fn/{fn['id']}")
    if r.status_code == 200:
        pytest.fail("a 4 GiB worker fit in 5% of RAM: this host has more than 80 GiB; lower the share")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "MEMORY_EXHAUSTED" and r.headers["retry-after"]
