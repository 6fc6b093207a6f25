"""CPU per request, in-process: each hot route handed to the ASGI app (no sockets, no client library), timed by
process time, the least of five rounds.

    .venv/bin/python benchmarks/cpu.py [--requests 2000] [--providers civitai,qingbo] [--profile civitai.poll]

Served req/s on a shared machine swings 2-3x between runs; the CPU one request costs the server does not, so
this is the figure to decide a change by. The simulator runs as `serve --speed 1000` does (a real clock sped
up, the default self-check, the collector's settings), so a poll mints its signed URLs and timestamps afresh
as it does when served. `--profile provider.route` prints a cProfile of that route instead (top 45 by
cumulative time, or PROFILE_SORT=tottime; PROFILE_FILTER="" shows every module, not only the simulator's).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from routes import PROVIDERS, Provider, Request  # noqa: E402

from simulator import heap  # noqa: E402
from simulator.clock import RealClock  # noqa: E402
from simulator.sim import Simulator  # noqa: E402

ROUTES = ("poll", "submit", "invalid")
ROUNDS = 5


async def _send(client: httpx.AsyncClient, slug: str, provider: Provider, request: Request) -> httpx.Response:
    sent = request.with_uuid()
    return await client.request(sent.method, f"/{slug}{sent.path}", content=sent.body,
                                headers={**provider.headers, **sent.headers})


class RawClient:
    """Requests handed to the ASGI app as uvicorn hands them (a scope, one body message): no client library's
    share in the figure, only what the simulator's app spends."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def send(self, slug: str, provider: Provider, request: Request) -> int:
        sent = request.with_uuid()
        path, _, query = f"/{slug}{sent.path}".partition("?")
        body = (sent.body or "").encode()
        headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"content-length", str(len(body)).encode())]
        headers += [(name.lower().encode(), value.encode()) for name, value in {**provider.headers,
                                                                               **sent.headers}.items()]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": sent.method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
                 "root_path": "", "headers": headers, "client": ("127.0.0.1", 50000),
                 "server": ("127.0.0.1", 8000)}
        status = [0]

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]

        await self.app(scope, receive, send)
        return status[0]


async def _finished_poll(sim: Simulator, client: httpx.AsyncClient, slug: str, provider: Provider) -> Request:
    sent = provider.starts.with_uuid()
    accepted = await _send(client, slug, provider, sent)
    assert accepted.status_code < 300, accepted.text
    poll = provider.poll(accepted.json(), sent)
    for _ in range(2000):
        answer = await _send(client, slug, provider, poll)
        if answer.status_code < 300 and provider.finished(answer.json()):
            return poll
        await asyncio.sleep(0.01)
    raise RuntimeError(f"{slug}: the task did not finish")


async def measure(slugs: list[str], requests: int, profile: str | None) -> None:
    sim = Simulator(clock=RealClock(speed=1000), providers=slugs)
    heap.keep_collections_short()  # the collector as `serve` sets it
    transport = httpx.ASGITransport(app=sim.app)
    raw = RawClient(sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for slug in slugs:
            provider = PROVIDERS[slug]
            chosen = {"poll": await _finished_poll(sim, client, slug, provider), "submit": provider.submit,
                      "invalid": provider.invalid}
            for route in ROUTES:
                name = f"{slug}.{route}"
                if profile is not None and profile != name:
                    continue
                request = chosen[route]
                for _ in range(50):  # first-use costs (schemas compiled, caches filled) out of the figure
                    await raw.send(slug, provider, request)
                if profile is not None:
                    profiler = cProfile.Profile()
                    profiler.enable()
                    for _ in range(requests):
                        await raw.send(slug, provider, request)
                    profiler.disable()
                    where = os.environ.get("PROFILE_FILTER", "simulator/")  # "" for every module's share
                    order = os.environ.get("PROFILE_SORT", "cumulative")
                    pstats.Stats(profiler).sort_stats(order).print_stats(where, 45)
                    continue
                spent = []
                for _ in range(ROUNDS):  # the least of a few rounds: other processes' share of the core out
                    started = time.process_time()
                    for _ in range(requests // ROUNDS):
                        await raw.send(slug, provider, request)
                    spent.append((time.process_time() - started) / (requests // ROUNDS) * 1000)
                print(f"cpu.{name} {min(spent):.3f} ms", flush=True)
    print(f"cpu.bare_app {await _bare_cost(requests):.3f} ms  # the bare Starlette app, the same way", flush=True)


async def _bare_cost(requests: int) -> float:
    from bare_app import app

    raw = RawClient(app)
    ok = Provider("bare", {}, Request("GET", "/ok"), Request("GET", "/ok"), lambda *_: Request("GET", "/ok"),
                  lambda _: True)
    for _ in range(50):
        await raw.send("ok", ok, ok.submit)
    spent = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(requests // ROUNDS):
            await raw.send("ok", ok, ok.submit)
        spent.append((time.process_time() - started) / (requests // ROUNDS) * 1000)
    return min(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument("--profile", default=None, help="provider.route to profile (e.g. civitai.poll)")
    args = parser.parse_args()
    slugs = [slug.strip() for slug in args.providers.split(",") if slug.strip()]
    if args.profile:
        slugs = [args.profile.split(".")[0]]
    asyncio.run(measure(slugs, args.requests, args.profile))


if __name__ == "__main__":
    main()
