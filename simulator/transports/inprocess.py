"""The in-process adapter: an httpx request for a provider runs through the pipeline, with no socket and no ASGI.

The pytest plugin's in-process mode (simulator.pytest_plugin.inprocess) hands each request for a provider's
real hostname here; the answer comes back as an `httpx.Response`. A network fault is acted out as a client
would meet it on a socket: `latency` and `trickle` take their real seconds, `malformed` breaks the body, and
`reset`, `empty` and `truncate` raise `Dropped`, which the plugin turns into httpx's own transport errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
from starlette.datastructures import Headers

from simulator.faults import network
from simulator.pipeline import Answer, Exchange
from simulator.pipeline.pipeline import Pipeline
from simulator.pipeline.routing import Router, Target
from simulator.transports.http import http_date


class Dropped(Exception):
    """A network fault cut the exchange; `kind` is the fault (reset, empty, truncate), `started` whether the
    status line had gone out."""

    def __init__(self, kind: str, started: bool) -> None:
        super().__init__(kind)
        self.kind = kind
        self.started = started


class InProcessTransport:
    def __init__(self, router: Router, pipeline: Pipeline, now: Callable[[], float]) -> None:
        self.router = router
        self.pipeline = pipeline
        self.now = now

    def target(self, request: httpx.Request) -> Target | None:
        """Where the request goes; None for the control plane, which is not provider traffic."""
        return self.router.resolve(request.method, request.url.path, request.headers.get("host"), request.url.query)

    async def handle(self, request: httpx.Request, target: Target) -> httpx.Response:
        """The provider's answer to a request whose body has been read (`request.read()`)."""
        host = request.headers.get("host") or request.url.netloc.decode("ascii")
        exchange = Exchange(
            method=request.method, path=request.url.path, routed_path=target.path, prefix=target.prefix,
            base_url=f"{request.url.scheme}://{host}{target.prefix}", started=self.now(),
            query_string=request.url.query, headers=Headers(raw=[(k.lower(), v) for k, v in request.headers.raw]),
            raw_body=request.content, path_params=target.path_params, transport="inprocess",
        )
        received: list[httpx.Response] = []

        async def deliver(answer: Answer) -> None:
            received.append(await self._received(answer, exchange.network, request.method))

        if target.endpoint is None:
            exchange.provider = target.provider
            await self.pipeline.settle(exchange, self.router.unknown(request.url.path), deliver)
        else:
            await self.pipeline.run(exchange, target.endpoint, deliver)
        return received[0]

    async def _received(self, answer: Answer, fault: dict[str, Any] | None, method: str) -> httpx.Response:
        """What the client receives of `answer`, after the network fault (if any) had its way with it."""
        body = answer.body
        kind = fault["network"] if fault is not None else None
        if kind in network.DROPS:
            raise Dropped(str(kind), started=kind == "truncate")
        if fault is not None and kind == "latency":
            await asyncio.sleep(network.latency(fault))
        elif fault is not None and kind == "trickle":
            chunks, interval = network.trickled(body, fault)
            await asyncio.sleep(interval * len(chunks))
        headers = answer.wire_headers()
        if kind == "malformed":
            body = network.malformed(body)
            headers = [(name, value) for name, value in headers if name != "content-length"]
            headers.append(("content-length", str(len(body))))
        headers.append(("date", http_date(self.now()).decode()))
        return httpx.Response(answer.status, headers=headers, content=b"" if method == "HEAD" else body)
