"""The baseline: the thinnest app the simulator's stack can serve, on the very settings `serve` uses.

Starlette answering a fixed JSON body, behind uvicorn with one worker, the event loop and HTTP parser
uvicorn picks (uvloop and httptools when installed, as for the simulator), no access log, no Date header.

    python benchmarks/bare_app.py --port 8001
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.serving import listen, server_config


async def fixed(request: Request) -> JSONResponse:
    return JSONResponse({"id": "baseline", "status": "succeeded"})


app = Starlette(routes=[Route("/{path:path}", fixed, methods=["GET", "POST"])])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = listen("127.0.0.1", args.port)
    print(f"bare app serving on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(server_config(app)).run(sockets=[sock])


if __name__ == "__main__":
    main()
