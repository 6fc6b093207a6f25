"""Slow and surplus clients: read deadlines and a connection cap on top of uvicorn's own HTTP protocol.

uvicorn times out idle keep-alive connections, but not a client that opens a socket and never finishes its
request: 500 sockets dribbling header bytes were held forever, and a few more than the process's file limit
made the server refuse everyone. `guarded(base)` subclasses uvicorn's protocol (h11, or httptools where
installed: the one uvicorn would pick) with:

- a header deadline: a new connection, or a kept-alive one whose next request has begun, must finish its
  request line and headers within `header_timeout` seconds, else it is closed;
- a body deadline: while a request body is arriving, a gap of more than `body_timeout` seconds between two
  pieces closes the connection (the application sees the client go away, and journals the exchange);
- a connection cap: past `max_connections` open connections a new one is answered `503` with `Retry-After`
  and closed at once, so the file descriptors stay below the process's limit and the server keeps serving
  the connections it has.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

# Written on a connection over the cap before it is closed: the server's own answer, as no request was read.
REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
           b"retry-after: 1\r\nconnection: close\r\ncontent-length: 48\r\n\r\n"
           b"nanobanana-sim: too many open connections; retry")


@dataclass(frozen=True)
class Limits:
    """Read deadlines (seconds) and the connection cap; the settings table's defaults."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: float = 75.0
    max_connections: int = 1000


DEFAULT_LIMITS = Limits()


def guarded(base: type[asyncio.Protocol], limits: Limits) -> type[asyncio.Protocol]:
    """uvicorn's protocol class `base` with the deadlines and the cap of `limits`."""

    class Guarded(base):  # type: ignore[valid-type, misc]
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                transport.write(REFUSED)
                transport.close()
                return
            self._arm(limits.header_timeout, reset=False)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            cycle = self.cycle
            if self.transport.is_closing():
                self._disarm()
            elif cycle is None or cycle.response_complete:
                self._arm(limits.header_timeout, reset=False)  # a request's headers are on their way
            elif cycle.more_body:
                self._arm(limits.body_timeout, reset=True)  # the body is on its way: a gap, not a total
            else:
                self._disarm()  # the request is read; answering it takes what it takes

        def on_response_complete(self) -> None:
            self._disarm()  # between requests, uvicorn's keep-alive timeout governs
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_websocket_upgrade(self, *event: Any) -> None:
            super().handle_websocket_upgrade(*event)
            # The socket belongs to the WebSocket protocol now, and this one never hears `connection_lost`, where
            # uvicorn lets go of the httptools parser, which holds this protocol's methods: a cycle that outlives
            # the connection once `serve` has frozen it (simulator.heap).
            self.parser = None

        def _arm(self, seconds: float, *, reset: bool) -> None:
            if self._deadline is not None and not reset:
                return
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete and self.flow.read_paused:
                # The application is not reading yet (its buffer is full): the client is not the slow one.
                self._arm(limits.body_timeout, reset=True)
                return
            if cycle is not None and not cycle.response_complete and not cycle.more_body:
                return  # the request was read in the meantime
            self.transport.close()

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


def base_protocol() -> type[asyncio.Protocol]:
    """The HTTP protocol uvicorn's `http="auto"` picks: httptools where it is installed, else h11."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    return HttpToolsProtocol
