"""SIGTERM with requests in flight: orvad drains them itself, on every HTTP server.

New requests during the drain answer 503 SHUTTING_DOWN at once; a request still running when the
grace ends answers the 503 envelope with Retry-After (a started stream ends with an in-band error)
and is recorded as ``shutting_down``; the process exits within the grace plus one second.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, gate_in_version, wait_deployed
from tests.helpers import Orvad, wait_for

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

GRACE_S = 2.0
SERVERS = ["hypercorn", "uvicorn", "granian"]

# The handler blocks opening a FIFO in its code folder, which the test never opens: it runs until
# orvad cuts it, with no timing guess.
GATED = (
    "def handler(event, context):\n"
    "    if event['query'].get('gate'):\n"
    "        with open('/code/gate') as gate:\n"
    "            return gate.read()\n"
    "    return 'ready'\n"
)
GATED_STREAM = (
    "def handler(event, context):\n"
    "    yield {'statusCode': 200, 'headers': {'content-type': 'text/event-stream'}}\n"
    "    yield 'data: first\\n\\n'\n"
    "    with open('/code/gate') as gate:\n"
    "        yield gate.read()\n"
)


def _busy(c: httpx.Client, fn_id: str) -> int:
    rows = c.get("/api/v1/system/metrics.json").json()["pools"]
    return int(next((r["busy"] for r in rows if r["function_id"] == fn_id), 0))


def _gated_function(server: Orvad, c: httpx.Client, name: str, code: str) -> dict[str, Any]:
    fn = create_function(c, name, timeout_ms=60_000)  # far past the grace: only the shutdown ends it
    dep = wait_deployed(c, deploy_inline(c, fn["id"], code)["id"])
    assert dep["status"] == "succeeded", dep
    gate_in_version(server.data_dir, c, fn["id"], dep["code_hash"])
    return fn


def _start(make_orvad: Callable[..., Orvad], kind: str) -> Orvad:
    return make_orvad(env={"ORVA_SERVER": kind, "ORVA_SHUTDOWN_GRACE_S": str(GRACE_S)})


def _in_background(call: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            out["result"] = call()
        except Exception as exc:  # the assertions read it
            out["error"] = exc
        out["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _executions(data_dir: Path, make_orvad: Callable[..., Orvad], fn_id: str) -> list[dict[str, Any]]:
    """The function's execution rows, read from a fresh orvad on the same data dir."""
    again = make_orvad(data_dir=data_dir)
    with again.admin() as c:
        r = c.get("/api/v1/executions", params={"function_id": fn_id, "status": "shutting_down"})
        assert r.status_code == 200, r.text
        rows: list[dict[str, Any]] = r.json()["executions"]
    return rows


def _sigterm_and_check_the_drain(server: Orvad, fn_id: str, kind: str) -> float:
    """SIGTERM; a new request during the drain is refused at once (over HTTP/2 too, which Hypercorn
    speaks and which forbids a Connection header). Returns when the signal went."""
    assert server.proc is not None
    sent = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)

    def refusing() -> bool:
        return httpx.get(f"{server.url}/health/live", timeout=5).status_code == 503

    wait_for(refusing, 5, "orvad to refuse new requests once SIGTERM arrived")
    asked = time.monotonic()
    r = httpx.get(f"{server.url}/fn/{fn_id}", timeout=5)  # its one worker is busy: it would queue
    assert time.monotonic() - asked < 0.5
    assert r.status_code == 503 and r.json()["error"]["code"] == "SHUTTING_DOWN", r.text
    assert r.headers["retry-after"] and r.headers["x-request-id"] and r.headers["connection"] == "close"
    if kind == "hypercorn":
        with httpx.Client(http1=False, http2=True, timeout=5) as h2:
            r = h2.get(f"{server.url}/fn/{fn_id}")
        assert r.http_version == "HTTP/2" and r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "SHUTTING_DOWN" and r.headers["retry-after"]
    assert time.monotonic() - sent < GRACE_S - 0.5  # all this happened inside the grace
    return sent


@pytest.mark.parametrize("kind", SERVERS)
def test_a_request_past_the_grace_answers_503_and_is_recorded_shutting_down(
    make_orvad: Callable[..., Orvad], kind: str
) -> None:
    server = _start(make_orvad, kind)
    with server.admin() as c:
        fn = _gated_function(server, c, "slow", GATED)
        assert c.get(f"/fn/{fn['id']}").text == "ready"
        thread, out = _in_background(
            lambda: httpx.get(f"{server.url}/fn/{fn['id']}", params={"gate": "1"}, timeout=30)
        )
        wait_for(lambda: _busy(c, fn["id"]) == 1, 10, "the handler to be running")
    sent = _sigterm_and_check_the_drain(server, fn["id"], kind)

    thread.join(30)
    assert "error" not in out, out
    r: httpx.Response = out["result"]
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "SHUTTING_DOWN" and error["retry_after_s"] >= 1 and error["hint"]
    assert (
        r.headers["retry-after"] == str(error["retry_after_s"])
        and r.headers["x-request-id"] == error["request_id"]
    )
    assert r.headers["x-orva-execution-id"]
    assert out["elapsed"] >= GRACE_S - 0.2  # it had its grace

    assert server.proc is not None
    assert server.proc.wait(timeout=30) == 0
    took = time.monotonic() - sent
    assert took < GRACE_S + 1.0, (
        f"orvad took {took:.2f} s to exit with a {GRACE_S} s grace:\n{server.stderr()[-3000:]}"
    )

    rows = _executions(server.data_dir, make_orvad, fn["id"])
    assert [(x["id"], x["status"], x["status_code"], x["error_code"]) for x in rows] == [
        (r.headers["x-orva-execution-id"], "shutting_down", 503, "SHUTTING_DOWN")
    ]


