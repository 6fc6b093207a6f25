"""The one place the ASGI server is set up, for `nanobanana-sim serve` and for `LiveServer` alike.

Server settings (keep-alive, read deadlines, the connection cap: simulator.connections) are written here once, so
the command line and the tests and the pytest plugin run the same server.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from dataclasses import replace

import uvicorn
from starlette.types import ASGIApp

from simulator.connections import DEFAULT_LIMITS, Limits, base_protocol, guarded
from simulator.listener import Listener
from simulator.sim import Simulator

BACKLOG = 2048
# File descriptors kept free beyond the connection cap: the listening socket, webhook connections, image files.
RESERVED_FILES = 64
WS_MAX_FRAME = 64 * 1024 * 1024 + 1


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

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None or self.config.ssl is not None:
            await super().startup(sockets=sockets)
            return
        # The sockets are served by simulator.listener (every waiting connection accepted at once), not by the
        # loop's own server, with the protocol uvicorn would have built.
        await super().startup(sockets=[])
        config, loop = self.config, asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:
            return config.http_protocol_class(  # type: ignore[call-arg]
                config=config, server_state=self.server_state, app_state=self.lifespan.state)

        self.servers = [Listener(loop, sock, protocol, config.backlog) for sock in sockets]  # type: ignore[misc]

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.sim.closing = True  # uvicorn waits for open responses; the inspector's live stream ends on this
        await super().shutdown(sockets=sockets)


def server_config(app: ASGIApp, limits: Limits = DEFAULT_LIMITS) -> uvicorn.Config:
    """The uvicorn settings every server of the project runs with (the benchmark's bare app too, so that it is
    measured on the same stack)."""
    # log_config=None: uvicorn leaves the process's logging alone (the plugin runs inside a user's pytest); its
    # warnings reach whatever handles the `uvicorn` logger (`simulator.logs.configure` under `serve`). Requests
    # are logged from the journal (simulator.access_log), not by uvicorn. The Date header is the simulator's own.
    # Idle keep-alive connections are kept open `keep_alive` seconds (75 by default, like common load balancers:
    # a client that pools connections should not meet uvicorn's 5 s default as a spurious disconnect).
    capped = replace(limits, max_connections=connection_cap(limits.max_connections))
    return uvicorn.Config(
        app, log_config=None, log_level=logging.WARNING, access_log=False, lifespan="off",
        timeout_keep_alive=math.ceil(limits.keep_alive), date_header=False,
        http=guarded(base_protocol(), capped),
        # Runware's WebSocket API (simulator.transports.websocket) on the `websockets` library's sans-I/O protocol
        # (its legacy one is deprecated). Frames up to the largest `ws_max_frame_bytes` reach the transport, which
        # refuses an oversized one with the provider's error rather than a bare close.
        ws="websockets-sansio", ws_max_size=WS_MAX_FRAME,
    )


def connection_cap(requested: int) -> int:
    """The connection cap the process can keep: its open-file limit is raised towards what the cap needs, as far
    as the OS allows, and the cap lowered to fit under it (with RESERVED_FILES to spare) where it cannot be."""
    try:
        import resource
    except ImportError:  # not a POSIX system: the OS has no such per-process limit to fit under
        return requested
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = requested + RESERVED_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(1, min(requested, soft - RESERVED_FILES))


def build_server(sim: Simulator, app: ASGIApp | None = None, limits: Limits = DEFAULT_LIMITS) -> SimulatorServer:
    """The server for `sim` (its app unless another is given); run it with `.run(sockets=[listen(...)])`
    or await `.serve(sockets=[...])` on a loop of your own."""
    return SimulatorServer(server_config(app or sim.app, limits), sim)
