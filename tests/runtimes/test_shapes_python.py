"""Python handler shapes (issue 19), through HTTP on a real orvad with real jailed workers.

A module may offer: handler(event, context) or handler(event) (decided by the signature), else
lambda_handler, else main (async def for each); else an ASGI app (FastAPI, Starlette) or a WSGI app
(Flask, Django) named app or application. A module that offers none of them fails its build, and a
worker that finds none at run time answers 500 FUNCTION_ERROR; both messages list the shapes accepted.
The Go original's Python test functions (tests/fixtures/goorva/python-*) answer as they did there.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.deploy_helpers import create_function
from tests.helpers import Orvad, wait_for
from tests.worker_fixtures import call, drain, make_worker, running, wait_until, write_code

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(600)]  # workers in nsjail (CONTRIBUTING.md, markers)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "goorva"
WAIT = "?wait=true&timeout_s=300"


def deploy(
    c: httpx.Client, name: str, code: str, dependencies: str | None = None, **fields: Any
) -> dict[str, Any]:
    """Create the function and deploy `code` with ?wait=true: 200 once the import check passed and it serves."""
    create_function(c, name, **fields)
    body = {"code": code, **({"dependencies": dependencies} if dependencies else {})}
    r = c.post(f"/api/v1/functions/{name}/deploy-inline{WAIT}", json=body, timeout=330)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    return r.json()


def execution_logs(c: httpx.Client, response: httpx.Response) -> str:
    """The logs of the execution that answered `response` (its row lands a moment after the answer)."""
    found: dict[str, str] = {}

    def written() -> bool:
        r = c.get(f"/api/v1/executions/{response.headers['x-orva-execution-id']}/logs")
        if r.status_code == 200:
            found["logs"] = r.json()["logs"]
        return "logs" in found

    wait_for(written, 10.0, "the execution's logs")
    return found["logs"]


def function_error(r: httpx.Response) -> str:
    assert r.status_code == 500, r.text
    error = r.json()["error"]
    assert error["code"] == "FUNCTION_ERROR" and error["details"]["execution_id"], error
    return str(error["message"])


# (function name, module, what GET /fn/<name>/p?x=1 answers)
FUNCTIONS = [
    (
        "py-one-arg",
        "def handler(event):\n    return {'shape': 'one-arg', 'path': event['path'], 'x': event['query']['x']}\n",
        {"shape": "one-arg", "path": "/p", "x": "1"},
    ),
    (
        "py-one-arg-default",
        "def handler(event, context=None):\n    return {'context': context is not None}\n",
        {"context": True},
    ),  # a second parameter with a default still gets the context
    ("py-varargs", "def handler(*args):\n    return {'args': len(args)}\n", {"args": 2}),
    (
        "py-lambda-handler",
        "def lambda_handler(event, context):\n    return {'shape': 'lambda_handler', "
        "'fn': context.function_name, 'path': event['rawPath']}\n",
        {"shape": "lambda_handler", "fn": "py-lambda-handler", "path": "/p"},
    ),
    (
        "py-main",
        "def main(event):\n    return {'shape': 'main', 'method': event['method']}\n",
        {"shape": "main", "method": "GET"},
    ),
    (
        "py-async-one-arg",
        "import asyncio\n\n\nasync def handler(event):\n    await asyncio.sleep(0)\n"
        "    return {'shape': 'async one-arg'}\n",
        {"shape": "async one-arg"},
    ),
    (
        "py-async-lambda-handler",
        "async def lambda_handler(event, context):\n"
        "    return {'shape': 'async lambda_handler', 'id': context.request_id == event['requestContext']['requestId']}\n",
        {"shape": "async lambda_handler", "id": True},
    ),
    (
        "py-async-main",
        "async def main(event, context):\n    return {'shape': 'async main', 'mb': context.memory_limit_in_mb}\n",
        {"shape": "async main", "mb": 128},
    ),
    (
        "py-async-gen-main",
        "async def main(event):\n    yield {'statusCode': 200, 'headers': {'content-type': 'application/json'}}\n"
        "    yield '{\"shape\": '\n    yield '\"async generator main\"}'\n",
        {"shape": "async generator main"},
    ),
    # the configured name first, then lambda_handler, then main
    (
        "py-order-handler",
        "def handler(event):\n    return {'chosen': 'handler'}\n\n\ndef lambda_handler(event, context):\n"
        "    return {'chosen': 'lambda_handler'}\n\n\ndef main(event):\n    return {'chosen': 'main'}\n",
        {"chosen": "handler"},
    ),
    (
        "py-order-lambda",
        "def main(event):\n    return {'chosen': 'main'}\n\n\ndef lambda_handler(event, context):\n"
        "    return {'chosen': 'lambda_handler'}\n",
        {"chosen": "lambda_handler"},
    ),
    # a script's main() takes no event: the app beside it is served
    (
        "py-main-script-app",
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'application/json')])\n    return [b'{\"chosen\": \"application\"}']\n\n\n"
        "def main():\n    print('run me with a server')\n",
        {"chosen": "application"},
    ),
    # decorated (functools.wraps) and callable objects: by inspect.signature
    (
        "py-decorated",
        "import functools\n\n\ndef logged(fn):\n    @functools.wraps(fn)\n    def wrapper(*args):\n"
        "        return {'wrapped': fn(*args), 'args': len(args)}\n    return wrapper\n\n\n@logged\ndef handler(event):\n"
        "    return event['path']\n",
        {"wrapped": "/p", "args": 1},
    ),
    (
        "py-callable-object",
        "class Handler:\n    def __call__(self, event):\n        return {'object': event['path']}\n\n\n"
        "handler = Handler()\n",
        {"object": "/p"},
    ),
    # the usual minimal ASGI app refuses lifespan (it asserts an http scope): it is served all the same
    (
        "py-asgi-no-lifespan",
        "async def app(scope, receive, send):\n    assert scope['type'] == 'http'\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-type', b'application/json')]})\n"
        "    await send({'type': 'http.response.body', 'body': b'{\"asgi\": \"no lifespan\"}'})\n",
        {"asgi": "no lifespan"},
    ),
]


@pytest.mark.parametrize(("name", "code", "expected"), FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
def test_each_function_shape_deploys_and_answers(orvad: Orvad, name: str, code: str, expected: Any) -> None:
    with orvad.admin() as c:
        deploy(c, name, code)
        for _ in range(2):  # the cold worker and the warm one
            r = c.get(f"/fn/{name}/p", params={"x": "1"})
            assert r.status_code == 200, r.text
            assert r.json() == expected


def test_a_type_error_inside_a_two_argument_handler_is_not_retried_with_one(orvad: Orvad) -> None:
    code = (
        "calls = []\n\n\ndef handler(event, context):\n    calls.append(event['path'])\n"
        "    if event['path'] == '/calls':\n        return {'calls': calls}\n"
        "    raise TypeError('handler() missing 1 required positional argument: context')\n"
    )
    with orvad.admin() as c:
        deploy(c, "py-type-error", code)
        assert "TypeError" in function_error(c.get("/fn/py-type-error/boom"))
        assert c.get("/fn/py-type-error/calls").json() == {
            "calls": ["/boom", "/calls"]
        }  # called once, not twice


ASGI = r"""
import asyncio
import base64
import json
import sys

