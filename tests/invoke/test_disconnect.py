"""A client that hangs up: its execution is recorded as killed, and its worker slot comes back only
when the handler really ends (answers, or is killed at its deadline), never while it still runs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, gate_in_version, wait_deployed
from tests.helpers import Orvad, free_port, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)


@pytest.fixture(scope="module", params=["hypercorn", "uvicorn", "granian"])
def orvad(request: pytest.FixtureRequest, orvad: Orvad) -> Iterator[Orvad]:
    """The shared orvad (Hypercorn), and one of each other server: noticing that a client left is the
    server's part too (its ``http.disconnect``)."""
    if request.param == "hypercorn":
        yield orvad
        return
    base = Path(tempfile.mkdtemp(prefix=f"orva-disconnect-{request.param}-"))
    base.chmod(0o711)  # the jail traverses it
    own = Orvad(base / "data", free_port(), {"ORVA_SERVER": request.param}).start()
    try:
        yield own
    finally:
        own.stop()
        own.drop_database()
        shutil.rmtree(base, ignore_errors=True)


# With ?gate=1 the handler blocks opening a FIFO in its code folder until the test opens the
# other end: it runs exactly as long as the test wants, with no timing guess on either side.
def _gated(ungated: str = "'ready'", gated: str = "'released ' + gate.read()") -> str:
    """The gated handler; `served` counts the requests its worker has run (an answer may say it)."""
    return (
        "served = 0\n\n"
        "def handler(event, context):\n"
        "    global served\n"
        "    served += 1\n"
        "    if event['query'].get('gate'):\n"
        "        with open('/code/gate') as gate:\n"
        f"            return {gated}\n"
        f"    return {ungated}\n"
    )


GATED = _gated()


def _pool(c: httpx.Client, fn_id: str) -> dict[str, Any]:
    rows = c.get("/api/v1/system/metrics.json").json()["pools"]
    return next((r for r in rows if r["function_id"] == fn_id), {})


def _killed(c: httpx.Client, fn_id: str) -> list[dict[str, Any]]:
    """The function's executions recorded as killed."""
    rows: list[dict[str, Any]] = c.get(
        "/api/v1/executions", params={"function_id": fn_id, "status": "killed"}
    ).json()["executions"]
    return rows


def _hang_up(orvad: Orvad, fn_id: str) -> None:
    with pytest.raises(httpx.ReadTimeout):  # the client gives up while the handler waits at its gate
        httpx.get(f"{orvad.url}/fn/{fn_id}", params={"gate": "1"}, timeout=0.3)


def _one_warm_worker(
    orvad: Orvad, c: httpx.Client, name: str, timeout_ms: int, code: str = GATED
) -> tuple[dict[str, Any], Path]:
    """The function (one warm worker, one request at a time) and its gate FIFO on the host."""
    fn = create_function(c, name, timeout_ms=timeout_ms)
    dep = wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
    assert dep["status"] == "succeeded"
    gate = gate_in_version(orvad.data_dir, c, fn["id"], dep["code_hash"])
    assert (
        c.put(
            "/api/v1/pool/config",
            json={"function_id": fn["id"], "min_warm": 1, "max_warm": 1, "target_concurrency": 1},
        ).status_code
        == 200
    )
    assert c.get(f"/fn/{fn['id']}").text.startswith("ready")
    wait_for(lambda: _pool(c, fn["id"]).get("idle") == 1, 10, "one idle worker")
    return fn, gate


def _open_gate(gate: Path) -> None:
    """Let the waiting handler go (it holds the FIFO's read end open, so this does not block)."""
    fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, b"now")
    finally:
        os.close(fd)


def _try_open_gate(gate: Path) -> bool:
    """Let a handler waiting at the gate go; False while none waits (the FIFO has no reader)."""
    try:
        _open_gate(gate)
    except OSError:  # ENXIO
        return False
    return True


