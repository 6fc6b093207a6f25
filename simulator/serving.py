"""The one place the ASGI server is set up, for `nanobanana-sim serve` and for `LiveServer` alike.

Server settings (keep-alive, timeouts, connection limits) are written here once, so the command line and the
tests and the pytest plugin run the same server.
"""

from __future__ import annotations

import logging
import socket

import uvicorn
from starlette.types import ASGIApp

from simulator.sim import Simulator

# Idle keep-alive connections are kept open this long (s), like common load balancers: a client that pools
# connections should not meet uvicorn's 5 s default as a spurious disconnect.
KEEP_ALIVE = 75
BACKLOG = 2048


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one); OSError if it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP: asyncio only disables Nagle on accepted sockets it can see are TCP, and without that
    # every response waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        # Listening before anything is printed, so a URL shown can be used the moment it appears.
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def base_url(sock: socket.socket) -> str:
    """Where a client on this machine reaches the socket (an all-interfaces bind is reached over loopback)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SimulatorServer(uvicorn.Server):
    """uvicorn's server, closing the simulator's webhook connections on the server's own loop when it stops."""

    def __init__(self, config: uvicorn.Config, sim: Simulator) -> None:
        super().__init__(config)
        self.sim = sim

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.sim.closing = False
        try:
            await super().serve(sockets=sockets)
        finally:
            await self.sim.engine.webhooks.aclose()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.sim.closing = True  # uvicorn waits for open responses; the inspector's live stream ends on this
        await super().shutdown(sockets=sockets)


def server_config(app: ASGIApp) -> uvicorn.Config:
    """The uvicorn settings every server of the project runs with (the benchmark's bare app too, so that it is
    measured on the same stack)."""
    # log_config=None: uvicorn leaves the process's logging alone (the plugin runs inside a user's pytest); its
    # warnings reach whatever handles the `uvicorn` logger (`simulator.logs.configure` under `serve`). Requests
    # are logged from the journal (simulator.access_log), not by uvicorn. The Date header is the simulator's own.
    return uvicorn.Config(
        app, log_config=None, log_level=logging.WARNING, access_log=False, lifespan="off",
        timeout_keep_alive=KEEP_ALIVE, date_header=False,
    )


def build_server(sim: Simulator, app: ASGIApp | None = None) -> SimulatorServer:
    """The server for `sim` (its app unless another is given); run it with `.run(sockets=[listen(...)])`
    or await `.serve(sockets=[...])` on a loop of your own."""
    return SimulatorServer(server_config(app or sim.app), sim)