lifespan_log = []
release, background = asyncio.Event(), asyncio.Event()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                lifespan_log.append("startup")
                scope["state"]["pool"] = "opened at startup"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                sys.stderr.write("asgi lifespan shutdown\n")
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    request = await receive()
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        await asyncio.wait_for(release.wait(), 20)  # the client has read the first chunk before this goes on
        for word in (b"second\n", b"third\n"):
            await send({"type": "http.response.body", "body": word, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if path == "/release":
        release.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/background":  # work after the response (as Starlette's BackgroundTasks): the answer does not wait
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"answered before the background work"})
        await asyncio.wait_for(background.wait(), 20)
        raise RuntimeError("raised after the response")
    if path == "/finish-background":
        background.set()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if path in ("/error-page", "/error-page-then-raise"):  # a framework's error page (Starlette re-raises after it)
        await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"down for maintenance"})
        if path == "/error-page-then-raise":
            raise RuntimeError("raised after the error page")
        return
    if path == "/raise":
        print("about to fail")
        raise RuntimeError("the ASGI app failed")
    if path == "/binary":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.body", "body": bytes(reversed(request["body"]))})
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    seen = {"method": scope["method"], "path": path, "raw_path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(), "body": request["body"].decode(),
            "more_body": request.get("more_body", False), "x_test": headers.get("x-test"),
            "type": headers.get("content-type"), "client": scope["client"][0], "scheme": scope["scheme"],
            "lifespan": lifespan_log, "state": scope["state"].get("pool"), "asgi": scope["asgi"]["version"]}
    print("served", path)
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json"), (b"set-cookie", b"a=1; Path=/"),
                            (b"set-cookie", b"b=2; Path=/"), (b"x-app", b"asgi")]})
    await send({"type": "http.response.body", "body": json.dumps(seen).encode()})
