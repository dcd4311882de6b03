"""The handler contract for every Node handler shape (issue 19): the contract handler of
tests/worker_fixtures.py, re-exported through each shape the adapter accepts, passes the same contract
tests (tests/runtimes/test_runtime_contract.py's, collected here with this module's `variant` and `worker`).

The Worker-style shapes (`fetch(request, env, ctx)` returning a Response) run the contract handler behind a
bridge written as a user would (BRIDGE): it rebuilds the event from the Request and turns the handler's value
into a Response, so the event -> Request and Response -> frames mappings are what is under test. What
WHATWG Headers cannot express (one header sent twice other than Set-Cookie) is tested apart.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orvad.pool.worker import Worker
from tests.runtimes.test_runtime_contract import (  # the contract's tests, run here for every shape
    test_binary_body_round_trip,
    test_crash_is_reported_with_its_exit_code,
    test_event_fields_and_lambda_aliases,
    test_exception_is_a_function_error_with_the_traceback_in_the_logs,
    test_logs_are_capped,
    test_logs_are_captured_per_request_with_concurrent_requests,
    test_plain_value_returns,
    test_quit_lets_requests_in_flight_finish,
    test_ready_reports_the_discovered_version,
    test_stream_past_its_deadline_kills_the_worker,
    test_streaming,
    test_timeout_kills_the_worker_and_fails_what_was_in_flight,
)
from tests.worker_fixtures import CONTRACT, call, drain, make_worker, running, wait_until, write_code

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(60)]  # workers in nsjail (CONTRIBUTING.md, markers)

CONTRACT_JS = CONTRACT["node"]["handler.js"]

# A user's bridge from Worker-style fetch to a Lambda-style handler: the event from the Request (the client
# address from ctx.event, which a Request cannot carry), the handler's value as a Response.
BRIDGE = r"""
'use strict';
const enc = new TextEncoder();
const bytes = (v) => typeof v === 'string' ? enc.encode(v) : v instanceof Uint8Array ? v : enc.encode(JSON.stringify(v));

async function eventOf(request, ctx) {
  const url = new URL(request.url);
  const raw = Buffer.from(await request.arrayBuffer());
  const text = raw.toString('utf8');
  const b64 = !Buffer.from(text, 'utf8').equals(raw);
  const query = {}, multiQuery = {};
  for (const [k, v] of url.searchParams) { query[k] = v; (multiQuery[k] = multiQuery[k] || []).push(v); }
  const rawQuery = url.search.slice(1);
  const sourceIp = ctx.event.requestContext.sourceIp;
  return { method: request.method, httpMethod: request.method, path: decodeURIComponent(url.pathname),
    rawPath: url.pathname, query, multiQuery, rawQuery, rawQueryString: rawQuery,
    queryStringParameters: rawQuery ? query : null, headers: Object.fromEntries(request.headers),
    body: b64 ? raw.toString('base64') : text, isBase64Encoded: b64,
    requestContext: { sourceIp, http: { method: request.method, path: url.pathname, sourceIp } } };
}

function headersOf(...maps) {
  const headers = new Headers();
  for (const map of maps) for (const [k, v] of Object.entries(map || {})) for (const one of [].concat(v)) headers.append(k, String(one));
  return headers;
}

async function streamed(source) {
  const it = source[Symbol.asyncIterator]();
  let first = await it.next();
  let status = 200, headers = new Headers();
  const head = first.value;
  if (!first.done && head && typeof head === 'object' && !(head instanceof Uint8Array) && 'statusCode' in head) {
    status = head.statusCode; headers = headersOf(head.headers); first = await it.next();
  }
  const body = new ReadableStream({
    async pull(controller) {
      const next = first || await it.next();
      first = null;
      if (next.done) controller.close(); else controller.enqueue(bytes(next.value));
    },
    cancel() { if (it.return) it.return(); },
  });
  return new Response(body, { status, headers });
}

