"""WebSocket connections through the relay: each client connection has its counterpart at the upstream.

A client's frames reach the relay one by one through the pipeline (simulator.transports.websocket); the first one
opens a connection to the upstream's WebSocket (a `Link`), and every frame goes out on it. What the upstream sends,
whenever it sends it (a result as each image is ready), comes back through the link's sink to the client's
connection, where the pipeline checks, records and journals it as the upstream's (`Relay.pushed`).

The same `Link` is what a replay answers with (simulator.proxy.replay), so recording and replay share one path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

# Takes one frame's text; False when the client's connection is gone (the link then closes).
FrameSink = Callable[[str], Awaitable[bool]]
# The upstream's frames are bounded like its HTTP answers.
MAX_FRAME_BYTES = 64 * 1024 * 1024
OPEN_TIMEOUT = 15.0
# What the handshake sets itself, never forwarded from the client's.
HANDSHAKE = frozenset({"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                       "sec-websocket-protocol", "sec-websocket-accept", "content-type"})


class Link(Protocol):
    closed: bool

    async def send(self, text: str) -> None:
        """One client frame, out to the upstream (raises ConnectionError when the link is gone)."""

    async def aclose(self) -> None: ...


def socket_url(base: str) -> str:
    """The WebSocket URL beside an HTTP base URL (`https://h/p` → `wss://h/p`)."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit(parts._replace(scheme=scheme)).rstrip("/")


class UpstreamSocket:
    """A WebSocket to the upstream, its frames pumped into `sink` until either side closes."""

    def __init__(self, connection: ClientConnection, sink: FrameSink) -> None:
        self._connection = connection
        self.closed = False
        self._pump = asyncio.ensure_future(self._read(sink))

    @classmethod
    async def open(cls, url: str, headers: list[tuple[str, str]], sink: FrameSink) -> UpstreamSocket:
        try:
            connection = await connect(url, additional_headers=headers, max_size=MAX_FRAME_BYTES,
                                       open_timeout=OPEN_TIMEOUT, user_agent_header=None)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise ConnectionError(f"{url.split('?')[0]} refused the WebSocket: {type(exc).__name__}: {exc}") from exc
        return cls(connection, sink)

    async def _read(self, sink: FrameSink) -> None:
        try:
            async for message in self._connection:
                text = message if isinstance(message, str) else bytes(message).decode("utf-8", "replace")
                if not await sink(text):
                    break  # the client's connection is gone
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            await self._connection.close()

    async def send(self, text: str) -> None:
        try:
            await self._connection.send(text)
        except ConnectionClosed as exc:
            self.closed = True
            raise ConnectionError(f"the upstream closed the WebSocket ({exc})") from exc

    async def aclose(self) -> None:
        self.closed = True
        self._pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump
        await self._connection.close()