"""


def test_an_asgi_app_is_served_with_lifespan_cookies_bodies_and_a_streamed_response(orvad: Orvad) -> None:
    with orvad.admin() as c:
        deploy(c, "py-asgi", ASGI, csp_sandbox=False)  # cookies reach the client when unsandboxed
        # one worker taking two requests at once: /release reaches the app that holds the stream open
        r = c.put("/api/v1/functions/py-asgi", json={"pool": {"target_concurrency": 4, "max_warm": 1}})
        assert r.status_code == 200, r.text
        r = c.post(
            "/fn/py-asgi/items/7?tag=a&tag=b",
            content=b'{"n": 1}',
            headers={"content-type": "application/json", "x-test": "yes"},
        )
        assert r.status_code == 201, r.text
        assert r.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
        assert r.headers["x-app"] == "asgi"
        assert r.json() == {
            "method": "POST",
            "path": "/items/7",
            "raw_path": "/items/7",
            "query": "tag=a&tag=b",
            "body": '{"n": 1}',
            "more_body": False,
            "x_test": "yes",
            "type": "application/json",
            "client": "127.0.0.1",
            "scheme": "http",
            "lifespan": ["startup"],
            "state": "opened at startup",
            "asgi": "3.0",
        }
        assert execution_logs(c, r) == "served /items/7\n"
        raw = bytes([0, 1, 0xFF, 0xFE])
        r = c.post("/fn/py-asgi/binary", content=raw)
        assert r.status_code == 200 and r.content == bytes(reversed(raw))
        with c.stream("GET", "/fn/py-asgi/stream") as streamed:
            assert streamed.status_code == 200 and "content-length" not in streamed.headers
            lines = streamed.iter_lines()
            assert next(lines) == "first"  # while the app still waits for /release
            assert c.get("/fn/py-asgi/release").status_code == 204
            assert list(lines) == ["second", "third"]
        assert "the ASGI app failed" in function_error(c.get("/fn/py-asgi/raise"))
        r = c.get("/fn/py-asgi/error-page")  # an app's own 5xx answer is its answer
        assert r.status_code == 503 and r.text == "down for maintenance"
        assert "raised after the error page" in function_error(c.get("/fn/py-asgi/error-page-then-raise"))
        assert c.get("/fn/py-asgi/x").json()["lifespan"] == ["startup"]  # startup ran once per worker


async def test_asgi_lifespan_shutdown_runs_when_the_worker_quits(jail_tmp: Path) -> None:
    code = write_code(jail_tmp / "code", {"handler.py": ASGI})
    async with running(make_worker(code, "python")) as worker:
        assert worker.init_error is None
        reply = await call(worker, "/x")
        assert reply.response is not None and json.loads(reply.response["body"])["lifespan"] == ["startup"]
        reply = await call(worker, "/stream")
        release = await call(worker, "/release")
        chunks, end = await drain(reply)
        assert release.response is not None and release.response["statusCode"] == 204
        assert [c["data"] for c in chunks] == ["first\n", "second\n", "third\n"] and not end.get("error")
        reply = await call(worker, "/background")  # answered while the app still runs
        assert reply.response is not None and reply.response["body"] == "answered before the background work"
        assert (await call(worker, "/finish-background")).response is not None
        await wait_until(
            lambda: any("raised after the response" in line for line in worker.stderr_tail),
            5,
            "the background failure in the worker's log",
        )
    assert "asgi lifespan shutdown" in worker.stderr_tail


WSGI = r"""
import json


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/raise":
        raise ValueError("the WSGI app failed")
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (f"line {i}\n".encode() for i in range(3))
    if path.startswith("/unicode/"):  # PEP 3333: PATH_INFO holds the path's bytes as latin-1 characters
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [path.encode("latin-1")]
    if path == "/text":  # a str instead of an iterable of bytes: taken as the body
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return "caf\u00e9 " * 3
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    seen = {"method": environ["REQUEST_METHOD"], "path": path, "query": environ["QUERY_STRING"],
            "body": body.decode(), "type": environ.get("CONTENT_TYPE"), "x_test": environ.get("HTTP_X_TEST"),
            "underscored": environ.get("HTTP_X_SNEAKY"), "remote": environ["REMOTE_ADDR"],
            "scheme": environ["wsgi.url_scheme"], "script_name": environ["SCRIPT_NAME"]}
    print("served", path, file=environ["wsgi.errors"])
    start_response("202 Accepted", [("Content-Type", "application/json"), ("Set-Cookie", "a=1; Path=/"),
                                    ("Set-Cookie", "b=2; Path=/"), ("X-App", "wsgi")])
    return [json.dumps(seen).encode()]