function responseOf(result) {
  if (result && typeof result === 'object' && !(result instanceof Uint8Array) && 'statusCode' in result) {
    const headers = headersOf(result.headers, result.multiValueHeaders, { 'set-cookie': result.cookies || [] });
    let body = result.body;
    if (result.isBase64Encoded) body = Buffer.from(body, 'base64');
    else if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof Uint8Array)) body = JSON.stringify(body);
    return new Response(body === undefined ? null : body, { status: result.statusCode, headers });
  }
  if (result instanceof Uint8Array) return new Response(result, { headers: { 'content-type': 'application/octet-stream' } });
  if (typeof result === 'string') return new Response(result, { headers: { 'content-type': 'text/plain; charset=utf-8' } });
  if (result && typeof result.getReader === 'function') return new Response(result);
  if (result && typeof result[Symbol.asyncIterator] === 'function') return streamed(result);
  return new Response(JSON.stringify(result === undefined ? null : result), { headers: { 'content-type': 'application/json' } });
}

exports.bridge = (handler) => async (request, env, ctx) => responseOf(await handler(await eventOf(request, ctx), ctx));
"""

CJS = "const { handler } = require('./contract.js');\n"


@dataclass(frozen=True)
class Shape:
    """One way of exporting the contract handler: the entry file's name and text, the handler name set."""

    id: str
    entry: str
    text: str
    handler: str = "handler"
    fetch: bool = False  # Worker-style: the contract handler runs behind BRIDGE

    # what the contract tests read from a Variant (tests/worker_fixtures.py)
    language = "node"
    concurrent = True
    context = True  # the handler receives a context

    @property
    def files(self) -> dict[str, str]:
        return {"contract.js": CONTRACT_JS, "bridge.js": BRIDGE, self.entry: self.text}


SHAPES = [
    Shape("module-exports-fn", "handler.js", CJS + "module.exports = handler;\n"),
    Shape("exports-lambda_handler", "handler.js", CJS + "exports.lambda_handler = handler;\n"),
    Shape("exports-main", "handler.js", CJS + "exports.main = handler;\n"),
    Shape(
        "configured-name",
        "handler.js",
        CJS + "exports.serve = handler;\nexports.main = () => 'not me';\n",
        handler="serve",
    ),
    Shape("cjs-entry", "handler.cjs", CJS + "module.exports = handler;\n"),
    # ES modules in a .js file without package.json "type": "module", and in .mjs (top-level await too)
    Shape(
        "esm-default-fn-js",
        "handler.js",
        "import contract from './contract.js';\nexport default contract.handler;\n",
    ),
    Shape(
        "esm-default-fn-mjs",
        "handler.mjs",
        "import contract from './contract.js';\nexport default contract.handler;\n",
    ),
    Shape(
        "esm-named-main-tla",
        "handler.mjs",
        "const contract = (await import('./contract.js')).default;\nexport const main = contract.handler;\n",
    ),
    Shape(
        "fetch-export-default",
        "handler.js",
        "import contract from './contract.js';\nimport b from './bridge.js';\n"
        "export default { fetch: b.bridge(contract.handler) };\n",
        fetch=True,
    ),
    Shape(
        "fetch-exports-fetch",
        "handler.js",
        CJS + "exports.fetch = require('./bridge.js').bridge(handler);\n",
        fetch=True,
    ),
    Shape(
        "fetch-module-exports-object",
        "handler.js",
        CJS + "const { bridge } = require('./bridge.js');\n"
        "module.exports = { fetch(request, env, ctx) { return this.run(request, env, ctx); }, run: bridge(handler) };\n",
        fetch=True,
    ),
]


@pytest.fixture(params=SHAPES, ids=lambda s: s.id)
def variant(request: pytest.FixtureRequest) -> Shape:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def worker(variant: Shape, jail_tmp: Path) -> AsyncIterator[Worker]:
    code = write_code(jail_tmp / "code", variant.files)
    async with running(
        make_worker(code, "node", entrypoint=variant.entry, handler=variant.handler)
    ) as started:
        assert started.init_error is None, started.init_error
        yield started


def body_of(response: dict[str, object]) -> bytes:
    body = str(response["body"])
    return base64.b64decode(body) if response["isBase64Encoded"] else body.encode()


async def test_multi_value_headers_per_shape(worker: Worker, variant: Shape) -> None:
    """test_runtime_contract's header test; a Response joins a header sent twice (WHATWG Headers), except
    Set-Cookie, which stays a list (headers.getSetCookie())."""
    reply = await call(worker, "/cookies")
    assert reply.response is not None
    assert reply.response["statusCode"] == 201
    assert reply.response["headers"]["set-cookie"] == ["a=1; Path=/", "b=2; Path=/"]
    assert reply.response["headers"]["x-one"] == "1"
    assert reply.response["body"] == "cookies"
    reply = await call(worker, "/mvh")
    assert reply.response is not None
    assert reply.response["statusCode"] == 202
    assert reply.response["headers"]["x-multi"] == ("1, 2" if variant.fetch else ["1", "2"])
    assert reply.response["headers"]["set-cookie"] == ["c=3", "d=4"]
    assert json.loads(reply.response["body"]) == {"k": 1}


