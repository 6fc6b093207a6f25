"""Assemble the ASGI app: every provider through the HTTP and WebSocket transports, the control plane under /_sim."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from simulator.http.control import control_routes
from simulator.pipeline.routing import CONTROL_PREFIX
from simulator.transports.http import HttpTransport
from simulator.transports.websocket import WebSocketTransport

if TYPE_CHECKING:
    from simulator.sim import Simulator


def build_app(sim: Simulator) -> ASGIApp:
    control = Starlette(routes=[Mount(CONTROL_PREFIX, routes=control_routes(sim))])
    http = HttpTransport(sim.router, sim.pipeline, control, sim.engine.now)
    return WebSocketTransport(sim.router, sim.pipeline, sim.engine, http)