"""


def test_a_wsgi_application_is_served_with_cookies_a_post_body_and_a_streamed_iterable(orvad: Orvad) -> None:
    with orvad.admin() as c:
        deploy(c, "py-wsgi", WSGI, csp_sandbox=False)
        r = c.post(
            "/fn/py-wsgi/orders?id=3",
            content="name=caf\u00e9".encode(),
            headers={"content-type": "application/x-www-form-urlencoded", "x-test": "yes", "x_sneaky": "1"},
        )
        assert r.status_code == 202, r.text
        assert r.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
        assert r.headers["x-app"] == "wsgi"
        assert r.json() == {
            "method": "POST",
            "path": "/orders",
            "query": "id=3",
            "body": "name=caf\u00e9",
            "type": "application/x-www-form-urlencoded",
            "x_test": "yes",
            "underscored": None,
            "remote": "127.0.0.1",
            "scheme": "http",
            "script_name": "",
        }
        assert execution_logs(c, r) == "served /orders\n"  # wsgi.errors is the request's log
        r = c.get("/fn/py-wsgi/stream")
        assert r.status_code == 200 and r.text == "line 0\nline 1\nline 2\n"
        assert "content-length" not in r.headers  # a generator is streamed as it is produced
        assert "the WSGI app failed" in function_error(c.get("/fn/py-wsgi/raise"))
        r = c.get("/fn/py-wsgi/unicode/caf%C3%A9")
        assert r.status_code == 200 and r.content == "/unicode/caf\u00e9".encode()
        r = c.get("/fn/py-wsgi/text")
        assert r.status_code == 200 and r.text == "caf\u00e9 " * 3 and r.headers["content-length"] == "18"


FLASK = r"""
from flask import Flask, Response, jsonify, make_response, request

app = Flask(__name__)  # named app, but WSGI: told apart by behaviour
app.config["PROPAGATE_EXCEPTIONS"] = True


@app.get("/hello/<name>")
def hello(name):
    return jsonify(hello=name, q=request.args.get("q"), root=request.url_root)


@app.post("/echo")
def echo():
    response = make_response(jsonify(got=request.get_json()), 201)
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


@app.get("/stream")
def stream():
    return Response((f"line {i}\n" for i in range(3)), mimetype="text/plain")


@app.get("/boom")
def boom():
    raise RuntimeError("flask view failed")
"""

FASTAPI = r"""
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse

startups = []


@asynccontextmanager
async def lifespan(app):
    startups.append("startup")
    yield {"db": "connected"}


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}")
async def item(item_id: int, request: Request, q: str | None = None):
    return {"item_id": item_id, "q": q, "startups": startups, "db": request.state.db}


@app.post("/items")
async def create(payload: dict, response: Response):
    response.status_code = 201
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return {"created": payload}


@app.get("/stream")
async def stream():
    async def parts():
        for i in range(3):
            yield f"part {i}\n"
    return StreamingResponse(parts(), media_type="text/plain")


@app.get("/boom")
async def boom():
    raise RuntimeError("fastapi route failed")
