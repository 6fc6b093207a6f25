"""Accepting connections: every waiting connection at once, whichever event loop serves.

libuv (under uvloop, which uvicorn picks where installed) accepts one connection per turn of the event loop
since libuv 1.45 and leaves the rest in the kernel's queue. A busy simulator's turn runs every request that is
ready, tens of milliseconds under load, so 50 clients connecting together waited up to 50 turns: under wrk
`-c50` the last connections' first requests took 1.3-1.9 s while every request the server had read was answered
within 150 ms, which put the p99 of a submit at 15-20x its p50 (the bare app, whose turns are short, hid it).
asyncio's own loop accepts up to the backlog per readiness. So the simulator accepts for itself: on each
readiness of the listening socket it takes every connection waiting (up to the backlog, as asyncio does) and
hands each to the loop as an accepted socket, with the protocol uvicorn would have given it.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable

ProtocolFactory = Callable[[], asyncio.Protocol]
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Listener:
    """A listening socket served by `protocol_factory`: the `close()` / `wait_closed()` of an asyncio Server,
    which is all uvicorn asks of the servers it keeps."""

    retry_delay = 1.0  # seconds before accepting again once the process is out of descriptors

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol_factory: ProtocolFactory,
                 backlog: int) -> None:
        self._loop = loop
        self._sock = sock
        self._factory = protocol_factory
        self._backlog = backlog
        self._pending: set[asyncio.Task[object]] = set()
        self._closed = False
        self._fd = sock.fileno()
        sock.setblocking(False)
        loop.add_reader(self._fd, self._accept)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return () if self._closed else (self._sock,)

    def _accept(self) -> None:
        for _ in range(self._backlog):
            try:
                conn, _address = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    # The socket stays readable: retried at once, it would spin. The connections wait in the
                    # kernel's queue until descriptors are free again (asyncio's own servers do the same).
                    self._loop.remove_reader(self._fd)
                    self._loop.call_later(self.retry_delay, self._resume)
                return  # otherwise one client gave up before being accepted (ECONNABORTED)
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                # Without it each answer waits for the client's delayed ACK (~40 ms).
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self._loop.create_task(self._adopt(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def _resume(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._fd, self._accept)

    async def _adopt(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError:
            conn.close()  # the client went away between accept and set-up: nothing of it reached the app

    def close(self) -> None:
        """Stop accepting; connections already made go on (the server winds them down)."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._sock.close()

    async def wait_closed(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
