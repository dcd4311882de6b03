"""Warm pools over HTTP: capacity, live configuration, min_warm, scale to zero, deploys under load."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

SLOW = "import time\n\ndef handler(event, context):\n    time.sleep(float(event['query'].get('s', '0')))\n    return 'v%d'\n"


def _pool_row(c: httpx.Client, fn_id: str) -> dict:
    rows = c.get("/api/v1/system/metrics.json").json()["pools"]
    return next((r for r in rows if r["function_id"] == fn_id), {"workers": 0})


def _concurrently(url: str, n: int, params: dict | None = None) -> list[httpx.Response]:
    results: list[httpx.Response] = []

    def call() -> None:
        with httpx.Client(timeout=30) as c:
            results.append(c.get(url, params=params))

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
        time.sleep(0.05)  # stagger starts so the order is deterministic; not a wait for a condition
    for t in threads:
        t.join(30)
    return results


def test_pool_at_capacity_and_config_applied_live(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "capacity-fn", timeout_ms=1500)
        c.put("/api/v1/pool/config", json={"function_id": fn["id"], "max_warm": 1, "min_warm": 1})
        wait_deployed(c, deploy_inline(c, fn["id"], SLOW % 1)["id"])
    url = f"{orvad.url}/fn/{fn['id']}"
    results = _concurrently(url, 3, {"s": "1.0"})
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 200, 503], [r.text for r in results]
    busy = next(r for r in results if r.status_code == 503)
    err = busy.json()["error"]
    assert err["code"] == "POOL_AT_CAPACITY" and int(busy.headers["retry-after"]) >= 1
    assert err["details"] == {
        "function_id": fn["id"],
        "function_name": "capacity-fn",
        "code_hash": err["details"]["code_hash"],
        "current": 1,
        "limit": 1,
    }
    with orvad.admin() as c:
        c.put("/api/v1/pool/config", json={"function_id": fn["id"], "max_warm": 3})
    results = _concurrently(url, 3, {"s": "1.0"})
    assert [r.status_code for r in results] == [200, 200, 200]


def test_min_warm_and_scale_to_zero(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "warmth-fn")
        c.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 2, "idle_ttl_seconds": 300})
        wait_deployed(c, deploy_inline(c, fn["id"], SLOW % 1)["id"])
        wait_for(lambda: _pool_row(c, fn["id"])["workers"] == 2, 15, "min_warm workers")
        first = c.get(f"/fn/{fn['id']}")
        assert first.headers["x-orva-cold-start"] == "false"  # min_warm met it warm
        c.put(
            "/api/v1/pool/config",
            json={"function_id": fn["id"], "min_warm": 1, "idle_ttl_seconds": 1, "scale_to_zero": True},
        )
        wait_for(lambda: _pool_row(c, fn["id"])["workers"] == 0, 20, "scale to zero after idle_ttl")
        again = c.get(f"/fn/{fn['id']}")
        assert again.status_code == 200 and again.headers["x-orva-cold-start"] == "true"


def test_deploy_under_steady_load_has_no_failure_and_no_cold_start(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "steady-fn")
        # two loaders need two workers: start with them, so only the deploy is under test
        c.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 2})
        wait_deployed(c, deploy_inline(c, fn["id"], SLOW % 1)["id"])
        wait_for(lambda: _pool_row(c, fn["id"])["workers"] == 2, 15, "two warm workers")
        assert c.get(f"/fn/{fn['id']}").text == "v1"
    seen: list[tuple[int, str, str]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as lc:
            while not stop.is_set():
                r = lc.get(f"{orvad.url}/fn/{fn['id']}")
                seen.append((r.status_code, r.text, r.headers.get("x-orva-cold-start", "")))

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        with orvad.admin() as c:
            wait_for(lambda: len(seen) > 20, 10, "load to run")
            deploy_from = len(seen)
            wait_deployed(c, deploy_inline(c, fn["id"], SLOW % 2)["id"])
            wait_for(lambda: any(text == "v2" for _, text, _ in seen[-5:]), 15, "the new version to serve")
            mark = len(seen)
            wait_for(lambda: len(seen) > mark + 20, 10, "more load after the switch")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert all(code == 200 for code, _, _ in seen), {code for code, _, _ in seen}
    after = seen[deploy_from:]
    assert all(cold == "false" for _, _, cold in after), [
        (i, t) for i, (_, t, c) in enumerate(after) if c == "true"
    ]
    assert {text for _, text, _ in seen} == {"v1", "v2"}


def _jails_under(path: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            raw = cmdline.read_bytes()
        except OSError:
            continue
        if str(path).encode() in raw and b"nsjail" in raw:
            found.append(cmdline.parent.name)
    return found


def test_no_nsjail_process_outlives_orvad(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad()
    with server.admin() as c:
        for runtime, code in (("python", SLOW % 1), ("node", "exports.handler = async () => 'v1';\n")):
            fn = create_function(c, f"leak-{runtime}", runtime)
            c.put("/api/v1/pool/config", json={"function_id": fn["id"], "min_warm": 2})
            wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
            assert c.get(f"/fn/{fn['id']}").text == "v1"
        wait_for(lambda: len(_jails_under(server.data_dir)) >= 4, 15, "warm workers")
    assert server.stop(signal.SIGTERM) == 0
    assert _jails_under(server.data_dir) == []


def test_memory_pressure_retires_idle_workers_of_other_functions(make_orvad: Callable[..., Orvad]) -> None:
    """Function A's two idle warm workers hold the whole reservation (16.12): invoking B retires one of them
    (oldest idle first) instead of answering MEMORY_EXHAUSTED; while A's workers are busy nothing can be
    retired, and B still gets 503 MEMORY_EXHAUSTED."""
    share = 0.05
    with open("/proc/meminfo") as fh:
        total_kb = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal:"))
    cap = int(total_kb / 1024 * share)  # orvad's own formula (daemon._memory_cap_mb)
    a_mb = min(4096, cap // 2)
    b_mb = cap - 2 * a_mb + 16  # does not fit beside A's two workers, fits beside one
    assert 16 <= b_mb <= a_mb and 2 * a_mb <= cap, (cap, a_mb, b_mb)
    server = make_orvad(env={"ORVA_MEMORY_SHARE": str(share)})
    with server.admin() as c:
        a = create_function(c, "hog-a", memory_mb=a_mb)
        b = create_function(c, "late-b", memory_mb=b_mb)
        c.put("/api/v1/pool/config", json={"function_id": a["id"], "min_warm": 2, "max_warm": 2})
        assert wait_deployed(c, deploy_inline(c, a["id"], SLOW % 1)["id"])["status"] == "succeeded"
        wait_for(lambda: _pool_row(c, a["id"])["workers"] == 2, 30, "A's two warm workers")
        assert wait_deployed(c, deploy_inline(c, b["id"], SLOW % 2)["id"])["status"] == "succeeded"

        # both of A's workers busy: nothing idle to retire
        hold = threading.Thread(target=_concurrently, args=(f"{server.url}/fn/{a['id']}", 2, {"s": "4"}))
        hold.start()
        wait_for(lambda: _pool_row(c, a["id"]).get("busy") == 2, 10, "A's workers to be busy")
        r = c.get(f"/fn/{b['id']}")
        assert r.status_code == 503 and r.json()["error"]["code"] == "MEMORY_EXHAUSTED", r.text
        hold.join(30)

        # A idle again: B's request retires one of A's workers and is served
        wait_for(lambda: _pool_row(c, a["id"]).get("busy") == 0, 10, "A's workers to be idle")
        r = c.get(f"/fn/{b['id']}")
        assert r.status_code == 200 and r.text == "v2", r.text
        assert _pool_row(c, a["id"])["workers"] == 1
        assert c.get(f"/fn/{a['id']}").text == "v1"  # A still serves from the worker it kept