@pytest.mark.parametrize("kind", SERVERS)
def test_a_stream_past_the_grace_ends_with_an_in_band_error(
    make_orvad: Callable[..., Orvad], kind: str
) -> None:
    server = _start(make_orvad, kind)
    with server.admin() as c:
        fn = _gated_function(server, c, "stream", GATED_STREAM)

    def read() -> tuple[int, bytes, Exception | None]:
        got = b""
        with httpx.stream("GET", f"{server.url}/fn/{fn['id']}", timeout=30) as r:
            try:
                for chunk in r.iter_raw():
                    got += chunk
            except httpx.TransportError as exc:
                return r.status_code, got, exc
        return r.status_code, got, None

    thread, out = _in_background(read)
    with server.admin() as c:
        wait_for(lambda: _busy(c, fn["id"]) == 1, 10, "the stream to be running")
    sent = _sigterm_and_check_the_drain(server, fn["id"], kind)
    thread.join(30)
    assert "error" not in out, out
    status, body, cut = out["result"]
    assert status == 200 and body.startswith(b"data: first\n\n")
    assert b"event: error\ndata: " in body and b'"SHUTTING_DOWN"' in body, body
    assert cut is not None  # the body never completes: no client can take it for a whole one

    assert server.proc is not None
    assert server.proc.wait(timeout=30) == 0
    took = time.monotonic() - sent
    assert took < GRACE_S + 1.0, (
        f"orvad took {took:.2f} s to exit with a {GRACE_S} s grace:\n{server.stderr()[-3000:]}"
    )
    rows = _executions(server.data_dir, make_orvad, fn["id"])
    assert [(x["status"], x["error_code"]) for x in rows] == [("shutting_down", "SHUTTING_DOWN")]


def test_with_nothing_running_orvad_stops_at_once(make_orvad: Callable[..., Orvad]) -> None:
    """An idle orvad (an open event stream of the dashboard included) does not wait out the grace."""
    server = make_orvad(env={"ORVA_SHUTDOWN_GRACE_S": "30"})
    with server.admin() as c, c.stream("GET", "/api/v1/events", timeout=30) as feed:
        assert feed.status_code == 200
        assert server.proc is not None
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
    assert time.monotonic() - sent < 3.0


def test_a_handler_whose_client_left_does_not_hold_up_the_exit(make_orvad: Callable[..., Orvad]) -> None:
    """A handler still running for a client that hung up (its slot waits for it) is stopped with the rest."""
    server = _start(make_orvad, "hypercorn")
    with server.admin() as c:
        fn = _gated_function(server, c, "orphan", GATED)
        with pytest.raises(httpx.ReadTimeout):  # the client gives up while the handler waits at its gate
            httpx.get(f"{server.url}/fn/{fn['id']}", params={"gate": "1"}, timeout=0.5)
        assert _busy(c, fn["id"]) == 1  # the handler runs on
    assert server.proc is not None
    sent = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    took = time.monotonic() - sent
    assert took < GRACE_S + 1.0, (
        f"orvad took {took:.2f} s to exit with a {GRACE_S} s grace:\n{server.stderr()[-2000:]}"
    )


def test_a_second_signal_ends_the_grace_at_once(make_orvad: Callable[..., Orvad]) -> None:
    server = make_orvad(env={"ORVA_SHUTDOWN_GRACE_S": "60"})
    with server.admin() as c:
        fn = _gated_function(server, c, "second", GATED)
        thread, out = _in_background(
            lambda: httpx.get(f"{server.url}/fn/{fn['id']}", params={"gate": "1"}, timeout=30)
        )
        wait_for(lambda: _busy(c, fn["id"]) == 1, 10, "the handler to be running")
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    wait_for(
        lambda: httpx.get(f"{server.url}/health/live", timeout=5).status_code == 503, 5, "the drain to begin"
    )
    again = time.monotonic()
    server.proc.send_signal(signal.SIGINT)
    thread.join(30)
    assert out["result"].status_code == 503 and out["result"].json()["error"]["code"] == "SHUTTING_DOWN"
    assert server.proc.wait(timeout=30) == 0
    assert time.monotonic() - again < 1.0


def test_sigusr2_writes_every_task_and_thread_stack_and_orvad_runs_on(
    make_orvad: Callable[..., Orvad],
) -> None:
    """kill -USR2: what a stuck orvad is doing (the tests ask for it before killing one that did not stop)."""
    from orvad.stackdump import BEGIN, END

    server = make_orvad()
    assert server.proc is not None
    with httpx.stream(
        "GET", f"{server.url}/api/v1/events", headers={"X-Orva-API-Key": server.admin_key}
    ) as feed:
        assert feed.status_code == 200
        server.proc.send_signal(signal.SIGUSR2)
        wait_for(lambda: END in server.stderr(), 10, "the stack dump's end marker")
    dump = server.stderr()[server.stderr().index(BEGIN) :]
    assert "asyncio tasks" in dump and "orva-drain" in dump, dump[:2000]  # the tasks, by name, with stacks
    assert "Current thread" in dump or "Thread 0x" in dump, dump[-2000:]  # faulthandler's thread stacks
    assert httpx.get(f"{server.url}/health/live", timeout=5).status_code == 200  # it runs on
    assert server.stop() == 0
