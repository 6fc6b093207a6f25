"""Where a session's simulator runs: on a loopback port (live) or behind respx (in-process).

Both kinds hold one `Simulator` on one event loop and a `ControlClient` to it, so a test sees the same
engine, control API and journal whichever mode it runs in; only how the client under test reaches the
app differs (`base_url`, and whether respx routing is switched on around the test).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

import httpx

from simulator.clock import RealClock, VirtualClock
from simulator.control_client import ControlClient
from simulator.live import LiveServer
from simulator.pytest_plugin.inprocess import AppDispatcher, AppTransport, EngineLoop, HostRouter
from simulator.sim import Simulator

T = TypeVar("T")

# A reserved name (RFC 2606): the in-process control client's URL can never reach a real network.
CONTROL_URL = "http://nanobanana-sim.invalid"


class Harness:
    mode: ClassVar[str]

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.control: ControlClient

    def hosts(self, slug: str) -> list[str]:
        return self.sim.provider(slug).hosts

    def base_url(self, slug: str) -> str:
        raise NotImplementedError

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the loop that owns the engine."""
        raise NotImplementedError

    def activate(self) -> None:
        """Switch on whatever routes the client under test to the simulator (for one test)."""

    def deactivate(self) -> None:
        pass

    def close(self) -> None:
        self.control.close()


class LiveHarness(Harness):
    mode = "live"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.server = LiveServer(sim).start()
        self.control = ControlClient(self.server.url, token=sim.control_token)

    def base_url(self, slug: str) -> str:
        self.sim.provider(slug)  # an unknown slug fails here, naming the served ones
        return self.server.provider_url(slug)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.server.call(coroutine)

    def close(self) -> None:
        super().close()
        self.server.stop()


class InProcessHarness(Harness):
    mode = "inprocess"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.engine_loop = EngineLoop(sim)
        dispatcher = AppDispatcher(self.engine_loop, sim.app)
        # A client the control client does not own (it closes only clients it made): closed with the harness.
        self._http = httpx.Client(transport=AppTransport(dispatcher), timeout=60)
        self.control = ControlClient(CONTROL_URL, client=self._http, token=sim.control_token)
        every_host = [host for provider in sim.providers.values() for host in provider.hosts]
        self.router = HostRouter(dispatcher, every_host)

    def base_url(self, slug: str) -> str:
        return f"https://{self.hosts(slug)[0]}"

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.engine_loop.submit(coroutine).result(60)

    def activate(self) -> None:
        self.router.start()

    def deactivate(self) -> None:
        self.router.stop(quiet=True)

    def close(self) -> None:
        super().close()
        self._http.close()
        self.engine_loop.close()


HARNESSES: dict[str, type[Harness]] = {cls.mode: cls for cls in (LiveHarness, InProcessHarness)}


class HarnessPool:
    """One harness per (mode, clock kind), started on first use and kept for the session.

    Seed, scenario, autojump and tick change per test through the control plane; only a real clock needs a
    simulator of its own, because the clock is fixed when a simulator is built.
    """

    def __init__(self, self_check: str | None = None) -> None:
        self._harnesses: dict[tuple[str, bool], Harness] = {}
        self.self_check = self_check

    def get(self, mode: str, real_clock: bool) -> Harness:
        key = (mode, real_clock)
        if key not in self._harnesses:
            clock = RealClock() if real_clock else VirtualClock(autojump=True)
            self._harnesses[key] = HARNESSES[mode](Simulator(clock=clock, self_check=self.self_check))
        return self._harnesses[key]

    def close(self) -> None:
        while self._harnesses:
            _, harness = self._harnesses.popitem()
            harness.close()