async def test_readable_stream_per_shape(worker: Worker, variant: Shape) -> None:
    reply = await call(worker, "/webstream")
    if variant.fetch:  # a Response whose stream was filled before it was returned is one response frame
        assert reply.kind == "response" and reply.response is not None
        assert reply.response["statusCode"] == 200 and body_of(reply.response) == b"r1\x02\x03"
        return
    chunks, end = await drain(reply)
    assert reply.status == 200
    assert (
        b"".join(base64.b64decode(c["data"]) if c["isBase64Encoded"] else c["data"].encode() for c in chunks)
        == b"r1\x02\x03"
    )
    assert not end.get("error")


async def test_fetch_request_carries_the_host_the_method_and_no_body_on_get(jail_tmp: Path) -> None:
    """The Request's URL: the Host the client used (a fixed origin when it is missing or malformed), the
    event's path as escaped, the query; GET and HEAD carry no body, nor does a request without one."""
    probe = (
        "exports.fetch = async (request, env, ctx) => Response.json({ url: request.url, method: request.method, "
        "body: request.body === null ? null : await request.text(), ua: request.headers.get('user-agent'), "
        "fn: ctx.functionName, ip: ctx.event.requestContext.sourceIp, env: env === process.env });\n"
    )
    code = write_code(jail_tmp / "probe", {"handler.js": probe})
    async with running(make_worker(code, "node")) as worker:
        cases = [
            (
                {"host": "shop.example:8443", "user-agent": "t/1"},
                "GET",
                "/a%20b/c",
                "x=1&x=2",
                b"ignored",
                "http://shop.example:8443/a%20b/c?x=1&x=2",
                None,
            ),
            (
                {"host": "shop.example", "x-forwarded-proto": "HTTPS, http"},
                "POST",
                "/p",
                "",
                b"hi",
                "https://shop.example/p",
                "hi",
            ),
            (
                {"host": "evil.example/@x"},
                "PUT",
                "//other.example/p",
                "",
                b"",  # a malformed Host, a // path
                "http://localhost//other.example/p",
                None,
            ),
            ({}, "HEAD", "/", "", b"", "http://localhost/", None),
        ]
        for headers, method, path, query, body, url, seen_body in cases:
            reply = await call(worker, path, method=method, query=query, headers=headers, body=body)
            assert reply.response is not None, reply
            seen = json.loads(body_of(reply.response))
            assert seen["url"] == url and seen["method"] == method and seen["body"] == seen_body, (seen, url)
            assert seen["fn"] == "contract" and seen["ip"] == "10.0.0.7" and seen["env"] is True
        assert seen["ua"] is None


