"""The dispatch every trigger calls, without HTTP: a Daemon in this process invokes a real jailed
worker through ``Invoker.dispatch`` with a typed request, as MCP, jobs or cron will."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orvad.config import load_settings
from orvad.daemon import Daemon
from orvad.errors import FunctionError, Unauthorized
from orvad.http.app import create_app
from orvad.invoke import InvokeRequest

pytestmark = pytest.mark.sandbox  # needs nsjail, root or namespaces (CONTRIBUTING.md, markers)

HANDLER = """
def handler(event, context):
    if event["path"] == "/stream":
        def gen():
            yield {"statusCode": 206, "headers": {"content-type": "text/plain"}}
            for i in range(3):
                yield f"part{i};"
        return gen()
    if event["path"] == "/raise":
        raise ValueError("boom from the handler")
    print("dispatched", event["requestContext"]["trigger"])
    return {"statusCode": 201, "headers": {"x-seen": event["headers"].get("x-job", "")},
            "body": {"event": event, "deadline": context.get_remaining_time_in_millis() > 0}}
"""


@pytest.fixture
async def daemon(jail_tmp: Path) -> AsyncIterator[Daemon]:
    daemon = Daemon(load_settings({"data_dir": str(jail_tmp / "data")}, environ={}))
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


async def _deploy(daemon: Daemon, name: str) -> dict[str, Any]:
    """Through the API, in process (the ASGI transport): create, deploy inline, wait for the build."""
    transport = httpx.ASGITransport(app=create_app(daemon))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://127.0.0.1",
        headers={"X-Orva-API-Key": daemon.bootstrap_key or ""},
    ) as api:
        fn = (await api.post("/api/v1/functions", json={"name": name, "runtime": "python"})).json()
        deployment = (
            await api.post(f"/api/v1/functions/{name}/deploy-inline", json={"code": HANDLER})
        ).json()
        deadline = asyncio.get_running_loop().time() + 120
        while (await api.get(f"/api/v1/deployments/{deployment['id']}")).json()["status"] != "succeeded":
            assert asyncio.get_running_loop().time() < deadline, "the deployment did not succeed"
            await asyncio.sleep(0.05)
        return dict(fn)


async def _row(daemon: Daemon, execution_id: str) -> dict[str, Any]:
    """The execution row, once the batched writer has committed it."""
    deadline = asyncio.get_running_loop().time() + 10
    while (row := await daemon.executions.get(execution_id)) is None:
        assert asyncio.get_running_loop().time() < deadline, f"execution {execution_id} was not recorded"
        await asyncio.sleep(0.01)
    return row


async def test_a_trigger_without_http_invokes_a_real_worker_and_is_recorded(daemon: Daemon) -> None:
    fn = daemon.functions.get((await _deploy(daemon, "dispatched"))["id"])
    assert fn is not None
    request = InvokeRequest(
        fn,
        subpath="/items/7",
        trigger="job",
        method="PUT",
        headers=[(b"content-type", b"application/json"), (b"x-job", b"nightly")],
        query=b"a=1&a=2",
        body=b'{"n": 2}',
        request_id="job-1",
    )
    result = await daemon.invoker.dispatch(request)

    assert result.status == 201 and result.complete and result.header("X-Seen") == "nightly"
    answer = result.json()
    event = answer["event"]
    assert (event["method"], event["path"], event["rawQuery"], event["multiQuery"]) == (
        "PUT",
        "/items/7",
        "a=1&a=2",
        {"a": ["1", "2"]},
    )
    assert event["body"] == '{"n": 2}' and event["headers"]["x-job"] == "nightly" and answer["deadline"]
    context = event["requestContext"]
    assert context["trigger"] == "job" and context["requestId"] == "job-1" and context["sourceIp"] == ""
    assert context["executionId"] == result.execution_id and result.header("x-orva-cold-start") in (
        "true",
        "false",
    )

    row = await _row(daemon, result.execution_id)
    assert {
        k: row[k]
        for k in (
            "function_id",
            "trigger",
            "method",
            "path",
            "status",
            "status_code",
            "request_bytes",
            "response_bytes",
            "error_code",
        )
    } == {
        "function_id": fn.id,
        "trigger": "job",
        "method": "PUT",
        "path": "/items/7",
        "status": "success",
        "status_code": 201,
        "request_bytes": 8,
        "response_bytes": len(result.body),
        "error_code": None,
    }
    assert await daemon.executions.logs(result.execution_id) == ("dispatched job\n", False)

    # a stream comes back whole
    stream = await daemon.invoker.dispatch(InvokeRequest(fn, subpath="/stream", trigger="job", method="GET"))
    assert (stream.status, stream.body, stream.complete) == (206, b"part0;part1;part2;", True)
    assert (await _row(daemon, stream.execution_id))["response_bytes"] == len(b"part0;part1;part2;")


async def test_dispatch_raises_what_http_answers_and_records_it(daemon: Daemon) -> None:
    fn = daemon.functions.get((await _deploy(daemon, "dispatched-errors"))["id"])
    assert fn is not None
    with pytest.raises(FunctionError) as failed:
        await daemon.invoker.dispatch(InvokeRequest(fn, subpath="/raise", trigger="job"))
    assert failed.value.details is not None
    execution_id = failed.value.details["execution_id"]
    assert "boom from the handler" in failed.value.message
    row = await _row(daemon, execution_id)
    assert (row["status"], row["status_code"], row["error_code"]) == ("error", 500, "FUNCTION_ERROR")

    # the function's auth mode holds for every trigger: an api_key function wants a key in the headers
    locked = await daemon.functions.update(fn.id, {"auth_mode": "api_key"})
    with pytest.raises(Unauthorized):
        await daemon.invoker.dispatch(InvokeRequest(locked, trigger="job"))
    key = [(b"x-orva-api-key", (daemon.bootstrap_key or "").encode())]
    assert (await daemon.invoker.dispatch(InvokeRequest(locked, trigger="job", headers=key))).status == 201

    with pytest.raises(ValueError, match="carries its body"):
        await daemon.invoker.dispatch(InvokeRequest(locked, trigger="job", body=None))