"""


def test_a_real_flask_app_from_pypi(orvad: Orvad) -> None:
    with orvad.admin() as c:
        deploy(c, "py-flask", FLASK, dependencies="flask==3.0.3", csp_sandbox=False)
        r = c.get("/fn/py-flask/hello/orva", params={"q": "x"})
        assert r.status_code == 200, r.text
        assert r.json() == {"hello": "orva", "q": "x", "root": f"http://127.0.0.1:{orvad.port}/"}
        assert c.get("/fn/py-flask/hello/caf%C3%A9").json()["hello"] == "caf\u00e9"
        r = c.post("/fn/py-flask/echo", json={"n": [1, 2]})
        assert r.status_code == 201 and r.json() == {"got": {"n": [1, 2]}}
        assert [v.split(";")[0] for v in r.headers.get_list("set-cookie")] == ["a=1", "b=2"]
        r = c.get("/fn/py-flask/stream")
        assert r.status_code == 200 and r.text == "line 0\nline 1\nline 2\n"
        assert c.get("/fn/py-flask/missing").status_code == 404  # Flask's own answer
        assert "flask view failed" in function_error(c.get("/fn/py-flask/boom"))


def test_a_real_fastapi_app_from_pypi(orvad: Orvad) -> None:
    with orvad.admin() as c:
        deploy(c, "py-fastapi", FASTAPI, dependencies="fastapi==0.115.6", csp_sandbox=False, memory_mb=256)
        r = c.get("/fn/py-fastapi/items/5", params={"q": "x"})
        assert r.status_code == 200, r.text
        assert r.json() == {"item_id": 5, "q": "x", "startups": ["startup"], "db": "connected"}
        assert c.get("/fn/py-fastapi/items/five").status_code == 422  # FastAPI's own validation
        r = c.post("/fn/py-fastapi/items", json={"name": "pen"})
        assert r.status_code == 201 and r.json() == {"created": {"name": "pen"}}
        assert [v.split(";")[0] for v in r.headers.get_list("set-cookie")] == ["a=1", "b=2"]
        r = c.get("/fn/py-fastapi/stream")
        assert r.status_code == 200 and r.text == "part 0\npart 1\npart 2\n"
        assert "content-length" not in r.headers
        assert "fastapi route failed" in function_error(c.get("/fn/py-fastapi/boom"))


SHAPES_LISTED = (
    "does not define a callable handler",
    "lambda_handler",
    "main",
    "handler(event)",
    "async def",
    "ASGI",
    "WSGI",
    "app or application",
)


@pytest.mark.parametrize(
    ("what", "code"),
    [
        ("nothing", "x = 1\n"),
        ("other names", "def handle(event, context):\n    return 1\n\n\ndef process(event):\n    return 2\n"),
        ("a script main", "def main():\n    print('hello')\n"),
        ("not callable", "handler = {'route': '/'}\napp = None\n"),
    ],
)
def test_a_module_with_nothing_usable_fails_its_build_listing_the_shapes(
    orvad: Orvad, what: str, code: str
) -> None:
    name = "py-unusable-" + what.replace(" ", "-")
    with orvad.admin() as c:
        create_function(c, name)
        r = c.post(f"/api/v1/functions/{name}/deploy-inline{WAIT}", json={"code": code})
        assert r.status_code == 422, r.text
        message = r.json()["error"]["message"]
        deployment = c.get(f"/api/v1/functions/{name}/deployments").json()["deployments"][0]
        assert deployment["status"] == "failed"
        for shape in SHAPES_LISTED:
            assert shape in message and shape in deployment["error_message"], (shape, message)
        if what == "a script main":
            assert "main() takes no arguments" in message


def test_asgi_lifespan_startup_failure_fails_the_build(orvad: Orvad) -> None:
    code = (
        "async def app(scope, receive, send):\n    if scope['type'] == 'lifespan':\n"
        "        await receive()\n        await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n"
        "        return\n"
    )
    with orvad.admin() as c:
        create_function(c, "py-asgi-startup-fails")
        r = c.post(f"/api/v1/functions/py-asgi-startup-fails/deploy-inline{WAIT}", json={"code": code})
        assert r.status_code == 422, r.text
        assert "lifespan startup failed: no database" in r.json()["error"]["message"]


def test_a_worker_that_finds_no_handler_at_run_time_answers_function_error(orvad: Orvad) -> None:
    """The module defines its handler only while an env var is set; the operator removes it later."""
    code = "import os\n\nif os.environ.get('SERVE'):\n    def handler(event):\n        return {'serving': True}\n"
    with orvad.admin() as c:
        deploy(c, "py-env-handler", code, env_vars={"SERVE": "1"})
        assert c.get("/fn/py-env-handler").json() == {"serving": True}
        r = c.put("/api/v1/functions/py-env-handler", json={"env_vars": {}})
        assert r.status_code == 200, r.text
        r = c.get("/fn/py-env-handler")
        message = function_error(r)
        for shape in SHAPES_LISTED:
            assert shape in message, (shape, message)
        execution = f"/api/v1/executions/{r.json()['error']['details']['execution_id']}"
        wait_for(lambda: c.get(execution).status_code == 200, 10.0, "the execution's record")
        assert c.get(execution).json()["error_code"] == "FUNCTION_ERROR"
        r = c.put("/api/v1/functions/py-env-handler", json={"env_vars": {"SERVE": "yes"}})
        assert r.status_code == 200, r.text
        assert c.get("/fn/py-env-handler").json() == {"serving": True}


def _tgz(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return buf.getvalue()


def deploy_fixture(c: httpx.Client, name: str) -> None:
    """As the Go original's CLI uploads a folder: a tar.gz in the multipart field `code`."""
    create_function(c, name)
    r = c.post(f"/api/v1/functions/{name}/deploy{WAIT}", files={"code": ("fn.tar.gz", _tgz(FIXTURES / name))})
    assert r.status_code == 200, r.text