async def test_a_small_response_is_one_frame_and_a_large_or_late_body_is_streamed(jail_tmp: Path) -> None:
    source = r"""
exports.fetch = async (request) => {
  const p = new URL(request.url).pathname;
  if (p === '/small') return new Response('small', { headers: { 'x-kind': 'small' } });
  if (p === '/filled') return new Response(new ReadableStream({ start(c) { c.enqueue(new Uint8Array([104, 105])); c.close(); } }));
  if (p === '/large') return new Response(Buffer.alloc(3 << 20, 120));
  if (p === '/huge') return new Response(Buffer.alloc(20 << 20, 121));  // over one frame's 16 MiB
  if (p === '/late') return new Response(new ReadableStream({ async pull(c) { await new Promise((r) => setTimeout(r, 20)); c.enqueue(new TextEncoder().encode('late')); c.close(); } }));
  if (p === '/empty') return new Response(null, { status: 204, headers: { 'x-kind': 'empty' } });
  if (p === '/fails') return new Response(new ReadableStream({ pull(c) { c.error(new Error('broken body')); } }));
  if (p === '/fails-later') return new Response(new ReadableStream({ async pull(c) { if (this.sent) { await new Promise((r) => setTimeout(r, 20)); c.error(new Error('cut')); } else { this.sent = true; c.enqueue(new Uint8Array([1])); } } }));
  return new Response('?', { status: 404 });
};
"""
    code = write_code(jail_tmp / "sizes", {"handler.js": source})
    async with running(make_worker(code, "node")) as worker:
        reply = await call(worker, "/small")
        assert reply.kind == "response" and reply.response == {
            "statusCode": 200,
            "headers": {"content-type": "text/plain;charset=UTF-8", "x-kind": "small"},
            "body": "small",
            "isBase64Encoded": False,
        }
        reply = await call(worker, "/filled")
        assert reply.kind == "response" and reply.response is not None and reply.response["body"] == "hi"
        reply = await call(worker, "/empty")
        assert reply.kind == "response" and reply.response == {
            "statusCode": 204,
            "headers": {"x-kind": "empty"},
            "body": "",
            "isBase64Encoded": False,
        }
        for path, size, byte in (("/large", 3 << 20, b"x"), ("/huge", 20 << 20, b"y")):
            reply = await call(worker, path)
            assert reply.kind == "stream", path
            chunks, end = await drain(reply)
            data = b"".join(
                base64.b64decode(c["data"]) if c["isBase64Encoded"] else c["data"].encode() for c in chunks
            )
            assert data == byte * size and not end.get("error"), path
            assert max(len(c["data"]) for c in chunks) <= 2 << 20
        reply = await call(worker, "/late")
        assert reply.kind == "stream"
        chunks, end = await drain(reply)
        assert [c["data"] for c in chunks] == ["late"] and not end.get("error")
        reply = await call(
            worker, "/fails"
        )  # the body fails before anything was sent: an error, not a stream
        assert reply.kind == "error" and reply.error is not None and reply.error["message"] == "broken body"
        reply = await call(worker, "/fails-later")  # after the start: the stream ends with the error
        chunks, end = await drain(reply)
        assert len(chunks) == 1 and end["error"]["message"] == "cut"
        assert worker.alive


async def test_a_response_look_alike_with_a_node_stream_body(jail_tmp: Path) -> None:
    """A node-fetch style Response (a Node Readable body, headers.raw()) is answered like a WHATWG one."""
    source = r"""
const { Readable } = require('stream');
class LookAlikeHeaders {
  constructor(pairs) { this.pairs = pairs; }
  forEach(fn) { for (const [k, v] of this.pairs) if (k !== 'set-cookie') fn(v, k); }
  get(name) { const found = this.pairs.filter(([k]) => k === name).map(([, v]) => v); return found.length ? found.join(', ') : null; }
  raw() { const out = {}; for (const [k, v] of this.pairs) (out[k] = out[k] || []).push(v); return out; }
}
exports.handler = async (event) => ({
  status: 203, statusText: 'ok', headers: new LookAlikeHeaders([['x-kind', 'node'], ['set-cookie', 'a=1'], ['set-cookie', 'b=2']]),
  body: event.path === '/slow'
    ? Readable.from((async function* () { yield Buffer.from('one'); await new Promise((r) => setTimeout(r, 20)); yield Buffer.from('two'); })())
    : Readable.from([Buffer.from('whole')]),
  arrayBuffer: async () => new ArrayBuffer(0),
});
"""
    code = write_code(jail_tmp / "lookalike", {"handler.js": source})
    async with running(make_worker(code, "node")) as worker:
        reply = await call(worker, "/")
        assert reply.kind == "response" and reply.response == {
            "statusCode": 203,
            "headers": {"x-kind": "node", "set-cookie": ["a=1", "b=2"]},
            "body": "whole",
            "isBase64Encoded": False,
        }
        reply = await call(worker, "/slow")
        chunks, end = await drain(reply)
        assert reply.status == 203 and "".join(c["data"] for c in chunks) == "onetwo" and not end.get("error")


async def test_wait_until_runs_after_the_response_and_a_quit_waits_for_it(jail_tmp: Path) -> None:
    source = r"""
let done = 0;
exports.fetch = async (request, env, ctx) => {
  if (new URL(request.url).pathname === '/count') return Response.json({ done });
  console.log('answering');
  ctx.waitUntil(new Promise((r) => setTimeout(r, 1500)).then(() => { done += 1; console.log('background done'); }));
  ctx.waitUntil(Promise.reject(new Error('background failure')));
  ctx.passThroughOnException();
  return new Response('answered');
};
"""
    code = write_code(jail_tmp / "wait", {"handler.js": source})
    async with running(make_worker(code, "node")) as worker:
        reply = await call(worker, "/")
        assert reply.response is not None and reply.response["body"] == "answered"
        assert reply.logs == "answering\n"
        assert (
            json.loads(body_of((await call(worker, "/count")).response or {}))["done"] == 0
        )  # answered before
        await worker.stop(grace_s=5.0)
        assert worker.proc is not None and worker.proc.returncode == 0
        tail = "\n".join(worker.stderr_tail)  # output after the reply is the worker's, not lost
        assert "background failure" in tail and "background done" in tail, tail


