"""More of the invoke contract: ESM handlers, worker recycling, the memory gate, the build queue bound."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from orvad.builder.queue import BuildQueue
from orvad.errors import Unavailable
from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

# every worker is pid 1 in its own namespace, so identify workers by a token made at import
PID = "import os\nTOKEN = os.urandom(6).hex()\n\ndef handler(e, c):\n    return TOKEN\n"


def test_esm_handler(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "esm-fn", "node", entrypoint="handler.mjs")
        code = "export const handler = async (event) => ({ esm: true, path: event.path });\n"
        dep = wait_deployed(c, deploy_inline(c, fn["id"], code, filename="handler.mjs")["id"])
        assert dep["status"] == "succeeded"
        assert c.get(f"/fn/{fn['id']}/x").json() == {"esm": True, "path": "/x"}


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


async def test_build_queue_backlog_is_bounded() -> None:
    ran: list[str] = []

    async def run(deployment_id: str) -> None:
        ran.append(deployment_id)

    queue = BuildQueue(run, concurrency=1, backlog=2)  # workers not started: everything waits
    queue.submit("a")
    queue.submit("b")
    with pytest.raises(Unavailable) as info:
        queue.submit("c")
    assert info.value.code == "BUILD_QUEUE_FULL" and info.value.retry_after_s
    queue.start()
    for _ in range(100):
        if len(ran) == 2:
            break
        await asyncio.sleep(0.01)
    await queue.stop()
    assert ran == ["a", "b"]
