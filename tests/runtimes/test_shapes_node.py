"""Node handler shapes (issue 19), through HTTP on a real orvad with real jailed workers.

A module may export, looked up in this order: `handler` (CommonJS `exports.handler` or an ES named export),
`lambda_handler`, `main`, `module.exports = fn`, ES `export default fn`, or a Worker-style
`fetch(request, env, ctx)` (`export default { fetch }`, `exports.fetch`, `module.exports = { fetch }`) that
takes a WHATWG Request and returns a Response. A module that offers none fails its build, and a worker that
finds none at run time answers 500 FUNCTION_ERROR; both messages list the shapes accepted. The Go original's
Node test functions (tests/fixtures/goorva/node-*) answer as they did there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function, deploy_inline, wait_deployed
from tests.helpers import Orvad

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(600)]  # workers in nsjail (CONTRIBUTING.md, markers)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "goorva"
WAIT = "?wait=true&timeout_s=300"
SHAPES_LISTED = (
    "does not export a function handler. Accepted: exports.handler, exports.lambda_handler or "
    "exports.main (or ES-module named exports), module.exports = fn, export default fn, or a "
    "Worker-style fetch(request, env, ctx) returning a Response (export default { fetch }, "
    "exports.fetch, module.exports = { fetch })."
)


def deploy(
    c: httpx.Client, name: str, code: str, filename: str = "handler.js", **fields: Any
) -> dict[str, Any]:
    """Create the function and deploy `code` with ?wait=true: 200 once the import check passed and it serves."""
    create_function(
        c, name, "node", **({"entrypoint": filename} if filename != "handler.js" else {}), **fields
    )
    r = c.post(
        f"/api/v1/functions/{name}/deploy-inline{WAIT}",
        json={"code": code, "filename": filename},
        timeout=330,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    return r.json()


def function_error(r: httpx.Response) -> str:
    assert r.status_code == 500, r.text
    error = r.json()["error"]
    assert error["code"] == "FUNCTION_ERROR" and error["details"]["execution_id"], error
    return str(error["message"])


SEEN = "({ shape: %r, path: event.path, x: event.query.x, fn: context.functionName })"
FETCH_SEEN = (
    "{ const url = new URL(request.url); return Response.json({ shape: %r, path: url.pathname, "
    "x: url.searchParams.get('x'), fn: ctx.functionName, origin: url.origin }); }"
)

# (function name, entry file, module, the shape it reports); each answers GET /fn/<name>/p?x=1
SHAPES = [
    (
        "js-module-exports",
        "handler.js",
        f"module.exports = async (event, context) => {SEEN % 'module.exports'};\n",
        "module.exports",
    ),
    (
        "js-exports-handler",
        "handler.js",
        f"exports.handler = async (event, context) => {SEEN % 'handler'};\n",
        "handler",
    ),
    (
        "js-lambda-handler",
        "handler.js",
        "exports.lambda_handler = async (event, context) => ({ statusCode: 200, headers: { 'content-type': "
        f"'application/json' }}, body: JSON.stringify({SEEN % 'lambda_handler'}) }});\n",
        "lambda_handler",
    ),
    ("js-main", "handler.js", f"exports.main = (event, context) => {SEEN % 'main'};\n", "main"),
    (
        "js-first-found",
        "handler.js",  # the order: handler before lambda_handler before main
        f"exports.main = () => 'main';\nexports.lambda_handler = (event, context) => {SEEN % 'first: lambda_handler'};\n",
        "first: lambda_handler",
    ),
    (
        "js-cjs-entry",
        "handler.cjs",
        f"module.exports = (event, context) => {SEEN % 'handler.cjs'};\n",
        "handler.cjs",
    ),
    (
        "js-esm-default",
        "handler.js",  # an ES module in handler.js, without package.json "type": "module"
        "import { sep } from 'node:path';\n"
        f"export default async function (event, context) {{ return {SEEN % 'export default fn'}; }}\n",
        "export default fn",
    ),
    (
        "js-esm-default-mjs",
        "handler.mjs",
        "const ready = await Promise.resolve('mjs');\n"
        f"export default (event, context) => {SEEN % 'export default fn (.mjs)'};\n",
        "export default fn (.mjs)",
    ),
    (
        "js-esm-named-main",
        "handler.mjs",
        f"export async function main(event, context) {{ return {SEEN % 'esm main'}; }}\n",
        "esm main",
    ),
    (
        "js-fetch-default",
        "handler.js",
        f"export default {{ async fetch(request, env, ctx) {FETCH_SEEN % 'export default {fetch}'} }};\n",
        "export default {fetch}",
    ),
    (
        "js-fetch-exports",
        "handler.js",
        f"exports.fetch = async (request, env, ctx) => {FETCH_SEEN % 'exports.fetch'};\n",
        "exports.fetch",
    ),
    (
        "js-fetch-module-object",
        "handler.js",
        f"module.exports = {{ fetch(request, env, ctx) {FETCH_SEEN % 'module.exports = {fetch}'} }};\n",
        "module.exports = {fetch}",
    ),
    (
        "js-handler-response",
        "handler.js",  # any handler may answer with a Response
        "exports.handler = async (event, context) => Response.json("
        f"{SEEN % 'handler returning a Response'}, {{ headers: {{ 'x-shape': 'response' }} }});\n",
        "handler returning a Response",
    ),
]


@pytest.mark.parametrize(("name", "filename", "code", "shape"), SHAPES, ids=[s[0] for s in SHAPES])
def test_every_shape_deploys_and_answers(
    orvad: Orvad, name: str, filename: str, code: str, shape: str
) -> None:
    with orvad.admin() as c:
        deploy(c, name, code, filename)  # the build's import check passed: 200
        r = c.get(f"/fn/{name}/p", params={"x": "1"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        seen = r.json()
        assert seen.pop("origin", orvad.url) == orvad.url  # a Request's origin is the Host the client used
        assert seen == {"shape": shape, "path": "/p", "x": "1", "fn": name}


FETCH_APP = r"""
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const enc = new TextEncoder();

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case '/text': return new Response(`${request.method} ${await request.text()}`);
      case '/json': { const data = await request.json(); return Response.json({ doubled: data.n * 2, type: request.headers.get('content-type') }); }
      case '/bytes': {
        const bytes = new Uint8Array(await request.arrayBuffer()).reverse();
        return new Response(bytes, { headers: { 'content-type': 'application/octet-stream' } });
      }
      case '/nobody': return Response.json({ body: request.body, method: request.method });
      case '/cookies': {
        const headers = new Headers({ 'x-custom': 'yes' });
        headers.append('set-cookie', 'a=1; Path=/');
        headers.append('set-cookie', 'b=2; Path=/; HttpOnly');
        return new Response('cookies', { status: 201, headers });
      }
      case '/stream': return new Response(new ReadableStream({
        async start(controller) {
          controller.enqueue(enc.encode('first\n'));
          await sleep(1500);
          controller.enqueue(enc.encode('second\n'));
          controller.close();
        },
      }), { status: 206, headers: { 'content-type': 'text/plain', 'x-streamed': 'yes' } });
      case '/large': return new Response(new Uint8Array(3 << 20).fill(122));
      case '/env': return Response.json({ greeting: env.GREETING, sameAsProcess: env === process.env });
      case '/throws': throw new Error('no such order');
      case '/not-response': return { statusCode: 202, body: 'a Lambda reply from fetch' };
      default: return new Response('not found', { status: 404 });
    }
  },
};
"""


@pytest.fixture(scope="module")
def fetch_app(orvad: Orvad) -> str:
    """One Worker-style function (csp_sandbox off, so its Set-Cookie headers reach the client)."""
    with orvad.admin() as c:
        deploy(c, "js-fetch-app", FETCH_APP, csp_sandbox=False, env_vars={"GREETING": "hej"})
    return "/fn/js-fetch-app"


def test_fetch_reads_the_body_as_text_json_and_bytes(orvad: Orvad, fetch_app: str) -> None:
    with orvad.client() as c:
        r = c.post(f"{fetch_app}/text", content="hello body")
        assert r.status_code == 200 and r.text == "POST hello body"
        assert r.headers["content-type"] == "text/plain;charset=UTF-8"
        assert int(r.headers["content-length"]) == len("POST hello body")  # one frame, not a stream
        r = c.post(f"{fetch_app}/text", content=iter([b"sent ", b"chunked"]))  # Transfer-Encoding: chunked
        assert r.status_code == 200 and r.text == "POST sent chunked"
        r = c.put(f"{fetch_app}/json", json={"n": 21})
        assert r.status_code == 200 and r.json() == {"doubled": 42, "type": "application/json"}
        raw = bytes(range(256)) * 3
        r = c.post(f"{fetch_app}/bytes", content=raw)
        assert r.status_code == 200 and r.content == raw[::-1]
        assert r.headers["content-type"] == "application/octet-stream"
        for method in ("GET", "DELETE"):
            r = c.request(method, f"{fetch_app}/nobody")
            assert r.json() == {"body": None, "method": method}
        r = c.head(f"{fetch_app}/text")
        assert r.status_code == 200 and r.content == b""


def test_fetch_response_status_headers_and_repeated_set_cookie(orvad: Orvad, fetch_app: str) -> None:
    with orvad.client() as c:
        r = c.get(f"{fetch_app}/cookies")
        assert r.status_code == 201 and r.text == "cookies"
        assert r.headers["x-custom"] == "yes"
        assert r.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly"]
        assert c.get(f"{fetch_app}/missing").status_code == 404
        r = c.get(f"{fetch_app}/env")
        assert r.json() == {"greeting": "hej", "sameAsProcess": True}
        r = c.get(f"{fetch_app}/not-response")  # a fetch handler's other values are read as a handler's
        assert r.status_code == 202 and r.text == "a Lambda reply from fetch"


def test_fetch_streams_a_response_body_as_it_is_produced(orvad: Orvad, fetch_app: str) -> None:
    with orvad.client() as c, c.stream("GET", f"{fetch_app}/stream") as r:
        assert r.status_code == 206 and r.headers["x-streamed"] == "yes"
        assert "content-length" not in r.headers
        arrivals: list[tuple[float, bytes]] = []
        for piece in r.iter_raw():
            arrivals.append((time.monotonic(), piece))
        assert b"".join(p for _, p in arrivals) == b"first\nsecond\n"
        # the first line came while the handler was still waiting to write the second
        first = next(t for t, p in arrivals if p)
        assert arrivals[0][1].startswith(b"first") and arrivals[-1][0] - first >= 0.75, arrivals


def test_fetch_large_body_is_streamed_whole(orvad: Orvad, fetch_app: str) -> None:
    with orvad.client() as c:
        r = c.get(f"{fetch_app}/large")
        assert r.status_code == 200 and r.content == b"z" * (3 << 20)
        assert "content-length" not in r.headers  # over 1 MiB: start/chunk/end frames


def test_fetch_handler_that_throws_is_a_function_error(orvad: Orvad, fetch_app: str) -> None:
    with orvad.client() as c:
        message = function_error(c.get(f"{fetch_app}/throws"))
        assert message == "the handler raised Error: no such order"


@pytest.mark.parametrize(
    ("name", "code", "shown"),
    [
        ("js-none-cjs", "exports.handle = async () => 1;\n", "It exports: handle."),
        (
            "js-none-default-object",
            "export default { name: 'app' };\n",
            "It exports: default (an object: name (string)).",
        ),
        ("js-none-fetch-string", "module.exports = { fetch: 'nope' };\n", "It exports: fetch (string)."),
    ],
)
def test_a_module_with_nothing_usable_fails_its_build(orvad: Orvad, name: str, code: str, shown: str) -> None:
    with orvad.admin() as c:
        create_function(c, name, "node")
        r = c.post(f"/api/v1/functions/{name}/deploy-inline{WAIT}", json={"code": code}, timeout=330)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "BUILD_FAILED"
        deployment = c.get(f"/api/v1/functions/{name}/deployments").json()["deployments"][0]
        assert deployment["status"] == "failed" and "cannot be imported" in deployment["error_message"]
        log = "\n".join(
            line["line"] for line in c.get(f"/api/v1/deployments/{deployment['id']}/logs").json()["lines"]
        )
        assert f"handler.js {SHAPES_LISTED} {shown}" in log, log
        assert "/runtime/adapter.js" not in log


def test_nothing_usable_at_run_time_is_a_function_error_listing_the_shapes(orvad: Orvad) -> None:
    """The module offers a handler only while an env var is set; the operator removes the variable."""
    code = "if (process.env.OFFER_HANDLER === '1') exports.handler = async () => 'offered';\n"
    with orvad.admin() as c:
        deploy(c, "js-vanishing", code, env_vars={"OFFER_HANDLER": "1"})
        assert c.get("/fn/js-vanishing").text == "offered"
        r = c.put("/api/v1/functions/js-vanishing", json={"env_vars": {}})
        assert r.status_code in (200, 502), r.text  # saved; the new workers start, with the import error
        if r.status_code == 502:
            assert r.json()["error"]["details"]["saved"] is True
        message = function_error(c.get("/fn/js-vanishing"))
        assert message == f"the handler raised Error: handler.js {SHAPES_LISTED} It exports nothing.", message
        r = c.put("/api/v1/functions/js-vanishing", json={"env_vars": {"OFFER_HANDLER": "1"}})
        assert r.status_code == 200, r.text
        assert c.get("/fn/js-vanishing").text == "offered"


# ---- the Go original's Node test functions, deployed as its scripts did, answering as they did there ----


def fixture_code(name: str) -> str:
    return (FIXTURES / name / "handler.js").read_text()


def test_goorva_node_hello(orvad: Orvad) -> None:
    with orvad.admin() as c:
        deploy(c, "goorva-node-hello", fixture_code("node-hello"))
        r = c.get("/fn/goorva-node-hello/greet")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.json() == {"message": "Hello from Node.js!", "method": "GET", "path": "/greet"}
        r = c.post("/fn/goorva-node-hello", json={})
        assert r.json() == {"message": "Hello from Node.js!", "method": "POST", "path": "/"}


def test_goorva_node_api(orvad: Orvad) -> None:
    with orvad.admin() as c:
        deploy(c, "goorva-node-api", fixture_code("node-api"))
        r = c.post(
            "/fn/goorva-node-api/users",
            json={"name": "  Ada Lovelace ", "email": "ADA@Example.COM", "tags": [" Math ", "", "Poet"]},
            headers={"User-Agent": "migration-check/1"},
        )
        assert r.status_code == 201, r.text
        answer = r.json()
        user = answer["user"]
        assert answer["ok"] is True
        assert user["id"].startswith("usr_") and len(user["id"]) > len("usr_") + 6
        assert (user["name"], user["email"], user["tags"]) == (
            "ada lovelace",
            "ada@example.com",
            ["math", "poet"],
        )
        assert user["metadata"]["source"] == "migration-check/1"
        assert (user["metadata"]["method"], user["metadata"]["path"]) == ("POST", "/users")
        assert user["metadata"]["created_at"].endswith("Z")
        assert int(user["checksum"], 16) >= 0
        r = c.post("/fn/goorva-node-api", json={})
        assert r.status_code == 400 and r.json() == {"errors": ["name is required"]}
        r = c.post("/fn/goorva-node-api", json={"email": "not-an-address"})
        assert r.status_code == 400 and r.json() == {"errors": ["name is required", "invalid email"]}
        r = c.post("/fn/goorva-node-api", content=b"")  # no body: an empty object
        assert r.status_code == 400 and r.json() == {"errors": ["name is required"]}


def test_goorva_node_cpu(orvad: Orvad) -> None:
    with orvad.admin() as c:
        deploy(c, "goorva-node-cpu", fixture_code("node-cpu"))
        for body, n, result in (({"n": 20}, 20, 6765), (None, 30, 832040), ({"n": 90}, 35, 9227465)):
            r = c.post(
                "/fn/goorva-node-cpu", content=json.dumps(body) if body is not None else b"", timeout=60
            )
            assert r.status_code == 200, r.text
            answer = r.json()
            assert answer["fibonacci"] == {"n": n, "result": result}
            assert answer["primes"] == {"limit": 10000, "count": 1229}
            assert isinstance(answer["compute_ms"], int) and answer["compute_ms"] >= 0


def test_goorva_node_slow_within_and_past_its_timeout(orvad: Orvad) -> None:
    with orvad.admin() as c:
        deploy(c, "goorva-node-slow", fixture_code("node-slow"))
        started = time.monotonic()
        r = c.get("/fn/goorva-node-slow")
        assert r.status_code == 200, r.text
        assert r.json() == {"message": "slow response", "delay_ms": 500}
        assert time.monotonic() - started >= 0.5
        assert c.put("/api/v1/functions/goorva-node-slow", json={"timeout_ms": 300}).status_code == 200
        r = c.get("/fn/goorva-node-slow")
        assert r.status_code == 504, r.text
        error = r.json()["error"]
        assert error["code"] == "TIMEOUT" and error["details"]["timeout_ms"] == 300, error
        assert c.put("/api/v1/functions/goorva-node-slow", json={"timeout_ms": 5000}).status_code == 200
        assert c.get("/fn/goorva-node-slow").json()["delay_ms"] == 500  # a new worker serves again


def test_esm_handler(orvad: Orvad) -> None:
    with orvad.admin() as c:
        fn = create_function(c, "esm-fn", "node", entrypoint="handler.mjs")
        code = "export const handler = async (event) => ({ esm: true, path: event.path });\n"
        dep = wait_deployed(c, deploy_inline(c, fn["id"], code, filename="handler.mjs")["id"])
        assert dep["status"] == "succeeded"
        assert c.get(f"/fn/{fn['id']}/x").json() == {"esm": True, "path": "/x"}
