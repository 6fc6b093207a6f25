"""Run a Simulator on a loopback port in a background thread (tests, the pytest plugin, notebooks)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.types import ASGIApp

from simulator.serving import SimulatorServer, build_server, listen
from simulator.sim import Simulator

T = TypeVar("T")


class LiveServer:
    """`with LiveServer(sim) as server: httpx.get(server.url + "/_sim/")`."""

    def __init__(self, sim: Simulator, host: str = "127.0.0.1", port: int = 0, app: ASGIApp | None = None) -> None:
        self.sim = sim
        self.app = app or sim.app
        self.host = host
        self._requested_port = port
        self._socket: socket.socket | None = None
        self._server: SimulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()

    @property
    def port(self) -> int:
        assert self._socket is not None, "server not started"
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def provider_url(self, slug: str) -> str:
        return f"{self.url}/{slug}"

    def start(self) -> LiveServer:
        self._socket = listen(self.host, self._requested_port)
        self._server = build_server(self.sim, self.app)
        self._thread = threading.Thread(target=self._run, name="nanobanana-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the simulator did not start within 10 s")
        return self

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        assert self._server is not None and self._socket is not None
        self._loop.call_soon(self._wait_started)
        self._loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        self._loop.close()

    def _wait_started(self) -> None:
        assert self._server is not None and self._loop is not None
        if self._server.started:
            self._ready.set()
        else:
            self._loop.call_later(0.005, self._wait_started)

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run a coroutine on the server's loop (engine state is only touched there)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
