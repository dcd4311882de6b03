"""The baseline: a bare Starlette "hello" JSON endpoint, served by the same server setup as orvad."""

import asyncio
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request):  # type: ignore[no-untyped-def]
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/", hello)])

if __name__ == "__main__":
    port, server = int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "hypercorn"
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", access_log=False,
                    log_level="warning")
    else:
        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.accesslog = None
        asyncio.run(serve(app, config))  # type: ignore[arg-type]