def test_go_fixture_python_hello(orvad: Orvad) -> None:
    with orvad.admin() as c:
        deploy_fixture(c, "python-hello")
        r = c.post("/fn/python-hello/greet", json={})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.json() == {"message": "Hello from Python!", "method": "POST", "path": "/greet"}


def _compute_expected(n: int) -> dict[str, int]:
    """python-compute's answer, worked out here: seed 42, n draws sorted, then two 10x10 matrices."""
    random.seed(42)
    data = [random.randint(0, 1_000_000) for _ in range(n)]
    a = [[random.randint(0, 100) for _ in range(10)] for _ in range(10)]
    b = [[random.randint(0, 100) for _ in range(10)] for _ in range(10)]
    trace = sum(a[i][k] * b[k][i] for i in range(10) for k in range(10))
    return {"sorted_count": n, "sorted_min": min(data), "sorted_max": max(data), "matrix_trace": trace}


def test_go_fixture_python_compute(orvad: Orvad) -> None:
    with orvad.admin() as c:
        deploy_fixture(c, "python-compute")
        assert c.post("/fn/python-compute", content=b"").json() == _compute_expected(5000)
        assert c.post("/fn/python-compute", json={"n": 1234}).json() == _compute_expected(1234)
        assert c.post("/fn/python-compute", json={"n": 50_000}).json()["sorted_count"] == 10_000  # capped


def test_go_fixture_python_data(orvad: Orvad) -> None:
    with orvad.admin() as c:
        deploy_fixture(c, "python-data")
        everyone = c.post("/fn/python-data", json={}).json()
        assert everyone == {
            "total": 10,
            "departments": {"eng": 5, "sales": 3, "hr": 2},
            "avg_salary": 106000.0,
            "avg_age": 32.4,
            "top_earner": "Jack",
            "filtered_by": {"dept": None, "min_age": 0},
        }
        eng = c.post("/fn/python-data", json={"dept": "eng", "min_age": 28}).json()
        assert eng == {
            "total": 3,
            "departments": {"eng": 3},
            "avg_salary": 118333.33,
            "avg_age": 30.3,
            "top_earner": "Jack",
            "filtered_by": {"dept": "eng", "min_age": 28},
        }
        nobody = c.post("/fn/python-data", json={"min_age": 99}).json()
        assert nobody["total"] == 0 and nobody["top_earner"] is None and nobody["avg_salary"] == 0


def test_go_fixture_python_error(orvad: Orvad) -> None:
    """One call in five fails: within 100 calls both answers are seen (all alike: p < 1e-9)."""
    with orvad.admin() as c:
        deploy_fixture(c, "python-error")
        seen: Counter[int] = Counter()
        for _ in range(100):
            r = c.get("/fn/python-error")
            seen[r.status_code] += 1
            if r.status_code == 200:
                assert r.json()["ok"] is True and isinstance(r.json()["pid"], int)
            else:
                assert "Simulated random failure" in function_error(r)
            if seen[200] and seen[500]:
                break
        assert set(seen) == {200, 500}, seen


async def test_the_plain_handler_path_imports_neither_inspect_nor_asyncio(jail_tmp: Path) -> None:
    """Cold start: a plain def handler(event, context) or handler(event) worker decides by the code object."""
    for signature in ("event, context", "event"):
        code = write_code(
            jail_tmp / signature.replace(", ", "-"),
            {
                "handler.py": f"import sys\n\n\ndef handler({signature}):\n"
                "    return [m for m in ('inspect', 'asyncio') if m in sys.modules]\n"
            },
        )
        async with running(make_worker(code, "python")) as worker:
            reply = await call(worker, "/")
            assert reply.response is not None and json.loads(reply.response["body"]) == []
