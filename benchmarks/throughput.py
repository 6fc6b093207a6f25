"""Throughput and latency of the simulator's hot routes, as ratios against a baseline measured in the same run.

Two measurements: the app's own cost per request, calling the ASGI app directly (no sockets, no client:
this is the number that says what our code costs), and end to end over loopback with httpx clients in
this process (bounded by the Python client as much as by the server, so read its ratios, not its rates).

The baseline is the thinnest app the same stack can serve (Starlette behind uvicorn answering a fixed
JSON body), so the ratio says what the simulator's own work costs, whatever machine runs it.

    .venv/bin/python benchmarks/throughput.py [--requests 2000] [--concurrency 32]

Each route is hit `--requests` times by `--concurrency` keep-alive clients on loopback; the server runs in
a background thread of the same process, on a virtual clock so lifecycles cost nothing but work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from simulator.clock import VirtualClock
from simulator.live import LiveServer
from simulator.sim import Simulator

BODY = {
    "steps": [{"$type": "imageGen", "input": {
        "engine": "google", "model": "nano-banana-2", "prompt": "benchmark banana", "aspectRatio": "1:1",
    }}],
}
BAD_BODY = {"steps": [{"$type": "imageGen", "input": {"engine": "google", "model": "imagen4", "prompt": "x",
                                                       "resolution": "4K", "quantity": 2}}]}
HEADERS = {"Authorization": "Bearer bench"}


@dataclass
class Result:
    name: str
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def hammer(name: str, make_request: Callable[[httpx.AsyncClient, int], object], total: int,
                 concurrency: int, expect: int) -> Result:
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            start = time.perf_counter()
            response = await make_request(client, i)  # type: ignore[misc]
            latencies.append(time.perf_counter() - start)
            if response.status_code != expect:
                raise SystemExit(f"{name}: expected {expect}, got {response.status_code}: {response.text[:200]}")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=HEADERS, limits=limits, timeout=60) as client:
        started = time.perf_counter()
        await asyncio.gather(*[worker(client) for _ in range(concurrency)])
        return Result(name, time.perf_counter() - started, latencies)


def baseline_app() -> Starlette:
    async def ok(request: object) -> JSONResponse:
        return JSONResponse({"status": "succeeded", "id": "baseline"})

    return Starlette(routes=[Route("/ok", ok, methods=["GET", "POST"])])


async def run(total: int, concurrency: int) -> list[Result]:
    results: list[Result] = []
    # The bare app goes through the very same server harness as the simulator.
    with LiveServer(Simulator(clock=VirtualClock(), providers=["civitai"]), app=baseline_app()) as base:
        results.append(await hammer("baseline: fixed JSON", lambda c, i: c.get(f"{base.url}/ok"), total,
                                    concurrency, 200))
    sim = Simulator(clock=VirtualClock(), providers=["civitai"])
    with LiveServer(sim) as server:
        api = server.provider_url("civitai") + "/v2/consumer/workflows"
        results.append(await hammer("submit (202)", lambda c, i: c.post(api, json=BODY), total, concurrency, 202))
        ids = [t.id for t in sim.engine.tasks.all()]
        results.append(await hammer("poll GET (202)", lambda c, i: c.get(f"{api}/{ids[i % len(ids)]}"), total,
                                    concurrency, 202))
        results.append(await hammer("invalid submit (400)", lambda c, i: c.post(api, json=BAD_BODY), total,
                                    concurrency, 400))
        async with httpx.AsyncClient() as control:
            await control.post(server.url + "/_sim/clock/advance", json={"seconds": 120})
            first = (await control.get(f"{api}/{ids[0]}", headers=HEADERS)).json()
        image_url = first["steps"][0]["output"]["images"][0]["url"]
        results.append(await hammer("image download (cached)", lambda c, i: c.get(image_url, follow_redirects=True),
                                    total, concurrency, 200))
    return results


async def asgi_call(app: Any, method: str, path: str, body: bytes = b"", query: str = "") -> int:
    """One request straight into the ASGI app; returns the status."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"bench"), (b"authorization", b"Bearer bench"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def app_cost(total: int) -> list[tuple[str, float]]:
    """Microseconds per request inside the app, sequentially (the best case for each)."""
    async def timed(name: str, app: Any, method: str, path: str, body: bytes, expect: int) -> tuple[str, float]:
        started = time.perf_counter()
        for _ in range(total):
            status = await asgi_call(app, method, path, body)
            if status != expect:
                raise SystemExit(f"{name}: expected {expect}, got {status}")
        return name, (time.perf_counter() - started) / total * 1e6

    api = "/civitai/v2/consumer/workflows"
    good, bad = json.dumps(BODY).encode(), json.dumps(BAD_BODY).encode()
    rows = [await timed("baseline: fixed JSON", baseline_app(), "GET", "/ok", b"", 200)]
    # The response self-check (default `record`) against `off`: what checking every answer costs.
    for mode in ("record", "off"):
        sim = Simulator(clock=VirtualClock(), providers=["civitai"], self_check=mode)
        rows.append(await timed(f"submit (202), check {mode}", sim.app, "POST", api, good, 202))
        task_id = sim.engine.tasks.all()[0].id
        rows.append(await timed(f"poll GET (202), check {mode}", sim.app, "GET", f"{api}/{task_id}", b"", 202))
        rows.append(await timed(f"invalid (400), check {mode}", sim.app, "POST", api, bad, 400))
    return rows


def journal_memory(entries: int) -> float:
    """Bytes per journal entry for a realistic submit exchange."""
    from simulator.engine import Journal

    journal = Journal(capacity=entries)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(entries):
        journal.record("http", float(i), provider="civitai", operation="SubmitWorkflow", method="POST",
                       path="/civitai/v2/consumer/workflows", request_body=dict(BODY), status=202,
                       response_body={"id": str(i), "status": "unassigned"}, request_headers=dict(HEADERS))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    costs = asyncio.run(app_cost(args.requests))
    print(f"{'in the app (ASGI, sequential)':<34}{'µs/req':>9}{'ratio':>8}")
    for name, micros in costs:
        print(f"{name:<34}{micros:>9.0f}{micros / costs[0][1]:>8.1f}")
    print()
    results = asyncio.run(run(args.requests, args.concurrency))
    baseline = results[0].rate
    print(f"{'over loopback':<26}{'req/s':>9}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}")
    for result in results:
        print(f"{result.name:<26}{result.rate:>9.0f}{result.rate / baseline:>8.2f}"
              f"{result.quantile(0.5):>9.1f}{result.quantile(0.99):>9.1f}")
    print(f"journal: {journal_memory(10_000):.0f} bytes per submit entry (median of one run)")
    print(f"median latency ratio submit/baseline: "
          f"{statistics.median(results[1].latencies) / statistics.median(results[0].latencies):.2f}")


if __name__ == "__main__":
    main()
