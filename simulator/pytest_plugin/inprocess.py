"""In-process mode: the simulator on its own event loop, reached without a socket.

The engine (clock timers, waiting requests, webhook retries) lives on one event loop in a background
thread, exactly as under `LiveServer`, but nothing listens on a port. Requests reach it two ways:

- a client under test keeps its own `httpx.Client` / `httpx.AsyncClient` aimed at the providers' real
  https hosts, and `HostRouter` (a respx router patched in under httpx's connection pool) hands every
  request for those hosts to the request pipeline through the in-process transport
  (simulator.transports.inprocess): no HTTP server, no ASGI; any other host goes on to the network
  (webhook receivers on 127.0.0.1) or to the test's own respx routes;
- the control client uses `AppTransport`, an httpx transport into the ASGI app (the control plane is HTTP's).

Network faults come back as the transport errors a socket would give (`httpx.ReadError` for a reset,
`RemoteProtocolError` for an empty or truncated answer), and the client's read timeout is honoured.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpcore
import httpx
from respx.models import AllMockedAssertionError, PassThrough, Route
from respx.router import MockRouter
from starlette.types import ASGIApp

from simulator.proxy.upstream import FORWARDING
from simulator.sim import Simulator
from simulator.transports.inprocess import Dropped, InProcessTransport

T = TypeVar("T")


class EngineLoop:
    """An event loop in a daemon thread that owns the simulator's engine (like LiveServer, minus uvicorn)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="nanobanana-sim-inprocess", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.submit(self._shutdown()).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    async def _shutdown(self) -> None:
        # Requests still parked on the clock (a client that gave up mid-wait) would otherwise be destroyed
        # pending when the loop closes, with a warning per request.
        current = asyncio.current_task()
        parked = [task for task in asyncio.all_tasks() if task is not current]
        for task in parked:
            task.cancel()
        await asyncio.gather(*parked, return_exceptions=True)
        await self.sim.engine.webhooks.aclose()


@dataclass(frozen=True)
class _Failure:
    """How one way of losing an exchange surfaces: as httpcore raises it under httpx's pool (so httpx maps it
    for the client, as for a real socket), or as httpx raises it from a transport of its own."""

    core: type[Exception]
    plain: type[httpx.TransportError]
    message: str

    def at_core(self) -> Exception:
        return self.core(self.message)

    def at_httpx(self, request: httpx.Request) -> httpx.TransportError:
        return self.plain(self.message, request=request)


# The messages are what httpx/h11 say for the same event on a real socket.
_RESET = _Failure(httpcore.ReadError, httpx.ReadError, "[Errno 104] Connection reset by peer")
_EMPTY = _Failure(httpcore.RemoteProtocolError, httpx.RemoteProtocolError,
                  "Server disconnected without sending a response.")
_TRUNCATED = _Failure(httpcore.RemoteProtocolError, httpx.RemoteProtocolError,
                      "peer closed connection without sending complete message body (incomplete chunked read)")
_TIMEOUT = _Failure(httpcore.ReadTimeout, httpx.ReadTimeout, "timed out")


def _failure(drop: Dropped) -> _Failure:
    if drop.started:
        return _TRUNCATED
    return _EMPTY if drop.kind == "empty" else _RESET


class _Lost(Exception):
    def __init__(self, failure: _Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class AppDispatcher:
    """Runs httpx requests on the engine loop, from any other thread or loop: provider traffic through the
    request pipeline (the in-process transport), the control plane through the ASGI app."""

    def __init__(self, engine_loop: EngineLoop, app: ASGIApp) -> None:
        self.engine_loop = engine_loop
        sim = engine_loop.sim
        self._providers = InProcessTransport(sim.router, sim.pipeline, sim.engine.now)
        self._app = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        target = self._providers.target(request)
        if target is not None:
            try:
                return await self._providers.handle(request, target)
            except Dropped as drop:
                raise _Lost(_failure(drop)) from drop
        response = await self._app.handle_async_request(request)
        body = await response.aread()
        # Rebuilt with the whole body in memory, so a sync client can read it on its own thread.
        return httpx.Response(response.status_code, headers=response.headers.raw, content=body)

    @staticmethod
    def _read_timeout(request: httpx.Request) -> float | None:
        timeout = request.extensions.get("timeout") or {}
        value = timeout.get("read") if isinstance(timeout, dict) else None
        return float(value) if value is not None else None

    def send(self, request: httpx.Request) -> httpx.Response:
        """Blocking; raises `_Lost` when the exchange is cut or the client's read timeout passes."""
        request.read()
        future = self.engine_loop.submit(self._exchange(request))
        try:
            return future.result(self._read_timeout(request))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise _Lost(_TIMEOUT) from None

    async def asend(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        future = self.engine_loop.submit(self._exchange(request))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._read_timeout(request))
        except TimeoutError:
            future.cancel()
            raise _Lost(_TIMEOUT) from None
        except asyncio.CancelledError:
            future.cancel()
            raise


class AppTransport(httpx.BaseTransport):
    """An httpx transport into the app: the control client's way in, no socket and no respx involved."""

    def __init__(self, dispatcher: AppDispatcher) -> None:
        self.dispatcher = dispatcher

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.dispatcher.send(request)
        except _Lost as lost:
            raise lost.failure.at_httpx(request) from None


class HostRouter(MockRouter):
    """A respx router that answers the providers' real hostnames from the simulator.

    respx calls `handler` for sync clients and `async_handler` for async ones, so each waits for the engine
    loop its own way: a sync client blocks its thread, an async client awaits without blocking its loop.
    """

    def __init__(self, dispatcher: AppDispatcher, hosts: Iterable[str]) -> None:
        super().__init__(assert_all_called=False, assert_all_mocked=True, using="httpcore")
        self.dispatcher = dispatcher
        self.hosts = frozenset(host.lower() for host in hosts)

    def _ours(self, request: httpx.Request) -> bool:
        # The proxy's own request to the real provider (a relay forwarding) is for the network, not for us.
        return request.url.host.lower() in self.hosts and not FORWARDING.get()

    def handler(self, request: httpx.Request) -> httpx.Response:
        if not self._ours(request):
            raise self._elsewhere(request)
        try:
            return self.dispatcher.send(request)
        except _Lost as lost:
            raise lost.failure.at_core() from None

    async def async_handler(self, request: httpx.Request) -> httpx.Response:
        if not self._ours(request):
            raise self._elsewhere(request)
        try:
            return await self.dispatcher.asend(request)
        except _Lost as lost:
            raise lost.failure.at_core() from None

    def _elsewhere(self, request: httpx.Request) -> Exception:
        # A router started after ours (the test's own respx mock) gets its turn when we decline with
        # respx's "not mocked"; when ours is the last, the request goes to the network as without us.
        routers = self.Mocker.routers if self.Mocker is not None else []
        if routers and routers[-1] is not self:
            return AllMockedAssertionError(f"nanobanana-sim: {request.url.host} is not a simulated provider host")
        return PassThrough(f"{request.url.host} is not simulated", request=request, origin=Route())