def test_a_hung_up_request_keeps_its_slot_until_the_handler_answers(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn, gate = _one_warm_worker(orvad, c, "hangup-slot", timeout_ms=10_000)
        spawned = _pool(c, fn["id"])["spawned"]
        _hang_up(orvad, fn["id"])

        wait_for(lambda: len(_killed(c, fn["id"])) == 1, 5, "the hung-up execution to be recorded as killed")
        assert _killed(c, fn["id"])[0]["error_code"] == "CLIENT_CLOSED"
        # the handler still waits at its gate: the slot is taken, so no other request is pushed onto it
        assert _pool(c, fn["id"])["busy"] == 1
        _open_gate(gate)
        wait_for(
            lambda: _pool(c, fn["id"]).get("idle") == 1, 10, "the slot to come back once the handler ends"
        )
        # the same worker serves on: nothing was killed or started
        after = c.get(f"/fn/{fn['id']}")
        assert after.status_code == 200 and after.headers["x-orva-cold-start"] == "false"
        assert _pool(c, fn["id"])["spawned"] == spawned and _pool(c, fn["id"])["killed"] == 0
        c.delete(f"/api/v1/functions/{fn['id']}")


def test_a_hung_up_handler_past_its_deadline_takes_its_worker_down(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn, _ = _one_warm_worker(orvad, c, "hangup-deadline", timeout_ms=1_000)
        _hang_up(orvad, fn["id"])  # its gate never opens
        wait_for(lambda: _pool(c, fn["id"]).get("killed", 0) >= 1, 10, "the overdue worker to be killed")
        again = c.get(f"/fn/{fn['id']}")
        assert again.status_code == 200 and again.text == "ready"
        c.delete(f"/api/v1/functions/{fn['id']}")


COUNTED = _gated(ungated="f'ready {served}'")  # GATED, answering how many requests its worker ran


def test_a_client_that_leaves_while_queued_never_runs(orvad: Orvad) -> None:
    import threading

    with orvad.admin() as c:
        fn, gate = _one_warm_worker(orvad, c, "hangup-queued", timeout_ms=10_000, code=COUNTED)
        holder = threading.Thread(
            target=lambda: httpx.get(f"{orvad.url}/fn/{fn['id']}", params={"gate": "1"}, timeout=30)
        )
        holder.start()  # takes the only slot and waits at the gate
        wait_for(lambda: _pool(c, fn["id"]).get("busy") == 1, 10, "the slot to be taken")
        with pytest.raises(httpx.ReadTimeout):  # this one waits in the queue, then gives up
            httpx.get(f"{orvad.url}/fn/{fn['id']}", timeout=0.5)

        wait_for(
            lambda: len(_killed(c, fn["id"])) == 1 and _pool(c, fn["id"]).get("queue_depth") == 0,
            5,
            "the queued request to be recorded as killed and gone from the queue",
        )
        _open_gate(gate)
        holder.join(30)
        # the worker ran the warm-up, the gated request and now this one: the one that left never ran
        assert c.get(f"/fn/{fn['id']}").text == "ready 3"
        c.delete(f"/api/v1/functions/{fn['id']}")


# a stream that yields once, then waits at the gate before it yields again and ends
GATED_STREAM = (
    "def handler(event, context):\n"
    "    if not event['query'].get('gate'):\n"
    "        return 'ready'\n"
    "    return stream()\n\n"
    "def stream():\n"
    "    yield 'first;'\n"
    "    with open('/code/gate') as gate:\n"
    "        yield 'after ' + gate.read()\n"
)


def test_a_client_that_leaves_mid_stream_is_recorded_and_its_slot_waits_for_the_handler(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn, gate = _one_warm_worker(orvad, c, "hangup-stream", timeout_ms=20_000, code=GATED_STREAM)
        spawned = _pool(c, fn["id"])["spawned"]
        with httpx.stream("GET", f"{orvad.url}/fn/{fn['id']}", params={"gate": "1"}, timeout=10) as r:
            assert next(r.iter_bytes()) == b"first;"  # then the client goes away mid-stream

        wait_for(
            lambda: len(_killed(c, fn["id"])) == 1, 10, "the stream's execution to be recorded as killed"
        )
        killed = _killed(c, fn["id"])[0]
        assert killed["error_code"] == "CLIENT_CLOSED" and killed["response_bytes"] == len(b"first;")
        assert _pool(c, fn["id"])["busy"] == 1  # the handler still streams (into nothing): its slot is taken
        _open_gate(gate)
        wait_for(
            lambda: _pool(c, fn["id"]).get("idle") == 1, 10, "the slot to come back once the stream ends"
        )
        after = c.get(f"/fn/{fn['id']}")
        assert (
            after.status_code == 200
            and after.text == "ready"
            and after.headers["x-orva-cold-start"] == "false"
        )
        assert _pool(c, fn["id"])["spawned"] == spawned and _pool(c, fn["id"])["killed"] == 0
        c.delete(f"/api/v1/functions/{fn['id']}")


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn", "granian"])
def test_a_slow_answer_on_a_kept_alive_connection_is_not_mistaken_for_a_hang_up(
    make_orvad: Any, server: str
) -> None:
    """Past 50 ms a watcher waits on the client; once the answer is complete a server reports the
    request as disconnected, which must not cancel what is left of it."""
    import threading
    import time

    from orvad.invoke import DISCONNECT_WATCH_AFTER_S

    orvad = make_orvad(env={"ORVA_SERVER": server})
    with orvad.admin() as c:
        fn, gate = _one_warm_worker(
            orvad, c, f"slow-answer-{server}", timeout_ms=10_000, code=_gated(gated="'slow'")
        )
        answers: list[httpx.Response] = []

        def call_four_times() -> None:
            with httpx.Client(base_url=orvad.url, timeout=10) as caller:  # one connection, kept alive
                for _ in range(4):  # each answer is counted as it comes: the test releases the next one
                    answers.append(caller.get(f"/fn/{fn['id']}", params={"gate": "1"}))

        caller = threading.Thread(target=call_four_times)
        caller.start()
        while caller.is_alive():  # each request is held at its gate past the watch's start, then let go
            held = len(answers)
            wait_for(
                lambda: _pool(c, fn["id"]).get("busy") == 1 or not caller.is_alive(),
                10,
                "a request in flight",
            )
            seen = time.monotonic()
            wait_for(
                lambda seen=seen: time.monotonic() - seen > 2 * DISCONNECT_WATCH_AFTER_S,
                5,
                "the watch to start",
            )
            wait_for(
                lambda held=held: _try_open_gate(gate) or len(answers) > held or not caller.is_alive(),
                10,
                "the request to be let go",
            )
            wait_for(lambda held=held: len(answers) > held or not caller.is_alive(), 10, "its answer")
        caller.join(30)
        assert [(r.status_code, r.text) for r in answers] == [(200, "slow")] * 4
        wait_for(
            lambda: (
                len(c.get("/api/v1/executions", params={"function_id": fn["id"]}).json()["executions"]) == 5
            ),
            10,
            "the warm-up's and the four executions",
        )
        rows = c.get("/api/v1/executions", params={"function_id": fn["id"]}).json()["executions"]
        assert {r["status"] for r in rows} == {"success"}, rows


def test_an_operator_kill_cuts_a_stream_and_takes_its_worker(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn, _ = _one_warm_worker(orvad, c, "killed-stream", timeout_ms=20_000, code=GATED_STREAM)
        received = b""
        with pytest.raises(httpx.RemoteProtocolError):  # the body is cut, never complete-looking
            with httpx.stream("GET", f"{orvad.url}/fn/{fn['id']}", params={"gate": "1"}, timeout=10) as r:
                execution_id = r.headers["x-orva-execution-id"]
                for piece in r.iter_bytes():
                    received += piece
                    if received == b"first;":  # the handler now waits at its gate, mid-stream
                        assert c.post(f"/api/v1/functions/{fn['id']}/kill").json()["killed"] == 1
        assert received == b"first;"
        wait_for(
            lambda: c.get(f"/api/v1/executions/{execution_id}").status_code == 200, 10, "the execution row"
        )
        row = c.get(f"/api/v1/executions/{execution_id}").json()
        assert row["status"] == "killed" and row["error_code"] == "NOT_ACTIVE", row
        wait_for(
            lambda: _pool(c, fn["id"]).get("workers", 0) == 0, 10, "the killed stream's worker to be gone"
        )
        c.delete(f"/api/v1/functions/{fn['id']}")
