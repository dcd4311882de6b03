"""The baselines, served by the same server setup as orvad.

`/`: a bare Starlette "hello" JSON endpoint (issue 7's baseline).
`/orva-shaped`: the same body with the headers an Orva invoke answers with (content type, the
execution id, cold-start and duration headers, the request id), from a raw ASGI callable and no
worker: what the HTTP server alone costs for an Orva-shaped response, the ceiling of any relay.
"""

import random
import sys
import time
import uuid

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request):  # type: ignore[no-untyped-def]
    return JSONResponse({"hello": "world"})


hello_app = Starlette(routes=[Route("/", hello)])
BODY = b'{"hello": "world"}'


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http" or scope["path"] != "/orva-shaped":
        await hello_app(scope, receive, send)
        return
    started = time.perf_counter()
    await receive()
    headers = [
        (b"content-type", b"application/json"),
        (b"x-orva-execution-id", str(uuid.uuid4()).encode()),
        (b"x-orva-cold-start", b"false"),
        (b"x-orva-duration-ms", f"{(time.perf_counter() - started) * 1000:.3f}".encode()),
        (b"content-length", str(len(BODY)).encode()),
        (b"x-request-id", f"req_{random.getrandbits(64):016x}".encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


async def serve(asgi, port: int, server: str) -> None:  # type: ignore[no-untyped-def]
    """Serve ``asgi`` on 127.0.0.1:port as orvad serves (Hypercorn, Uvicorn with httptools, or Granian's
    embedded server in this event loop, set up as orvad sets it up)."""
    if server == "granian":
        import asyncio
        import signal

        from orvad.http.granian_server import embedded_server

        embedded = embedded_server(asgi, "127.0.0.1", port)
        # as under the others, a signal stops serving and serve() returns (relay.py then stops its workers)
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, embedded.stop)
        await embedded.serve()
    elif server == "uvicorn":
        import uvicorn

        config = uvicorn.Config(
            asgi,
            host="127.0.0.1",
            port=port,
            http="httptools",
            access_log=False,
            log_level="warning",
            lifespan="off",
        )
        await uvicorn.Server(config).serve()
    else:
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        await hypercorn_serve(asgi, config)


if __name__ == "__main__":
    import uvloop

    uvloop.run(
        serve(app, int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "hypercorn")
    )  # orvad's loop