async def test_output_of_timers_started_at_import_reaches_the_workers_log(jail_tmp: Path) -> None:
    source = "setTimeout(() => console.log('late import output'), 50);\nexports.handler = async () => 'ok';\n"
    code = write_code(jail_tmp / "late", {"handler.js": source})
    async with running(make_worker(code, "node")) as worker:
        await wait_until(
            lambda: "late import output" in "\n".join(worker.stderr_tail), 5, "the timer's output"
        )
        reply = await call(worker, "/")
        assert reply.response is not None and reply.logs == ""


@pytest.mark.parametrize(
    ("entry", "text", "shown"),
    [
        (
            "handler.js",
            "exports.handle = async () => 1;\nexports.n = 3;\n",
            "It exports: handle, n (number).",
        ),
        ("handler.js", "module.exports = { fetch: 'not a function' };\n", "It exports: fetch (string)."),
        (
            "handler.js",
            "export default { name: 'app' };\n",
            "It exports: default (an object: name (string)).",
        ),
        ("handler.mjs", "export const x = 1;\n", "It exports: x (number)."),
        ("handler.js", "module.exports = 42;\n", "It exports a number."),
        ("handler.js", "// nothing\n", "It exports nothing."),
    ],
)
async def test_a_module_with_nothing_usable_names_the_accepted_shapes(
    jail_tmp: Path, entry: str, text: str, shown: str
) -> None:
    code = write_code(jail_tmp / "none", {entry: text})
    async with running(make_worker(code, "node", entrypoint=entry)) as worker:
        assert worker.init_error is not None
        message = worker.init_error["message"]
        assert message.startswith(
            f"{entry} does not export a function handler. Accepted: exports.handler, "
            "exports.lambda_handler or exports.main"
        ), message
        for shape in (
            "module.exports = fn",
            "export default fn",
            "export default { fetch }",
            "exports.fetch",
            "module.exports = { fetch }",
            "Response",
        ):
            assert shape in message
        assert message.endswith(shown), message
        assert (
            len("the handler raised Error: " + message) <= 500
        )  # orvad's FUNCTION_ERROR message keeps it whole
        reply = await call(worker, "/")
        assert reply.kind == "error" and reply.error is not None and reply.error["message"] == message


async def test_inherited_properties_are_not_handlers(jail_tmp: Path) -> None:
    """A handler name every object has (toString, constructor) is not taken from the prototype."""
    code = write_code(jail_tmp / "proto", {"handler.js": "exports.x = 1;\n"})
    async with running(make_worker(code, "node", handler="toString")) as worker:
        assert worker.init_error is not None
        assert "does not export a function handler (named toString)" in worker.init_error["message"]


# test_runtime_contract's tests that this module collects again, with its own variant and worker (the others
# there write the plain contract module themselves, or are Python's)
CONTRACT_TESTS = (
    test_binary_body_round_trip,
    test_crash_is_reported_with_its_exit_code,
    test_event_fields_and_lambda_aliases,
    test_exception_is_a_function_error_with_the_traceback_in_the_logs,
    test_logs_are_capped,
    test_logs_are_captured_per_request_with_concurrent_requests,
    test_plain_value_returns,
    test_quit_lets_requests_in_flight_finish,
    test_ready_reports_the_discovered_version,
    test_stream_past_its_deadline_kills_the_worker,
    test_streaming,
    test_timeout_kills_the_worker_and_fails_what_was_in_flight,
)


def test_every_shape_and_contract_test_is_here() -> None:
    assert len({s.id for s in SHAPES}) == len(SHAPES)
    for test in CONTRACT_TESTS:  # collected from this module, so they run with this module's fixtures
        assert globals()[test.__name__] is test
        assert "worker" in test.__code__.co_varnames[: test.__code__.co_argcount]
