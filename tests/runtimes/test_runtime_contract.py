"""The handler contract (CONTRACT.md), the same tests for every adapter, through a real jailed Worker."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orvad.errors import OrvaError, Timeout, WorkerCrashed
from orvad.pool.worker import Worker
from tests.worker_fixtures import (
    CONTRACT,
    VARIANTS,
    Variant,
    alive,
    call,
    context,
    descendants,
    drain,
    event,
    leaked_cgroups,
    make_worker,
    process_started,
    running,
    wait_until,
    write_code,
)

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(60)]  # workers in nsjail (CONTRIBUTING.md, markers)


@pytest.fixture(params=VARIANTS, ids=lambda v: v.id)
def variant(request: pytest.FixtureRequest) -> Variant:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def worker(variant: Variant, jail_tmp: Path) -> AsyncIterator[Worker]:
    code = write_code(jail_tmp / "code", variant.files)
    async with running(make_worker(code, variant.language, handler=variant.handler)) as started:
        yield started


def body_of(reply_response: dict[str, object]) -> bytes:
    body = str(reply_response["body"])
    return base64.b64decode(body) if reply_response["isBase64Encoded"] else body.encode()


async def test_ready_reports_the_discovered_version(worker: Worker, variant: Variant) -> None:
    assert worker.init_error is None
    assert worker.version and worker.version[0].isdigit()
    assert worker.spawn_s > 0


async def test_event_fields_and_lambda_aliases(worker: Worker, variant: Variant) -> None:
    reply = await worker.invoke(
        event(
            "/echo",
            method="POST",
            query="a=1&b=x&a=2&empty=",
            headers={"x-test": "yes"},
            body=b'{"hello": "w\xc3\xb6rld"}',
        ),
        context(10.0, request_id="req-42"),
        10.0,
    )
    assert reply.kind == "response" and reply.response is not None
    seen = json.loads(reply.response["body"])
    assert seen["method"] == seen["httpMethod"] == seen["v2method"] == "POST"
    assert seen["path"] == seen["rawPath"] == seen["v2path"] == "/echo"
    assert seen["query"] == seen["queryStringParameters"] == {"a": "2", "b": "x", "empty": ""}
    assert seen["multiQuery"] == {"a": ["1", "2"], "b": ["x"], "empty": [""]}
    assert seen["rawQuery"] == seen["rawQueryString"] == "a=1&b=x&a=2&empty="
    assert seen["header"] == "yes"
    assert seen["body"] == '{"hello": "wörld"}' and seen["isBase64Encoded"] is False
    assert seen["sourceIp"] == "10.0.0.7"
    if not variant.context:  # a one-argument handler got the event alone
        assert "requestId" not in seen
        return
    assert seen["requestId"] == seen["awsRequestId"] == "req-42"
    assert seen["functionId"] == "fn-test" and seen["functionName"] == "contract" and seen["memory"] == 128
    assert 0 < seen["remaining"] <= 10_000


async def test_binary_body_round_trip(worker: Worker) -> None:
    raw = bytes(range(256)) * 4
    reply = await call(worker, "/binary", method="POST", body=raw)
    assert reply.response is not None
    assert reply.response["isBase64Encoded"] is True
    assert reply.response["headers"]["content-type"] == "application/octet-stream"
    assert body_of(reply.response) == raw


async def test_multi_value_headers(worker: Worker) -> None:
    reply = await call(worker, "/cookies")
    assert reply.response is not None
    assert reply.response["statusCode"] == 201
    assert reply.response["headers"]["set-cookie"] == ["a=1; Path=/", "b=2; Path=/"]
    assert reply.response["headers"]["x-one"] == "1"
    assert reply.response["body"] == "cookies"
    reply = await call(worker, "/mvh")  # the Lambda spellings: multiValueHeaders, cookies, a non-string body
    assert reply.response is not None
    assert reply.response["statusCode"] == 202
    assert reply.response["headers"]["x-multi"] == ["1", "2"]
    assert reply.response["headers"]["set-cookie"] == ["c=3", "d=4"]
    assert json.loads(reply.response["body"]) == {"k": 1}


@pytest.mark.parametrize(
    ("kind", "content_type", "expected"),
    [
        ("json", "application/json", {"a": [1, 2]}),
        ("list", "application/json", [1, "two"]),
        ("number", "application/json", 42),
        ("bool", "application/json", True),
        ("none", "application/json", None),
        ("str", "text/plain; charset=utf-8", "hello"),
        ("bytes", "application/octet-stream", b"\x00\xffbin"),
    ],
)
async def test_plain_value_returns(worker: Worker, kind: str, content_type: str, expected: object) -> None:
    reply = await call(worker, f"/plain/{kind}")
    assert reply.response is not None
    assert reply.response["statusCode"] == 200
    assert reply.response["headers"]["content-type"] == content_type
    body = body_of(reply.response)
    if content_type == "application/json":
        assert json.loads(body) == expected
    else:
        assert body == (expected if isinstance(expected, bytes) else str(expected).encode())


async def test_streaming(worker: Worker) -> None:
    reply = await call(worker, "/stream")
    assert reply.kind == "stream"
    assert reply.status == 206 and reply.headers == {"x-stream": "yes"}
    chunks, end = await drain(reply)
    data = [base64.b64decode(c["data"]) if c["isBase64Encoded"] else c["data"].encode() for c in chunks]
    assert data[:2] == [b"a", b"\x00\x01"] and json.loads(data[2]) == {"n": 3} and len(data) == 3
    assert end["logs"] == "streaming\n" and not end.get("error")


async def test_node_readable_stream(jail_tmp: Path) -> None:
    code = write_code(jail_tmp / "code", CONTRACT["node"])
    async with running(make_worker(code, "node")) as worker:
        reply = await call(worker, "/webstream")
        chunks, end = await drain(reply)
        assert reply.status == 200
        assert [
            base64.b64decode(c["data"]) if c["isBase64Encoded"] else c["data"].encode() for c in chunks
        ] == [b"r1", b"\x02\x03"]
        assert not end.get("error")


async def test_exception_is_a_function_error_with_the_traceback_in_the_logs(worker: Worker) -> None:
    reply = await call(worker, "/raise")
    assert reply.kind == "error" and reply.error is not None
    assert reply.error["kind"] == "handler" and reply.error["message"] == "boom"
    assert reply.logs.startswith("about to raise\n")
    assert "boom" in reply.logs and ("Traceback" in reply.logs or "at exports.handler" in reply.logs)
    assert worker.alive  # a handler error does not cost the worker
    assert (await call(worker, "/plain/str")).kind == "response"


@pytest.mark.parametrize("language", ["python", "node"])
@pytest.mark.parametrize("problem", ["raises", "syntax", "no handler"])
async def test_import_errors_are_reported_on_the_first_request(
    jail_tmp: Path, language: str, problem: str
) -> None:
    source = {
        ("python", "raises"): "print('importing')\nraise RuntimeError('broken at import')\n",
        ("python", "syntax"): "def handler(event, context)\n    return 1\n",
        ("python", "no handler"): "def other(event, context):\n    return 1\n",
        ("node", "raises"): "console.log('importing');\nthrow new Error('broken at import');\n",
        ("node", "syntax"): "exports.handler = async (event => 1;\n",
        ("node", "no handler"): "exports.other = async () => 1;\n",
    }[(language, problem)]
    name = "handler.py" if language == "python" else "handler.js"
    code = write_code(jail_tmp / "code", {name: source})
    async with running(make_worker(code, language)) as worker:
        assert worker.init_error is not None and worker.init_error["kind"] == "import"
        for _ in range(2):  # every request, not only the first, says why
            reply = await call(worker, "/")
            assert reply.kind == "error" and reply.error is not None and reply.error["kind"] == "import"
            assert reply.error["message"] and reply.error["name"] in reply.logs
        error = reply.error
        assert error is not None
        if (language, problem) == ("python", "no handler"):  # the message lists the shapes a module may have
            assert error["message"].startswith("handler.py does not define a callable handler")
            for shape in ("lambda_handler", "main", "handler(event)", "ASGI", "WSGI", "app or application"):
                assert shape in error["message"], shape
        if problem == "raises":
            assert "broken at import" in error["message"]
            await wait_until(
                lambda: "importing" in worker.stderr_tail, 5, "import-time output in the worker's stderr"
            )
            assert "importing" not in reply.logs


async def test_node_esm_handler(jail_tmp: Path) -> None:
    code = write_code(
        jail_tmp / "code",
        {
            "handler.mjs": "import { sep } from 'node:path';\nexport const handler = async (event, context) => "
            "({ esm: true, sep, id: context.requestId });\n"
        },
    )
    async with running(make_worker(code, "node", entrypoint="handler.mjs")) as worker:
        assert worker.init_error is None
        reply = await call(worker, "/")
        assert reply.response is not None
        assert json.loads(reply.response["body"]) == {"esm": True, "sep": "/", "id": "req-1"}


async def test_logs_are_captured_per_request_with_concurrent_requests(
    worker: Worker, variant: Variant
) -> None:
    tags = [f"r{i}" for i in range(6)]
    replies = await asyncio.gather(
        *(call(worker, "/log", query=f"tag={tag}&round=one&n={len(tags)}") for tag in tags)
    )
    for tag, reply in zip(tags, replies, strict=True):
        assert reply.kind == "response" and reply.response is not None, reply
        assert reply.response["body"] == tag  # every handler saw all the others in flight (async variants)
        lines = reply.logs.splitlines()
        assert lines == [
            f"{tag} print",
            f"INFO:{tag} logging" if variant.language == "python" else f"{tag} logging",
            f"{tag} stderr",
        ], reply.logs
        assert reply.logs_truncated is False
    assert (
        "contract module imported" in worker.stderr_tail
    )  # import-time output is the worker's, not a request's


async def test_logs_are_capped(worker: Worker) -> None:
    reply = await call(worker, "/biglog")
    assert reply.kind == "response"
    assert reply.logs_truncated is True
    assert 200 * 1024 <= len(reply.logs) <= 256 * 1024


async def test_timeout_kills_the_worker_and_fails_what_was_in_flight(
    worker: Worker, variant: Variant
) -> None:
    assert worker.pid is not None
    tree, since = descendants(worker.pid), process_started(worker.pid)
    companion = asyncio.ensure_future(call(worker, "/sleep", timeout_s=30)) if variant.concurrent else None
    if companion is not None:
        await wait_until(lambda: worker.inflight == 1, 5, "the companion request to be in flight")
    with pytest.raises(Timeout) as caught:
        await call(worker, "/sleep", timeout_s=0.5)
    assert caught.value.details == {"timeout_ms": 500}
    if companion is not None:
        with pytest.raises(WorkerCrashed, match="timeout"):
            await asyncio.wait_for(companion, 10)
    assert not worker.alive and worker.proc is not None and worker.proc.returncode is not None
    assert not alive(tree) and not leaked_cgroups(tree, since)
    with pytest.raises(WorkerCrashed):
        await call(worker, "/echo")


async def test_stream_past_its_deadline_kills_the_worker(worker: Worker) -> None:
    reply = await call(worker, "/slowstream", timeout_s=1.0)
    chunks, end = await drain(reply)
    assert [c["data"] for c in chunks] == ["first"]
    assert end["error"]["kind"] == "timeout"
    await wait_until(
        lambda: worker.proc is not None and worker.proc.returncode is not None, 10, "the worker to die"
    )


async def test_crash_is_reported_with_its_exit_code(worker: Worker, variant: Variant) -> None:
    # async workers: a request already in flight; sync: one queued behind the crash. Both fail with the reason.
    companion = asyncio.ensure_future(call(worker, "/sleep", timeout_s=30)) if variant.concurrent else None
    if companion is not None:
        await wait_until(lambda: worker.inflight == 1, 5, "the companion request to be in flight")
    crash = asyncio.ensure_future(call(worker, "/crash"))
    if companion is None:
        companion = asyncio.ensure_future(call(worker, "/echo"))
    for request in (crash, companion):
        with pytest.raises(WorkerCrashed, match="exited with code 3") as caught:
            await asyncio.wait_for(request, 10)
        assert caught.value.details == {"reason": "exited with code 3"}
    assert worker.exit_reason == "exited with code 3"


async def test_out_of_memory_is_reported(variant: Variant, jail_tmp: Path) -> None:
    code = write_code(jail_tmp / "code", variant.files)
    async with running(make_worker(code, variant.language, handler=variant.handler, memory_mb=64)) as worker:
        with pytest.raises(WorkerCrashed, match="out of memory"):
            await call(worker, "/oom")


async def test_oversized_frames_are_refused(variant: Variant, jail_tmp: Path) -> None:
    code = write_code(jail_tmp / "code", variant.files)
    limit = 64 * 1024
    worker = make_worker(
        code, variant.language, handler=variant.handler, env={"ORVA_MAX_FRAME": str(limit)}, max_frame=limit
    )
    async with running(worker):
        with pytest.raises(OrvaError) as caught:  # orvad refuses to send it; the worker never sees it
            await call(worker, "/echo", method="POST", body=b"z" * limit)
        assert caught.value.code == "PAYLOAD_TOO_LARGE"
        reply = await call(worker, "/big", query=f"n={limit * 2}")  # the adapter refuses to send it
        assert reply.kind == "error" and reply.error is not None
        assert reply.error["kind"] == "protocol" and reply.error["name"] == "ResponseTooLarge"
        assert (await call(worker, "/big", query="n=10")).response == {
            "statusCode": 200,
            "headers": {"content-type": "text/plain; charset=utf-8"},
            "body": "y" * 10,
            "isBase64Encoded": False,
        }


async def test_python_handler_output_on_fd1_cannot_corrupt_frames(jail_tmp: Path) -> None:
    code = write_code(jail_tmp / "code", CONTRACT["python"])
    async with running(make_worker(code, "python")) as worker:
        reply = await call(worker, "/fd1")
        assert reply.response is not None and reply.response["body"] == "ok"
        assert reply.logs == "printed\n"
        await wait_until(
            lambda: "raw fd1 write" in worker.stderr_tail, 5, "the raw write in the worker's stderr"
        )
        assert (await call(worker, "/plain/number")).response is not None


async def test_quit_lets_requests_in_flight_finish(worker: Worker) -> None:
    napping = asyncio.ensure_future(call(worker, "/nap"))
    await wait_until(lambda: worker.inflight == 1, 5, "the request to be in flight")
    await asyncio.wait_for(worker.stop(grace_s=5.0), 10)
    reply = await asyncio.wait_for(napping, 5)
    assert reply.response is not None and reply.response["body"] == "rested"
    assert worker.proc is not None and worker.proc.returncode == 0  # it left by itself, no signal needed


async def test_python_tracebacks_show_the_users_frames_only(jail_tmp: Path) -> None:
    code = write_code(jail_tmp / "code", CONTRACT["python"])
    async with running(make_worker(code, "python")) as worker:
        reply = await call(worker, "/raise")
        assert reply.error is not None
        assert reply.error["stack"].startswith(
            'Traceback (most recent call last):\n  File "/code/handler.py"'
        )
        assert "/runtime/adapter.py" not in reply.logs and "ValueError: boom" in reply.logs
    code = write_code(jail_tmp / "broken", {"handler.py": "import json\nraise RuntimeError('at import')\n"})
    async with running(make_worker(code, "python")) as worker:
        assert worker.init_error is not None
        assert (
            "/runtime/adapter.py" not in worker.init_error["stack"]
            and "<frozen" not in worker.init_error["stack"]
        )
        assert 'File "/code/handler.py", line 2' in worker.init_error["stack"]
